// Box utilities and the box coder: torchvision 0.14 torchvision/ops/boxes.py
// and torchvision/models/detection/_utils.py, written with the same torch ops
// in the same order (so float32 results are bit-identical on CPU).
#include <ATen/ATen.h>

#include <string>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/ops.hpp"
#include "pasteflow/model/precision.hpp"
#include "require.hpp"

namespace pasteflow::model::ops {
namespace {

constexpr int64_t kEnd = INT64_MAX;

using detail::require;

void require_boxes(const at::Tensor& boxes, const char* what) {
  require(boxes.defined() && boxes.dim() == 2 && boxes.size(1) == 4,
          std::string(what) + " must be a [N,4] tensor");
}

// torchvision.ops._utils._upcast
at::Tensor upcast(const at::Tensor& t) {
  if (t.is_floating_point()) {
    return (t.scalar_type() == at::kFloat || t.scalar_type() == at::kDouble) ? t : t.to(at::kFloat);
  }
  return (t.scalar_type() == at::kInt || t.scalar_type() == at::kLong) ? t : t.to(at::kInt);
}

}  // namespace

at::Tensor box_area(const at::Tensor& boxes_in) {
  require_boxes(boxes_in, "box_area: boxes");
  const at::Tensor boxes = upcast(boxes_in);
  return (boxes.select(1, 2) - boxes.select(1, 0)) * (boxes.select(1, 3) - boxes.select(1, 1));
}

at::Tensor box_iou(const at::Tensor& boxes1, const at::Tensor& boxes2) {
  require_boxes(boxes1, "box_iou: boxes1");
  require_boxes(boxes2, "box_iou: boxes2");
  // _box_inter_union
  const at::Tensor area1 = box_area(boxes1);
  const at::Tensor area2 = box_area(boxes2);
  const at::Tensor b1 = boxes1.unsqueeze(1);  // boxes1[:, None, :]
  const at::Tensor lt = at::max(b1.slice(2, 0, 2), boxes2.slice(1, 0, 2));
  const at::Tensor rb = at::min(b1.slice(2, 2, kEnd), boxes2.slice(1, 2, kEnd));
  const at::Tensor wh = upcast(rb - lt).clamp_min(0);
  const at::Tensor inter = wh.select(2, 0) * wh.select(2, 1);
  const at::Tensor uni = area1.unsqueeze(1) + area2 - inter;
  return inter / uni;
}

at::Tensor clip_boxes_to_image(const at::Tensor& boxes, int64_t height, int64_t width) {
  require(boxes.defined() && boxes.dim() >= 1 && boxes.size(-1) == 4,
          "clip_boxes_to_image: boxes must be a [...,4] tensor");
  const int64_t dim = boxes.dim();
  at::Tensor boxes_x = boxes.slice(-1, 0, kEnd, 2);
  at::Tensor boxes_y = boxes.slice(-1, 1, kEnd, 2);
  boxes_x = boxes_x.clamp(at::Scalar(int64_t{0}), at::Scalar(width));
  boxes_y = boxes_y.clamp(at::Scalar(int64_t{0}), at::Scalar(height));
  const at::Tensor clipped = at::stack({boxes_x, boxes_y}, dim);
  return clipped.reshape(boxes.sizes());
}

at::Tensor remove_small_boxes(const at::Tensor& boxes, double min_size) {
  require_boxes(boxes, "remove_small_boxes: boxes");
  const at::Tensor ws = boxes.select(1, 2) - boxes.select(1, 0);
  const at::Tensor hs = boxes.select(1, 3) - boxes.select(1, 1);
  const at::Tensor keep = at::logical_and(ws >= min_size, hs >= min_size);
  return at::where(keep)[0];
}

at::Tensor encode_boxes(const at::Tensor& reference_boxes, const at::Tensor& proposals, const at::Tensor& weights) {
  require_boxes(reference_boxes, "encode_boxes: reference_boxes");
  require_boxes(proposals, "encode_boxes: proposals");
  require(weights.defined() && weights.numel() == 4, "encode_boxes: weights must have 4 elements");
  const at::Tensor wx = weights[0];
  const at::Tensor wy = weights[1];
  const at::Tensor ww = weights[2];
  const at::Tensor wh = weights[3];

  const at::Tensor proposals_x1 = proposals.select(1, 0).unsqueeze(1);
  const at::Tensor proposals_y1 = proposals.select(1, 1).unsqueeze(1);
  const at::Tensor proposals_x2 = proposals.select(1, 2).unsqueeze(1);
  const at::Tensor proposals_y2 = proposals.select(1, 3).unsqueeze(1);

  const at::Tensor reference_boxes_x1 = reference_boxes.select(1, 0).unsqueeze(1);
  const at::Tensor reference_boxes_y1 = reference_boxes.select(1, 1).unsqueeze(1);
  const at::Tensor reference_boxes_x2 = reference_boxes.select(1, 2).unsqueeze(1);
  const at::Tensor reference_boxes_y2 = reference_boxes.select(1, 3).unsqueeze(1);

  const at::Tensor ex_widths = proposals_x2 - proposals_x1;
  const at::Tensor ex_heights = proposals_y2 - proposals_y1;
  const at::Tensor ex_ctr_x = proposals_x1 + 0.5 * ex_widths;
  const at::Tensor ex_ctr_y = proposals_y1 + 0.5 * ex_heights;

  const at::Tensor gt_widths = reference_boxes_x2 - reference_boxes_x1;
  const at::Tensor gt_heights = reference_boxes_y2 - reference_boxes_y1;
  const at::Tensor gt_ctr_x = reference_boxes_x1 + 0.5 * gt_widths;
  const at::Tensor gt_ctr_y = reference_boxes_y1 + 0.5 * gt_heights;

  const at::Tensor targets_dx = wx * (gt_ctr_x - ex_ctr_x) / ex_widths;
  const at::Tensor targets_dy = wy * (gt_ctr_y - ex_ctr_y) / ex_heights;
  const at::Tensor targets_dw = ww * at::log(gt_widths / ex_widths);
  const at::Tensor targets_dh = wh * at::log(gt_heights / ex_heights);

  return at::cat({targets_dx, targets_dy, targets_dw, targets_dh}, 1);
}

std::vector<at::Tensor> BoxCoder::encode(const std::vector<at::Tensor>& reference_boxes,
                                         const std::vector<at::Tensor>& proposals) const {
  require(!reference_boxes.empty() && reference_boxes.size() == proposals.size(),
          "BoxCoder::encode: reference_boxes and proposals must be non-empty lists of the same length");
  std::vector<int64_t> boxes_per_image;
  boxes_per_image.reserve(reference_boxes.size());
  for (const at::Tensor& b : reference_boxes) boxes_per_image.push_back(b.size(0));
  const at::Tensor ref = at::cat(reference_boxes, 0);
  const at::Tensor prop = at::cat(proposals, 0);
  const at::Tensor targets = encode_single(ref, prop);
  return targets.split_with_sizes(boxes_per_image, 0);
}

at::Tensor BoxCoder::encode_single(const at::Tensor& reference_boxes, const at::Tensor& proposals) const {
  require_boxes(reference_boxes, "BoxCoder::encode_single: reference_boxes");
  // torch.as_tensor(self.weights, dtype=dtype, device=device)
  const at::Tensor weights =
      at::tensor(std::vector<double>(weights_.begin(), weights_.end()), at::dtype(at::kDouble))
          .to(reference_boxes.options());
  return encode_boxes(reference_boxes, proposals, weights);
}

at::Tensor BoxCoder::decode(const at::Tensor& rel_codes, const std::vector<at::Tensor>& boxes) const {
  require(rel_codes.defined(), "BoxCoder::decode: rel_codes is undefined");
  require(!boxes.empty(), "BoxCoder::decode: boxes must be a non-empty list");
  int64_t box_sum = 0;
  for (const at::Tensor& b : boxes) box_sum += b.size(0);
  const at::Tensor concat_boxes = at::cat(boxes, 0);
  at::Tensor codes = rel_codes;
  if (box_sum > 0) codes = codes.reshape({box_sum, -1});
  at::Tensor pred_boxes = decode_single(codes, concat_boxes);
  if (box_sum > 0) pred_boxes = pred_boxes.reshape({box_sum, -1, 4});
  return pred_boxes;
}

at::Tensor BoxCoder::decode_single(const at::Tensor& rel_codes, const at::Tensor& boxes_in) const {
  require_boxes(boxes_in, "BoxCoder::decode_single: boxes");
  require(rel_codes.defined() && rel_codes.dim() == 2 && rel_codes.size(1) % 4 == 0,
          "BoxCoder::decode_single: rel_codes must be a [N,4*K] tensor");
  if (is_reduced_precision(rel_codes.scalar_type())) {
    // Decoding exponentiates the deltas and adds them to pixel coordinates:
    // always in fp32 (bf16 coordinates are off by up to 4 px at 1000 px).
    return decode_single(rel_codes.to(at::kFloat), boxes_in);
  }
  const at::Tensor boxes = boxes_in.to(rel_codes.scalar_type());

  const at::Tensor widths = boxes.select(1, 2) - boxes.select(1, 0);
  const at::Tensor heights = boxes.select(1, 3) - boxes.select(1, 1);
  const at::Tensor ctr_x = boxes.select(1, 0) + 0.5 * widths;
  const at::Tensor ctr_y = boxes.select(1, 1) + 0.5 * heights;

  const double wx = weights_[0];
  const double wy = weights_[1];
  const double ww = weights_[2];
  const double wh = weights_[3];
  const at::Tensor dx = rel_codes.slice(1, 0, kEnd, 4) / wx;
  const at::Tensor dy = rel_codes.slice(1, 1, kEnd, 4) / wy;
  at::Tensor dw = rel_codes.slice(1, 2, kEnd, 4) / ww;
  at::Tensor dh = rel_codes.slice(1, 3, kEnd, 4) / wh;

  // Prevent sending too large values into torch.exp()
  dw = at::clamp(dw, c10::nullopt, at::Scalar(bbox_xform_clip_));
  dh = at::clamp(dh, c10::nullopt, at::Scalar(bbox_xform_clip_));

  const at::Tensor pred_ctr_x = dx * widths.unsqueeze(1) + ctr_x.unsqueeze(1);
  const at::Tensor pred_ctr_y = dy * heights.unsqueeze(1) + ctr_y.unsqueeze(1);
  const at::Tensor pred_w = at::exp(dw) * widths.unsqueeze(1);
  const at::Tensor pred_h = at::exp(dh) * heights.unsqueeze(1);

  // Distance from center to box's corner.
  const at::Tensor c_to_c_h = at::scalar_tensor(0.5, pred_ctr_y.options()) * pred_h;
  const at::Tensor c_to_c_w = at::scalar_tensor(0.5, pred_ctr_x.options()) * pred_w;

  const at::Tensor pred_boxes1 = pred_ctr_x - c_to_c_w;
  const at::Tensor pred_boxes2 = pred_ctr_y - c_to_c_h;
  const at::Tensor pred_boxes3 = pred_ctr_x + c_to_c_w;
  const at::Tensor pred_boxes4 = pred_ctr_y + c_to_c_h;
  return at::stack({pred_boxes1, pred_boxes2, pred_boxes3, pred_boxes4}, 2).flatten(1);
}

}  // namespace pasteflow::model::ops
