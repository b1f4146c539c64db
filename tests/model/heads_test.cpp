// RPN and RoI-head pieces on hand-made inputs: prediction/anchor ordering,
// proposal filtering, FPN level mapping, scale inference, multi-scale
// pooling, the Fast R-CNN and mask losses, mask inference.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/ops.hpp"
#include "pasteflow/model/roi_heads.hpp"
#include "pasteflow/model/rpn.hpp"

namespace pasteflow::model {
namespace {

using at::indexing::Slice;

TEST(Rpn, PredictionsFollowAnchorOrder) {
  // Anchor order: level, then y, x, then the A cell anchors (image-major after flatten).
  const int64_t n = 2, a = 3;
  const std::vector<std::array<int64_t, 2>> grids{{2, 3}, {1, 2}};
  std::vector<at::Tensor> cls, reg;
  for (size_t level = 0; level < grids.size(); ++level) {
    const int64_t h = grids[level][0], w = grids[level][1];
    at::Tensor c = at::zeros({n, a, h, w});
    at::Tensor r = at::zeros({n, 4 * a, h, w});
    for (int64_t i = 0; i < n; ++i)
      for (int64_t y = 0; y < h; ++y)
        for (int64_t x = 0; x < w; ++x)
          for (int64_t k = 0; k < a; ++k) {
            const double id = static_cast<double>(i * 1000 + static_cast<int64_t>(level) * 100 + (y * w + x) * a + k);
            c.index_put_({i, k, y, x}, id);
            for (int64_t q = 0; q < 4; ++q) r.index_put_({i, k * 4 + q, y, x}, id * 10 + static_cast<double>(q));
          }
    cls.push_back(c);
    reg.push_back(r);
  }
  const auto out = concat_box_prediction_layers(cls, reg);
  ASSERT_EQ(out.first.sizes(), (at::IntArrayRef{2 * 24, 1}));
  ASSERT_EQ(out.second.sizes(), (at::IntArrayRef{2 * 24, 4}));
  int64_t row = 0;
  for (int64_t i = 0; i < n; ++i)
    for (int64_t level = 0; level < 2; ++level) {
      const int64_t count = grids[static_cast<size_t>(level)][0] * grids[static_cast<size_t>(level)][1] * a;
      for (int64_t j = 0; j < count; ++j, ++row) {
        const double id = static_cast<double>(i * 1000 + level * 100 + j);
        ASSERT_EQ(out.first[row][0].item<double>(), id) << row;
        for (int64_t q = 0; q < 4; ++q) ASSERT_EQ(out.second[row][q].item<double>(), id * 10 + static_cast<double>(q));
      }
    }
}

TEST(Rpn, FilterProposalsPerLevel) {
  RpnConfig cfg;
  cfg.pre_nms_top_n_test = 3;
  cfg.post_nms_top_n_test = 4;
  RegionProposalNetwork rpn(cfg, AnchorConfig{}, 8);
  rpn->eval();
  // Level 0: 4 anchors, level 1: 2 anchors; one image of 50 x 60.
  const at::Tensor boxes = torch::tensor({{0.f, 0.f, 10.f, 10.f},     // kept
                                          {1.f, 1.f, 10.f, 10.f},     // suppressed by the first (same level)
                                          {20.f, 20.f, 20.0005f, 40.f},  // too narrow (min_size 1e-3)
                                          {30.f, 30.f, 40.f, 40.f},   // 4th best of level 0: beyond pre_nms_top_n
                                          {0.f, 0.f, 10.f, 10.f},     // level 1: same box survives (per-level NMS)
                                          {-5.f, 40.f, 70.f, 80.f}})  // clipped to the image
                             .reshape({1, 6, 4});
  const at::Tensor logits = torch::tensor({3.f, 2.f, 1.f, 0.f, -1.f, 4.f}).reshape({6, 1});
  const auto out = rpn->filter_proposals(boxes, logits, {{50, 60}}, {4, 2});
  ASSERT_EQ(out.first.size(), 1u);
  const at::Tensor expected = torch::tensor({{0.f, 40.f, 60.f, 50.f}, {0.f, 0.f, 10.f, 10.f}, {0.f, 0.f, 10.f, 10.f}});
  EXPECT_TRUE(at::equal(out.first[0], expected)) << out.first[0];
  EXPECT_TRUE(at::allclose(out.second[0], torch::sigmoid(torch::tensor({4.f, 3.f, -1.f}))));
}

TEST(Rpn, HeadShapesAndNames) {
  RPNHead head(16, 3);
  const auto out = head->forward({torch::randn({2, 16, 8, 10}), torch::randn({2, 16, 4, 5})});
  EXPECT_EQ(out.first[1].sizes(), (at::IntArrayRef{2, 3, 4, 5}));
  EXPECT_EQ(out.second[0].sizes(), (at::IntArrayRef{2, 12, 8, 10}));
  std::vector<std::string> names;
  for (const auto& p : head->named_parameters()) names.push_back(p.key());
  EXPECT_EQ(names, (std::vector<std::string>{"conv.0.0.weight", "conv.0.0.bias", "cls_logits.weight", "cls_logits.bias",
                                             "bbox_pred.weight", "bbox_pred.bias"}));
}

TEST(RoIPooling, LevelMapper) {
  const LevelMapper mapper(2, 5);
  const auto box = [](float side) { return std::vector<float>{0.f, 0.f, side, side}; };
  std::vector<float> v;
  for (float side : {224.f, 112.f, 111.f, 10.f, 448.f, 2000.f}) {
    const auto b = box(side);
    v.insert(v.end(), b.begin(), b.end());
  }
  const at::Tensor levels = mapper({torch::tensor(v).reshape({-1, 4})});
  // floor(4 + log2(side / 224) + 1e-6) clamped to [2, 5], minus k_min 2.
  EXPECT_TRUE(at::equal(levels, torch::tensor({2, 1, 0, 0, 3, 3}, torch::kLong))) << levels;
}

TEST(RoIPooling, InferScale) {
  EXPECT_EQ(infer_scale(at::zeros({1, 1, 80, 120}), {320, 479}), 0.25);
  EXPECT_EQ(infer_scale(at::zeros({1, 1, 38, 50}), {150, 200}), 0.25);  // 0.2533 rounds in log2
  EXPECT_EQ(infer_scale(at::zeros({1, 1, 10, 15}), {320, 479}), 1.0 / 32);
}

TEST(RoIPooling, MultiScaleEqualsRoIAlignOnTheMappedLevel) {
  torch::manual_seed(4);
  std::vector<at::Tensor> features;
  for (int64_t s : {64, 32, 16, 8, 4}) features.push_back(torch::randn({2, 3, s, s}));
  const MultiScaleRoIAlign pool(4, 7, 2);
  const at::Tensor b0 = torch::tensor({{0.f, 0.f, 30.f, 30.f}, {10.f, 20.f, 250.f, 240.f}});
  const at::Tensor b1 = torch::tensor({{5.f, 5.f, 150.f, 130.f}});
  const at::Tensor out = pool(features, {b0, b1}, {{256, 256}, {250, 256}});
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{3, 3, 7, 7}));
  // Box 0: side 30 -> level 2 (P2, scale 1/4); box 1: ~230 -> level 4 (P4, 1/16); box 2: ~135 -> level 3 (1/8).
  const auto direct = [&](size_t level, double scale, int64_t image, const at::Tensor& b) {
    const at::Tensor roi = at::cat({torch::tensor({static_cast<float>(image)}), b}).unsqueeze(0);
    return ops::roi_align(features[level], roi, 7, 7, scale, 2, false)[0];
  };
  EXPECT_TRUE(at::equal(out[0], direct(0, 0.25, 0, b0[0])));
  EXPECT_TRUE(at::equal(out[1], direct(2, 1.0 / 16, 0, b0[1])));
  EXPECT_TRUE(at::equal(out[2], direct(1, 0.125, 1, b1[0])));
  EXPECT_THROW(pool(features, {b0}, {}), InputError);
}

// The mask predictor's ConvTranspose2d (kernel 2, stride 2) runs as one
// matrix product (roi_heads.cpp): it must equal the module's own
// transposed convolution, forward and backward, in both memory formats.
TEST(MaskPredictor, TransposedConvolutionAsMatmulEqualsTheModule) {
  torch::manual_seed(4);
  MaskRCNNPredictor p(16, 8, 3);
  for (const bool channels_last : {false, true}) {
    at::Tensor x = at::randn({5, 16, 7, 7});
    if (channels_last) x = x.contiguous(at::MemoryFormat::ChannelsLast);
    at::Tensor a_in = x.clone().requires_grad_(true), b_in = x.clone().requires_grad_(true);
    const at::Tensor ours = p->forward(a_in);
    const at::Tensor module = p->mask_fcn_logits(at::relu(p->conv5_mask(b_in)));
    ASSERT_EQ(ours.sizes(), (at::IntArrayRef{5, 3, 14, 14}));
    EXPECT_LE((ours - module).abs().max().item<double>(), 1e-5) << "channels_last " << channels_last;
    EXPECT_EQ(ours.is_contiguous(at::MemoryFormat::ChannelsLast) && !ours.is_contiguous(), channels_last);
    const at::Tensor w = at::randn_like(ours);
    p->zero_grad();
    (ours * w).sum().backward();
    const at::Tensor gw = p->conv5_mask->weight.grad().clone(), gb = p->conv5_mask->bias.grad().clone();
    p->zero_grad();
    (module * w).sum().backward();
    EXPECT_LE((a_in.grad() - b_in.grad()).abs().max().item<double>(), 1e-5);
    EXPECT_LE((gw - p->conv5_mask->weight.grad()).abs().max().item<double>(), 1e-4);
    EXPECT_LE((gb - p->conv5_mask->bias.grad()).abs().max().item<double>(), 1e-4);
  }
}

TEST(RoIHeadsLosses, FastRcnnLossByHand) {
  const at::Tensor logits = at::zeros({2, 3});
  at::Tensor regression = at::zeros({2, 12});
  regression.index_put_({0, Slice(4, 8)}, torch::tensor({0.5f, 0.f, 0.05f, -1.f}));
  const at::Tensor targets = at::zeros({2, 4});
  const auto loss = fastrcnn_loss(logits, regression, {torch::tensor({1}, torch::kLong), torch::tensor({0}, torch::kLong)},
                                  {targets.slice(0, 0, 1), targets.slice(0, 1)});
  EXPECT_NEAR(loss.first.item<double>(), std::log(3.0), 1e-6);
  // smooth L1, beta 1/9: |d| - beta/2 for |d| >= beta, 0.5 d^2 / beta below; summed over the
  // positive's own class (label 1: columns 4..7), divided by the 2 sampled proposals.
  const double beta = 1.0 / 9;
  const double expected = ((0.5 - beta / 2) + 0.0 + 0.5 * 0.05 * 0.05 / beta + (1.0 - beta / 2)) / 2;
  EXPECT_NEAR(loss.second.item<double>(), expected, 1e-6);
}

TEST(RoIHeadsLosses, MaskLossAndTargets) {
  // A gt mask that is 1 on columns 0..15; a proposal over columns 0..10 -> an all-ones target
  // (roi_align samples up to x = 9.58 and interpolates columns 9 and 10).
  at::Tensor gt = at::zeros({1, 20, 20}, at::kByte);
  gt.index_put_({0, Slice(), Slice(0, 16)}, 1);
  const at::Tensor proposal = torch::tensor({{0.f, 0.f, 10.f, 20.f}});
  const at::Tensor target = project_masks_on_boxes(gt, proposal, torch::tensor({0}, torch::kLong), 4);
  EXPECT_TRUE(at::allclose(target, at::ones({1, 4, 4})));
  // Logits: channel of label 2 is +10 (correct), other channels are wrong but ignored.
  at::Tensor logits = at::full({1, 3, 4, 4}, -10.0);
  logits.index_put_({0, 2}, 10.0);
  const double loss = maskrcnn_loss(logits, {proposal}, {gt}, {torch::tensor({2}, torch::kLong)},
                                    {torch::tensor({0}, torch::kLong)})
                          .item<double>();
  EXPECT_NEAR(loss, std::log1p(std::exp(-10.0)), 1e-6);
  // No positives: a zero that still has a graph.
  const at::Tensor none = at::zeros({0, 3, 4, 4}).requires_grad_(true);
  const at::Tensor zero = maskrcnn_loss(none, {at::zeros({0, 4})}, {gt}, {torch::tensor({2}, torch::kLong)},
                                        {at::zeros({0}, at::kLong)});
  EXPECT_EQ(zero.item<double>(), 0.0);
  EXPECT_TRUE(zero.requires_grad());
}

TEST(RoIHeadsLosses, MaskInferencePicksTheLabelChannel) {
  const at::Tensor logits = torch::arange(2 * 3 * 2 * 2, torch::kFloat).reshape({2, 3, 2, 2}) / 10 - 1;
  const auto probs = maskrcnn_inference(logits, {torch::tensor({2}, torch::kLong), torch::tensor({1}, torch::kLong)});
  ASSERT_EQ(probs.size(), 2u);
  EXPECT_EQ(probs[0].sizes(), (at::IntArrayRef{1, 1, 2, 2}));
  EXPECT_TRUE(at::equal(probs[0][0][0], torch::sigmoid(logits[0][2])));
  EXPECT_TRUE(at::equal(probs[1][0][0], torch::sigmoid(logits[1][1])));
}

}  // namespace
}  // namespace pasteflow::model
