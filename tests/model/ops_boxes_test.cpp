// Unit tests of the box utilities and the box coder (hand-computed values and
// encode/decode round trips). Parity with torchvision: ops_parity_test.cpp.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/ops.hpp"

namespace pasteflow::model::ops {
namespace {

at::Tensor boxes_f(std::vector<float> v) {
  const int64_t n = static_cast<int64_t>(v.size()) / 4;
  return at::tensor(v, at::kFloat).reshape({n, 4});
}

TEST(OpsBoxes, AreaAndIouByHand) {
  const at::Tensor a = boxes_f({0, 0, 10, 10, 5, 5, 15, 25});
  const at::Tensor b = boxes_f({0, 0, 10, 10, 20, 20, 30, 30, 5, 0, 10, 10});
  const at::Tensor area = box_area(a);
  EXPECT_FLOAT_EQ(area[0].item<float>(), 100.f);
  EXPECT_FLOAT_EQ(area[1].item<float>(), 200.f);
  const at::Tensor iou = box_iou(a, b);
  ASSERT_EQ(iou.sizes(), (at::IntArrayRef{2, 3}));
  EXPECT_FLOAT_EQ(iou[0][0].item<float>(), 1.f);
  EXPECT_FLOAT_EQ(iou[0][1].item<float>(), 0.f);
  EXPECT_FLOAT_EQ(iou[0][2].item<float>(), 0.5f);
  // a[1] vs b[0]: inter 5x5 = 25, union 100 + 200 - 25 = 275
  EXPECT_FLOAT_EQ(iou[1][0].item<float>(), 25.f / 275.f);
  // a[1] vs b[2]: inter [5,5,10,10] = 25, union 200 + 50 - 25
  EXPECT_FLOAT_EQ(iou[1][2].item<float>(), 25.f / 225.f);
  // Integer boxes are upcast, the IoU is float.
  const at::Tensor ia = box_area(a.to(at::kShort));
  EXPECT_EQ(ia.scalar_type(), at::kInt);
  EXPECT_EQ(ia[1].item<int>(), 200);
}

TEST(OpsBoxes, ClipAndRemoveSmall) {
  const at::Tensor b = boxes_f({-3, -1, 50, 8, 2, 3, 2.5f, 40, 1, 1, 4, 4});
  const at::Tensor c = clip_boxes_to_image(b, /*height=*/20, /*width=*/30);
  const std::vector<float> want = {0, 0, 30, 8, 2, 3, 2.5f, 20, 1, 1, 4, 4};
  const at::Tensor flat = c.reshape({-1}).contiguous();
  for (size_t i = 0; i < want.size(); ++i) EXPECT_EQ(flat[static_cast<int64_t>(i)].item<float>(), want[i]) << i;
  // [...,4] batches keep their shape.
  const at::Tensor c3 = clip_boxes_to_image(b.reshape({1, 3, 4}), 20, 30);
  EXPECT_TRUE(at::equal(c3.reshape({3, 4}), c));
  const at::Tensor keep = remove_small_boxes(c, 1.0);
  ASSERT_EQ(keep.numel(), 2);
  EXPECT_EQ(keep[0].item<int64_t>(), 0);
  EXPECT_EQ(keep[1].item<int64_t>(), 2);
  EXPECT_EQ(keep.scalar_type(), at::kLong);
  EXPECT_THROW(box_area(at::zeros({3, 5})), pasteflow::Error);
}

TEST(OpsBoxes, CoderRoundTrip) {
  at::manual_seed(7);
  for (const auto& w : {std::array<double, 4>{1, 1, 1, 1}, std::array<double, 4>{10, 10, 5, 5}}) {
    const BoxCoder coder(w);
    const at::Tensor xy = at::rand({64, 2}, at::kDouble) * 100;
    const at::Tensor wh = at::rand({64, 2}, at::kDouble) * 50 + 1;
    const at::Tensor anchors = at::cat({xy, xy + wh}, 1);
    const at::Tensor gxy = xy + (at::rand({64, 2}, at::kDouble) - 0.5) * 20;
    const at::Tensor gwh = wh * (at::rand({64, 2}, at::kDouble) + 0.5);
    const at::Tensor gt = at::cat({gxy, gxy + gwh}, 1);
    const at::Tensor codes = coder.encode_single(gt, anchors);
    ASSERT_EQ(codes.sizes(), (at::IntArrayRef{64, 4}));
    const at::Tensor back = coder.decode_single(codes, anchors);
    EXPECT_TRUE(at::allclose(back, gt, 1e-9, 1e-9));
    // decode of per-image lists: [N, K, 4].
    const at::Tensor dec = coder.decode(codes, {anchors.slice(0, 0, 10), anchors.slice(0, 10, 64)});
    ASSERT_EQ(dec.sizes(), (at::IntArrayRef{64, 1, 4}));
    EXPECT_TRUE(at::allclose(dec.reshape({64, 4}), gt, 1e-9, 1e-9));
    const auto parts = coder.encode({gt.slice(0, 0, 10), gt.slice(0, 10, 64)},
                                    {anchors.slice(0, 0, 10), anchors.slice(0, 10, 64)});
    ASSERT_EQ(parts.size(), 2u);
    EXPECT_EQ(parts[0].size(0), 10);
    EXPECT_TRUE(at::equal(at::cat(parts, 0), codes));
    // Round trip in float32 too.
    const at::Tensor backf = coder.decode_single(coder.encode_single(gt.to(at::kFloat), anchors.to(at::kFloat)),
                                                 anchors.to(at::kFloat));
    EXPECT_TRUE(at::allclose(backf, gt.to(at::kFloat), 1e-4, 1e-3));
  }
}

TEST(OpsBoxes, CoderClampsLargeSizeDeltas) {
  const BoxCoder coder({1, 1, 1, 1});
  EXPECT_DOUBLE_EQ(coder.bbox_xform_clip(), std::log(1000.0 / 16.0));
  const at::Tensor anchors = at::tensor(std::vector<double>{0, 0, 16, 16}, at::kDouble).reshape({1, 4});
  const at::Tensor codes = at::tensor(std::vector<double>{0, 0, 100, -1}, at::kDouble).reshape({1, 4});
  const at::Tensor d = coder.decode_single(codes, anchors);
  // width = 16 * exp(log(1000/16)) = 1000 about centre 8; height = 16 * e^-1.
  EXPECT_NEAR(d[0][0].item<double>(), 8 - 500, 1e-9);
  EXPECT_NEAR(d[0][2].item<double>(), 8 + 500, 1e-9);
  EXPECT_NEAR(d[0][3].item<double>() - d[0][1].item<double>(), 16 * std::exp(-1.0), 1e-9);
}

}  // namespace
}  // namespace pasteflow::model::ops
