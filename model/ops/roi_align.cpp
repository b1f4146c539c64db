// RoIAlign forward/backward: the arithmetic of torchvision 0.14
// torchvision/csrc/ops/cpu/roi_align_kernel.cpp and roi_align_common.h
// (same expressions in the same order, so float results are bit-identical),
// organised for at::parallel_for: forward over rois, backward over channels.
// The autograd wrapper mirrors torchvision/csrc/ops/autograd/roi_align_kernel.cpp.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/ops.hpp"
#include "pasteflow/model/precision.hpp"
#include "require.hpp"

namespace pasteflow::model::ops {
namespace {

using detail::require;

// Interpolation weights and pixel offsets of one sampling point (the layout
// of torchvision's PreCalc). A point outside the feature map has weights 0 and
// pos1 = `outside_pos`: 0 for the forward (torchvision reads pixel 0 with
// weight 0), -1 for the backward (torchvision skips the point).
template <typename T>
struct PreCalc {
  int pos1;
  int pos2;
  int pos3;
  int pos4;
  T w1;
  T w2;
  T w3;
  T w4;
};

// Geometry of one roi (shared by every channel).
template <typename T>
struct RoiGeometry {
  int64_t batch = 0;
  T start_h = 0;
  T start_w = 0;
  T bin_size_h = 0;
  T bin_size_w = 0;
  int grid_h = 0;
  int grid_w = 0;
};

template <typename T>
RoiGeometry<T> roi_geometry(const T* offset_rois, T spatial_scale, int pooled_height, int pooled_width,
                            int sampling_ratio, bool aligned) {
  RoiGeometry<T> g;
  g.batch = static_cast<int64_t>(offset_rois[0]);
  // Do not use rounding; this implementation detail is critical
  const T offset = aligned ? (T)0.5 : (T)0.0;
  const T roi_start_w = offset_rois[1] * spatial_scale - offset;
  const T roi_start_h = offset_rois[2] * spatial_scale - offset;
  const T roi_end_w = offset_rois[3] * spatial_scale - offset;
  const T roi_end_h = offset_rois[4] * spatial_scale - offset;

  T roi_width = roi_end_w - roi_start_w;
  T roi_height = roi_end_h - roi_start_h;
  if (!aligned) {
    // Force malformed ROIs to be 1x1
    roi_width = std::max(roi_width, (T)1.);
    roi_height = std::max(roi_height, (T)1.);
  }
  g.start_h = roi_start_h;
  g.start_w = roi_start_w;
  g.bin_size_h = static_cast<T>(roi_height) / static_cast<T>(pooled_height);
  g.bin_size_w = static_cast<T>(roi_width) / static_cast<T>(pooled_width);
  g.grid_h = (sampling_ratio > 0) ? sampling_ratio : static_cast<int>(std::ceil(roi_height / pooled_height));
  g.grid_w = (sampling_ratio > 0) ? sampling_ratio : static_cast<int>(std::ceil(roi_width / pooled_width));
  return g;
}

// pre_calc_for_bilinear_interpolate (forward) and bilinear_interpolate_gradient
// (backward) compute the same weights; the order is ph, pw, iy, ix.
template <typename T>
void pre_calc_for_bilinear_interpolate(int height, int width, int pooled_height, int pooled_width,
                                       const RoiGeometry<T>& g, int outside_pos,
                                       std::vector<PreCalc<T>>& pre_calc) {
  const int64_t n = static_cast<int64_t>(std::max(g.grid_h, 0)) * std::max(g.grid_w, 0) * pooled_height *
                    pooled_width;
  pre_calc.resize(static_cast<size_t>(n));
  int64_t pre_calc_index = 0;
  for (int ph = 0; ph < pooled_height; ph++) {
    for (int pw = 0; pw < pooled_width; pw++) {
      for (int iy = 0; iy < g.grid_h; iy++) {
        const T yy = g.start_h + ph * g.bin_size_h +
                     static_cast<T>(iy + .5f) * g.bin_size_h / static_cast<T>(g.grid_h);  // e.g., 0.5, 1.5
        for (int ix = 0; ix < g.grid_w; ix++) {
          const T xx = g.start_w + pw * g.bin_size_w +
                       static_cast<T>(ix + .5f) * g.bin_size_w / static_cast<T>(g.grid_w);
          T x = xx;
          T y = yy;
          PreCalc<T>& pc = pre_calc[static_cast<size_t>(pre_calc_index++)];
          // Outside the feature map (written as !(inside) so NaN lands here).
          if (!(y >= -1.0 && y <= height && x >= -1.0 && x <= width)) {
            pc = PreCalc<T>{outside_pos, 0, 0, 0, 0, 0, 0, 0};
            continue;
          }
          if (y <= 0) y = 0;
          if (x <= 0) x = 0;

          int y_low = (int)y;
          int x_low = (int)x;
          int y_high;
          int x_high;
          if (y_low >= height - 1) {
            y_high = y_low = height - 1;
            y = (T)y_low;
          } else {
            y_high = y_low + 1;
          }
          if (x_low >= width - 1) {
            x_high = x_low = width - 1;
            x = (T)x_low;
          } else {
            x_high = x_low + 1;
          }

          T ly = y - y_low;
          T lx = x - x_low;
          T hy = 1. - ly, hx = 1. - lx;
          T w1 = hy * hx, w2 = hy * lx, w3 = ly * hx, w4 = ly * lx;

          pc.pos1 = y_low * width + x_low;
          pc.pos2 = y_low * width + x_high;
          pc.pos3 = y_high * width + x_low;
          pc.pos4 = y_high * width + x_high;
          pc.w1 = w1;
          pc.w2 = w2;
          pc.w3 = w3;
          pc.w4 = w4;
        }
      }
    }
  }
}

template <typename T>
void forward_impl(const at::Tensor& input, const at::Tensor& rois, double spatial_scale_d, int pooled_height,
                  int pooled_width, int sampling_ratio, bool aligned, at::Tensor& output) {
  const int64_t n_rois = rois.size(0);
  const int64_t channels = input.size(1);
  const int height = static_cast<int>(input.size(2));
  const int width = static_cast<int>(input.size(3));
  const T spatial_scale = static_cast<T>(spatial_scale_d);
  const T* in = input.data_ptr<T>();
  const T* roi = rois.data_ptr<T>();
  T* out = output.data_ptr<T>();
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t pooled = static_cast<int64_t>(pooled_height) * pooled_width;

  at::parallel_for(0, n_rois, 1, [&](int64_t begin, int64_t end) {
    std::vector<PreCalc<T>> pre_calc;  // reused by every roi of this chunk
    for (int64_t n = begin; n < end; n++) {
      const RoiGeometry<T> g =
          roi_geometry<T>(roi + n * 5, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
      // We do average (integral) pooling inside a bin
      // When the grid is empty, output zeros.
      const T count = std::max(g.grid_h * g.grid_w, 1);  // e.g. = 4
      pre_calc_for_bilinear_interpolate<T>(height, width, pooled_height, pooled_width, g, 0, pre_calc);
      const int64_t samples = static_cast<int64_t>(std::max(g.grid_h, 0)) * std::max(g.grid_w, 0);

      for (int64_t c = 0; c < channels; c++) {
        const T* offset_input = in + (g.batch * channels + c) * plane;
        T* offset_output = out + (n * channels + c) * pooled;
        const PreCalc<T>* pc = pre_calc.data();
        for (int64_t bin = 0; bin < pooled; bin++) {
          T output_val = 0.;
          for (int64_t s = 0; s < samples; s++, pc++) {
            output_val += pc->w1 * offset_input[pc->pos1] + pc->w2 * offset_input[pc->pos2] +
                          pc->w3 * offset_input[pc->pos3] + pc->w4 * offset_input[pc->pos4];
          }
          output_val /= count;  // Average pooling
          offset_output[bin] = output_val;
        }
      }
    }
  });
}

template <typename T>
void backward_impl(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale_d, int pooled_height,
                   int pooled_width, int sampling_ratio, bool aligned, at::Tensor& grad_input) {
  const int64_t n_rois = rois.size(0);
  const int64_t channels = grad_input.size(1);
  const int height = static_cast<int>(grad_input.size(2));
  const int width = static_cast<int>(grad_input.size(3));
  const T spatial_scale = static_cast<T>(spatial_scale_d);
  const T* go = grad.data_ptr<T>();
  const T* roi = rois.data_ptr<T>();
  T* gi = grad_input.data_ptr<T>();
  const int64_t plane = static_cast<int64_t>(height) * width;
  const int64_t n_stride = grad.stride(0);
  const int64_t c_stride = grad.stride(1);
  const int64_t h_stride = grad.stride(2);
  const int64_t w_stride = grad.stride(3);

  // Several rois may sample the same image pixels, different channels never
  // touch the same element: split the channels. For one gradient element the
  // contributions arrive in torchvision's order (n, ph, pw, iy, ix).
  at::parallel_for(0, channels, 1, [&](int64_t c_begin, int64_t c_end) {
    std::vector<PreCalc<T>> pre_calc;
    for (int64_t n = 0; n < n_rois; n++) {
      const RoiGeometry<T> g =
          roi_geometry<T>(roi + n * 5, spatial_scale, pooled_height, pooled_width, sampling_ratio, aligned);
      // We do average (integral) pooling inside a bin
      const T count = g.grid_h * g.grid_w;  // e.g. = 4
      pre_calc_for_bilinear_interpolate<T>(height, width, pooled_height, pooled_width, g, -1, pre_calc);
      const int64_t samples = static_cast<int64_t>(std::max(g.grid_h, 0)) * std::max(g.grid_w, 0);
      if (samples == 0) continue;

      for (int64_t c = c_begin; c < c_end; c++) {
        T* offset_grad_input = gi + (g.batch * channels + c) * plane;
        const T* offset_grad_output = go + n * n_stride + c * c_stride;
        const PreCalc<T>* pc = pre_calc.data();
        for (int ph = 0; ph < pooled_height; ph++) {
          for (int pw = 0; pw < pooled_width; pw++) {
            const T grad_output_this_bin = offset_grad_output[ph * h_stride + pw * w_stride];
            for (int64_t s = 0; s < samples; s++, pc++) {
              if (pc->pos1 < 0) continue;  // outside the feature map
              T g1 = grad_output_this_bin * pc->w1 / count;
              T g2 = grad_output_this_bin * pc->w2 / count;
              T g3 = grad_output_this_bin * pc->w3 / count;
              T g4 = grad_output_this_bin * pc->w4 / count;
              offset_grad_input[pc->pos1] += g1;
              offset_grad_input[pc->pos2] += g2;
              offset_grad_input[pc->pos3] += g3;
              offset_grad_input[pc->pos4] += g4;
            }
          }
        }
      }
    }
  });
}

void check_rois(const at::Tensor& rois, at::ScalarType dtype, int64_t batch_size, const char* what) {
  require(rois.defined() && rois.dim() == 2 && rois.size(1) == 5,
          std::string(what) + ": rois must have shape [K,5] (batch_index, x1, y1, x2, y2)");
  require(rois.scalar_type() == dtype, std::string(what) + ": rois must have the dtype of the input");
  const at::Tensor idx = rois.select(1, 0);
  if (rois.size(0) == 0) return;
  require(at::isfinite(idx).all().item<bool>(), std::string(what) + ": non-finite batch index in rois");
  const at::Tensor as_int = idx.to(at::kLong);  // truncation, like (int)offset_rois[0]
  require(as_int.min().item<int64_t>() >= 0 && as_int.max().item<int64_t>() < batch_size,
          std::string(what) + ": roi batch index out of range [0, " + std::to_string(batch_size) + ")");
}

void check_common(int64_t output_height, int64_t output_width, int64_t sampling_ratio) {
  require(output_height > 0 && output_width > 0 && output_height <= INT32_MAX && output_width <= INT32_MAX,
          "roi_align: output size must be positive");
  require(sampling_ratio <= INT32_MAX && sampling_ratio >= INT32_MIN, "roi_align: sampling_ratio out of range");
}

}  // namespace

at::Tensor roi_align_forward_cpu(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                                 int64_t output_height, int64_t output_width, int64_t sampling_ratio,
                                 bool aligned) {
  require(input.defined() && input.dim() == 4, "roi_align: input must have shape [N,C,H,W]");
  require(input.device().is_cpu() && rois.device().is_cpu(), "roi_align_forward_cpu: CPU tensors only");
  require(input.scalar_type() == at::kFloat || input.scalar_type() == at::kDouble,
          "roi_align: input must be float32 or float64");
  require(input.size(2) * input.size(3) <= INT32_MAX, "roi_align: feature map too large");
  check_common(output_height, output_width, sampling_ratio);
  check_rois(rois, input.scalar_type(), input.size(0), "roi_align");

  at::Tensor output = at::zeros({rois.size(0), input.size(1), output_height, output_width}, input.options());
  if (output.numel() == 0) return output;
  const at::Tensor input_ = input.contiguous();
  const at::Tensor rois_ = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(input.scalar_type(), "pasteflow_roi_align_forward", [&] {
    forward_impl<scalar_t>(input_, rois_, spatial_scale, static_cast<int>(output_height),
                           static_cast<int>(output_width), static_cast<int>(sampling_ratio), aligned, output);
  });
  return output;
}

at::Tensor roi_align_backward_cpu(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                                  int64_t output_height, int64_t output_width, int64_t batch_size,
                                  int64_t channels, int64_t height, int64_t width, int64_t sampling_ratio,
                                  bool aligned) {
  require(grad.defined() && grad.dim() == 4, "roi_align backward: grad must have shape [K,C,PH,PW]");
  require(grad.device().is_cpu() && rois.device().is_cpu(), "roi_align_backward_cpu: CPU tensors only");
  require(grad.scalar_type() == at::kFloat || grad.scalar_type() == at::kDouble,
          "roi_align backward: grad must be float32 or float64");
  require(batch_size >= 0 && channels >= 0 && height >= 0 && width >= 0 && height * width <= INT32_MAX,
          "roi_align backward: bad input shape");
  check_common(output_height, output_width, sampling_ratio);
  check_rois(rois, grad.scalar_type(), batch_size, "roi_align backward");
  require(grad.size(0) == rois.size(0) && grad.size(1) == channels && grad.size(2) == output_height &&
              grad.size(3) == output_width,
          "roi_align backward: grad shape does not match rois / output size");

  at::Tensor grad_input = at::zeros({batch_size, channels, height, width}, grad.options());
  // handle possibly empty gradients
  if (grad.numel() == 0 || grad_input.numel() == 0) return grad_input;
  const at::Tensor rois_ = rois.contiguous();
  AT_DISPATCH_FLOATING_TYPES(grad.scalar_type(), "pasteflow_roi_align_backward", [&] {
    backward_impl<scalar_t>(grad, rois_, spatial_scale, static_cast<int>(output_height),
                            static_cast<int>(output_width), static_cast<int>(sampling_ratio), aligned, grad_input);
  });
  return grad_input;
}

namespace {

using torch::autograd::AutogradContext;
using torch::autograd::Variable;
using torch::autograd::variable_list;

// Runs the CPU kernels for tensors on any device (see ops.hpp).
at::Tensor forward_any_device(const at::Tensor& input, const at::Tensor& rois, double spatial_scale,
                              int64_t output_height, int64_t output_width, int64_t sampling_ratio, bool aligned) {
  if (input.device().is_cpu() && rois.device().is_cpu()) {
    return roi_align_forward_cpu(input, rois, spatial_scale, output_height, output_width, sampling_ratio, aligned);
  }
  return roi_align_forward_cpu(input.cpu(), rois.cpu(), spatial_scale, output_height, output_width,
                               sampling_ratio, aligned)
      .to(input.device());
}

at::Tensor backward_any_device(const at::Tensor& grad, const at::Tensor& rois, double spatial_scale,
                               int64_t output_height, int64_t output_width, int64_t batch_size, int64_t channels,
                               int64_t height, int64_t width, int64_t sampling_ratio, bool aligned) {
  if (grad.device().is_cpu() && rois.device().is_cpu()) {
    return roi_align_backward_cpu(grad, rois, spatial_scale, output_height, output_width, batch_size, channels,
                                  height, width, sampling_ratio, aligned);
  }
  return roi_align_backward_cpu(grad.cpu(), rois.cpu(), spatial_scale, output_height, output_width, batch_size,
                                channels, height, width, sampling_ratio, aligned)
      .to(grad.device());
}

// The backward as a function of its own so that differentiating it again
// fails loudly instead of silently yielding zero (torchvision does the same).
class RoIAlignBackwardFunction : public torch::autograd::Function<RoIAlignBackwardFunction> {
 public:
  static Variable forward(AutogradContext* /*ctx*/, const Variable& grad, const Variable& rois,
                          double spatial_scale, int64_t output_height, int64_t output_width, int64_t batch_size,
                          int64_t channels, int64_t height, int64_t width, int64_t sampling_ratio, bool aligned) {
    at::AutoDispatchBelowADInplaceOrView guard;
    return backward_any_device(grad, rois, spatial_scale, output_height, output_width, batch_size, channels,
                               height, width, sampling_ratio, aligned);
  }

  static variable_list backward(AutogradContext* /*ctx*/, const variable_list& /*grad_output*/) {
    throw Error("unsupported", "double backwards on roi_align is not supported");
  }
};

class RoIAlignFunction : public torch::autograd::Function<RoIAlignFunction> {
 public:
  static Variable forward(AutogradContext* ctx, const Variable& input, const Variable& rois, double spatial_scale,
                          int64_t output_height, int64_t output_width, int64_t sampling_ratio, bool aligned) {
    ctx->saved_data["spatial_scale"] = spatial_scale;
    ctx->saved_data["output_height"] = output_height;
    ctx->saved_data["output_width"] = output_width;
    ctx->saved_data["sampling_ratio"] = sampling_ratio;
    ctx->saved_data["aligned"] = aligned;
    ctx->saved_data["input_shape"] = input.sizes();
    ctx->save_for_backward({rois});
    at::AutoDispatchBelowADInplaceOrView guard;
    return forward_any_device(input, rois, spatial_scale, output_height, output_width, sampling_ratio, aligned);
  }

  static variable_list backward(AutogradContext* ctx, const variable_list& grad_output) {
    const auto saved = ctx->get_saved_variables();
    const Variable& rois = saved[0];
    const auto input_shape = ctx->saved_data["input_shape"].toIntList();
    const Variable grad_in = RoIAlignBackwardFunction::apply(
        grad_output[0], rois, ctx->saved_data["spatial_scale"].toDouble(),
        ctx->saved_data["output_height"].toInt(), ctx->saved_data["output_width"].toInt(), input_shape[0],
        input_shape[1], input_shape[2], input_shape[3], ctx->saved_data["sampling_ratio"].toInt(),
        ctx->saved_data["aligned"].toBool());
    return {grad_in, Variable(), Variable(), Variable(), Variable(), Variable(), Variable()};
  }
};

}  // namespace

at::Tensor roi_align(const at::Tensor& input, const at::Tensor& rois, int64_t output_height, int64_t output_width,
                     double spatial_scale, int64_t sampling_ratio, bool aligned) {
  require(input.defined() && input.dim() == 4, "roi_align: input must have shape [N,C,H,W]");
  require(rois.defined() && rois.dim() == 2 && rois.size(1) == 5,
          "roi_align: rois must have shape [K,5] (batch_index, x1, y1, x2, y2)");
  require(input.device() == rois.device(), "roi_align: input and rois must be on the same device");
  if (is_reduced_precision(input.scalar_type()) || is_reduced_precision(rois.scalar_type())) {
    // torchvision's roi_align_autocast: the kernel in fp32, the result back in
    // the input's precision; autograd casts the gradient back through both.
    const at::ScalarType out = input.scalar_type();
    return RoIAlignFunction::apply(full_precision(input), rois.to(full_precision_dtype(input.scalar_type())),
                                   spatial_scale, output_height, output_width, sampling_ratio, aligned)
        .to(out);
  }
  return RoIAlignFunction::apply(input, rois, spatial_scale, output_height, output_width, sampling_ratio, aligned);
}

at::Tensor convert_boxes_to_roi_format(const std::vector<at::Tensor>& boxes) {
  require(!boxes.empty(), "convert_boxes_to_roi_format: empty list");
  std::vector<at::Tensor> temp;
  temp.reserve(boxes.size());
  for (size_t i = 0; i < boxes.size(); ++i) {
    require(boxes[i].dim() == 2 && boxes[i].size(1) == 4, "convert_boxes_to_roi_format: boxes must be [L,4]");
    temp.push_back(at::full_like(boxes[i].slice(1, 0, 1), static_cast<int64_t>(i)));
  }
  const at::Tensor concat_boxes = boxes.size() == 1 ? boxes[0] : at::cat(boxes, 0);
  const at::Tensor ids = temp.size() == 1 ? temp[0] : at::cat(temp, 0);
  return at::cat({ids, concat_boxes}, 1);
}

}  // namespace pasteflow::model::ops
