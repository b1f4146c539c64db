// AnchorGenerator, Matcher, BalancedPositiveNegativeSampler and the box
// coder round trip. Anchors and matches are compared with stats/anchors.hpp,
// whose float32 arithmetic is checked against torchvision there (oracle:
// tests/data/golden/coco_mini_train2017_anchors.json); the model computes the
// same things with torch ops.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/config.hpp"
#include "pasteflow/model/det_utils.hpp"
#include "pasteflow/model/ops.hpp"
#include "pasteflow/stats/anchors.hpp"

namespace pasteflow::model {
namespace {

AnchorGenerator default_generator() {
  const AnchorConfig a;
  return AnchorGenerator(a.level_sizes(), std::vector<std::vector<double>>(a.sizes.size(), a.aspect_ratios));
}

TEST(AnchorGenerator, CellAnchorsAreTorchvisions) {
  // generate_anchors((32,), (0.5, 1, 2)): round([-w, -h, w, h] / 2), w = 32 / sqrt(r), h = 32 * sqrt(r).
  const at::Tensor cell = AnchorGenerator::generate_anchors({32.0}, {0.5, 1.0, 2.0});
  const at::Tensor expected = torch::tensor({-23.f, -11.f, 23.f, 11.f, -16.f, -16.f, 16.f, 16.f, -11.f, -23.f, 11.f, 23.f})
                                  .reshape({3, 4});
  EXPECT_TRUE(at::equal(cell, expected)) << cell;
  EXPECT_EQ(cell.scalar_type(), at::kFloat);
  // Order: ratios outer, sizes inner.
  const at::Tensor two = AnchorGenerator::generate_anchors({32.0, 64.0}, {1.0, 2.0});
  EXPECT_TRUE(at::equal(two[1], torch::tensor({-32.f, -32.f, 32.f, 32.f})));
  EXPECT_TRUE(at::equal(two[2], torch::tensor({-11.f, -23.f, 11.f, 23.f})));
}

TEST(AnchorGenerator, EqualsStatsAnchorsForFpnGrids) {
  const AnchorGenerator gen = default_generator();
  const stats::AnchorGeneratorConfig cfg = stats::AnchorGeneratorConfig::mask_rcnn_fpn();
  for (const auto& size : std::vector<std::array<int64_t, 2>>{{800, 1088}, {320, 480}, {96, 160}, {64, 64}}) {
    const std::vector<stats::GridSize> grids = stats::fpn_grid_sizes(size[0], size[1]);
    ImageList images;
    images.tensors = at::zeros({2, 3, size[0], size[1]});
    images.image_sizes = {{size[0], size[1]}, {size[0] - 5, size[1] - 7}};
    std::vector<at::Tensor> features;
    int64_t expected_count = 0;
    for (const stats::GridSize& g : grids) {
      features.push_back(at::zeros({2, 1, g.height, g.width}));
      expected_count += g.height * g.width * 3;
    }
    const std::vector<at::Tensor> anchors = gen(images, features);
    ASSERT_EQ(anchors.size(), 2u);
    EXPECT_TRUE(at::equal(anchors[0], anchors[1]));
    ASSERT_EQ(anchors[0].size(0), expected_count);
    const std::vector<stats::BoxF> ref = stats::generate_anchors(cfg, size[0], size[1], grids);
    ASSERT_EQ(ref.size(), static_cast<size_t>(expected_count));
    const at::Tensor a = anchors[0].contiguous();
    const float* p = a.data_ptr<float>();
    size_t differing = 0;
    for (size_t i = 0; i < ref.size(); ++i) {
      differing += p[4 * i] != ref[i].x1 || p[4 * i + 1] != ref[i].y1 || p[4 * i + 2] != ref[i].x2 ||
                   p[4 * i + 3] != ref[i].y2;
    }
    EXPECT_EQ(differing, 0u) << size[0] << "x" << size[1];
  }
}

TEST(AnchorGenerator, Errors) {
  EXPECT_THROW(AnchorGenerator({{32.0}}, {{1.0}, {2.0}}), ConfigError);
  EXPECT_THROW(AnchorGenerator({{}}, {{1.0}}), ConfigError);
  const AnchorGenerator gen = default_generator();
  ImageList images{at::zeros({1, 3, 64, 64}), {{64, 64}}};
  EXPECT_THROW(gen(images, {at::zeros({1, 1, 16, 16})}), Error);  // 1 feature map for 5 levels
}

at::Tensor matrix(std::vector<float> values, int64_t rows) {
  const auto cols = static_cast<int64_t>(values.size()) / rows;
  return torch::tensor(values).reshape({rows, cols});
}

TEST(Matcher, ThresholdsAndLowQualityTies) {
  const at::Tensor q = matrix({0.9f, 0.5f, 0.2f, 0.6f, 0.1f,  //
                               0.1f, 0.65f, 0.25f, 0.65f, 0.05f},
                              2);
  const Matcher strict(0.7, 0.3, false);
  EXPECT_TRUE(at::equal(strict(q), torch::tensor({0, -2, -1, -2, -1}, torch::kLong)));
  // gt 1's best quality 0.65 is attained by predictions 1 and 3 (a tie):
  // both are matched (to their own best gt, which is gt 1 for both).
  const Matcher low(0.7, 0.3, true);
  EXPECT_TRUE(at::equal(low(q), torch::tensor({0, 1, -1, 1, -1}, torch::kLong)));
  // Exactly at a threshold: >= high is a match, >= low is "between".
  const at::Tensor edge = matrix({0.7f, 0.3f, 0.29999f}, 1);
  EXPECT_TRUE(at::equal(strict(edge), torch::tensor({0, -2, -1}, torch::kLong)));
}

TEST(Matcher, LowQualityMatchUsesThePredictionsBestGt) {
  // gt 1's best prediction is 1, but prediction 1 prefers gt 0.
  const at::Tensor q = matrix({0.2f, 0.5f,  //
                               0.1f, 0.4f},
                              2);
  EXPECT_TRUE(at::equal(Matcher(0.7, 0.3, true)(q), torch::tensor({-1, 0}, torch::kLong)));
}

TEST(Matcher, EmptyAndBadThresholds) {
  const Matcher m(0.7, 0.3, true);
  try {
    m(at::zeros({0, 5}));
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "no_ground_truth");
  }
  try {
    m(at::zeros({3, 0}));
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "no_proposals");
  }
  EXPECT_THROW(Matcher(0.3, 0.7, false), ConfigError);
}

TEST(Matcher, EqualsStatsMatcherOnRandomBoxes) {
  torch::manual_seed(5);
  for (int trial = 0; trial < 5; ++trial) {
    const at::Tensor xy = torch::rand({7, 2}) * 200;
    const at::Tensor gt = torch::cat({xy, xy + 4 + torch::rand({7, 2}) * 120}, 1);
    const at::Tensor pxy = torch::rand({400, 2}) * 250;
    const at::Tensor preds = torch::cat({pxy, pxy + 4 + torch::rand({400, 2}) * 100}, 1);
    const at::Tensor q = ops::box_iou(gt, preds).contiguous();
    for (bool low_quality : {false, true}) {
      const at::Tensor ours = Matcher(0.7, 0.3, low_quality)(q);
      stats::MatcherConfig mc;
      mc.allow_low_quality_matches = low_quality;
      const std::vector<int32_t> ref =
          stats::Matcher(mc)(Span<const float>(q.data_ptr<float>(), static_cast<size_t>(q.numel())), 7, 400);
      ASSERT_EQ(ours.size(0), 400);
      for (int64_t i = 0; i < 400; ++i) ASSERT_EQ(ours[i].item<int64_t>(), ref[static_cast<size_t>(i)]) << i;
    }
  }
}

TEST(Permutations, HashPermutationIsAFixedPermutation) {
  for (int64_t n : {0, 1, 2, 17, 5000}) {
    const at::Tensor p = hash_permutation(n, c10::kCPU);
    ASSERT_EQ(p.size(0), n);
    EXPECT_EQ(p.scalar_type(), at::kLong);
    EXPECT_TRUE(at::equal(std::get<0>(p.sort()), at::arange(n, at::kLong)));
    EXPECT_TRUE(at::equal(p, hash_permutation(n, c10::kCPU)));
  }
  // Not the identity (a sampler taking the first k would be biased to one corner).
  EXPECT_FALSE(at::equal(hash_permutation(100, c10::kCPU), at::arange(100, at::kLong)));
  torch::manual_seed(1);
  const at::Tensor a = random_permutation(1000, c10::kCPU);
  torch::manual_seed(1);
  EXPECT_TRUE(at::equal(a, random_permutation(1000, c10::kCPU)));
  torch::manual_seed(2);
  EXPECT_FALSE(at::equal(a, random_permutation(1000, c10::kCPU)));
  EXPECT_THROW(permutation_by_name("shuffled"), ConfigError);
}

/// labels: `pos` positives (label `pos_label`), `neg` zeros, `ignored` -1, interleaved.
at::Tensor make_labels(int64_t pos, int64_t neg, int64_t ignored, int64_t pos_label = 1) {
  std::vector<int64_t> v;
  for (int64_t i = 0; i < std::max({pos, neg, ignored}); ++i) {
    if (i < pos) v.push_back(pos_label);
    if (i < neg) v.push_back(0);
    if (i < ignored) v.push_back(-1);
  }
  return torch::tensor(v, torch::kLong);
}

struct Counts {
  int64_t pos = 0, neg = 0;
};

Counts check_sample(const BalancedPositiveNegativeSampler& s, const at::Tensor& labels) {
  auto out = s({labels, labels.to(at::kFloat)});
  EXPECT_EQ(out.first.size(), 2u);
  Counts c;
  for (size_t i = 0; i < 2; ++i) {
    const at::Tensor& p = out.first[i];
    const at::Tensor& n = out.second[i];
    EXPECT_EQ(p.scalar_type(), at::kByte);
    EXPECT_EQ(p.size(0), labels.size(0));
    EXPECT_EQ((p & n).sum().item<int64_t>(), 0) << "an index sampled as both";
    EXPECT_TRUE((labels.index({p.to(at::kBool)}) >= 1).all().item<bool>());
    EXPECT_TRUE((labels.index({n.to(at::kBool)}) == 0).all().item<bool>());
    c.pos = p.sum().item<int64_t>();
    c.neg = n.sum().item<int64_t>();
  }
  // Float and int64 labels sample the same (same permutation).
  EXPECT_TRUE(at::equal(out.first[0], out.first[1]));
  EXPECT_TRUE(at::equal(out.second[0], out.second[1]));
  return c;
}

TEST(Sampler, Proportions) {
  const BalancedPositiveNegativeSampler rpn(256, 0.5, hash_permutation);
  Counts c = check_sample(rpn, make_labels(1000, 4000, 1000));
  EXPECT_EQ(c.pos, 128);
  EXPECT_EQ(c.neg, 128);
  c = check_sample(rpn, make_labels(10, 4000, 50));  // few positives: negatives fill up
  EXPECT_EQ(c.pos, 10);
  EXPECT_EQ(c.neg, 246);
  c = check_sample(rpn, make_labels(1000, 20, 0));  // few negatives: no refill with positives
  EXPECT_EQ(c.pos, 128);
  EXPECT_EQ(c.neg, 20);
  c = check_sample(rpn, make_labels(0, 0, 30));  // nothing to sample
  EXPECT_EQ(c.pos + c.neg, 0);
  const BalancedPositiveNegativeSampler roi(512, 0.25, hash_permutation);
  c = check_sample(roi, make_labels(300, 3000, 0, 7));  // class labels > 1 are positives
  EXPECT_EQ(c.pos, 128);
  EXPECT_EQ(c.neg, 384);
  const BalancedPositiveNegativeSampler odd(5, 0.5, hash_permutation);  // int(2.5) = 2
  c = check_sample(odd, make_labels(10, 10, 0));
  EXPECT_EQ(c.pos, 2);
  EXPECT_EQ(c.neg, 3);
}

TEST(Sampler, DeterministicPicksTheFirstOfTheHashOrder) {
  const at::Tensor labels = make_labels(40, 300, 10);
  const BalancedPositiveNegativeSampler s(64, 0.25, hash_permutation);
  auto out = s({labels});
  const at::Tensor positive = at::where(labels >= 1)[0];
  const at::Tensor expected = positive.index({hash_permutation(positive.size(0), c10::kCPU).slice(0, 0, 16)});
  at::Tensor mask = at::zeros_like(labels, at::kByte);
  mask.index_put_({expected}, 1);
  EXPECT_TRUE(at::equal(out.first[0], mask));
  // The random sampler follows torch's generator.
  const BalancedPositiveNegativeSampler r(64, 0.25);
  torch::manual_seed(7);
  auto a = r({labels});
  torch::manual_seed(7);
  auto b = r({labels});
  torch::manual_seed(8);
  auto c = r({labels});
  EXPECT_TRUE(at::equal(a.second[0], b.second[0]));
  EXPECT_FALSE(at::equal(a.second[0], c.second[0]));
}

TEST(BoxCoder, RoundTrip) {
  torch::manual_seed(3);
  const at::Tensor pxy = torch::rand({500, 2}) * 300;
  const at::Tensor pwh = 1 + torch::rand({500, 2}) * 200;
  const at::Tensor proposals = torch::cat({pxy, pxy + pwh}, 1);
  // Sizes within exp(+-4.1) of the proposal's: below the decoder's clip of log(1000 / 16).
  const at::Tensor gxy = pxy + torch::randn({500, 2}) * 20;
  const at::Tensor gt = torch::cat({gxy, gxy + pwh * torch::exp(torch::randn({500, 2}).clamp(-4, 4))}, 1);
  for (const std::array<double, 4>& w : {std::array<double, 4>{1, 1, 1, 1}, std::array<double, 4>{10, 10, 5, 5}}) {
    const ops::BoxCoder coder(w);
    const std::vector<at::Tensor> codes = coder.encode({gt.slice(0, 0, 200), gt.slice(0, 200)},
                                                       {proposals.slice(0, 0, 200), proposals.slice(0, 200)});
    ASSERT_EQ(codes.size(), 2u);
    const at::Tensor decoded = coder.decode(at::cat(codes), {proposals.slice(0, 0, 200), proposals.slice(0, 200)});
    ASSERT_EQ(decoded.sizes(), (at::IntArrayRef{500, 1, 4}));
    EXPECT_LT((decoded.select(1, 0) - gt).abs().max().item<double>(), 1e-3);
  }
}

}  // namespace
}  // namespace pasteflow::model
