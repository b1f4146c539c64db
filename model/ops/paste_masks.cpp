// Mask pasting: torchvision 0.14 torchvision/models/detection/roi_heads.py
// expand_boxes / expand_masks / paste_mask_in_image / paste_masks_in_image,
// the same torch ops in the same order. Slices use at::slice, which treats
// negative bounds like Python slicing, and copy_ broadcasts like __setitem__.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <string>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/ops.hpp"
#include "pasteflow/model/precision.hpp"
#include "require.hpp"

namespace pasteflow::model::ops {
namespace {

using detail::require;

// paste_mask_in_image for an int64 box given by value, writing into `im_mask`
// (zeros of [im_h, im_w], dtype of the mask).
void paste_one(const at::Tensor& mask, const int64_t* box, int64_t im_h, int64_t im_w, at::Tensor& im_mask) {
  const int64_t TO_REMOVE = 1;
  int64_t w = box[2] - box[0] + TO_REMOVE;
  int64_t h = box[3] - box[1] + TO_REMOVE;
  w = std::max<int64_t>(w, 1);
  h = std::max<int64_t>(h, 1);

  // Set shape to [batchxCxHxW]
  const at::Tensor m4 = mask.expand({1, 1, -1, -1});
  // Resize mask: F.interpolate(size=(h, w), mode="bilinear", align_corners=False)
  const at::Tensor resized = at::upsample_bilinear2d(m4, {h, w}, /*align_corners=*/false, c10::nullopt, c10::nullopt)
                                 .select(0, 0)
                                 .select(0, 0);

  const int64_t x_0 = std::max<int64_t>(box[0], 0);
  const int64_t x_1 = std::min<int64_t>(box[2] + 1, im_w);
  const int64_t y_0 = std::max<int64_t>(box[1], 0);
  const int64_t y_1 = std::min<int64_t>(box[3] + 1, im_h);

  im_mask.slice(0, y_0, y_1)
      .slice(1, x_0, x_1)
      .copy_(resized.slice(0, y_0 - box[1], y_1 - box[1]).slice(1, x_0 - box[0], x_1 - box[0]));
}

}  // namespace

at::Tensor expand_boxes(const at::Tensor& boxes, double scale) {
  require(boxes.defined() && boxes.dim() == 2 && boxes.size(1) == 4, "expand_boxes: boxes must be [N,4]");
  at::Tensor w_half = (boxes.select(1, 2) - boxes.select(1, 0)) * 0.5;
  at::Tensor h_half = (boxes.select(1, 3) - boxes.select(1, 1)) * 0.5;
  const at::Tensor x_c = (boxes.select(1, 2) + boxes.select(1, 0)) * 0.5;
  const at::Tensor y_c = (boxes.select(1, 3) + boxes.select(1, 1)) * 0.5;

  w_half.mul_(scale);
  h_half.mul_(scale);

  at::Tensor boxes_exp = at::zeros_like(boxes);
  boxes_exp.select(1, 0).copy_(x_c - w_half);
  boxes_exp.select(1, 2).copy_(x_c + w_half);
  boxes_exp.select(1, 1).copy_(y_c - h_half);
  boxes_exp.select(1, 3).copy_(y_c + h_half);
  return boxes_exp;
}

std::pair<at::Tensor, double> expand_masks(const at::Tensor& masks, int64_t padding) {
  require(masks.defined() && masks.dim() >= 2, "expand_masks: masks must have at least 2 dims");
  const int64_t M = masks.size(-1);
  require(M > 0, "expand_masks: empty masks");
  const double scale = static_cast<double>(M + 2 * padding) / static_cast<double>(M);
  const at::Tensor padded = at::constant_pad_nd(masks, {padding, padding, padding, padding}, 0);
  return {padded, scale};
}

at::Tensor paste_mask_in_image(const at::Tensor& mask, const at::Tensor& box, int64_t im_h, int64_t im_w) {
  require(mask.defined() && mask.dim() == 2, "paste_mask_in_image: mask must be [M,M]");
  require(box.defined() && box.numel() == 4, "paste_mask_in_image: box must have 4 elements");
  const at::Tensor b = box.to(at::kCPU, at::kLong).contiguous();
  at::Tensor im_mask = at::zeros({im_h, im_w}, mask.options());
  paste_one(mask, b.data_ptr<int64_t>(), im_h, im_w, im_mask);
  return im_mask;
}

at::Tensor paste_masks_in_image(const at::Tensor& masks_in, const at::Tensor& boxes_in, int64_t im_h, int64_t im_w,
                                int64_t padding) {
  require(masks_in.defined() && masks_in.dim() == 4 && masks_in.size(1) == 1,
          "paste_masks_in_image: masks must be [N,1,M,M]");
  require(boxes_in.defined() && boxes_in.dim() == 2 && boxes_in.size(1) == 4 &&
              boxes_in.size(0) == masks_in.size(0),
          "paste_masks_in_image: boxes must be [N,4] with one box per mask");
  require(im_h >= 0 && im_w >= 0, "paste_masks_in_image: negative image size");
  if (is_reduced_precision(masks_in.scalar_type())) {
    // Pasting interpolates; bf16 / fp16 mask logits or probabilities are
    // pasted in fp32 and the result stays fp32.
    return paste_masks_in_image(masks_in.to(at::kFloat), boxes_in, im_h, im_w, padding);
  }
  const auto [masks, scale] = expand_masks(masks_in, padding);
  const at::Tensor boxes = expand_boxes(boxes_in, scale).to(at::kLong);
  const int64_t n = masks.size(0);
  if (n == 0) return masks.new_empty({0, 1, im_h, im_w});
  const at::Tensor boxes_cpu = boxes.cpu().contiguous();
  const int64_t* b = boxes_cpu.data_ptr<int64_t>();

  const bool track_grad = at::GradMode::is_enabled() && (masks.requires_grad() || boxes_in.requires_grad());
  if (track_grad || !masks.device().is_cpu()) {
    // torchvision's loop as is: stack of per-mask results.
    std::vector<at::Tensor> res;
    res.reserve(static_cast<size_t>(n));
    for (int64_t i = 0; i < n; ++i) {
      at::Tensor im_mask = at::zeros({im_h, im_w}, masks.options());
      paste_one(masks[i][0], b + 4 * i, im_h, im_w, im_mask);
      res.push_back(im_mask);
    }
    return at::stack(res, 0).unsqueeze(1);
  }
  // No autograd: each mask is written into its own plane of the result.
  at::Tensor ret = at::zeros({n, 1, im_h, im_w}, masks.options());
  at::parallel_for(0, n, 1, [&](int64_t begin, int64_t end) {
    at::NoGradGuard no_grad;
    for (int64_t i = begin; i < end; ++i) {
      at::Tensor plane = ret.select(0, i).select(0, 0);
      paste_one(masks.select(0, i).select(0, 0), b + 4 * i, im_h, im_w, plane);
    }
  });
  return ret;
}

}  // namespace pasteflow::model::ops
