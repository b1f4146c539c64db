// oracle: pycocotools (cocoapi 8c9bcc3) via shared/golden/mask_edge_cases.json,
// copied to tests/data/golden/mask_edge_cases.json (see its README.md).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <string>
#include <vector>

#include "pasteflow/mask/rle.hpp"

namespace pm = pasteflow::mask;
using pasteflow::Span;

namespace {

struct EdgeCases {
  uint32_t h = 0, w = 0;
  std::vector<std::vector<std::vector<double>>> polygons;  // case -> parts -> xy
  std::vector<std::string> counts;
  std::vector<uint64_t> areas;
  std::vector<std::array<double, 4>> boxes;
  std::vector<std::string> iou_counts;
  std::vector<std::vector<double>> iou, iou_crowd;
  std::string union_counts, intersect3_counts;
};

std::vector<std::vector<double>> matrix(simdjson::dom::element e) {
  std::vector<std::vector<double>> m;
  for (simdjson::dom::element row : e.get_array()) {
    m.emplace_back();
    for (simdjson::dom::element v : row.get_array()) m.back().push_back(v.get_double());
  }
  return m;
}

const EdgeCases& cases() {
  static const EdgeCases c = [] {
    EdgeCases out;
    simdjson::dom::parser parser;
    simdjson::dom::element doc = parser.load(std::string(PASTEFLOW_TEST_DATA) + "/golden/mask_edge_cases.json");
    out.h = static_cast<uint32_t>(doc["height"].get_uint64());
    out.w = static_cast<uint32_t>(doc["width"].get_uint64());
    for (simdjson::dom::element cs : doc["cases"].get_array()) {
      EXPECT_EQ(cs["height"].get_uint64().value(), out.h);
      EXPECT_EQ(cs["width"].get_uint64().value(), out.w);
      out.polygons.emplace_back();
      for (simdjson::dom::element part : cs["polygons"].get_array()) {
        out.polygons.back().emplace_back();
        for (simdjson::dom::element v : part.get_array()) out.polygons.back().back().push_back(v.get_double());
      }
      out.counts.emplace_back(std::string_view(cs["counts"].get_string()));
      out.areas.push_back(cs["area"].get_uint64());
      std::array<double, 4> b{};
      size_t i = 0;
      for (simdjson::dom::element v : cs["bbox"].get_array()) b.at(i++) = v.get_double();
      out.boxes.push_back(b);
    }
    for (simdjson::dom::element s : doc["iou_counts"].get_array()) {
      out.iou_counts.emplace_back(std::string_view(s.get_string()));
    }
    out.iou = matrix(doc["iou"]);
    out.iou_crowd = matrix(doc["iou_crowd"]);
    out.union_counts = std::string(std::string_view(doc["union_counts"].get_string()));
    out.intersect3_counts = std::string(std::string_view(doc["intersect3_counts"].get_string()));
    return out;
  }();
  return c;
}

pm::Rle rasterize(const std::vector<std::vector<double>>& parts, uint32_t h, uint32_t w) {
  std::vector<Span<const double>> spans;
  for (const auto& p : parts) spans.emplace_back(p.data(), p.size());
  return pm::from_polygons(spans, h, w);
}

std::vector<pm::Rle> first_masks(size_t n) {
  const EdgeCases& c = cases();
  std::vector<pm::Rle> out;
  for (size_t i = 0; i < n; ++i) out.push_back(rasterize(c.polygons[i], c.h, c.w));
  return out;
}

}  // namespace

TEST(MaskGoldenEdge, FileIsComplete) {
  const EdgeCases& c = cases();
  EXPECT_EQ(c.polygons.size(), 46u);
  ASSERT_EQ(c.iou_counts.size(), 12u);
  ASSERT_EQ(c.iou.size(), 12u);
  ASSERT_EQ(c.iou_crowd.size(), 12u);
}

TEST(MaskGoldenEdge, CountsAreaBboxOfEveryCase) {
  const EdgeCases& c = cases();
  for (size_t i = 0; i < c.polygons.size(); ++i) {
    SCOPED_TRACE("case " + std::to_string(i));
    const pm::Rle r = rasterize(c.polygons[i], c.h, c.w);
    EXPECT_EQ(r.h, c.h);
    EXPECT_EQ(r.w, c.w);
    EXPECT_EQ(pm::to_string(r), c.counts[i]);
    EXPECT_EQ(pm::area(r), c.areas[i]);
    EXPECT_EQ(pm::bbox(r), c.boxes[i]);
    // The oracle string decodes to the same runs.
    EXPECT_EQ(pm::from_string(c.counts[i], c.h, c.w), r);
  }
}

TEST(MaskGoldenEdge, IouCountsAreTheFirstTwelveMasks) {
  const EdgeCases& c = cases();
  const auto masks = first_masks(12);
  for (size_t i = 0; i < 12; ++i) EXPECT_EQ(pm::to_string(masks[i]), c.iou_counts[i]) << i;
}

TEST(MaskGoldenEdge, IouMatrix) {
  const EdgeCases& c = cases();
  const auto masks = first_masks(12);
  const auto m = pm::iou_matrix(masks, masks, std::vector<uint8_t>(12, 0));
  ASSERT_EQ(m.size(), 144u);
  for (size_t i = 0; i < 12; ++i) {
    for (size_t j = 0; j < 12; ++j) {
      EXPECT_EQ(m[i * 12 + j], c.iou[i][j]) << i << "," << j;
      EXPECT_EQ(pm::iou(masks[i], masks[j], false), c.iou[i][j]) << i << "," << j;
    }
  }
  // No iscrowd vector means no crowd.
  EXPECT_EQ(pm::iou_matrix(masks, masks, {}), m);
}

TEST(MaskGoldenEdge, CrowdIouMatrix) {
  const EdgeCases& c = cases();
  const auto masks = first_masks(12);
  const auto m = pm::iou_matrix(masks, masks, std::vector<uint8_t>(12, 1));
  for (size_t i = 0; i < 12; ++i) {
    for (size_t j = 0; j < 12; ++j) {
      EXPECT_EQ(m[i * 12 + j], c.iou_crowd[i][j]) << i << "," << j;
      EXPECT_EQ(pm::iou(masks[i], masks[j], true), c.iou_crowd[i][j]) << i << "," << j;
    }
  }
}

TEST(MaskGoldenEdge, UnionAndIntersection) {
  const EdgeCases& c = cases();
  const auto masks = first_masks(12);
  EXPECT_EQ(pm::to_string(pm::merge(masks, false)), c.union_counts);
  const std::vector<pm::Rle> three(masks.begin(), masks.begin() + 3);
  EXPECT_EQ(pm::to_string(pm::merge(three, true)), c.intersect3_counts);
}
