// oracle: pycocotools (cocoapi 8c9bcc3) COCO.annToRLE + maskUtils.toBbox/area,
// via shared/golden/{coco_mini_train2017,coco_mini_val2017,labelme_voc3}_masks.json
// copied to tests/data/golden/ (see its README.md). Every annotation of the
// datasets is loaded with io::load_coco and converted with annotation_rle.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <string>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pm = pasteflow::mask;

namespace {

struct Golden {
  std::string counts;
  uint64_t h = 0, w = 0, area = 0;
  std::array<double, 4> bbox{};
};

std::map<int64_t, Golden> load_golden(const std::string& path) {
  std::map<int64_t, Golden> out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(path);
  for (simdjson::dom::element m : doc["masks"].get_array()) {
    Golden g;
    g.counts = std::string(std::string_view(m["counts"].get_string()));
    simdjson::dom::array size = m["size"].get_array();
    g.h = size.at(0).get_uint64();
    g.w = size.at(1).get_uint64();
    g.area = m["area"].get_uint64();
    size_t i = 0;
    for (simdjson::dom::element v : m["bbox"].get_array()) g.bbox.at(i++) = v.get_double();
    const int64_t id = m["id"].get_int64();
    EXPECT_TRUE(out.emplace(id, g).second) << "duplicate id " << id;
  }
  return out;
}

void check_dataset(const std::string& instances, const std::string& golden) {
  const std::string data = PASTEFLOW_TEST_DATA;
  const pasteflow::io::CocoDataset ds = pasteflow::io::load_coco(data + "/" + instances);
  const std::map<int64_t, Golden> expect = load_golden(data + "/golden/" + golden);
  ASSERT_FALSE(ds.annotations.empty());
  ASSERT_EQ(ds.annotations.size(), expect.size());
  for (const pasteflow::io::AnnotationRecord& ann : ds.annotations) {
    SCOPED_TRACE("annotation id " + std::to_string(ann.id));
    const auto it = expect.find(ann.id);
    ASSERT_NE(it, expect.end());
    const Golden& g = it->second;
    const pasteflow::io::ImageRecord& im = ds.images.at(ann.image_index);
    const pm::Rle r = pm::annotation_rle(ds, ann, static_cast<uint32_t>(im.height), static_cast<uint32_t>(im.width));
    EXPECT_EQ(pm::to_string(r), g.counts);
    EXPECT_EQ(r.h, g.h);
    EXPECT_EQ(r.w, g.w);
    EXPECT_EQ(pm::area(r), g.area);
    EXPECT_EQ(pm::bbox(r), g.bbox);
  }
}

}  // namespace

TEST(MaskGoldenDataset, CocoMiniTrain) {
  check_dataset("coco_mini/instances_train2017.json", "coco_mini_train2017_masks.json");
}

TEST(MaskGoldenDataset, CocoMiniVal) {
  check_dataset("coco_mini/instances_val2017.json", "coco_mini_val2017_masks.json");
}

TEST(MaskGoldenDataset, LabelmeVoc3) {
  check_dataset("labelme_voc3/annotations.json", "labelme_voc3_masks.json");
}
