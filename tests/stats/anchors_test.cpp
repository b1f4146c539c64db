// Unit tests of the torchvision-exact resize, anchors, box_iou and Matcher.
// Expected values are worked out by hand from torchvision 0.14's code
// (anchor_utils.AnchorGenerator, transform.GeneralizedRCNNTransform,
// _utils.Matcher) with float32 arithmetic.
#include <gtest/gtest.h>

#include <chrono>
#include <cmath>
#include <random>

#include "pasteflow/core/error.hpp"
#include "pasteflow/stats/anchors.hpp"

namespace ps = pasteflow::stats;
using ps::BoxF;

namespace {

std::vector<float> flat(const std::vector<BoxF>& boxes) {
  std::vector<float> out;
  for (const BoxF& b : boxes) {
    out.insert(out.end(), {b.x1, b.y1, b.x2, b.y2});
  }
  return out;
}

}  // namespace

TEST(CellAnchors, MaskRcnnFpnLevelsMatchTorchvision) {
  // torchvision prints these cell anchors for sizes 32..512, ratios (0.5, 1, 2):
  // round(+-w/2), w = size / sqrt(r), h = size * sqrt(r), float32.
  const ps::AnchorGeneratorConfig c = ps::AnchorGeneratorConfig::mask_rcnn_fpn();
  ASSERT_EQ(c.num_levels(), 5u);
  const std::vector<std::vector<float>> expected = {
      {-23, -11, 23, 11, -16, -16, 16, 16, -11, -23, 11, 23},
      {-45, -23, 45, 23, -32, -32, 32, 32, -23, -45, 23, 45},
      {-91, -45, 91, 45, -64, -64, 64, 64, -45, -91, 45, 91},
      {-181, -91, 181, 91, -128, -128, 128, 128, -91, -181, 91, 181},
      {-362, -181, 362, 181, -256, -256, 256, 256, -181, -362, 181, 362},
  };
  for (size_t l = 0; l < 5; ++l) {
    EXPECT_EQ(flat(ps::cell_anchors(c.sizes[l], c.aspect_ratios[l])), expected[l]) << "level " << l;
  }
}

TEST(CellAnchors, OrderIsRatiosOuterSizesInner) {
  // ratio 1 with sizes (10, 20), then ratio 4 (h = 2 * size, w = size / 2).
  const auto a = ps::cell_anchors({10.0, 20.0}, {1.0, 4.0});
  EXPECT_EQ(flat(a), (std::vector<float>{-5, -5, 5, 5, -10, -10, 10, 10, -2, -10, 2, 10, -5, -20, 5, 20}));
  // 2.5 rounds half to even like torch.round: size 5, ratio 1 -> +-2.5 -> +-2.
  EXPECT_EQ(flat(ps::cell_anchors({5.0}, {1.0})), (std::vector<float>{-2, -2, 2, 2}));
  EXPECT_EQ(flat(ps::cell_anchors({7.0}, {1.0})), (std::vector<float>{-4, -4, 4, 4}));  // 3.5 -> 4
}

TEST(Resize, ShorterSide800LongerAtMost1333) {
  // oracle image 790: 422 x 640 -> s = 800/422, 800 x floor(640 s) = 1213
  ps::ResizeInfo r = ps::detection_resize(422, 640);
  EXPECT_DOUBLE_EQ(r.scale, 800.0 / 422.0);
  EXPECT_EQ(r.height, 800);
  EXPECT_EQ(r.width, 1213);
  EXPECT_EQ(r.padded_height, 800);
  EXPECT_EQ(r.padded_width, 1216);
  EXPECT_EQ(r.ratio_h, 800.0f / 422.0f);
  EXPECT_EQ(r.ratio_w, 1213.0f / 640.0f);
  // long image: the 1333 cap wins
  r = ps::detection_resize(300, 1000);
  EXPECT_DOUBLE_EQ(r.scale, 1.333);
  EXPECT_EQ(r.height, 399);  // floor(300 * 1.333) = floor(399.9) = 399
  EXPECT_EQ(r.width, 1333);
  EXPECT_EQ(r.padded_height, 416);
  EXPECT_EQ(r.padded_width, 1344);
  // portrait 640 x 480 -> 1066 x 800
  r = ps::detection_resize(640, 480);
  EXPECT_EQ(r.height, 1066);
  EXPECT_EQ(r.width, 800);
  EXPECT_EQ(r.padded_height, 1088);
  // floor, not round: 3 x 7 -> s = 800/3, 7 * 266.66.. = 1866 > cap -> s = 1333/7
  r = ps::detection_resize(3, 7);
  EXPECT_DOUBLE_EQ(r.scale, 1333.0 / 7.0);
  EXPECT_EQ(r.width, 1333);
  EXPECT_EQ(r.height, 571);  // floor(571.28)
  // floor of a product that falls just short: 97 * (800 / 97) = 799.99.. -> 799
  r = ps::detection_resize(97, 120);
  EXPECT_EQ(r.height, 799);
  EXPECT_EQ(r.width, 989);
  EXPECT_EQ(r.padded_height, 800);
  EXPECT_THROW(ps::detection_resize(0, 5), pasteflow::InputError);
  EXPECT_EQ(ps::pad_to_multiple(800, 32), 800);
  EXPECT_EQ(ps::pad_to_multiple(801, 32), 832);
}

TEST(Resize, TorchvisionFloat32Arithmetic) {
  // Sizes printed by torchvision 0.14.1 / torch 1.13 _resize_image_and_masks(img, 800.0, 1333.0):
  // the scale is float32 (reciprocal then multiply), and often lands one pixel short of kDouble.
  struct Case {
    int64_t h, w, rh, rw;
  };
  const Case cases[] = {{427, 640, 799, 1199}, {899, 333, 1332, 493}, {899, 1999, 599, 1333},
                        {97, 120, 799, 989},   {90, 612, 196, 1333},  {1, 1, 800, 800}};
  ps::ResizeConfig tv;
  tv.arithmetic = ps::ResizeArithmetic::kTorchvisionFloat32;
  for (const Case& c : cases) {
    const ps::ResizeInfo r = ps::detection_resize(c.h, c.w, tv);
    EXPECT_EQ(r.height, c.rh) << c.h << "x" << c.w;
    EXPECT_EQ(r.width, c.rw) << c.h << "x" << c.w;
    EXPECT_EQ(r.scale, static_cast<double>(static_cast<float>(r.scale)));  // a float32 value
  }
  // the oracle's double definition gives 800 for the short side of 427 x 640
  EXPECT_EQ(ps::detection_resize(427, 640).height, 800);
  EXPECT_EQ(ps::detection_resize(899, 333).height, 1333);
}

TEST(Resize, BoxesScalePerAxisInFloat32) {
  const ps::ResizeInfo r = ps::detection_resize(422, 640);
  const BoxF b = ps::resize_box(ps::coco_bbox_to_xyxy(10.5, 20.25, 30.1, 40.7), r);
  EXPECT_EQ(b.x1, 10.5f * (1213.0f / 640.0f));
  EXPECT_EQ(b.y1, 20.25f * (800.0f / 422.0f));
  // x2 = x + w in double, then float32 (the oracle's convention)
  EXPECT_EQ(b.x2, static_cast<float>(10.5 + 30.1) * (1213.0f / 640.0f));
  EXPECT_EQ(b.y2, static_cast<float>(20.25 + 40.7) * (800.0f / 422.0f));
  // ... which differs from adding in float32 for e.g. y = 200.61, h = 40.68
  EXPECT_NE(ps::coco_bbox_to_xyxy(0, 200.61, 1, 40.68).y2, 200.61f + 40.68f);
}

TEST(FpnGrid, LevelsAndStrides) {
  // 800 x 1216 padded: P2..P5 = /4../32, P6 = ceil(P5 / 2) = 13 x 19, whose
  // stride is 800 // 13 = 61 and 1216 // 19 = 64 (torchvision integer division).
  const auto grids = ps::fpn_grid_sizes(800, 1216);
  ASSERT_EQ(grids.size(), 5u);
  const int64_t hs[] = {200, 100, 50, 25, 13};
  const int64_t ws[] = {304, 152, 76, 38, 19};
  for (size_t l = 0; l < 5; ++l) {
    EXPECT_EQ(grids[l].height, hs[l]);
    EXPECT_EQ(grids[l].width, ws[l]);
  }
  const ps::AnchorGrid grid(ps::AnchorGeneratorConfig::mask_rcnn_fpn(), 800, 1216, grids);
  EXPECT_EQ(grid.size(), 242991u);  // oracle num_anchors of image 790
  EXPECT_EQ(grid.levels()[4].stride_h, 61);
  EXPECT_EQ(grid.levels()[4].stride_w, 64);
  EXPECT_EQ(grid.levels()[0].stride_h, 4);
}

TEST(AnchorGrid, TorchvisionOrderAndCoordinates) {
  const ps::AnchorGeneratorConfig c = ps::AnchorGeneratorConfig::mask_rcnn_fpn();
  const auto grids = ps::fpn_grid_sizes(800, 1216);
  const ps::AnchorGrid grid(c, 800, 1216, grids);
  const std::vector<BoxF> all = grid.boxes();
  ASSERT_EQ(all.size(), grid.size());
  // level 0, position (0, 0), the three ratios
  EXPECT_EQ(all[0], (BoxF{-23, -11, 23, 11}));
  EXPECT_EQ(all[1], (BoxF{-16, -16, 16, 16}));
  EXPECT_EQ(all[2], (BoxF{-11, -23, 11, 23}));
  // level 0, x = 1 (stride 4)
  EXPECT_EQ(all[3], (BoxF{-19, -11, 27, 11}));
  // level 0, row 1 starts after 304 positions
  EXPECT_EQ(all[304 * 3 + 1], (BoxF{-16, -12, 16, 20}));
  // level 1 starts at 200 * 304 * 3; its first anchor of ratio 1 is +-32
  const size_t l1 = 200 * 304 * 3;
  EXPECT_EQ(grid.levels()[1].offset, l1);
  EXPECT_EQ(all[l1 + 1], (BoxF{-32, -32, 32, 32}));
  // last anchor: P6, y = 12 (stride 61), x = 18 (stride 64), ratio 2
  EXPECT_EQ(all.back(), (BoxF{18 * 64 - 181, 12 * 61 - 362, 18 * 64 + 181, 12 * 61 + 362}));
  // operator[] agrees with boxes() everywhere
  for (size_t i = 0; i < all.size(); i += 97) ASSERT_EQ(grid[i], all[i]) << i;
  EXPECT_EQ(grid[all.size() - 1], all.back());
  EXPECT_THROW(grid[all.size()], pasteflow::Error);
  EXPECT_EQ(ps::generate_anchors(c, 800, 1216, grids).size(), all.size());
  EXPECT_THROW(ps::AnchorGrid(c, 800, 1216, {grids[0]}), pasteflow::ConfigError);
}

TEST(BoxIou, Float32FormulaAndMatrix) {
  const BoxF a{0, 0, 10, 10};
  const BoxF b{5, 5, 15, 15};
  EXPECT_EQ(ps::box_iou(a, b), 25.0f / 175.0f);
  EXPECT_EQ(ps::box_iou(a, BoxF{10, 0, 20, 10}), 0.0f);  // touching: no overlap
  EXPECT_EQ(ps::box_iou(a, a), 1.0f);
  const BoxF c{0.1f, 0.2f, 3.3f, 4.7f};
  const BoxF d{1.0f, 1.0f, 2.0f, 9.0f};
  const float area_c = (3.3f - 0.1f) * (4.7f - 0.2f);
  const float inter = (2.0f - 1.0f) * (4.7f - 1.0f);
  EXPECT_EQ(ps::box_iou(c, d), inter / ((area_c + 8.0f) - inter));
  const std::vector<BoxF> g = {a, c};
  const std::vector<BoxF> p = {b, d, a};
  const std::vector<float> m = ps::box_iou_matrix(g, p);
  ASSERT_EQ(m.size(), 6u);
  EXPECT_EQ(m[0], ps::box_iou(a, b));
  EXPECT_EQ(m[2], 1.0f);
  EXPECT_EQ(m[4], ps::box_iou(c, d));
}

TEST(Matcher, ThresholdsAreFloat32AndInclusive) {
  const ps::Matcher m(ps::MatcherConfig{0.7, 0.3, false});
  // one gt, predictions at the thresholds
  const std::vector<float> q = {0.7f, std::nextafter(0.7f, 0.0f), 0.3f, std::nextafter(0.3f, 0.0f), 0.0f, 1.0f};
  const auto r = m(q, 1, q.size());
  EXPECT_EQ(r, (std::vector<int32_t>{0, -2, -2, -1, -1, 0}));
}

TEST(Matcher, TiesGoToTheFirstGt) {
  const ps::Matcher m(ps::MatcherConfig{0.7, 0.3, false});
  // 3 gts x 3 predictions: prediction 0 ties gt 1 and 2 at 0.8, prediction 1
  // has all gts at 0.75, prediction 2 prefers gt 2.
  const std::vector<float> q = {0.1f, 0.75f, 0.2f, 0.8f, 0.75f, 0.5f, 0.8f, 0.75f, 0.9f};
  EXPECT_EQ(m(q, 3, 3), (std::vector<int32_t>{1, 0, 2}));
}

TEST(Matcher, LowQualityMatchesRestoreTheBestGtIncludingTies) {
  const ps::Matcher with(ps::MatcherConfig{0.7, 0.3, true});
  const ps::Matcher without(ps::MatcherConfig{0.7, 0.3, false});
  // gt 0's best is 0.6 at prediction 3 -> restored to gt 0. gt 1's best is
  // 0.45, also at prediction 3, whose best gt is gt 0: torchvision restores
  // it to gt 0, so gt 1 gets no anchor at all. Prediction 2 is 0.2 for both
  // -> -1; the others stay between thresholds -> -2.
  const std::vector<float> q = {
      0.5f, 0.5f, 0.2f, 0.6f, 0.4f,  // gt 0 (max 0.6 at prediction 3)
      0.1f, 0.3f, 0.2f, 0.45f, 0.0f,  // gt 1 (max 0.45 at prediction 3)
  };
  EXPECT_EQ(without(q, 2, 5), (std::vector<int32_t>{-2, -2, -1, -2, -2}));
  EXPECT_EQ(with(q, 2, 5), (std::vector<int32_t>{-2, -2, -1, 0, -2}));
  // a proper tie at the per-gt maximum
  const std::vector<float> t = {0.5f, 0.5f, 0.1f};
  EXPECT_EQ(with(t, 1, 3), (std::vector<int32_t>{0, 0, -1}));
  // no gt: everything unmatched
  const std::vector<float> no_gt;
  EXPECT_EQ(with(no_gt, 0, 3), (std::vector<int32_t>{-1, -1, -1}));
  EXPECT_THROW(ps::Matcher(ps::MatcherConfig{0.3, 0.7, true}), pasteflow::ConfigError);
}

namespace {

// Reference: the full matrix through the generic matcher.
void expect_fast_equals_reference(const ps::AnchorGrid& grid, const std::vector<BoxF>& gt, bool low_quality) {
  const ps::Matcher m(ps::MatcherConfig{0.7, 0.3, low_quality});
  const std::vector<BoxF> anchors = grid.boxes();
  const std::vector<float> q = ps::box_iou_matrix(gt, anchors);
  const std::vector<int32_t> ref = m(q, gt.size(), anchors.size());
  const ps::AnchorMatch fast = m.match(grid, gt);
  ASSERT_EQ(fast.matches.size(), ref.size());
  for (size_t a = 0; a < ref.size(); ++a) ASSERT_EQ(fast.matches[a], ref[a]) << "anchor " << a;
  for (size_t g = 0; g < gt.size(); ++g) {
    float best = 0.0f;
    int64_t count = 0;
    for (size_t a = 0; a < anchors.size(); ++a) best = std::max(best, q[g * anchors.size() + a]);
    for (int32_t v : ref) count += v == static_cast<int32_t>(g);
    EXPECT_EQ(fast.max_iou[g], best) << "gt " << g;
    EXPECT_EQ(fast.matched_anchors[g], count) << "gt " << g;
  }
}

}  // namespace

TEST(FastMatch, EqualsFullMatrixOnRandomBoxes) {
  const ps::AnchorGeneratorConfig c = ps::AnchorGeneratorConfig::mask_rcnn_fpn();
  std::mt19937 rng(12345);
  for (int trial = 0; trial < 6; ++trial) {
    const int64_t h = 160 + 32 * trial;
    const int64_t w = 224 + 32 * (trial % 3);
    const ps::AnchorGrid grid(c, h, w, ps::fpn_grid_sizes(h, w));
    std::uniform_real_distribution<float> pos(-20.0f, static_cast<float>(w));
    std::uniform_real_distribution<float> len(1.0f, 200.0f);
    std::vector<BoxF> gt;
    for (int k = 0; k < 12; ++k) {
      const float x = pos(rng), y = pos(rng) * static_cast<float>(h) / static_cast<float>(w);
      gt.push_back(BoxF{x, y, x + len(rng), y + len(rng) * 0.7f});
    }
    // grid-aligned boxes create exact IoU ties between anchors and between gts
    gt.push_back(BoxF{4, 4, 36, 36});
    gt.push_back(BoxF{4, 4, 36, 36});
    gt.push_back(BoxF{-16, -16, 16, 16});
    gt.push_back(BoxF{2, 0, 34, 32});
    expect_fast_equals_reference(grid, gt, true);
    expect_fast_equals_reference(grid, gt, false);
  }
}

TEST(FastMatch, GtOutsideEveryAnchorTiesAtZero) {
  // A gt overlapping no anchor has max IoU 0, and every anchor attains it:
  // torchvision then restores every anchor's best gt (even with IoU 0).
  const ps::AnchorGeneratorConfig c{{{8.0}}, {{1.0}}};
  const ps::AnchorGrid grid(c, 32, 32, {ps::GridSize{4, 4}});
  const std::vector<BoxF> gt = {BoxF{0, 0, 8, 8}, BoxF{500, 500, 510, 510}};
  expect_fast_equals_reference(grid, gt, true);
  const ps::AnchorMatch r = ps::Matcher().match(grid, gt);
  EXPECT_EQ(r.max_iou[1], 0.0f);
  EXPECT_EQ(r.matched_anchors[1], 0);
  EXPECT_EQ(r.matched_anchors[0], 16);  // every anchor restored to its best gt, gt 0
}

TEST(FastMatch, RejectsDegenerateBoxes) {
  const ps::AnchorGrid grid(ps::AnchorGeneratorConfig::mask_rcnn_fpn(), 64, 64, ps::fpn_grid_sizes(64, 64));
  const std::vector<BoxF> gt = {BoxF{1, 1, 1, 5}};
  try {
    ps::Matcher().match(grid, gt);
    FAIL() << "no exception";
  } catch (const pasteflow::InputError& e) {
    EXPECT_EQ(e.reason(), "degenerate_box");
  }
  const std::vector<BoxF> no_gt;
  const ps::AnchorMatch none = ps::Matcher().match(grid, no_gt);
  EXPECT_EQ(none.matches.size(), grid.size());
  for (int32_t v : none.matches) ASSERT_EQ(v, ps::Matcher::kBelowLowThreshold);
}

TEST(FastMatch, FullSizeImageIsFast) {
  const ps::ResizeInfo r = ps::detection_resize(480, 640);
  const ps::AnchorGrid grid(ps::AnchorGeneratorConfig::mask_rcnn_fpn(), r.padded_height, r.padded_width,
                            ps::fpn_grid_sizes(r.padded_height, r.padded_width));
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> pos(0.0f, 600.0f);
  std::uniform_real_distribution<float> len(2.0f, 400.0f);
  std::vector<BoxF> gt;
  for (int k = 0; k < 30; ++k) {
    const float x = pos(rng), y = pos(rng) * 0.75f;
    gt.push_back(ps::resize_box(BoxF{x, y, x + len(rng), y + len(rng) * 0.5f}, r));
  }
  const auto t0 = std::chrono::steady_clock::now();
  const ps::AnchorMatch m = ps::Matcher().match(grid, gt);
  const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
  int64_t matched = 0;
  for (int64_t v : m.matched_anchors) matched += v;
  EXPECT_GT(matched, 0);
  EXPECT_LT(ms, 1000.0);  // generous; a few ms on one core
  expect_fast_equals_reference(grid, gt, true);
}
