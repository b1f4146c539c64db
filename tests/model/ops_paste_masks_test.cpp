// Unit tests of mask pasting: expand_masks / expand_boxes by hand, placement
// and bounds of pasted masks, the parallel path equal to the serial
// (autograd) path. Parity with torchvision itself: ops_parity_test.cpp.
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/ops.hpp"

namespace pasteflow::model::ops {
namespace {

TEST(OpsPasteMasks, ExpandMasksAndBoxes) {
  const at::Tensor masks = at::ones({2, 1, 28, 28}, at::kFloat);
  const auto [padded, scale] = expand_masks(masks, 1);
  EXPECT_EQ(padded.sizes(), (at::IntArrayRef{2, 1, 30, 30}));
  EXPECT_DOUBLE_EQ(scale, 30.0 / 28.0);
  EXPECT_EQ(padded.sum().item<float>(), 2.f * 28 * 28);
  EXPECT_EQ(padded[0][0][0].sum().item<float>(), 0.f);
  EXPECT_EQ(padded[0][0][1][1].item<float>(), 1.f);

  const at::Tensor boxes = at::tensor(std::vector<float>{10, 20, 30, 60}, at::kFloat).reshape({1, 4});
  const at::Tensor e = expand_boxes(boxes, 1.5);
  // centre (20, 40), half sizes (10, 20) * 1.5
  EXPECT_TRUE(at::equal(e, at::tensor(std::vector<float>{5, 10, 35, 70}, at::kFloat).reshape({1, 4})));
}

TEST(OpsPasteMasks, PlacementAndBounds) {
  // A mask of ones pasted into a box: non-zero only inside the expanded,
  // truncated box; value 1 well inside; zero elsewhere.
  const at::Tensor masks = at::ones({1, 1, 28, 28}, at::kFloat);
  const at::Tensor boxes = at::tensor(std::vector<float>{20, 10, 48, 38}, at::kFloat).reshape({1, 4});
  const at::Tensor out = paste_masks_in_image(masks, boxes, 50, 70);
  ASSERT_EQ(out.sizes(), (at::IntArrayRef{1, 1, 50, 70}));
  // expanded: centre (34, 24), half 14 * 30/28 = 15 -> [19, 9, 49, 39]
  const at::Tensor m = out[0][0];
  EXPECT_EQ(m.slice(0, 0, 9).abs().sum().item<float>(), 0.f);
  EXPECT_EQ(m.slice(0, 40).abs().sum().item<float>(), 0.f);
  EXPECT_EQ(m.slice(1, 0, 19).abs().sum().item<float>(), 0.f);
  EXPECT_EQ(m.slice(1, 50).abs().sum().item<float>(), 0.f);
  EXPECT_FLOAT_EQ(m[24][34].item<float>(), 1.f);
  // 31x31 pixels resampled from the 30x30 padded mask: the corner pixel maps
  // onto the zero padding, its diagonal neighbour is blurred.
  EXPECT_EQ(m[9][19].item<float>(), 0.f);
  EXPECT_GT(m[10][20].item<float>(), 0.5f);
  EXPECT_LT(m[10][20].item<float>(), 1.f);
  EXPECT_LE(m.max().item<float>(), 1.f + 1e-6f);
  EXPECT_GE(m.min().item<float>(), 0.f);
}

TEST(OpsPasteMasks, ParallelEqualsSerialPath) {
  at::manual_seed(4);
  const int64_t n = 40;
  const at::Tensor masks = at::rand({n, 1, 28, 28}, at::kFloat);
  at::Tensor boxes = at::rand({n, 4}, at::kFloat) * 100;
  boxes.select(1, 2).copy_(boxes.select(1, 0) + at::rand({n}) * 60);
  boxes.select(1, 3).copy_(boxes.select(1, 1) + at::rand({n}) * 60);
  boxes = clip_boxes_to_image(boxes, 120, 140);
  const int before = at::get_num_threads();
  at::set_num_threads(2);
  const at::Tensor fast = paste_masks_in_image(masks, boxes, 120, 140);
  at::set_num_threads(before);
  const at::Tensor serial = paste_masks_in_image(masks.clone().requires_grad_(true), boxes, 120, 140);
  EXPECT_TRUE(serial.requires_grad());
  EXPECT_TRUE(at::equal(fast, serial.detach()));
  // Single-mask function agrees.
  const auto [padded, scale] = expand_masks(masks, 1);
  const at::Tensor ib = expand_boxes(boxes, scale).to(at::kLong);
  EXPECT_TRUE(at::equal(paste_mask_in_image(padded[7][0], ib[7], 120, 140), fast[7][0]));
}

TEST(OpsPasteMasks, EmptyAndErrors) {
  const at::Tensor out = paste_masks_in_image(at::zeros({0, 1, 28, 28}), at::zeros({0, 4}), 30, 40);
  EXPECT_EQ(out.sizes(), (at::IntArrayRef{0, 1, 30, 40}));
  EXPECT_THROW(paste_masks_in_image(at::zeros({2, 28, 28}), at::zeros({2, 4}), 30, 40), pasteflow::Error);
  EXPECT_THROW(paste_masks_in_image(at::zeros({2, 1, 28, 28}), at::zeros({3, 4}), 30, 40), pasteflow::Error);
  // Boxes outside the image behave like torchvision's Python slicing
  // (checked with torchvision 0.14.1): far away pastes nothing, just below or
  // right of the image makes the negative slice bound wrap and the copy fail.
  const auto box = [](float a, float b, float c, float d) {
    return at::tensor(std::vector<float>{a, b, c, d}, at::kFloat).reshape({1, 4});
  };
  const at::Tensor ones = at::ones({1, 1, 28, 28});
  EXPECT_EQ(paste_masks_in_image(ones, box(100, 100, 120, 130), 30, 40).sum().item<float>(), 0.f);
  EXPECT_ANY_THROW(paste_masks_in_image(ones, box(10, 35, 30, 60), 30, 40));
  EXPECT_ANY_THROW(paste_masks_in_image(ones, box(50, 5, 60, 20), 30, 40));
}

}  // namespace
}  // namespace pasteflow::model::ops
