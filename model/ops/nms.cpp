// NMS: torchvision 0.14 torchvision/csrc/ops/cpu/nms_kernel.cpp (same visiting
// order from the same stable ATen sort, same float IoU arithmetic) and the batched
// variants of torchvision/ops/boxes.py.
#include <ATen/ATen.h>

#include <algorithm>
#include <string>
#include <tuple>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/ops.hpp"
#include "pasteflow/model/precision.hpp"
#include "require.hpp"

namespace pasteflow::model::ops {
namespace {

using detail::require;

template <typename scalar_t>
at::Tensor nms_kernel_impl(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold) {
  if (dets.numel() == 0) return at::empty({0}, dets.options().dtype(at::kLong));

  const at::Tensor x1_t = dets.select(1, 0).contiguous();
  const at::Tensor y1_t = dets.select(1, 1).contiguous();
  const at::Tensor x2_t = dets.select(1, 2).contiguous();
  const at::Tensor y2_t = dets.select(1, 3).contiguous();
  const at::Tensor areas_t = ((x2_t - x1_t) * (y2_t - y1_t)).contiguous();
  // torchvision's CPU kernel sorts stably: equal scores keep index order.
  const at::Tensor order_t = std::get<1>(scores.sort(/*stable=*/true, /*dim=*/0, /*descending=*/true)).contiguous();

  const int64_t ndets = dets.size(0);
  std::vector<uint8_t> suppressed(static_cast<size_t>(ndets), 0);
  at::Tensor keep_t = at::zeros({ndets}, dets.options().dtype(at::kLong));
  int64_t* keep = keep_t.data_ptr<int64_t>();
  const int64_t* order = order_t.data_ptr<int64_t>();
  const scalar_t* x1 = x1_t.data_ptr<scalar_t>();
  const scalar_t* y1 = y1_t.data_ptr<scalar_t>();
  const scalar_t* x2 = x2_t.data_ptr<scalar_t>();
  const scalar_t* y2 = y2_t.data_ptr<scalar_t>();
  const scalar_t* areas = areas_t.data_ptr<scalar_t>();

  int64_t num_to_keep = 0;
  for (int64_t _i = 0; _i < ndets; _i++) {
    const int64_t i = order[_i];
    if (suppressed[static_cast<size_t>(i)] == 1) continue;
    keep[num_to_keep++] = i;
    const scalar_t ix1 = x1[i];
    const scalar_t iy1 = y1[i];
    const scalar_t ix2 = x2[i];
    const scalar_t iy2 = y2[i];
    const scalar_t iarea = areas[i];
    for (int64_t _j = _i + 1; _j < ndets; _j++) {
      const int64_t j = order[_j];
      if (suppressed[static_cast<size_t>(j)] == 1) continue;
      const scalar_t xx1 = std::max(ix1, x1[j]);
      const scalar_t yy1 = std::max(iy1, y1[j]);
      const scalar_t xx2 = std::min(ix2, x2[j]);
      const scalar_t yy2 = std::min(iy2, y2[j]);
      const scalar_t w = std::max(static_cast<scalar_t>(0), xx2 - xx1);
      const scalar_t h = std::max(static_cast<scalar_t>(0), yy2 - yy1);
      const scalar_t inter = w * h;
      const scalar_t ovr = inter / (iarea + areas[j] - inter);
      if (ovr > iou_threshold) suppressed[static_cast<size_t>(j)] = 1;
    }
  }
  return keep_t.narrow(/*dim=*/0, /*start=*/0, /*length=*/num_to_keep);
}

at::Tensor nms_cpu(const at::Tensor& dets, const at::Tensor& scores, double iou_threshold) {
  at::Tensor result;
  AT_DISPATCH_FLOATING_TYPES(dets.scalar_type(), "pasteflow_nms", [&] {
    result = nms_kernel_impl<scalar_t>(dets, scores, iou_threshold);
  });
  return result;
}

}  // namespace

at::Tensor nms(const at::Tensor& boxes, const at::Tensor& scores, double iou_threshold) {
  require(boxes.defined() && boxes.dim() == 2 && boxes.size(1) == 4, "nms: boxes must be a [N,4] tensor");
  require(scores.defined() && scores.dim() == 1, "nms: scores must be a 1-D tensor");
  if (is_reduced_precision(boxes.scalar_type()) || is_reduced_precision(scores.scalar_type())) {
    // torchvision's nms_autocast: both in fp32 (areas and IoUs of bf16
    // coordinates would round to 8 bits).
    return nms(boxes.to(at::kFloat), scores.to(at::kFloat), iou_threshold);
  }
  require(boxes.size(0) == scores.size(0), "nms: boxes and scores must have the same number of rows");
  require(boxes.scalar_type() == scores.scalar_type(), "nms: boxes and scores must have the same dtype");
  require(boxes.scalar_type() == at::kFloat || boxes.scalar_type() == at::kDouble,
          "nms: boxes must be float32 or float64");
  require(boxes.device() == scores.device(), "nms: boxes and scores must be on the same device");
  if (boxes.device().is_cpu()) return nms_cpu(boxes, scores, iou_threshold);
  return nms_cpu(boxes.cpu(), scores.cpu(), iou_threshold).to(boxes.device());
}

at::Tensor batched_nms(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                       double iou_threshold) {
  require(boxes.defined(), "batched_nms: boxes is undefined");
  if (is_reduced_precision(boxes.scalar_type()) || (scores.defined() && is_reduced_precision(scores.scalar_type()))) {
    // The coordinate trick offsets boxes by up to max coordinate * classes:
    // in bf16 that alone would merge neighbouring boxes.
    return batched_nms(boxes.to(at::kFloat), scores.to(at::kFloat), idxs, iou_threshold);
  }
  // Benchmarks that drove these thresholds: pytorch/vision issue 1311.
  const int64_t threshold = boxes.device().is_cpu() ? 4000 : 20000;
  if (boxes.numel() > threshold) return batched_nms_vanilla(boxes, scores, idxs, iou_threshold);
  return batched_nms_coordinate_trick(boxes, scores, idxs, iou_threshold);
}

at::Tensor batched_nms_coordinate_trick(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                                        double iou_threshold) {
  require(boxes.defined() && scores.defined() && idxs.defined(), "batched_nms: undefined tensor");
  // strategy: in order to perform NMS independently per class, we add an
  // offset to all the boxes. The offset is dependent only on the class idx,
  // and is large enough so that boxes from different classes do not overlap
  if (boxes.numel() == 0) return at::empty({0}, boxes.options().dtype(at::kLong));
  require(idxs.dim() == 1 && idxs.size(0) == boxes.size(0), "batched_nms: idxs must be [N]");
  const at::Tensor max_coordinate = boxes.max();
  const at::Tensor offsets =
      idxs.to(boxes.options()) * (max_coordinate + at::scalar_tensor(1, at::kLong).to(boxes.options()));
  const at::Tensor boxes_for_nms = boxes + offsets.unsqueeze(1);
  return nms(boxes_for_nms, scores, iou_threshold);
}

at::Tensor batched_nms_vanilla(const at::Tensor& boxes, const at::Tensor& scores, const at::Tensor& idxs,
                               double iou_threshold) {
  require(boxes.defined() && scores.defined() && idxs.defined(), "batched_nms: undefined tensor");
  require(idxs.dim() == 1 && idxs.size(0) == scores.size(0), "batched_nms: idxs must be [N]");
  // Based on Detectron2 implementation, just manually call nms() on each class independently
  at::Tensor keep_mask = at::zeros_like(scores, scores.options().dtype(at::kBool));
  const at::Tensor classes = std::get<0>(at::_unique2(idxs, /*sorted=*/true, false, false));
  const at::Tensor true_value = at::scalar_tensor(true, keep_mask.options());
  for (int64_t k = 0; k < classes.size(0); ++k) {
    const at::Tensor curr_indices = at::where(idxs == classes[k])[0];
    const at::Tensor curr_keep_indices =
        nms(boxes.index_select(0, curr_indices), scores.index_select(0, curr_indices), iou_threshold);
    keep_mask.index_put_({curr_indices.index_select(0, curr_keep_indices)}, true_value);
  }
  const at::Tensor keep_indices = at::where(keep_mask)[0];
  return keep_indices.index_select(
      0, std::get<1>(scores.index_select(0, keep_indices).sort(/*dim=*/-1, /*descending=*/true)));
}

}  // namespace pasteflow::model::ops
