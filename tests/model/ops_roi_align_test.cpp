// Unit tests of RoIAlign: autograd gradient vs central finite differences in
// float64 (RoIAlign is linear in its input, so the differences are exact up
// to rounding), strided gradients, thread-count independence, errors.
// Parity with torchvision itself: ops_parity_test.cpp.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <string>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/ops.hpp"

namespace pasteflow::model::ops {
namespace {

at::Tensor make_rois(const std::vector<double>& v) {
  const int64_t n = static_cast<int64_t>(v.size()) / 5;
  return at::tensor(v, at::kDouble).reshape({n, 5});
}

struct Config {
  bool aligned;
  int64_t sampling_ratio;
  double spatial_scale;
};

class RoiAlignGrad : public ::testing::TestWithParam<Config> {};

TEST_P(RoiAlignGrad, MatchesFiniteDifferences) {
  const Config cfg = GetParam();
  at::manual_seed(11);
  const at::Tensor input = at::randn({2, 2, 6, 7}, at::kDouble);
  const double s = 1.0 / cfg.spatial_scale;  // rois in image coordinates
  const at::Tensor rois = make_rois({0, 0.3 * s, 0.7 * s, 4.6 * s, 5.1 * s,     //
                                     1, 1.2 * s, 0.1 * s, 6.4 * s, 3.3 * s,     //
                                     1, -0.8 * s, 2.0 * s, 2.5 * s, 6.9 * s,    // past the border
                                     0, 3.0 * s, 3.0 * s, 3.2 * s, 3.4 * s,     // small
                                     0, 2.0 * s, 1.0 * s, 2.0 * s, 4.0 * s});   // zero width
  const int64_t ph = 3, pw = 2;
  const at::Tensor weights = at::randn({rois.size(0), 2, ph, pw}, at::kDouble);

  at::Tensor x = input.clone().requires_grad_(true);
  const at::Tensor out = roi_align(x, rois, ph, pw, cfg.spatial_scale, cfg.sampling_ratio, cfg.aligned);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{5, 2, ph, pw}));
  (out * weights).sum().backward();
  const at::Tensor analytic = x.grad();
  ASSERT_TRUE(analytic.defined());

  const double eps = 1e-3;
  at::Tensor numeric = at::zeros_like(input);
  at::NoGradGuard no_grad;
  at::Tensor probe = input.clone();
  auto f = [&](const at::Tensor& in) {
    return (roi_align(in, rois, ph, pw, cfg.spatial_scale, cfg.sampling_ratio, cfg.aligned) * weights)
        .sum()
        .item<double>();
  };
  double* p = probe.data_ptr<double>();
  double* num = numeric.data_ptr<double>();
  for (int64_t i = 0; i < probe.numel(); ++i) {
    const double keep = p[i];
    p[i] = keep + eps;
    const double up = f(probe);
    p[i] = keep - eps;
    const double down = f(probe);
    p[i] = keep;
    num[i] = (up - down) / (2 * eps);
  }
  EXPECT_TRUE(at::allclose(analytic, numeric, 1e-7, 1e-9))
      << "max diff " << (analytic - numeric).abs().max().item<double>();
  // The gradient is not trivially zero.
  EXPECT_GT(analytic.abs().sum().item<double>(), 1.0);
}

INSTANTIATE_TEST_SUITE_P(Configs, RoiAlignGrad,
                         ::testing::Values(Config{false, 0, 1.0}, Config{true, 0, 1.0}, Config{false, 2, 1.0},
                                           Config{true, 2, 1.0}, Config{true, 0, 0.25}, Config{false, 2, 0.5}),
                         [](const ::testing::TestParamInfo<Config>& info) {
                           return std::string(info.param.aligned ? "aligned" : "legacy") + "_sr" +
                                  std::to_string(info.param.sampling_ratio) + "_scale" +
                                  std::to_string(static_cast<int>(1.0 / info.param.spatial_scale));
                         });

TEST(RoiAlign, HandComputedAverage) {
  // 1 x 1 x 4 x 4 ramp, value = 10*y + x; bilinear interpolation of a ramp is
  // the ramp itself. aligned=true shifts roi [0,0,4,4] to start at -0.5.
  // Pooled to 1x1 with 2x2 samples: y, x in {-0.5 + 1, -0.5 + 3} = {0.5, 2.5}.
  at::Tensor input = at::empty({1, 1, 4, 4}, at::kFloat);
  for (int y = 0; y < 4; ++y)
    for (int x = 0; x < 4; ++x) input[0][0][y][x] = static_cast<float>(10 * y + x);
  const at::Tensor rois = at::tensor(std::vector<float>{0, 0, 0, 4, 4}, at::kFloat).reshape({1, 5});
  const at::Tensor out = roi_align(input, rois, 1, 1, 1.0, 2, true);
  // sample coordinates (x,y) in {0.5, 2.5}: mean value = 10*1.5 + 1.5
  EXPECT_FLOAT_EQ(out.item<float>(), 16.5f);
  // 2x2 bins of size 2, one sample at each bin centre: y, x in {0.5, 2.5}.
  const at::Tensor out2 = roi_align(input, rois, 2, 2, 1.0, 1, true);
  EXPECT_FLOAT_EQ(out2[0][0][0][0].item<float>(), 5.5f);
  EXPECT_FLOAT_EQ(out2[0][0][1][1].item<float>(), 27.5f);
  EXPECT_FLOAT_EQ(out2[0][0][0][1].item<float>(), 7.5f);
  // Legacy (aligned=false): no shift, samples at {1, 3}: mean 10*2 + 2.
  EXPECT_FLOAT_EQ(roi_align(input, rois, 1, 1, 1.0, 2, false).item<float>(), 22.f);
  // A roi wholly outside the map pools to 0; one reaching past the border
  // samples the clamped edge (x = 3.5 -> 3; y in {0.5, ...}).
  const at::Tensor far = at::tensor(std::vector<float>{0, 10, 10, 12, 12}, at::kFloat).reshape({1, 5});
  EXPECT_FLOAT_EQ(roi_align(input, far, 1, 1, 1.0, 2, true).item<float>(), 0.f);
  const at::Tensor edge = at::tensor(std::vector<float>{0, 3.5f, 0.5f, 4.5f, 1.5f}, at::kFloat).reshape({1, 5});
  // samples x in {3.25, 3.75} -> clamped to 3 (x >= width - 1); y in {0.25, 0.75}: 10*0.5 + 3.
  EXPECT_FLOAT_EQ(roi_align(input, edge, 1, 1, 1.0, 2, true).item<float>(), 8.f);
}

TEST(RoiAlign, StridedGradAndThreadCountsGiveIdenticalResults) {
  at::manual_seed(3);
  const at::Tensor input = at::randn({3, 16, 20, 24}, at::kFloat);
  at::Tensor rois = at::rand({64, 5}, at::kFloat) * 20;
  rois.select(1, 0).copy_(at::randint(0, 3, {64}, at::kLong).to(at::kFloat));
  rois.select(1, 3).add_(rois.select(1, 1));
  rois.select(1, 4).add_(rois.select(1, 2));
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor out1 = roi_align_forward_cpu(input, rois, 0.5, 7, 7, 2, true);
  const at::Tensor grad = at::randn({64, 7, 7, 16}, at::kFloat).permute({0, 3, 1, 2});  // strided
  const at::Tensor g1 = roi_align_backward_cpu(grad, rois, 0.5, 7, 7, 3, 16, 20, 24, 2, true);
  at::set_num_threads(2);
  const at::Tensor out2 = roi_align_forward_cpu(input, rois, 0.5, 7, 7, 2, true);
  const at::Tensor g2 = roi_align_backward_cpu(grad, rois, 0.5, 7, 7, 3, 16, 20, 24, 2, true);
  const at::Tensor g3 = roi_align_backward_cpu(grad.contiguous(), rois, 0.5, 7, 7, 3, 16, 20, 24, 2, true);
  at::set_num_threads(before);
  EXPECT_TRUE(at::equal(out1, out2));
  EXPECT_TRUE(at::equal(g1, g2));
  EXPECT_TRUE(at::equal(g1, g3));
  // Non-contiguous input gives the same forward.
  const at::Tensor in_cl = input.contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(at::equal(roi_align_forward_cpu(in_cl, rois, 0.5, 7, 7, 2, true), out1));
}

TEST(RoiAlign, RoisGetNoGradientAndDoubleBackwardFails) {
  at::Tensor x = at::randn({1, 2, 5, 5}, at::kDouble).requires_grad_(true);
  at::Tensor rois = make_rois({0, 0.5, 0.5, 3.5, 4.0}).requires_grad_(true);
  const at::Tensor out = roi_align(x, rois, 2, 2, 1.0, 2, false);
  const auto grads = torch::autograd::grad({out.sum()}, {x, rois}, {}, /*retain_graph=*/true,
                                           /*create_graph=*/true, /*allow_unused=*/true);
  ASSERT_TRUE(grads[0].defined());
  EXPECT_FALSE(grads[1].defined());
  ASSERT_TRUE(grads[0].requires_grad());
  EXPECT_ANY_THROW(grads[0].sum().backward());
}

TEST(RoiAlign, EmptyRoisAndErrors) {
  at::Tensor x = at::randn({2, 3, 5, 5}, at::kFloat).requires_grad_(true);
  const at::Tensor none = at::zeros({0, 5}, at::kFloat);
  const at::Tensor out = roi_align(x, none, 7, 7, 1.0, 2, true);
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{0, 3, 7, 7}));
  out.sum().backward();
  EXPECT_TRUE(at::equal(x.grad(), at::zeros_like(x)));

  const at::Tensor bad_batch = at::tensor(std::vector<float>{2, 0, 0, 3, 3}, at::kFloat).reshape({1, 5});
  EXPECT_THROW(roi_align(x, bad_batch, 2, 2), pasteflow::Error);
  EXPECT_THROW(roi_align(x, at::zeros({1, 4}, at::kFloat), 2, 2), pasteflow::Error);
  EXPECT_THROW(roi_align(x, at::zeros({1, 5}, at::kDouble), 2, 2), pasteflow::Error);
  EXPECT_THROW(roi_align(x, at::zeros({1, 5}, at::kFloat), 0, 2), pasteflow::Error);
  EXPECT_THROW(roi_align(x.to(at::kInt), at::zeros({1, 5}, at::kInt), 2, 2), pasteflow::Error);
}

TEST(RoiAlign, ConvertBoxesToRoiFormat) {
  const at::Tensor a = at::rand({2, 4}, at::kFloat);
  const at::Tensor b = at::rand({3, 4}, at::kFloat);
  const at::Tensor rois = convert_boxes_to_roi_format({a, b});
  ASSERT_EQ(rois.sizes(), (at::IntArrayRef{5, 5}));
  EXPECT_TRUE(at::equal(rois.select(1, 0), at::tensor(std::vector<float>{0, 0, 1, 1, 1}, at::kFloat)));
  EXPECT_TRUE(at::equal(rois.slice(1, 1).slice(0, 2), b));
}

}  // namespace
}  // namespace pasteflow::model::ops
