// Size classification stage: boundaries for each area source on a dataset
// built by hand (no file I/O).
#include "pasteflow/stages/size_class.hpp"

#include <gtest/gtest.h>

#include "pasteflow/core/error.hpp"

namespace io = pasteflow::io;
namespace st = pasteflow::stages;
using st::AreaSource;
using st::SizeClass;

namespace {

struct Builder {
  io::CocoDataset ds;

  uint32_t image(int64_t id, int32_t w, int32_t h) {
    io::ImageRecord im;
    im.id = id;
    im.width = w;
    im.height = h;
    ds.images.push_back(im);
    return static_cast<uint32_t>(ds.images.size() - 1);
  }

  // An annotation with area field, bbox and an uncompressed RLE whose first
  // `pixels` pixels (column-major) are set.
  io::AnnotationRecord& ann(int64_t id, uint32_t image_index, double area, double bw, double bh, uint32_t pixels) {
    const io::ImageRecord& im = ds.images[image_index];
    io::AnnotationRecord a;
    a.id = id;
    a.image_id = im.id;
    a.image_index = image_index;
    a.area = area;
    a.has_area = true;
    a.bbox = {0.0, 0.0, bw, bh};
    a.has_bbox = true;
    a.seg_kind = io::SegmentationKind::kRleCounts;
    a.rle_height = static_cast<uint32_t>(im.height);
    a.rle_width = static_cast<uint32_t>(im.width);
    a.seg_begin = ds.rle_counts.size();
    const uint32_t total = a.rle_height * a.rle_width;
    ds.rle_counts.push_back(0);
    ds.rle_counts.push_back(pixels);
    ds.rle_counts.push_back(total - pixels);
    a.seg_count = 3;
    ds.annotations.push_back(a);
    return ds.annotations.back();
  }
};

}  // namespace

TEST(SizeClassifier, AreaFieldBoundaries) {
  Builder b;
  const uint32_t im = b.image(1, 200, 200);
  const double areas[] = {0.0, 1023.999, 1024.0, 1024.001, 9215.999, 9216.0, 1e9};
  const SizeClass expected[] = {SizeClass::kSmall,  SizeClass::kSmall,  SizeClass::kMedium, SizeClass::kMedium,
                                SizeClass::kMedium, SizeClass::kLarge, SizeClass::kLarge};
  for (size_t i = 0; i < std::size(areas); ++i) b.ann(static_cast<int64_t>(i + 1), im, areas[i], 1.0, 1.0, 1);
  const st::SizeClassifier c;  // default: "area" field, 32^2 / 96^2
  EXPECT_EQ(c.config().source, AreaSource::kAreaField);
  for (size_t i = 0; i < std::size(areas); ++i) {
    EXPECT_EQ(c(b.ds, b.ds.annotations[i]), expected[i]) << "area " << areas[i];
  }
  EXPECT_EQ(c.classify_all(b.ds), std::vector<SizeClass>(std::begin(expected), std::end(expected)));
}

TEST(SizeClassifier, BboxAreaBoundaries) {
  Builder b;
  const uint32_t im = b.image(1, 200, 200);
  // the area field says "large" everywhere: only w * h must count
  b.ann(1, im, 1e6, 31.99, 32.0, 1);   // 1023.68 -> small
  b.ann(2, im, 1e6, 32.0, 32.0, 1);    // 1024 -> medium
  b.ann(3, im, 1e6, 16.0, 64.0, 1);    // 1024 -> medium
  b.ann(4, im, 1e6, 95.99, 96.0, 1);   // 9215.04 -> medium
  b.ann(5, im, 1e6, 96.0, 96.0, 1);    // 9216 -> large
  b.ann(6, im, 0.0, 0.0, 50.0, 1);     // 0 -> small
  const st::SizeClassifier c(st::SizeClassConfig{32.0 * 32.0, 96.0 * 96.0, AreaSource::kBboxArea});
  EXPECT_EQ(c.classify_all(b.ds), (std::vector<SizeClass>{SizeClass::kSmall, SizeClass::kMedium, SizeClass::kMedium,
                                                            SizeClass::kMedium, SizeClass::kLarge, SizeClass::kSmall}));
  EXPECT_DOUBLE_EQ(c.area(b.ds, b.ds.annotations[3]), 95.99 * 96.0);
}

TEST(SizeClassifier, MaskAreaBoundaries) {
  Builder b;
  const uint32_t im = b.image(7, 100, 100);  // 10000 pixels
  // the area field and bbox disagree on purpose: only the pixel count counts
  b.ann(1, im, 5.0, 1.0, 1.0, 1023);
  b.ann(2, im, 5.0, 1.0, 1.0, 1024);
  b.ann(3, im, 5.0, 1.0, 1.0, 9215);
  b.ann(4, im, 5.0, 1.0, 1.0, 9216);
  b.ann(5, im, 5.0, 1.0, 1.0, 0);
  const st::SizeClassifier c(st::SizeClassConfig{1024.0, 9216.0, AreaSource::kMaskArea});
  EXPECT_EQ(c.classify_all(b.ds), (std::vector<SizeClass>{SizeClass::kSmall, SizeClass::kMedium, SizeClass::kMedium,
                                                            SizeClass::kLarge, SizeClass::kSmall}));
  EXPECT_EQ(c.area(b.ds, b.ds.annotations[2]), 9215.0);
}

TEST(SizeClassifier, MaskAreaOfAPolygon) {
  Builder b;
  const uint32_t im = b.image(3, 64, 64);
  io::AnnotationRecord& a = b.ann(1, im, 0.0, 0.0, 0.0, 1);
  // a 40 x 40 axis-aligned square: pycocotools rasterises it to 1600 pixels
  // (as [0,0,52,0,52,36,0,36] gives 52 * 36 in tests/data/golden/mask_edge_cases.json)
  const std::vector<double> square = {10, 10, 50, 10, 50, 50, 10, 50};
  a.seg_kind = io::SegmentationKind::kPolygons;
  a.seg_begin = b.ds.part_offsets.size() - 1;
  a.seg_count = 1;
  b.ds.coords.insert(b.ds.coords.end(), square.begin(), square.end());
  b.ds.part_offsets.push_back(b.ds.coords.size());
  const st::SizeClassifier c(st::SizeClassConfig{1024.0, 9216.0, AreaSource::kMaskArea});
  EXPECT_EQ(c.area(b.ds, b.ds.annotations[0]), 1600.0);
  EXPECT_EQ(c(b.ds, b.ds.annotations[0]), SizeClass::kMedium);
}

TEST(SizeClassifier, CustomThresholdsAndErrors) {
  Builder b;
  const uint32_t im = b.image(1, 10, 10);
  b.ann(1, im, 10.0, 1.0, 1.0, 1);
  b.ann(2, im, 20.0, 1.0, 1.0, 1);
  const st::SizeClassifier c(st::SizeClassConfig{10.0, 20.0, AreaSource::kAreaField});
  EXPECT_EQ(c.classify_all(b.ds), (std::vector<SizeClass>{SizeClass::kMedium, SizeClass::kLarge}));
  EXPECT_THROW(st::SizeClassifier(st::SizeClassConfig{30.0, 20.0, AreaSource::kAreaField}), pasteflow::ConfigError);
  EXPECT_THROW(st::SizeClassifier(st::SizeClassConfig{-1.0, 20.0, AreaSource::kAreaField}), pasteflow::ConfigError);

  b.ds.annotations[0].has_area = false;
  b.ds.source_path = "x.json";
  try {
    c(b.ds, b.ds.annotations[0]);
    FAIL() << "no exception";
  } catch (const pasteflow::InputError& e) {
    EXPECT_EQ(e.reason(), "missing_area");
    EXPECT_EQ(e.where().record, "annotation id 1");
    EXPECT_EQ(e.where().file, "x.json");
  }
  b.ds.annotations[1].has_bbox = false;
  const st::SizeClassifier cb(st::SizeClassConfig{10.0, 20.0, AreaSource::kBboxArea});
  try {
    cb(b.ds, b.ds.annotations[1]);
    FAIL() << "no exception";
  } catch (const pasteflow::InputError& e) {
    EXPECT_EQ(e.reason(), "missing_bbox");
  }
  b.ds.annotations[1].seg_kind = io::SegmentationKind::kNone;
  const st::SizeClassifier cm(st::SizeClassConfig{10.0, 20.0, AreaSource::kMaskArea});
  EXPECT_THROW(cm(b.ds, b.ds.annotations[1]), pasteflow::InputError);
}

TEST(SizeClassNames, RoundTrip) {
  namespace ps = pasteflow::stats;
  for (SizeClass c : {SizeClass::kSmall, SizeClass::kMedium, SizeClass::kLarge}) {
    EXPECT_EQ(ps::parse_size_class(ps::to_string(c)), c);
  }
  for (AreaSource s : {AreaSource::kAreaField, AreaSource::kMaskArea, AreaSource::kBboxArea}) {
    EXPECT_EQ(ps::parse_area_source(ps::to_string(s)), s);
  }
  EXPECT_THROW(ps::parse_area_source("pixels"), pasteflow::ConfigError);
  EXPECT_THROW(ps::parse_size_class("tiny"), pasteflow::ConfigError);
}
