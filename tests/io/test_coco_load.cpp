// Loading real COCO files (coco_mini, labelme_voc3). Expected values were read
// from the JSON files with Python's json module.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

#include "pasteflow/io/coco.hpp"
#include "common/file.hpp"

using namespace pasteflow;
using namespace pasteflow::io;

namespace {

using pasteflow::testing::read_file;

const std::string kData = PASTEFLOW_TEST_DATA;
const std::string kTrain = kData + "/coco_mini/instances_train2017.json";
const std::string kVal = kData + "/coco_mini/instances_val2017.json";
const std::string kVoc = kData + "/labelme_voc3/annotations.json";

const AnnotationRecord& ann_by_id(const CocoDataset& ds, int64_t id) {
  for (const AnnotationRecord& a : ds.annotations) {
    if (a.id == id) return a;
  }
  throw std::runtime_error("annotation id not found: " + std::to_string(id));
}

}  // namespace

TEST(CocoLoad, TrainCountsAndKnownRecords) {
  const CocoDataset ds = load_coco(kTrain);
  EXPECT_EQ(ds.images.size(), 80u);
  EXPECT_EQ(ds.annotations.size(), 739u);
  EXPECT_EQ(ds.categories.size(), 80u);
  EXPECT_TRUE(ds.skipped.empty());
  EXPECT_EQ(ds.source_path, kTrain);

  const ImageRecord& im0 = ds.images[0];
  EXPECT_EQ(im0.id, 493652);
  EXPECT_EQ(im0.width, 640);
  EXPECT_EQ(im0.height, 399);
  EXPECT_EQ(ds.file_name(im0), "000000493652.jpg");
  EXPECT_EQ(im0.extra.size, 0u);  // extras not kept by default
  EXPECT_EQ(ds.annotations_of(0).size(), 13u);

  const AnnotationRecord& a = ds.annotations[0];
  EXPECT_EQ(a.id, 441444);
  EXPECT_EQ(a.image_id, 535506);
  EXPECT_EQ(a.category_id, 1);
  EXPECT_EQ(ds.images[a.image_index].id, 535506);
  EXPECT_EQ(ds.categories[a.category_index].id, 1);
  EXPECT_TRUE(a.has_area);
  EXPECT_DOUBLE_EQ(a.area, 52634.3678);
  EXPECT_TRUE(a.has_bbox);
  EXPECT_DOUBLE_EQ(a.bbox[0], 120.46);
  EXPECT_DOUBLE_EQ(a.bbox[3], 498.58);
  EXPECT_EQ(a.iscrowd, 0);
  ASSERT_EQ(a.seg_kind, SegmentationKind::kPolygons);
  ASSERT_EQ(ds.num_parts(a), 1u);
  const Span<const double> p = ds.polygon(a, 0);
  ASSERT_EQ(p.size(), 78u);
  EXPECT_EQ(p[0], 150.59);
  EXPECT_EQ(p[1], 622.31);
  EXPECT_EQ(p[2], 176.63);
  EXPECT_EQ(p[3], 566.15);
}

TEST(CocoLoad, MultipartPolygon) {
  const CocoDataset ds = load_coco(kTrain);
  const AnnotationRecord& a = ann_by_id(ds, 699602);
  ASSERT_EQ(a.seg_kind, SegmentationKind::kPolygons);
  ASSERT_EQ(ds.num_parts(a), 2u);
  EXPECT_EQ(ds.polygon(a, 0).size(), 10u);
  EXPECT_EQ(ds.polygon(a, 1).size(), 20u);
  EXPECT_EQ(ds.polygon(a, 1)[0], 274.39);
  EXPECT_EQ(ds.polygon(a, 1)[1], 382.29);
  size_t multipart = 0;
  for (const AnnotationRecord& r : ds.annotations) multipart += ds.num_parts(r) > 1;
  EXPECT_EQ(multipart, 52u);
}

TEST(CocoLoad, CrowdUncompressedRle) {
  const CocoDataset ds = load_coco(kTrain);
  const AnnotationRecord& a = ann_by_id(ds, 908400535506);
  EXPECT_EQ(a.iscrowd, 1);
  ASSERT_EQ(a.seg_kind, SegmentationKind::kRleCounts);
  EXPECT_EQ(a.rle_height, 640u);
  EXPECT_EQ(a.rle_width, 480u);
  const Span<const uint32_t> c = ds.counts(a);
  ASSERT_EQ(c.size(), 115u);
  EXPECT_EQ(c[0], 730u);
  EXPECT_EQ(c[1], 50u);
  EXPECT_EQ(c[2], 2u);
  uint64_t sum = 0;
  for (uint32_t v : c) sum += v;
  EXPECT_EQ(sum, 640u * 480u);
  EXPECT_EQ(a.area, 3119.0);
  size_t crowd = 0;
  for (const AnnotationRecord& r : ds.annotations) crowd += r.iscrowd;
  EXPECT_EQ(crowd, 8u);
}

TEST(CocoLoad, NonContiguousCategoryIds) {
  const CocoDataset ds = load_coco(kTrain);
  ASSERT_EQ(ds.categories.size(), 80u);
  EXPECT_EQ(ds.categories.back().id, 90);
  EXPECT_EQ(ds.str(ds.categories.back().name), "toothbrush");
  EXPECT_EQ(ds.str(ds.categories.back().supercategory), "indoor");
  EXPECT_EQ(ds.category_index(12), -1);  // COCO skips id 12
  EXPECT_EQ(ds.category_index(13), 11);
  EXPECT_EQ(ds.categories[static_cast<size_t>(ds.category_index(90))].id, 90);
  EXPECT_EQ(ds.image_index(123), -1);
}

TEST(CocoLoad, ValCounts) {
  const CocoDataset ds = load_coco(kVal);
  EXPECT_EQ(ds.images.size(), 79u);
  EXPECT_EQ(ds.annotations.size(), 624u);
  EXPECT_EQ(ds.categories.size(), 80u);
  size_t crowd = 0;
  for (const AnnotationRecord& r : ds.annotations) crowd += r.iscrowd;
  EXPECT_EQ(crowd, 5u);
}

TEST(CocoLoad, LabelmeSubfolderAndCategoryZero) {
  LoadOptions opt;
  opt.image_root = "/data/voc";
  const CocoDataset ds = load_coco(kVoc, opt);
  ASSERT_EQ(ds.images.size(), 3u);
  EXPECT_EQ(ds.annotations.size(), 12u);
  EXPECT_EQ(ds.categories.size(), 21u);
  EXPECT_EQ(ds.images[0].id, 0);
  EXPECT_EQ(ds.file_name(ds.images[0]), "JPEGImages/2011_000003.jpg");
  EXPECT_EQ(ds.image_path(ds.images[0]), "/data/voc/JPEGImages/2011_000003.jpg");
  EXPECT_EQ(ds.categories[0].id, 0);
  EXPECT_EQ(ds.str(ds.categories[0].name), "_background_");
  EXPECT_FALSE(ds.categories[0].has_supercategory);  // null in the file
  EXPECT_EQ(ds.category_index(0), 0);
  EXPECT_EQ(ds.image_index(0), 0);
  EXPECT_EQ(ann_by_id(ds, 0).image_index, 0u);
  EXPECT_EQ(ds.num_parts(ann_by_id(ds, 1)), 2u);
  EXPECT_EQ(ds.num_parts(ann_by_id(ds, 11)), 4u);
}

TEST(CocoLoad, ImageAnnotationIndex) {
  const CocoDataset ds = load_coco(kTrain);
  ASSERT_EQ(ds.image_annotations.size(), ds.annotations.size());
  std::set<uint32_t> all;
  for (size_t i = 0; i < ds.images.size(); ++i) {
    uint32_t prev = 0;
    bool first = true;
    for (uint32_t k : ds.annotations_of(i)) {
      EXPECT_EQ(ds.annotations[k].image_index, i);
      EXPECT_EQ(ds.annotations[k].image_id, ds.images[i].id);
      if (!first) {
        EXPECT_LT(prev, k);  // file order within an image
      }
      prev = k;
      first = false;
      all.insert(k);
    }
  }
  EXPECT_EQ(all.size(), ds.annotations.size());
  // Image 535506 (index 1) has 29 annotations in the file, the first 441444.
  const int64_t im = ds.image_index(535506);
  ASSERT_GE(im, 0);
  ASSERT_EQ(ds.annotations_of(static_cast<size_t>(im)).size(), 29u);
  EXPECT_EQ(ds.annotations[ds.annotations_of(static_cast<size_t>(im))[0]].id, 441444);
}

TEST(CocoLoad, ExtrasKeptVerbatim) {
  LoadOptions opt;
  opt.keep_extra_fields = true;
  const CocoDataset ds = load_coco(kTrain, opt);
  const std::string_view extra = ds.str(ds.images[0].extra);
  EXPECT_NE(extra.find("\"coco_url\": \"http://images.cocodataset.org/train2017/000000493652.jpg\""),
            std::string_view::npos)
      << extra;
  EXPECT_NE(extra.find("\"license\": 3"), std::string_view::npos);
  const std::string_view top = ds.str(ds.top_level_extra);
  EXPECT_EQ(top.substr(0, 8), "\"info\":{");
  EXPECT_NE(top.find("\"licenses\":[{\"url\": \"http://creativecommons.org/licenses/by-nc-sa/2.0/\""),
            std::string_view::npos);
}

TEST(CocoLoad, MissingFileNamesIt) {
  try {
    load_coco(kData + "/no/such/file.json");
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "io_error");
    EXPECT_NE(std::string(e.what()).find("no/such/file.json"), std::string::npos);
  }
}

TEST(CocoLoad, ParseFromMemoryMatchesFile) {
  const CocoDataset a = load_coco(kVal);
  const CocoDataset b = parse_coco(read_file(kVal), "val.json");
  EXPECT_EQ(b.source_path, "val.json");
  ASSERT_EQ(a.annotations.size(), b.annotations.size());
  EXPECT_EQ(a.coords, b.coords);
  EXPECT_EQ(a.part_offsets, b.part_offsets);
  EXPECT_EQ(a.rle_counts, b.rle_counts);
  EXPECT_EQ(a.image_annotations, b.image_annotations);
}

// Block sizes far below one record: every record is split across reads.
TEST(CocoLoad, ChunkBoundaryRobustness) {
  LoadOptions big;
  big.keep_extra_fields = true;
  const CocoDataset ref = load_coco(kTrain, big);
  for (size_t block : {16u, 17u, 64u, 100u, 333u, 4096u}) {
    SCOPED_TRACE(block);
    LoadOptions small = big;
    small.block_size = block;
    const CocoDataset ds = load_coco(kTrain, small);
    ASSERT_EQ(ds.annotations.size(), ref.annotations.size());
    ASSERT_EQ(ds.images.size(), ref.images.size());
    EXPECT_EQ(ds.coords, ref.coords);
    EXPECT_EQ(ds.part_offsets, ref.part_offsets);
    EXPECT_EQ(ds.rle_counts, ref.rle_counts);
    EXPECT_EQ(ds.strings, ref.strings);
    EXPECT_EQ(ds.image_annotations, ref.image_annotations);
    for (size_t i = 0; i < ds.annotations.size(); ++i) {
      EXPECT_EQ(ds.annotations[i].id, ref.annotations[i].id);
      EXPECT_EQ(ds.annotations[i].bbox, ref.annotations[i].bbox);
      EXPECT_EQ(ds.annotations[i].area, ref.annotations[i].area);
      EXPECT_EQ(ds.annotations[i].seg_begin, ref.annotations[i].seg_begin);
    }
  }
}
