// Writer: round trips through the loader, atomic replacement, segmentation
// override (the `pasteflow rle` use), appended records.
#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"

using namespace pasteflow;
using namespace pasteflow::io;
namespace fs = std::filesystem;

namespace {

const std::string kData = PASTEFLOW_TEST_DATA;

class TempDir {
 public:
  TempDir() {
    std::string tmpl = (fs::temp_directory_path() / "pf_io_XXXXXX").string();
    if (!mkdtemp(tmpl.data())) throw std::runtime_error("mkdtemp failed");
    path_ = tmpl;
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }
  size_t entries() const {
    size_t n = 0;
    for ([[maybe_unused]] const auto& e : fs::directory_iterator(path_)) ++n;
    return n;
  }

 private:
  fs::path path_;
};

bool same_bits(double a, double b) { return std::memcmp(&a, &b, sizeof a) == 0; }

void expect_same_records(const CocoDataset& a, const CocoDataset& b) {
  ASSERT_EQ(a.images.size(), b.images.size());
  ASSERT_EQ(a.annotations.size(), b.annotations.size());
  ASSERT_EQ(a.categories.size(), b.categories.size());
  for (size_t i = 0; i < a.images.size(); ++i) {
    const ImageRecord &x = a.images[i], &y = b.images[i];
    EXPECT_EQ(x.id, y.id);
    EXPECT_EQ(x.width, y.width);
    EXPECT_EQ(x.height, y.height);
    EXPECT_EQ(a.file_name(x), b.file_name(y));
    EXPECT_EQ(a.str(x.extra), b.str(y.extra));
    EXPECT_EQ(x.ann_count, y.ann_count);
  }
  for (size_t i = 0; i < a.categories.size(); ++i) {
    const CategoryRecord &x = a.categories[i], &y = b.categories[i];
    EXPECT_EQ(x.id, y.id);
    EXPECT_EQ(a.str(x.name), b.str(y.name));
    EXPECT_EQ(x.has_supercategory, y.has_supercategory);
    EXPECT_EQ(a.str(x.supercategory), b.str(y.supercategory));
    EXPECT_EQ(a.str(x.extra), b.str(y.extra));
  }
  for (size_t i = 0; i < a.annotations.size(); ++i) {
    const AnnotationRecord &x = a.annotations[i], &y = b.annotations[i];
    SCOPED_TRACE(x.id);
    EXPECT_EQ(x.id, y.id);
    EXPECT_EQ(x.image_id, y.image_id);
    EXPECT_EQ(x.category_id, y.category_id);
    EXPECT_EQ(x.image_index, y.image_index);
    EXPECT_EQ(x.category_index, y.category_index);
    EXPECT_EQ(x.has_area, y.has_area);
    EXPECT_TRUE(same_bits(x.area, y.area));
    EXPECT_EQ(x.has_bbox, y.has_bbox);
    for (size_t k = 0; k < 4; ++k) EXPECT_TRUE(same_bits(x.bbox[k], y.bbox[k]));
    EXPECT_EQ(x.has_iscrowd, y.has_iscrowd);
    EXPECT_EQ(x.iscrowd, y.iscrowd);
    ASSERT_EQ(x.seg_kind, y.seg_kind);
    EXPECT_EQ(x.seg_count, y.seg_count);
    EXPECT_EQ(a.str(x.extra), b.str(y.extra));
    switch (x.seg_kind) {
      case SegmentationKind::kPolygons:
        for (size_t k = 0; k < x.seg_count; ++k) {
          const Span<const double> p = a.polygon(x, k), q = b.polygon(y, k);
          ASSERT_EQ(p.size(), q.size());
          for (size_t j = 0; j < p.size(); ++j) EXPECT_TRUE(same_bits(p[j], q[j])) << p[j] << " vs " << q[j];
        }
        break;
      case SegmentationKind::kRleCounts: {
        const Span<const uint32_t> p = a.counts(x), q = b.counts(y);
        EXPECT_TRUE(std::equal(p.begin(), p.end(), q.begin(), q.end()));
        EXPECT_EQ(x.rle_height, y.rle_height);
        EXPECT_EQ(x.rle_width, y.rle_width);
        break;
      }
      case SegmentationKind::kRleString:
        EXPECT_EQ(a.rle_string(x), b.rle_string(y));
        EXPECT_EQ(x.rle_height, y.rle_height);
        EXPECT_EQ(x.rle_width, y.rle_width);
        break;
      case SegmentationKind::kNone: break;
    }
  }
  EXPECT_EQ(a.str(a.top_level_extra), b.str(b.top_level_extra));
  EXPECT_EQ(a.image_annotations, b.image_annotations);
}

}  // namespace

TEST(CocoWrite, RoundTripKeepsRecordsAndExtras) {
  LoadOptions keep;
  keep.keep_extra_fields = true;
  for (const char* name : {"/coco_mini/instances_train2017.json", "/coco_mini/instances_val2017.json",
                                   "/labelme_voc3/annotations.json"}) {
    SCOPED_TRACE(name);
    TempDir dir;
    const CocoDataset a = load_coco(kData + name, keep);
    const std::string out = dir.file("out.json");
    write_coco(a, out);
    EXPECT_FALSE(fs::exists(out + ".tmp"));
    const CocoDataset b = load_coco(out, keep);
    expect_same_records(a, b);
    // Writing the reloaded data gives the same bytes (fixed point).
    EXPECT_EQ(write_coco_string(a), write_coco_string(b));
  }
}

TEST(CocoWrite, ExtrasDroppedWhenNotKept) {
  const CocoDataset a = load_coco(kData + "/coco_mini/instances_val2017.json");
  const std::string text = write_coco_string(a);
  EXPECT_EQ(text.find("coco_url"), std::string::npos);
  EXPECT_EQ(text.find("\"info\""), std::string::npos);
  const CocoDataset b = parse_coco(text, "mem.json");
  expect_same_records(a, b);
}

TEST(CocoWrite, DoublesReloadBitIdentical) {
  // Coordinates within the loader's +-1e8 (io::kMaxCoordinate).
  const double tricky[] = {0.1 + 0.2,
                           1.0 / 3.0,
                           -0.0,
                           5e-324,
                           2.2250738585072014e-308,
                           std::nextafter(kMaxCoordinate, 0.0),
                           12345678.912345679,
                           kMaxCoordinate,
                           -7.000000000000001};
  CocoDataset ds;
  ImageRecord im;
  im.id = 0;
  im.width = 1;
  im.height = 1;
  im.file_name = ds.add_string("weird \"name\"\\\n.png");
  ds.images.push_back(im);
  CategoryRecord c;
  c.id = 0;
  c.name = ds.add_string("z\xc3\xa9ro");  // UTF-8 passes through
  ds.categories.push_back(c);
  AnnotationRecord a;
  a.id = 1;
  a.seg_kind = SegmentationKind::kPolygons;
  a.seg_begin = ds.add_part(Span<const double>(tricky, 6));
  ds.add_part(Span<const double>(tricky + 3, 6));
  a.seg_count = 2;
  a.has_area = true;
  a.area = tricky[0];
  a.has_bbox = true;
  a.bbox = {tricky[1], tricky[6], tricky[5], tricky[7]};
  ds.annotations.push_back(a);
  ds.rebuild_index();
  const CocoDataset back = parse_coco(write_coco_string(ds), "mem.json");
  expect_same_records(ds, back);
  EXPECT_EQ(back.file_name(back.images[0]), "weird \"name\"\\\n.png");
  EXPECT_TRUE(std::signbit(back.polygon(back.annotations[0], 0)[2]));
}

TEST(CocoWrite, AtomicNothingLeftOnFailure) {
  const CocoDataset ds = load_coco(kData + "/coco_mini/instances_val2017.json");
  TempDir dir;
  const std::string out = dir.file("result.json");
  {
    std::ofstream(out) << "old content";
  }
  WriteOptions opt;
  opt.segmentation_override = [](const CocoDataset&, size_t index, CompressedRle&) -> bool {
    if (index == 300) throw std::runtime_error("encoder failed");
    return false;
  };
  EXPECT_THROW(write_coco(ds, out, opt), std::runtime_error);
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  std::ifstream in(out);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(text, "old content");
  EXPECT_EQ(dir.entries(), 1u);

  // Unwritable target directory: io_error naming the file, nothing created.
  try {
    write_coco(ds, dir.file("missing_dir/out.json"));
    FAIL() << "expected an error";
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), "io_error");
    EXPECT_NE(std::string(e.what()).find("missing_dir/out.json"), std::string::npos);
  }
  EXPECT_EQ(dir.entries(), 1u);

  // A non-finite coordinate cannot be written as JSON: no partial file.
  CocoDataset bad = ds;
  bad.coords[bad.coords.size() / 2] = std::nan("");
  EXPECT_THROW(write_coco(bad, out), Error);
  EXPECT_FALSE(fs::exists(out + ".tmp"));
  EXPECT_EQ(dir.entries(), 1u);
}

// `pasteflow rle` rewrites every segmentation as compressed RLE and keeps
// every other field. Here: an empty mask at each image's size (an RLE of
// another size than its image does not load).
TEST(CocoWrite, SegmentationOverrideToCompressedRle) {
  LoadOptions keep;
  keep.keep_extra_fields = true;
  const CocoDataset ds = load_coco(kData + "/labelme_voc3/annotations.json", keep);
  WriteOptions opt;
  size_t calls = 0;
  opt.segmentation_override = [&calls](const CocoDataset& d, size_t index, CompressedRle& out) {
    ++calls;
    if (d.annotations[index].id == 3) return false;  // keep this one
    const ImageRecord& im = d.images[d.annotations[index].image_index];
    const mask::Rle empty = mask::empty(static_cast<uint32_t>(im.height), static_cast<uint32_t>(im.width));
    out.height = empty.h;
    out.width = empty.w;
    out.counts = mask::to_string(empty);
    return true;
  };
  TempDir dir;
  write_coco(ds, dir.file("rle.json"), opt);
  EXPECT_EQ(calls, ds.annotations.size());
  const CocoDataset back = load_coco(dir.file("rle.json"), keep);
  ASSERT_EQ(back.annotations.size(), ds.annotations.size());
  for (size_t i = 0; i < back.annotations.size(); ++i) {
    const AnnotationRecord &x = ds.annotations[i], &y = back.annotations[i];
    EXPECT_EQ(x.id, y.id);
    EXPECT_EQ(x.area, y.area);
    EXPECT_EQ(x.bbox, y.bbox);
    EXPECT_EQ(x.iscrowd, y.iscrowd);
    EXPECT_EQ(ds.str(x.extra), back.str(y.extra));
    if (x.id == 3) {
      EXPECT_EQ(y.seg_kind, SegmentationKind::kPolygons);
      EXPECT_EQ(ds.polygon(x, 0).size(), back.polygon(y, 0).size());
    } else {
      ASSERT_EQ(y.seg_kind, SegmentationKind::kRleString);
      const ImageRecord& im = back.images[y.image_index];
      EXPECT_EQ(static_cast<int64_t>(y.rle_height), im.height);
      EXPECT_EQ(static_cast<int64_t>(y.rle_width), im.width);
      EXPECT_EQ(back.rle_string(y), mask::to_string(mask::empty(y.rle_height, y.rle_width)));
    }
  }
  EXPECT_EQ(ds.str(ds.top_level_extra), back.str(back.top_level_extra));
}

TEST(CocoWrite, AppendRecordsAndRebuildIndex) {
  CocoDataset ds = load_coco(kData + "/labelme_voc3/annotations.json");
  const size_t n_ann = ds.annotations.size();
  ImageRecord im;
  im.id = 100;
  im.width = 64;
  im.height = 48;
  im.file_name = ds.add_string("aug/000100.png");
  ds.images.push_back(im);
  // Two annotations on the new image and one more on image 0.
  const double xy[] = {1, 1, 10, 1, 10, 10, 1, 10};
  for (int k = 0; k < 3; ++k) {
    AnnotationRecord a;
    a.id = 1000 + k;
    a.image_id = k < 2 ? 100 : 0;
    a.category_id = 0;
    a.seg_kind = SegmentationKind::kPolygons;
    a.seg_begin = ds.add_part(Span<const double>(xy, 8));
    a.seg_count = 1;
    a.has_iscrowd = true;
    ds.annotations.push_back(a);
  }
  const uint32_t counts[] = {10, 20, 3042};
  AnnotationRecord crowd;
  crowd.id = 2000;
  crowd.image_id = 100;
  crowd.category_id = 5;
  crowd.iscrowd = 1;
  crowd.has_iscrowd = true;
  crowd.seg_kind = SegmentationKind::kRleCounts;
  crowd.rle_height = 48;
  crowd.rle_width = 64;
  crowd.seg_begin = ds.add_counts(Span<const uint32_t>(counts, 3));
  crowd.seg_count = 3;
  ds.annotations.push_back(crowd);
  ds.rebuild_index();
  EXPECT_EQ(ds.image_index(100), 3);
  ASSERT_EQ(ds.annotations_of(3).size(), 3u);
  EXPECT_EQ(ds.annotations[ds.annotations_of(3)[2]].id, 2000);
  EXPECT_EQ(ds.annotations_of(0).size(), 4u);  // 3 from the file + 1 appended
  EXPECT_EQ(ds.annotations[ds.annotations_of(0)[3]].id, 1002);
  EXPECT_EQ(ds.annotations.size(), n_ann + 4);

  const CocoDataset back = parse_coco(write_coco_string(ds), "appended.json");
  expect_same_records(ds, back);

  // A reference to a missing image is reported by the rebuild.
  ds.annotations.back().image_id = 555;
  try {
    ds.rebuild_image_index();
    FAIL() << "expected unknown_image";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "unknown_image");
    EXPECT_NE(std::string(e.what()).find("annotation id 2000"), std::string::npos);
  }
}
