// Issue 10 regressions of the mask layer: 64-bit pixel counts (masks above
// 2^32-1 pixels are refused, never wrapped), short messages, and errors of
// annotation_rle that name the file, the byte offset, the JSON path and the
// annotation.
#include <gtest/gtest.h>

#include <string>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"

using namespace pasteflow;

namespace {

/// The InputError `f` throws (a failure when it throws none).
template <class F>
InputError error_of(F&& f) {
  try {
    f();
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "no InputError";
  return InputError("none", "none");
}

const double kTri[6] = {1, 1, 8, 1, 8, 6};

}  // namespace

TEST(MaskRegression, PixelCountAbove32BitsIsRefusedNotWrapped) {
  // 100000 x 100000 = 1e10 wrapped to 1410065408 in a 32-bit count and the
  // error blamed the RLE sum.
  for (const InputError& e : {error_of([] { mask::from_polygon(kTri, 6, 100000, 100000); }),
                              error_of([] { mask::empty(100000, 100000); }),
                              error_of([] { mask::from_bbox(1, 1, 5, 5, 100000, 100000); }),
                              error_of([] { mask::from_string("", 100000, 100000); })}) {
    EXPECT_EQ(e.reason(), "mask_too_large") << e.what();
    EXPECT_EQ(std::string(e.what()).find("1410065408"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("100000x100000"), std::string::npos) << e.what();
  }
  const uint32_t big[3] = {4000000000u, 4000000000u, 2000000000u};  // sums to 1e10 in 64 bits
  EXPECT_EQ(error_of([&] { mask::from_counts(Span<const uint32_t>(big, 3), 100000, 100000); }).reason(),
            "mask_too_large");
  const mask::Rle small = mask::empty(10, 10);
  EXPECT_EQ(error_of([&] { mask::crop(small, 0, 0, 100000, 100000); }).reason(), "mask_too_large");
  EXPECT_EQ(error_of([&] { mask::translate(small, 0, 0, 100000, 100000); }).reason(), "mask_too_large");
  // Just below the limit: one run of 65535 * 65537 = 2^32 - 1 zeros.
  const mask::Rle edge = mask::empty(65535, 65537);
  ASSERT_EQ(edge.counts.size(), 1u);
  EXPECT_EQ(edge.counts[0], 4294967295u);
  EXPECT_EQ(mask::area(edge), 0u);
  const mask::Rle tri = mask::from_polygon(kTri, 6, 65535, 65537);
  EXPECT_EQ(mask::area(tri), mask::area(mask::from_polygon(kTri, 6, 10, 10)));
}

TEST(MaskRegression, PolygonCoordinate1e308MessageIsShort) {
  const double xy[6] = {0, 0, 1e308, 0, 4, 4};
  const InputError e = error_of([&] { mask::from_polygon(xy, 6, 10, 10); });
  EXPECT_EQ(e.reason(), "polygon_range");
  EXPECT_NE(std::string(e.what()).find("1e+308"), std::string::npos) << e.what();
  EXPECT_LT(std::string(e.what()).size(), 100u) << e.what();
}

TEST(MaskRegression, EmptyPolygonListNamesFileByteOffsetPathAndId) {
  // Loads (boxes-only tools never rasterise it), fails where it is
  // rasterised, and says where it is in the file.
  const std::string bad = R"({"id":9,"image_id":1,"category_id":1,"segmentation":[]})";
  const std::string json = R"({"images":[{"id":1,"width":10,"height":10,"file_name":"a.jpg"}],"annotations":[)"
                           R"({"id":1,"image_id":1,"category_id":1,"segmentation":[[0,0,4,0,4,4]]},)" +
                           bad + R"(],"categories":[{"id":1,"name":"x"}]})";
  const io::CocoDataset ds = io::parse_coco(json, "empty.json");
  ASSERT_EQ(ds.annotations.size(), 2u);
  const InputError e = error_of([&] { mask::annotation_rle(ds, ds.annotations[1], 10, 10); });
  EXPECT_EQ(e.reason(), "empty_segmentation");
  EXPECT_EQ(e.where().file, "empty.json");
  EXPECT_EQ(e.where().byte_offset, static_cast<int64_t>(json.find(bad)));
  EXPECT_EQ(e.where().path, "annotations[1].segmentation");
  EXPECT_EQ(e.where().record, "annotation id 9");
  const std::string msg = e.what();
  EXPECT_NE(msg.find("empty.json:byte " + std::to_string(json.find(bad))), std::string::npos) << msg;
}
