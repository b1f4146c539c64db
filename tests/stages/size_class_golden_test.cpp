// oracle: pycocotools (cocoapi 8c9bcc3) mask areas via shared/golden/coco_mini_train2017_masks.json and
// the Table 2 size classes via shared/golden/coco_mini_train2017_anchors.json, both copied to
// tests/data/golden/ (see its README.md).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <string>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/stages/size_class.hpp"

namespace io = pasteflow::io;
namespace st = pasteflow::stages;
using st::AreaSource;
using st::SizeClass;

namespace {
const std::string kData = PASTEFLOW_TEST_DATA;

const io::CocoDataset& dataset() {
  static const io::CocoDataset ds = io::load_coco(kData + "/coco_mini/instances_train2017.json");
  return ds;
}
}  // namespace

TEST(SizeClassGolden, MaskAreaIsThePycocotoolsPixelArea) {
  const io::CocoDataset& ds = dataset();
  std::map<int64_t, size_t> by_id;
  for (size_t i = 0; i < ds.annotations.size(); ++i) by_id[ds.annotations[i].id] = i;
  const st::SizeClassifier mask(st::SizeClassConfig{1024.0, 9216.0, AreaSource::kMaskArea});
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(kData + "/golden/coco_mini_train2017_masks.json");
  size_t n = 0;
  for (simdjson::dom::element m : doc["masks"].get_array()) {
    const int64_t id = m["id"].get_int64();
    ASSERT_TRUE(by_id.count(id)) << id;
    const io::AnnotationRecord& ann = ds.annotations[by_id[id]];
    const double want = static_cast<double>(m["area"].get_uint64().value());
    EXPECT_EQ(mask.area(ds, ann), want) << "annotation " << id;
    EXPECT_EQ(mask(ds, ann), mask.classify(want)) << "annotation " << id;
    ++n;
  }
  EXPECT_EQ(n, ds.annotations.size());
  // the area field and the mask area disagree on one object's class here
  const std::vector<SizeClass> by_field = st::SizeClassifier().classify_all(ds);
  const std::vector<SizeClass> by_mask = mask.classify_all(ds);
  size_t differ = 0;
  for (size_t i = 0; i < by_field.size(); ++i) differ += by_field[i] != by_mask[i];
  EXPECT_EQ(differ, 1u);
}

TEST(SizeClassGolden, AreaFieldClassesOfTheTable2Oracle) {
  const io::CocoDataset& ds = dataset();
  std::map<int64_t, size_t> by_id;
  for (size_t i = 0; i < ds.annotations.size(); ++i) by_id[ds.annotations[i].id] = i;
  const st::SizeClassifier c;
  const std::vector<SizeClass> all = c.classify_all(ds);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(kData + "/golden/coco_mini_train2017_anchors.json");
  size_t n = 0;
  for (simdjson::dom::element im : doc["per_image"].get_array()) {
    for (simdjson::dom::element o : im["objects"].get_array()) {
      const int64_t id = o["ann_id"].get_int64();
      const std::string want(std::string_view(o["size"].get_string()));
      EXPECT_EQ(pasteflow::stats::to_string(all.at(by_id.at(id))), want) << "annotation " << id;
      ++n;
    }
  }
  EXPECT_EQ(n, 731u);
}
