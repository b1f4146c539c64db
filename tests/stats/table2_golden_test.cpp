// oracle: torchvision 0.14.1 (AnchorGenerator, Matcher(0.7, 0.3, allow_low_quality_matches=True),
// GeneralizedRCNNTransform(800, 1333)) via shared/golden/coco_mini_train2017_anchors.json, copied to
// tests/data/golden/coco_mini_train2017_anchors.json (see its README.md): Table 2 of Kisantal et al.
// on tests/data/coco_mini/instances_train2017.json. Counts exactly; per-object max IoU (printed to 6
// decimals by the oracle) to 1e-6; shares to 1e-9 (README allows 1e-5).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <map>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/stats/table2.hpp"

namespace io = pasteflow::io;
namespace ps = pasteflow::stats;

namespace {

const std::string kData = PASTEFLOW_TEST_DATA;

struct Fixture {
  io::CocoDataset dataset;
  ps::Table2 table;
  double seconds = 0.0;
  simdjson::dom::parser parser;
  simdjson::dom::element oracle;
};

Fixture& fixture() {
  static Fixture* f = [] {
    auto* out = new Fixture();
    out->dataset = io::load_coco(kData + "/coco_mini/instances_train2017.json");
    const auto t0 = std::chrono::steady_clock::now();
    out->table = ps::compute_table2(out->dataset);
    out->seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    out->oracle = out->parser.load(kData + "/golden/coco_mini_train2017_anchors.json");
    return out;
  }();
  return *f;
}

const char* kClassNames[] = {"small", "medium", "large"};

}  // namespace

TEST(Table2Golden, PerImageResizeAndAnchorCounts) {
  Fixture& f = fixture();
  std::map<int64_t, const ps::ImageAnchorStats*> by_id;
  for (const ps::ImageAnchorStats& im : f.table.images) by_id[im.image_id] = &im;
  size_t n = 0;
  for (simdjson::dom::element e : f.oracle["per_image"].get_array()) {
    const int64_t id = e["image_id"].get_int64();
    ASSERT_TRUE(by_id.count(id)) << "image " << id;
    const ps::ImageAnchorStats& im = *by_id[id];
    EXPECT_EQ(im.resize.scale, e["scale"].get_double().value()) << "image " << id;
    simdjson::dom::array resized = e["resized"].get_array();
    EXPECT_EQ(im.resize.height, resized.at(0).get_int64().value()) << "image " << id;
    EXPECT_EQ(im.resize.width, resized.at(1).get_int64().value()) << "image " << id;
    EXPECT_EQ(static_cast<int64_t>(im.num_anchors), e["num_anchors"].get_int64().value()) << "image " << id;
    ++n;
  }
  EXPECT_EQ(n, 80u);
  EXPECT_EQ(f.table.images.size(), 80u);
}

TEST(Table2Golden, PerObjectSizeMatchedAnchorsAndMaxIou) {
  Fixture& f = fixture();
  std::map<int64_t, const ps::ImageAnchorStats*> by_id;
  for (const ps::ImageAnchorStats& im : f.table.images) by_id[im.image_id] = &im;
  size_t objects = 0;
  double worst_iou = 0.0;
  for (simdjson::dom::element e : f.oracle["per_image"].get_array()) {
    const int64_t id = e["image_id"].get_int64();
    const ps::ImageAnchorStats& im = *by_id.at(id);
    simdjson::dom::array objs = e["objects"].get_array();
    ASSERT_EQ(im.object_count, objs.size()) << "image " << id;
    size_t k = 0;
    for (simdjson::dom::element o : objs) {
      const ps::ObjectAnchorStats& mine = f.table.objects[im.object_begin + k++];
      const int64_t ann_id = o["ann_id"].get_int64();
      ASSERT_EQ(mine.ann_id, ann_id) << "image " << id << " object " << k;
      EXPECT_EQ(std::string(ps::to_string(mine.size)), std::string(std::string_view(o["size"].get_string())))
          << "ann " << ann_id;
      EXPECT_EQ(mine.matched_anchors, o["matched_anchors"].get_int64().value()) << "ann " << ann_id;
      const double want = o["max_iou"].get_double();
      EXPECT_NEAR(static_cast<double>(mine.max_iou), want, 1e-6) << "ann " << ann_id;
      worst_iou = std::max(worst_iou, std::abs(static_cast<double>(mine.max_iou) - want));
      ++objects;
    }
  }
  EXPECT_EQ(objects, 731u);  // 739 annotations, 8 crowd excluded
  EXPECT_EQ(f.table.crowd_excluded, 8);
  EXPECT_EQ(f.table.degenerate_excluded, 0);
  EXPECT_EQ(f.table.total_objects, 731);
  RecordProperty("worst_max_iou_diff", std::to_string(worst_iou));
}

TEST(Table2Golden, TableRows) {
  Fixture& f = fixture();
  simdjson::dom::element table = f.oracle["table"];
  for (int c = 0; c < ps::kNumSizeClasses; ++c) {
    const ps::Table2Row& r = f.table.rows[static_cast<size_t>(c)];
    simdjson::dom::element o = table[kClassNames[c]];
    SCOPED_TRACE(kClassNames[c]);
    EXPECT_NEAR(r.object_count, o["object_count"].get_double().value(), 1e-9);
    EXPECT_NEAR(r.images, o["images"].get_double().value(), 1e-9);
    EXPECT_NEAR(r.total_object_area, o["total_object_area"].get_double().value(), 1e-9);
    EXPECT_NEAR(r.matched_anchors, o["matched_anchors"].get_double().value(), 1e-9);
    EXPECT_NEAR(r.average_matching_anchors, o["average_matching_anchors"].get_double().value(), 1e-9);
    // the mean of float32 IoUs: summation order only
    EXPECT_NEAR(r.average_max_iou, o["average_max_iou"].get_double().value(), 1e-7);
  }
  // counts behind the shares are exact: 299 / 282 / 150 objects
  EXPECT_EQ(f.table.count(ps::SizeClass::kSmall).objects, 299);
  EXPECT_EQ(f.table.count(ps::SizeClass::kMedium).objects, 282);
  EXPECT_EQ(f.table.count(ps::SizeClass::kLarge).objects, 150);
  EXPECT_EQ(f.table.count(ps::SizeClass::kSmall).images, 41);  // 0.5125 * 80
  EXPECT_EQ(f.table.count(ps::SizeClass::kSmall).matched_anchors, 1989);  // 6.652... * 299
  EXPECT_EQ(f.table.total_images, 80);
  RecordProperty("compute_seconds", std::to_string(f.seconds));
}

TEST(Table2Golden, JsonOutputCarriesTheSameNumbers) {
  Fixture& f = fixture();
  const std::string json = ps::table2_to_json(f.table, ps::Table2Options{}, true, 0);
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.parse(json);
  EXPECT_EQ(doc["table"]["small"]["object_count"].get_double().value(), f.table.rows[0].object_count);
  EXPECT_EQ(doc["counts"]["total"]["objects"].get_int64().value(), 731);
  EXPECT_EQ(doc["excluded"]["crowd"].get_int64().value(), 8);
  EXPECT_EQ(std::string(std::string_view(doc["definition"]["area_source"].get_string())), "area");
  simdjson::dom::array per = doc["per_image"].get_array();
  ASSERT_EQ(per.size(), 80u);
  // same layout as the oracle: first image of the dataset
  simdjson::dom::element first = per.at(0);
  const ps::ImageAnchorStats& im = f.table.images[0];
  EXPECT_EQ(first["image_id"].get_int64().value(), im.image_id);
  EXPECT_EQ(first["num_anchors"].get_int64().value(), static_cast<int64_t>(im.num_anchors));
  simdjson::dom::array objs = first["objects"].get_array();
  ASSERT_EQ(objs.size(), im.object_count);
  const ps::ObjectAnchorStats& o0 = f.table.objects[im.object_begin];
  EXPECT_EQ(objs.at(0)["ann_id"].get_int64().value(), o0.ann_id);
  EXPECT_EQ(static_cast<float>(objs.at(0)["max_iou"].get_double().value()), o0.max_iou);
  const std::string md = ps::table2_to_markdown(f.table);
  EXPECT_NE(md.find("| small | 40.90% | 51.25% |"), std::string::npos) << md;
}

TEST(Table2Golden, AreaSourceChangesOnlyTheClassification) {
  // bbox areas instead of the area field: anchors, IoUs and matches are unchanged,
  // only classes (and so the table) may move.
  Fixture& f = fixture();
  ps::Table2Options o;
  o.size.source = ps::AreaSource::kBboxArea;
  const ps::Table2 t = ps::compute_table2(f.dataset, o);
  ASSERT_EQ(t.objects.size(), f.table.objects.size());
  int64_t moved = 0;
  for (size_t i = 0; i < t.objects.size(); ++i) {
    const ps::ObjectAnchorStats& a = t.objects[i];
    const ps::ObjectAnchorStats& b = f.table.objects[i];
    ASSERT_EQ(a.matched_anchors, b.matched_anchors);
    ASSERT_EQ(a.max_iou, b.max_iou);
    const io::AnnotationRecord& ann = f.dataset.annotations[a.annotation_index];
    EXPECT_EQ(a.area, ann.bbox[2] * ann.bbox[3]);
    moved += a.size != b.size;
  }
  EXPECT_GT(moved, 0);  // boxes are larger than masks: some objects change class
  EXPECT_EQ(t.total_matched_anchors, f.table.total_matched_anchors);
}
