// COCOeval semantics on hand-made cases whose values are worked out by hand
// from pycocotools' cocoeval.py / coco.py (8c9bcc3) in the comments.
// Notation: eps = np.spacing(1); precision with one true positive first is
// 1 / (1 + eps) = 0.9999999999999998, not 1.
#include <gtest/gtest.h>

#include <cmath>
#include <string>
#include <vector>

#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"

namespace {

using namespace pasteflow;
using eval::EvalParams;
using eval::EvalResult;
using eval::IouType;

const std::string kData = PASTEFLOW_TEST_DATA;
constexpr double kOnePrecision = 1.0 / (1.0 + 2.220446049250313e-16);

std::string num(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.17g", v);
  return buf;
}

std::string box_json(const std::array<double, 4>& b) {
  return "[" + num(b[0]) + "," + num(b[1]) + "," + num(b[2]) + "," + num(b[3]) + "]";
}

/// Polygon of a box, as a COCO segmentation.
std::string box_polygon(const std::array<double, 4>& b) {
  const double x1 = b[0], y1 = b[1], x2 = b[0] + b[2], y2 = b[1] + b[3];
  return "[[" + num(x1) + "," + num(y1) + "," + num(x2) + "," + num(y1) + "," + num(x2) + "," + num(y2) + "," +
         num(x1) + "," + num(y2) + "]]";
}

/// Pixel rectangle [x, x+w) x [y, y+h) of an H x W mask.
mask::Rle rect_rle(int x, int y, int w, int h, int H, int W) {
  std::vector<uint8_t> px(static_cast<size_t>(H * W), 0);
  for (int r = y; r < y + h; ++r) {
    for (int c = x; c < x + w; ++c) px[static_cast<size_t>(r * W + c)] = 1;
  }
  return mask::encode(px.data(), static_cast<uint32_t>(H), static_cast<uint32_t>(W), static_cast<size_t>(W));
}

std::string rle_json(const mask::Rle& r) {
  std::string counts;
  JsonWriter::escape(mask::to_string(r), counts);  // the alphabet includes '\\'
  return "{\"size\":[" + std::to_string(r.h) + "," + std::to_string(r.w) + "],\"counts\":" + counts + "}";
}

std::string counts_json(const mask::Rle& r) {
  std::string s = "{\"size\":[" + std::to_string(r.h) + "," + std::to_string(r.w) + "],\"counts\":[";
  for (size_t i = 0; i < r.counts.size(); ++i) s += (i ? "," : "") + std::to_string(r.counts[i]);
  return s + "]}";
}

struct GtAnn {
  GtAnn(int64_t id_, int64_t image_id_, int64_t category_id_, std::array<double, 4> bbox_, double area_,
        int iscrowd_ = 0, std::string segmentation_ = "")
      : id(id_), image_id(image_id_), category_id(category_id_), bbox(bbox_), area(area_), iscrowd(iscrowd_),
        segmentation(std::move(segmentation_)) {}
  int64_t id;
  int64_t image_id;
  int64_t category_id;
  std::array<double, 4> bbox;
  double area;
  int iscrowd;
  std::string segmentation;  ///< JSON; empty = the box polygon
};

io::CocoDataset make_gt(const std::vector<std::array<int64_t, 3>>& images /* id, w, h */,
                        const std::vector<int64_t>& categories, const std::vector<GtAnn>& anns) {
  std::string j = "{\"images\":[";
  for (size_t i = 0; i < images.size(); ++i) {
    j += (i ? "," : "") + std::string("{\"id\":") + std::to_string(images[i][0]) +
         ",\"width\":" + std::to_string(images[i][1]) + ",\"height\":" + std::to_string(images[i][2]) +
         ",\"file_name\":\"" + std::to_string(images[i][0]) + ".jpg\"}";
  }
  j += "],\"categories\":[";
  for (size_t i = 0; i < categories.size(); ++i) {
    j += (i ? "," : "") + std::string("{\"id\":") + std::to_string(categories[i]) + ",\"name\":\"c" +
         std::to_string(categories[i]) + "\"}";
  }
  j += "],\"annotations\":[";
  for (size_t i = 0; i < anns.size(); ++i) {
    const GtAnn& a = anns[i];
    j += (i ? "," : "") + std::string("{\"id\":") + std::to_string(a.id) + ",\"image_id\":" +
         std::to_string(a.image_id) + ",\"category_id\":" + std::to_string(a.category_id) +
         ",\"bbox\":" + box_json(a.bbox) + ",\"area\":" + num(a.area) + ",\"iscrowd\":" + std::to_string(a.iscrowd) +
         ",\"segmentation\":" + (a.segmentation.empty() ? box_polygon(a.bbox) : a.segmentation) + "}";
  }
  j += "]}";
  return io::parse_coco(j, "gt.json");
}

struct Det {
  int64_t image_id;
  int64_t category_id;
  double score;
  std::optional<std::array<double, 4>> bbox;
  std::string segmentation;  ///< JSON; empty = none
};

std::vector<eval::Detection> dets_from(const io::CocoDataset& gt, const std::vector<Det>& dets) {
  std::string j = "[";
  for (size_t i = 0; i < dets.size(); ++i) {
    const Det& d = dets[i];
    j += (i ? "," : "") + std::string("{\"image_id\":") + std::to_string(d.image_id) +
         ",\"category_id\":" + std::to_string(d.category_id) + ",\"score\":" + num(d.score);
    if (d.bbox) j += ",\"bbox\":" + box_json(*d.bbox);
    if (!d.segmentation.empty()) j += ",\"segmentation\":" + d.segmentation;
    j += "}";
  }
  return eval::parse_results(j + "]", "results.json", gt);
}

EvalResult run(const io::CocoDataset& gt, const std::vector<Det>& dets, IouType type, EvalParams p = {}) {
  p.iou_type = type;
  return eval::evaluate(gt, dets_from(gt, dets), p);
}

double ap_of(const EvalResult& r, int64_t cat) {
  for (const auto& [c, ap] : r.per_category_ap) {
    if (c == cat) return ap;
  }
  ADD_FAILURE() << "no category " << cat;
  return -2;
}

/// Mean precision over IoU and recall thresholds at (k, a, m).
double ap_at(const EvalResult& r, size_t k, size_t a, size_t m) {
  double s = 0;
  for (size_t t = 0; t < r.T; ++t) {
    for (size_t ri = 0; ri < r.R; ++ri) s += r.precision_at(t, ri, k, a, m);
  }
  return s / static_cast<double>(r.T * r.R);
}

// ---------------------------------------------------------------- params

// Oracle: numpy 1.24 np.linspace(.5, 0.95, 10) and np.linspace(.0, 1.00, 101)
// (the entries where i * 0.01 differs from i / 100 in the last bit).
TEST(EvalParams, ThresholdsAreNumpyLinspaceBitForBit) {
  const EvalParams p;
  const std::vector<double> iou = {0x1.0000000000000p-1, 0x1.199999999999ap-1, 0x1.3333333333333p-1,
                                   0x1.4cccccccccccdp-1, 0x1.6666666666666p-1, 0x1.8000000000000p-1,
                                   0x1.999999999999ap-1, 0x1.b333333333333p-1, 0x1.cccccccccccccp-1,
                                   0x1.e666666666666p-1};
  EXPECT_EQ(p.iou_thrs, iou);
  ASSERT_EQ(p.rec_thrs.size(), 101u);
  EXPECT_EQ(p.rec_thrs[35], 0x1.6666666666667p-2);
  EXPECT_EQ(p.rec_thrs[41], 0x1.a3d70a3d70a3ep-2);
  EXPECT_EQ(p.rec_thrs[57], 0x1.23d70a3d70a3ep-1);
  EXPECT_EQ(p.rec_thrs[83], 0x1.a8f5c28f5c290p-1);
  EXPECT_EQ(p.rec_thrs[95], 0x1.e666666666667p-1);
  EXPECT_EQ(p.rec_thrs[50], 0.5);
  EXPECT_EQ(p.rec_thrs[100], 1.0);
}

// ---------------------------------------------------------------- crowd

class Crowd : public ::testing::TestWithParam<IouType> {};

// One normal object, one crowd region; two detections inside the crowd
// region. Crowd IoU = intersection / detection area = 1, so both match the
// crowd region (which is never used up) and are ignored: AP = AR = 1.
TEST_P(Crowd, DetectionsInsideACrowdRegionAreIgnoredNotFalsePositives) {
  const int H = 200, W = 200;
  for (int crowd : {1, 0}) {
    const mask::Rle crowd_rle = rect_rle(100, 100, 80, 80, H, W);
    const io::CocoDataset gt =
        make_gt({{1, W, H}}, {1},
                {{1, 1, 1, {10, 10, 20, 20}, 400},
                 {2, 1, 1, {100, 100, 80, 80}, 6400, crowd, crowd ? counts_json(crowd_rle) : ""}});
    const auto seg = [&](int x, int y, int w, int h) { return rle_json(rect_rle(x, y, w, h, H, W)); };
    const EvalResult r = run(gt,
                             {{1, 1, 0.9, std::array<double, 4>{10, 10, 20, 20}, seg(10, 10, 20, 20)},
                              {1, 1, 0.8, std::array<double, 4>{110, 110, 20, 20}, seg(110, 110, 20, 20)},
                              {1, 1, 0.7, std::array<double, 4>{120, 120, 30, 30}, seg(120, 120, 30, 30)}},
                             GetParam());
    if (crowd) {
      for (size_t t = 0; t < r.T; ++t) {
        EXPECT_EQ(r.recall_at(t, 0, 0, 2), 1.0);
        for (size_t ri = 0; ri < r.R; ++ri) EXPECT_EQ(r.precision_at(t, ri, 0, 0, 2), kOnePrecision);
      }
      EXPECT_NEAR(r.stats[0], 1.0, 1e-12);
    } else {
      // A normal object instead: both become false positives (IoU 400/6400
      // and 900/6400). tp = [1,1,1], fp = [0,1,2], npig = 2: recall 0.5,
      // precision ~1 up to recall 0.5 (51 of 101 thresholds), 0 after.
      for (size_t t = 0; t < r.T; ++t) {
        EXPECT_EQ(r.recall_at(t, 0, 0, 2), 0.5);
        EXPECT_EQ(r.precision_at(t, 50, 0, 0, 2), kOnePrecision);
        EXPECT_EQ(r.precision_at(t, 51, 0, 0, 2), 0.0);
      }
      EXPECT_NEAR(r.stats[0], 51.0 / 101.0, 1e-12);
    }
  }
}

INSTANTIATE_TEST_SUITE_P(BboxSegm, Crowd, ::testing::Values(IouType::kBbox, IouType::kSegm),
                         [](const auto& info) { return std::string(eval::to_string(info.param)); });

// ---------------------------------------------------------------- maxDets

// Detections by score: FP 0.9, FP 0.8, TP 0.7 on one object.
std::vector<Det> maxdets_case() {
  return {{1, 1, 0.8, std::array<double, 4>{150, 150, 10, 10}, ""},
          {1, 1, 0.7, std::array<double, 4>{10, 10, 20, 20}, ""},
          {1, 1, 0.9, std::array<double, 4>{100, 100, 10, 10}, ""}};
}

TEST(MaxDets, RecallPerMaxDetsAndTheLiteral100OfStatsZero) {
  const io::CocoDataset gt = make_gt({{1, 200, 200}}, {1}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  EvalParams p;
  p.max_dets = {3, 1, 2};  // sorted by evaluate, as pycocotools does
  const EvalResult r = run(gt, maxdets_case(), IouType::kBbox, p);
  EXPECT_EQ(r.params.max_dets, (std::vector<int>{1, 2, 3}));
  for (size_t t = 0; t < r.T; ++t) {
    EXPECT_EQ(r.recall_at(t, 0, 0, 0), 0.0);
    EXPECT_EQ(r.recall_at(t, 0, 0, 1), 0.0);
    EXPECT_EQ(r.recall_at(t, 0, 0, 2), 1.0);
  }
  // maxDets 3: rc = [0, 0, 1], pr = [0, 0, 1/3] -> envelope 1/3 everywhere.
  EXPECT_NEAR(ap_at(r, 0, 0, 2), 1.0 / 3.0, 1e-12);
  // maxDets 1: one FP, rc = [0]: threshold 0 finds index 0 (precision 0),
  // every other threshold runs past the end (0).
  EXPECT_EQ(ap_at(r, 0, 0, 0), 0.0);
  EXPECT_EQ(r.stats[0], -1.0);  // _summarize(1) asks for maxDets == 100: none
  EXPECT_NEAR(r.stats[1], 1.0 / 3.0, 1e-15);  // AP50 at maxDets[2] = 3
  EXPECT_EQ(r.stats[6], 0.0);
  EXPECT_EQ(r.stats[7], 0.0);
  EXPECT_EQ(r.stats[8], 1.0);
  EXPECT_NE(r.summary.find("maxDets=  3 ] = 1.000"), std::string::npos) << r.summary;
  EXPECT_NE(r.summary.find("maxDets=100 ] = -1.000"), std::string::npos) << r.summary;
}

TEST(MaxDets, DetectionsBeyondTheLargestAreCutBeforeMatching) {
  const io::CocoDataset gt = make_gt({{1, 200, 200}}, {1}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  EvalParams p;
  p.max_dets = {1, 1, 2};
  const EvalResult r = run(gt, maxdets_case(), IouType::kBbox, p);
  for (size_t m = 0; m < 3; ++m) {
    for (size_t t = 0; t < r.T; ++t) EXPECT_EQ(r.recall_at(t, 0, 0, m), 0.0);
    EXPECT_EQ(ap_at(r, 0, 0, m), 0.0);  // ground truth exists: 0, not -1
  }
}

// ---------------------------------------------------------------- area ranges

// Object s: bbox 40x40 (1600, medium by box) but "area": 500 -> small.
// Object L: "area" 20000 -> large. Detections by score:
//   dfL 0.95 unmatched, area 40000; ds 0.9 = s; dL 0.8 = L; dfs 0.7 unmatched, area 64.
TEST(AreaRanges, GroundTruthAreaFieldAndUnmatchedDetectionsOutsideTheRange) {
  const io::CocoDataset gt = make_gt({{1, 400, 400}}, {1},
                                     {{1, 1, 1, {0, 0, 40, 40}, 500}, {2, 1, 1, {200, 200, 150, 150}, 20000}});
  const EvalResult r = run(gt,
                           {{1, 1, 0.95, std::array<double, 4>{0, 200, 200, 200}, ""},
                            {1, 1, 0.9, std::array<double, 4>{0, 0, 40, 40}, ""},
                            {1, 1, 0.8, std::array<double, 4>{200, 200, 150, 150}, ""},
                            {1, 1, 0.7, std::array<double, 4>{100, 100, 8, 8}, ""}},
                           IouType::kBbox);
  // all: FP TP TP FP -> pr = [0, 1/2, 2/3, 2/4], envelope 2/3 up to recall 1.
  EXPECT_NEAR(r.stats[0], 2.0 / 3.0, 1e-15);
  // small: dfL ignored (40000 > 32^2), ds TP, dL matched to an ignored
  // object (ignored), dfs FP -> precision 1/(1+eps) everywhere.
  EXPECT_NEAR(r.stats[3], kOnePrecision, 1e-15);
  // medium: both objects outside -> no ground truth -> -1.
  EXPECT_EQ(r.stats[4], -1.0);
  // large: dfL FP, ds ignored, dL TP, dfs ignored (64 < 96^2) -> 1/2.
  EXPECT_NEAR(r.stats[5], 0.5, 1e-15);
  EXPECT_EQ(r.stats[8], 1.0);
  EXPECT_EQ(r.stats[9], 1.0);
  EXPECT_EQ(r.stats[10], -1.0);
  EXPECT_EQ(r.stats[11], 1.0);
}

// ---------------------------------------------------------------- ties

// Equal scores keep their order: within an image the results' file order,
// across images the image id order (np.concatenate over sorted imgIds,
// then a stable mergesort).
TEST(Ties, WithinAnImageFileOrderDecides) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  const Det fp{1, 1, 0.5, std::array<double, 4>{60, 60, 10, 10}, ""};
  const Det tp{1, 1, 0.5, std::array<double, 4>{10, 10, 20, 20}, ""};
  // FP first: pr = [0, 1/2] -> 0.5 at every recall threshold.
  EXPECT_NEAR(run(gt, {fp, tp}, IouType::kBbox).stats[0], 0.5, 1e-15);
  // TP first: pr = [1/(1+eps), 1/2], rc = [1, 1] -> ~1 everywhere.
  EXPECT_NEAR(run(gt, {tp, fp}, IouType::kBbox).stats[0], kOnePrecision, 1e-15);
}

TEST(Ties, AcrossImagesImageIdOrderDecides) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}, {2, 100, 100}}, {1},
                                     {{1, 1, 1, {10, 10, 20, 20}, 400}, {2, 2, 1, {10, 10, 20, 20}, 400}});
  const Det tp2{2, 1, 0.5, std::array<double, 4>{10, 10, 20, 20}, ""};
  const Det fp1{1, 1, 0.5, std::array<double, 4>{60, 60, 10, 10}, ""};
  const Det tp1{1, 1, 0.5, std::array<double, 4>{10, 10, 20, 20}, ""};
  const Det fp2{2, 1, 0.5, std::array<double, 4>{60, 60, 10, 10}, ""};
  // Image 1's FP comes first whatever the file order: npig = 2, pr = [0,
  // 1/2], rc = [0, 1/2] -> 0.5 for the 51 thresholds <= 0.5, 0 after.
  EXPECT_NEAR(run(gt, {tp2, fp1}, IouType::kBbox).stats[0], 51 * 0.5 / 101, 1e-15);
  // Image 1's TP first: ~1 for 51 thresholds.
  EXPECT_NEAR(run(gt, {fp2, tp1}, IouType::kBbox).stats[0], 51 * kOnePrecision / 101, 1e-15);
}

// ---------------------------------------------------------------- categories

TEST(Categories, WithoutGroundTruthTheyAreMinusOneAndLeftOutOfTheMeans) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1, 2, 3}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  const std::vector<Det> dets = {{1, 2, 0.99, std::array<double, 4>{50, 50, 20, 20}, ""},
                                 {1, 1, 0.5, std::array<double, 4>{10, 10, 20, 20}, ""}};
  const EvalResult r = run(gt, dets, IouType::kBbox);
  ASSERT_EQ(r.per_category_ap.size(), 3u);
  EXPECT_NEAR(ap_of(r, 1), kOnePrecision, 1e-15);
  EXPECT_EQ(ap_of(r, 2), -1.0);  // detections but no ground truth
  EXPECT_EQ(ap_of(r, 3), -1.0);  // nothing at all
  EXPECT_NEAR(r.stats[0], kOnePrecision, 1e-15);
  // useCats = 0: one pool, the category-2 detection is a false positive
  // ranked first -> 0.5.
  EvalParams p;
  p.use_cats = false;
  const EvalResult u = run(gt, dets, IouType::kBbox, p);
  ASSERT_EQ(u.per_category_ap.size(), 1u);
  EXPECT_EQ(u.per_category_ap[0].first, -1);
  EXPECT_NEAR(u.per_category_ap[0].second, 0.5, 1e-15);
}

TEST(Categories, RestrictedImageAndCategoryIds) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}, {2, 100, 100}}, {1, 2},
                                     {{1, 1, 1, {10, 10, 20, 20}, 400}, {2, 2, 2, {10, 10, 20, 20}, 400}});
  const std::vector<Det> dets = {{1, 1, 0.9, std::array<double, 4>{10, 10, 20, 20}, ""},
                                 {2, 2, 0.9, std::array<double, 4>{50, 50, 20, 20}, ""}};
  EvalParams p;
  p.cat_ids = {2};
  const EvalResult r = run(gt, dets, IouType::kBbox, p);
  ASSERT_EQ(r.per_category_ap.size(), 1u);
  EXPECT_EQ(r.per_category_ap[0].second, 0.0);
  p.cat_ids = {};
  p.img_ids = {1, 1};
  const EvalResult i1 = run(gt, dets, IouType::kBbox, p);
  EXPECT_NEAR(ap_of(i1, 1), kOnePrecision, 1e-15);
  EXPECT_EQ(ap_of(i1, 2), -1.0);
}

// A match to a ground truth with id 0 is stored as dtm = 0, which the rest
// of pycocotools reads as "unmatched": a false positive, and the object is
// still used up.
TEST(Quirks, GroundTruthIdZeroNeverCountsAsAMatch) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1}, {{0, 1, 1, {10, 10, 20, 20}, 400}});
  const EvalResult r = run(gt,
                           {{1, 1, 0.9, std::array<double, 4>{10, 10, 20, 20}, ""},
                            {1, 1, 0.8, std::array<double, 4>{10, 10, 20, 20}, ""}},
                           IouType::kBbox);
  EXPECT_EQ(r.stats[0], 0.0);
  EXPECT_EQ(r.stats[8], 0.0);
}

// ---------------------------------------------------------------- loadRes

// The first result decides: with a bbox, area = w * h of the bbox (even for
// segm); without, area = mask area. Object s is small; the unmatched
// detection u has a 5x5 bbox but a 50x50 mask.
TEST(LoadRes, TheFirstResultDecidesWhereAreasComeFrom) {
  const int H = 200, W = 200;
  const io::CocoDataset gt = make_gt({{1, W, H}}, {1}, {{1, 1, 1, {0, 0, 10, 10}, 100}});
  const mask::Rle s_mask = mask::from_polygon(std::vector<double>{0, 0, 10, 0, 10, 10, 0, 10}.data(), 8, H, W);
  const Det u{1, 1, 0.9, std::array<double, 4>{150, 150, 5, 5}, rle_json(rect_rle(100, 100, 50, 50, H, W))};
  const Det s_with_box{1, 1, 0.8, std::array<double, 4>{0, 0, 10, 10}, rle_json(s_mask)};
  const Det s_mask_only{1, 1, 0.8, std::nullopt, rle_json(s_mask)};
  // bbox branch: u's area 25 is small -> u is a false positive ranked first.
  EXPECT_NEAR(run(gt, {u, s_with_box}, IouType::kSegm).stats[3], 0.5, 1e-15);
  // segm branch (first result has no bbox): u's area 2500 is not small ->
  // ignored.
  EXPECT_NEAR(run(gt, {s_mask_only, u}, IouType::kSegm).stats[3], kOnePrecision, 1e-15);
  // segm branch, bbox evaluation: a result without bbox gets its mask's box.
  EXPECT_NEAR(run(gt, {s_mask_only}, IouType::kBbox).stats[0], kOnePrecision, 1e-15);
}

// bbox-only results evaluated as segm: loadRes writes the polygon
// [x1,y1, x1,y2, x2,y1, x2,y2] (a bow tie), so the IoU with the box's own
// mask is far below 1.
TEST(LoadRes, BboxOnlyResultsGetPycocotoolsBowTiePolygonForSegm) {
  const int H = 100, W = 100;
  const std::array<double, 4> b{20, 20, 40, 40};
  const io::CocoDataset gt = make_gt({{1, W, H}}, {1}, {{1, 1, 1, b, 1600}});
  const double bow[8] = {20, 20, 20, 60, 60, 20, 60, 60};
  const double sq[8] = {20, 20, 60, 20, 60, 60, 20, 60};
  const double iou = mask::iou(mask::from_polygon(bow, 8, H, W), mask::from_polygon(sq, 8, H, W), false);
  ASSERT_GT(iou, 0.4);
  ASSERT_LT(iou, 0.6);
  const EvalResult r = run(gt, {{1, 1, 0.9, b, ""}}, IouType::kSegm);
  for (size_t t = 0; t < r.T; ++t) {
    const bool matched = iou >= std::min(r.params.iou_thrs[t], 1 - 1e-10);
    EXPECT_EQ(r.recall_at(t, 0, 0, 2), matched ? 1.0 : 0.0) << "t " << t;
  }
  // bbox evaluation of the same result: a perfect match.
  EXPECT_NEAR(run(gt, {{1, 1, 0.9, b, ""}}, IouType::kBbox).stats[0], kOnePrecision, 1e-15);
}

TEST(LoadRes, EmptyResultsGiveZeroWhereThereIsGroundTruth) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1, 2}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  const EvalResult r = eval::evaluate(gt, {}, EvalParams{});
  EXPECT_EQ(ap_of(r, 1), 0.0);
  EXPECT_EQ(ap_of(r, 2), -1.0);
  EXPECT_EQ(r.stats[0], 0.0);
}

// ---------------------------------------------------------------- threads

TEST(Determinism, ThreadCountNeverChangesAnyNumber) {
  const io::CocoDataset gt = io::load_coco(kData + "/coco_mini/instances_val2017.json");
  for (IouType type : {IouType::kBbox, IouType::kSegm}) {
    const auto dets = eval::random_detections(gt, 4000, 7, type == IouType::kSegm);
    EvalParams p;
    p.iou_type = type;
    const EvalResult a = eval::evaluate(gt, dets, p, eval::EvalOptions{1});
    const EvalResult b = eval::evaluate(gt, dets, p, eval::EvalOptions{2});
    EXPECT_EQ(a.precision, b.precision);
    EXPECT_EQ(a.recall, b.recall);
    EXPECT_EQ(a.scores, b.scores);
    EXPECT_EQ(a.stats, b.stats);
    EXPECT_GT(a.stats[1], 0.05);  // half the detections are jittered GT boxes
    // Written and read back: the same evaluation.
    const auto back = eval::parse_results(eval::results_to_json(dets), "roundtrip.json", gt);
    EXPECT_EQ(eval::evaluate(gt, back, p).stats, a.stats);
  }
}

// ---------------------------------------------------------------- errors

struct BadCase {
  const char* name;
  const char* json;
  const char* reason;
  const char* where;  ///< expected in what()
};

class Malformed : public ::testing::TestWithParam<BadCase> {};

TEST_P(Malformed, ResultsFilesFailWithReasonFileAndIndex) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  const BadCase& c = GetParam();
  try {
    (void)eval::parse_results(c.json, "dets.json", gt);
    FAIL() << "no error for " << c.name;
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), c.reason) << e.what();
    EXPECT_NE(std::string(e.what()).find("dets.json"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find(c.where), std::string::npos) << e.what();
  }
}

const BadCase kBad[] = {
    {"malformed", "[{\"image_id\": 1,", "malformed_json", "not valid JSON"},
    {"object", "{\"image_id\": 1}", "not_an_array", "JSON array"},
    {"not_object", "[5]", "wrong_type", "[0]"},
    {"no_score", "[{\"image_id\":1,\"category_id\":1,\"bbox\":[0,0,1,1]}]", "missing_field", "[0].score"},
    {"no_image", "[{\"image_id\":1,\"category_id\":1,\"bbox\":[0,0,1,1],\"score\":1},{\"category_id\":1,\"score\":1}]",
     "missing_field", "[1].image_id"},
    {"unknown_image",
     "[{\"image_id\":1,\"category_id\":1,\"bbox\":[0,0,1,1],\"score\":1},"
     "{\"image_id\":999,\"category_id\":1,\"bbox\":[0,0,1,1],\"score\":1}]",
     "unknown_image", "[1].image_id"},
    {"unknown_category", "[{\"image_id\":1,\"category_id\":7,\"bbox\":[0,0,1,1],\"score\":1}]", "unknown_category",
     "[0].category_id"},
    {"score_type", "[{\"image_id\":1,\"category_id\":1,\"bbox\":[0,0,1,1],\"score\":\"high\"}]", "wrong_type",
     "[0].score"},
    {"id_fraction", "[{\"image_id\":1.5,\"category_id\":1,\"bbox\":[0,0,1,1],\"score\":1}]", "bad_value",
     "[0].image_id"},
    {"bbox_3", "[{\"image_id\":1,\"category_id\":1,\"bbox\":[0,0,1],\"score\":1}]", "bad_value", "[0].bbox"},
    {"bbox_then_none",
     "[{\"image_id\":1,\"category_id\":1,\"bbox\":[0,0,1,1],\"score\":1},"
     "{\"image_id\":1,\"category_id\":1,\"segmentation\":{\"size\":[100,100],\"counts\":[10000]},\"score\":1}]",
     "missing_field", "[1].bbox"},
    {"nothing", "[{\"image_id\":1,\"category_id\":1,\"score\":1}]", "missing_field", "[0]"},
    {"bad_rle", "[{\"image_id\":1,\"category_id\":1,\"segmentation\":{\"size\":[100,100],\"counts\":\"0 \"},\"score\":1}]",
     "bad_rle", "[0].segmentation.counts"},
    {"rle_sum", "[{\"image_id\":1,\"category_id\":1,\"segmentation\":{\"size\":[100,100],\"counts\":[5,5]},\"score\":1}]",
     "rle_sum", "[0].segmentation.counts"},
    {"rle_no_size", "[{\"image_id\":1,\"category_id\":1,\"segmentation\":{\"counts\":[10000]},\"score\":1}]",
     "missing_field", "[0].segmentation.size"},
    {"polygon_4", "[{\"image_id\":1,\"category_id\":1,\"segmentation\":[[1,2,3,4]],\"score\":1}]", "short_polygon",
     "[0].segmentation"},
};

INSTANTIATE_TEST_SUITE_P(Cases, Malformed, ::testing::ValuesIn(kBad),
                         [](const auto& info) { return std::string(info.param.name); });

TEST(MalformedFile, MissingFileNamesThePath) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1}, {});
  try {
    (void)eval::load_results("/nonexistent/dets.json", gt);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "io_error");
    EXPECT_NE(std::string(e.what()).find("/nonexistent/dets.json"), std::string::npos);
  }
}

TEST(MalformedFile, InMemoryDetectionsAreCheckedByEvaluate) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  eval::Detection ok;
  ok.image_id = 1;
  ok.category_id = 1;
  ok.score = 0.5;
  ok.bbox = std::array<double, 4>{0, 0, 1, 1};
  eval::Detection bad = ok;
  bad.image_id = 42;
  try {
    (void)eval::evaluate(gt, {ok, bad}, EvalParams{});
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "unknown_image");
    EXPECT_NE(std::string(e.what()).find("results[1]"), std::string::npos) << e.what();
  }
  eval::Detection corrupt = ok;
  corrupt.bbox.reset();
  corrupt.segmentation = eval::CompressedMask{100, 100, "0 "};
  EvalParams p;
  p.iou_type = IouType::kSegm;
  try {
    (void)eval::evaluate(gt, {corrupt}, p);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "bad_rle");
    EXPECT_NE(std::string(e.what()).find("results[0].segmentation"), std::string::npos) << e.what();
  }
  EvalParams two;
  two.max_dets = {1, 100};
  EXPECT_THROW((void)eval::evaluate(gt, {ok}, two), ConfigError);
}

}  // namespace

// ---------------------------------------------------------------- issue 10
// Results files: byte offsets of malformed files, the skip policy, the
// checks pycocotools does not make (zero-size boxes, NaN, wrong RLE size).

namespace {

const char* const kGood = R"({"image_id":1,"category_id":1,"bbox":[10,10,20,20],"score":0.9})";

InputError results_error(const std::string& json) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  try {
    (void)eval::parse_results(json, "dets.json", gt);
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "no InputError for " << json;
  return InputError("none", "none");
}

TEST(EvalResultsRegression, NanLiteralNamesItsByteOffsetAndIsSkippable) {
  // Python's json.dump writes NaN for a NaN score: not JSON, but one bad
  // result, not a bad file.
  const std::string bad = R"({"image_id":1,"category_id":1,"bbox":[10,10,20,20],"score":NaN})";
  const std::string json = std::string("[") + kGood + "," + bad + "]";
  const InputError e = results_error(json);
  EXPECT_EQ(e.reason(), "bad_value") << e.what();
  EXPECT_EQ(e.where().byte_offset, static_cast<int64_t>(json.find("NaN"))) << e.what();
  EXPECT_EQ(e.where().path, "[1].score") << e.what();
  EXPECT_EQ(e.where().record, "result 1") << e.what();
  EXPECT_NE(std::string(e.what()).find("dets.json:byte " + std::to_string(json.find("NaN"))), std::string::npos)
      << e.what();
  EXPECT_EQ(std::string(e.what()).find("improper structure"), std::string::npos) << e.what();
  EXPECT_EQ(results_error(R"([{"image_id":1,"category_id":1,"bbox":[10,-Infinity,20,20],"score":1}])").reason(),
            "bad_value");

  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  SkipReport skipped;
  const auto dets = eval::parse_results(json, "dets.json", gt, ErrorPolicy::kSkip, &skipped);
  ASSERT_EQ(dets.size(), 1u);
  EXPECT_EQ(dets[0].score, 0.9);
  EXPECT_EQ(skipped.count("bad_value"), 1u);
  EXPECT_EQ(skipped.total(), 1u);
}

TEST(EvalResultsRegression, TruncatedFileNamesItsEndAndTheResult) {
  const std::string json = std::string("[") + kGood + "," + R"({"image_id":1,"categ)";
  const InputError e = results_error(json);
  EXPECT_EQ(e.reason(), "malformed_json") << e.what();
  EXPECT_EQ(e.where().byte_offset, static_cast<int64_t>(json.size())) << e.what();
  EXPECT_EQ(e.where().path, "[1]") << e.what();
  EXPECT_NE(std::string(e.what()).find("truncated"), std::string::npos) << e.what();
  // A whole file is always needed: skip does not make it readable.
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  SkipReport skipped;
  EXPECT_THROW((void)eval::parse_results(json, "dets.json", gt, ErrorPolicy::kSkip, &skipped), InputError);
  // Cut after a whole result, and a bad literal.
  const std::string after = std::string("[") + kGood;
  EXPECT_EQ(results_error(after).where().byte_offset, static_cast<int64_t>(after.size()));
  const std::string tru = std::string("[") + kGood + R"(,{"image_id":1,"category_id":1,"score":tru})";
  const InputError t = results_error(tru);
  EXPECT_EQ(t.reason(), "malformed_json");
  EXPECT_EQ(t.where().byte_offset, static_cast<int64_t>(tru.find("tru}")));
  EXPECT_NE(std::string(t.what()).find("'tru'"), std::string::npos) << t.what();
}

TEST(EvalResultsRegression, ZeroOrNegativeBoxSizeIsRefused) {
  for (const char* box : {"[10,10,0,20]", "[10,10,20,-1]"}) {
    const InputError e =
        results_error(std::string(R"([{"image_id":1,"category_id":1,"score":1,"bbox":)") + box + "}]");
    EXPECT_EQ(e.reason(), "bad_value") << e.what();
    EXPECT_EQ(e.where().path, "[0].bbox") << e.what();
  }
}

TEST(EvalResultsRegression, HugeBoxNumbersAreRefused) {
  // Finite in JSON, but w * h overflows: IoU inf / inf = NaN.
  const InputError e = results_error(R"([{"image_id":1,"category_id":1,"score":1,"bbox":[0,0,1e308,1e308]}])");
  EXPECT_EQ(e.reason(), "bad_value") << e.what();
  EXPECT_EQ(e.where().path, "[0].bbox") << e.what();
  EXPECT_NE(std::string(e.what()).find("1e+308"), std::string::npos) << e.what();
  EXPECT_LT(std::string(e.what()).size(), 200u) << e.what();
}

TEST(EvalResultsRegression, RleSizeDisagreeingWithItsImageIsRefused) {
  // The image is 100 x 100; an RLE of 50 x 200 would never match (IoU -1).
  const InputError e =
      results_error(R"([{"image_id":1,"category_id":1,"score":1,"segmentation":{"size":[50,200],"counts":[10000]}}])");
  EXPECT_EQ(e.reason(), "rle_size_mismatch") << e.what();
  EXPECT_EQ(e.where().path, "[0].segmentation.size") << e.what();
}

TEST(EvalResultsRegression, SkipPolicyCountsBadResultsByReason) {
  const io::CocoDataset gt = make_gt({{1, 100, 100}}, {1}, {{1, 1, 1, {10, 10, 20, 20}, 400}});
  const std::string json = std::string("[") + kGood +
                           R"(,{"image_id":7,"category_id":1,"bbox":[1,1,2,2],"score":1})"   // unknown image
                           R"(,{"image_id":1,"category_id":7,"bbox":[1,1,2,2],"score":1})"   // unknown category
                           R"(,{"image_id":1,"category_id":1,"bbox":[1,1,2,2]})"             // no score
                           R"(,{"image_id":1,"category_id":1,"bbox":[1,1,2],"score":1})"     // 3 numbers
                           R"(,{"image_id":1,"category_id":1,"bbox":[1,1,-2,2],"score":1})"  // negative size
                           R"(,{"image_id":1,"category_id":1,"segmentation":[[1,2,3,4,5,6]],"score":1})"  // no bbox
                           R"(,{"image_id":1,"category_id":1,"bbox":[10,10,20,20],"score":0.5}])";
  SkipReport skipped;
  const auto dets = eval::parse_results(json, "dets.json", gt, ErrorPolicy::kSkip, &skipped);
  ASSERT_EQ(dets.size(), 2u);
  EXPECT_EQ(dets[1].score, 0.5);
  EXPECT_EQ(skipped.count("unknown_image"), 1u);
  EXPECT_EQ(skipped.count("unknown_category"), 1u);
  EXPECT_EQ(skipped.count("missing_field"), 2u);
  EXPECT_EQ(skipped.count("bad_value"), 2u);
  EXPECT_EQ(skipped.total(), 6u);
  EXPECT_NE(skipped.first_messages().at("unknown_image").find("[1].image_id"), std::string::npos);
  // The first result without either field is skipped; the next decides the branch.
  SkipReport s2;
  const auto d2 = eval::parse_results(std::string(R"([{"image_id":1,"category_id":1,"score":1},)") + kGood + "]",
                                      "dets.json", gt, ErrorPolicy::kSkip, &s2);
  ASSERT_EQ(d2.size(), 1u);
  EXPECT_TRUE(d2[0].bbox.has_value());
  EXPECT_EQ(s2.count("missing_field"), 1u);
  // Strict: the first bad one, as before.
  EXPECT_EQ(results_error(json).reason(), "unknown_image");
}

TEST(EvalRegression, GroundTruthThatDoesNotRasteriseIsSkippedAndCounted) {
  // An empty polygon list loads (it has an area and a box) and fails when
  // segm evaluation rasterises it, naming where it is.
  const io::CocoDataset gt =
      make_gt({{1, 100, 100}}, {1},
              {{1, 1, 1, {10, 10, 20, 20}, 400}, {2, 1, 1, {50, 50, 20, 20}, 400, 0, "[]"}});
  const std::vector<eval::Detection> dets =
      dets_from(gt, {{1, 1, 0.9, std::array<double, 4>{10, 10, 20, 20}, box_polygon({10, 10, 20, 20})}});
  EvalParams p;
  p.iou_type = IouType::kSegm;
  try {
    (void)eval::evaluate(gt, dets, p);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "empty_segmentation");
    EXPECT_EQ(e.where().file, "gt.json");
    EXPECT_EQ(e.where().path, "annotations[1].segmentation");
    EXPECT_GT(e.where().byte_offset, 0);
    EXPECT_EQ(e.where().record, "annotation id 2");
  }
  eval::EvalOptions skip;
  skip.policy = ErrorPolicy::kSkip;
  const EvalResult r = eval::evaluate(gt, dets, p, skip);
  EXPECT_EQ(r.skipped.count("empty_segmentation"), 1u);
  EXPECT_NEAR(r.stats[1], 1.0, 1e-12);  // AP50: the one detection matches the one ground truth left
  // Bbox evaluation never rasterises it.
  EXPECT_TRUE(eval::evaluate(gt, dets, EvalParams{}).skipped.empty());
}

}  // namespace
