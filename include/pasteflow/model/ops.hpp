// Detection operators of Mask R-CNN with torchvision 0.14 semantics:
// RoIAlign (forward + backward, autograd), NMS / batched NMS, box utilities,
// the box coder and mask pasting. Every function follows the torchvision code
// it names, operation by operation (same torch ops in the same order, or a
// CPU kernel with the same float arithmetic), so results match torchvision
// bit for bit on CPU up to summation order where stated.
//
// Devices: there are no CUDA kernels here. The CPU kernels (roi_align, nms)
// accept tensors on any device: inputs on another device are copied to the
// CPU, the result is computed there and copied back to the input's device
// (autograd included). Everything else is built from torch ops and runs on
// the tensors' own device.
//
// Dtypes: roi_align and nms take float32 or float64 (input and rois of the
// same dtype, boxes and scores of the same dtype), like torchvision's CPU
// kernels minus float16.
//
// Errors: bad shapes or dtypes throw pasteflow::Error with reason
// "bad_tensor_argument"; ATen's own checks may throw c10::Error.
#pragma once

#include <array>
#include <cmath>
#include <cstdint>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>

namespace pasteflow::model::ops {

// ------------------------------------------------------------------ RoIAlign

/// torchvision.ops.roi_align(input, rois, (output_height, output_width),
/// spatial_scale, sampling_ratio, aligned).
/// input [N,C,H,W]; rois [K,5] rows (batch_index, x1, y1, x2, y2) in image
/// coordinates, same dtype as input. Returns [K,C,output_height,output_width].
/// Differentiable with respect to `input` (a custom autograd Function whose
/// backward is the torchvision CPU backward kernel); rois get no gradient,
/// and double backward is not supported (as in torchvision).
/// sampling_ratio <= 0 means adaptive: ceil(roi_size / output_size) samples.
at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, int64_t output_height,
                     int64_t output_width, double spatial_scale = 1.0, int64_t sampling_ratio = -1,
                     bool aligned = false);

/// The raw forward kernel (no autograd), CPU contiguous-or-not tensors.
/// Parallel over rois (at::parallel_for); bit-identical to torchvision.
at::Tensor roi_align_forward_cpu(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                                 int64_t output_height, int64_t output_width, int64_t sampling_ratio,
                                 bool aligned);

/// The raw backward kernel: gradient of roi_align w.r.t. input, shape
/// [batch_size, channels, height, width]; grad [K,C,output_height,output_width]
/// may be strided. Parallel over channels (rois of one image write to the
/// same pixels, channels never do); per gradient element the contributions are
/// summed in torchvision's serial order, so the result is bit-identical.
at::Tensor roi_align_backward_cpu(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                  int64_t output_height, int64_t output_width, int64_t batch_size,
                                  int64_t channels, int64_t height, int64_t width, int64_t sampling_ratio,
                                  bool aligned);

/// torchvision.ops._utils.convert_boxes_to_roi_format: per-image [L_i,4]
/// boxes -> [sum L_i, 5] rois with the image index in column 0.
at::Tensor convert_boxes_to_roi_format(const std::vector<at::Tensor>& boxes);

// ------------------------------------------------------------------ NMS

/// torchvision.ops.nms: indices (int64) of the kept boxes, in decreasing score
/// order. Boxes are visited in the order of the stable descending sort of
/// scores (torchvision's CPU kernel: scores.sort(stable=true, 0, true), so
/// among equal scores the lower index comes first); a box is suppressed when
/// its IoU with a kept box is > iou_threshold.
at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold);

/// torchvision.ops.batched_nms: NMS per category `idxs`. Like torchvision,
/// uses the vanilla per-class loop when boxes.numel() > 4000 (CPU tensors;
/// 20000 on other devices) and the coordinate-offset trick otherwise.
at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold);
/// torchvision.ops.boxes._batched_nms_coordinate_trick.
at::Tensor batched_nms_coordinate_trick(const at::Tensor& boxes, const at::Tensor& scores,
                                        const at::Tensor& idxs, double iou_threshold);
/// torchvision.ops.boxes._batched_nms_vanilla.
at::Tensor batched_nms_vanilla(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                               double iou_threshold);

// ------------------------------------------------------------------ boxes

/// torchvision.ops.box_area (integer boxes are upcast like _upcast).
at::Tensor box_area(const at::Tensor& boxes);
/// torchvision.ops.box_iou: [N,M] IoU matrix.
at::Tensor box_iou(const at::Tensor& boxes1, const at::Tensor& boxes2);
/// torchvision.ops.clip_boxes_to_image(boxes, (height, width)); boxes [...,4].
at::Tensor clip_boxes_to_image(const at::Tensor& boxes, int64_t height, int64_t width);
/// torchvision.ops.remove_small_boxes: indices of boxes with both sides >= min_size.
at::Tensor remove_small_boxes(const at::Tensor& boxes, double min_size);

/// torchvision.models.detection._utils.BoxCoder.
class BoxCoder {
 public:
  explicit BoxCoder(std::array<double, 4> weights, double bbox_xform_clip = std::log(1000.0 / 16.0))
      : weights_(weights), bbox_xform_clip_(bbox_xform_clip) {}

  const std::array<double, 4>& weights() const noexcept { return weights_; }
  double bbox_xform_clip() const noexcept { return bbox_xform_clip_; }

  /// encode: per-image lists, concatenated, encoded, split back.
  std::vector<at::Tensor> encode(const std::vector<at::Tensor>& reference_boxes,
                                 const std::vector<at::Tensor>& proposals) const;
  /// encode_single: targets [N,4] of `reference_boxes` w.r.t. `proposals`.
  at::Tensor encode_single(const at::Tensor& reference_boxes, const at::Tensor& proposals) const;
  /// decode: rel_codes [sum N_i, 4*K] against concatenated boxes -> [sum N_i, K, 4]
  /// (when there is at least one box; otherwise decode_single's result as is).
  at::Tensor decode(const at::Tensor& rel_codes, const std::vector<at::Tensor>& boxes) const;
  /// decode_single: rel_codes [N, 4*K], boxes [N,4] -> [N, 4*K].
  at::Tensor decode_single(const at::Tensor& rel_codes, const at::Tensor& boxes) const;

 private:
  std::array<double, 4> weights_;
  double bbox_xform_clip_;
};

/// torchvision.models.detection._utils.encode_boxes (weights [4] tensor).
at::Tensor encode_boxes(const at::Tensor& reference_boxes, const at::Tensor& proposals,
                        const at::Tensor& weights);

// ------------------------------------------------------------------ masks

/// roi_heads.expand_boxes: boxes scaled by `scale` about their centres.
at::Tensor expand_boxes(const at::Tensor& boxes, double scale);
/// roi_heads.expand_masks: zero-pads the last two dims by `padding`;
/// returns (padded, float(M + 2*padding) / M).
std::pair<at::Tensor, double> expand_masks(const at::Tensor& masks, int64_t padding);
/// roi_heads.paste_mask_in_image: mask [M,M], box int64 [4] -> [im_h, im_w].
at::Tensor paste_mask_in_image(const at::Tensor& mask, const at::Tensor& box, int64_t im_h, int64_t im_w);
/// roi_heads.paste_masks_in_image: masks [N,1,M,M], boxes [N,4] -> [N,1,im_h,im_w].
/// Masks are pasted in parallel (at::parallel_for); each result is the same as
/// torchvision's per-mask loop.
at::Tensor paste_masks_in_image(const at::Tensor& masks, const at::Tensor& boxes, int64_t im_h,
                                int64_t im_w, int64_t padding = 1);

}  // namespace pasteflow::model::ops
