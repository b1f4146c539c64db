// torchvision 0.14 GeneralizedRCNNTransform, op for op (see the header).
#include "pasteflow/stages/rcnn_transform.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <cstdint>
#include <string>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include <ATen/ATen.h>
#ifdef PASTEFLOW_HAVE_ATEN_STUB
#include <ATen/native/UpSample.h>
#endif
#include <torch/nn/functional/upsampling.h>

#include "pasteflow/core/error.hpp"

namespace pasteflow::stages::rcnn {

namespace F = torch::nn::functional;

at::Tensor image_to_tensor(const cv::Mat& image) {
  if (image.empty() || image.dims != 2) {
    throw InputError("bad_image", "image_to_tensor: empty image");
  }
  const int channels = image.channels();
  const int depth = image.depth();
  if ((channels != 1 && channels != 3) || (depth != CV_8U && depth != CV_16U)) {
    throw InputError("bad_image", "image_to_tensor: expected 1 or 3 channels of 8 or 16 bits, got " +
                                      std::to_string(channels) + " channels of depth " +
                                      std::to_string(depth));
  }
  const int64_t h = image.rows;
  const int64_t w = image.cols;
  at::Tensor hwc;
  double max_value = 255.0;
  if (depth == CV_8U) {
    // A view of the Mat's bytes (any row step); the conversion below copies.
    hwc = at::from_blob(image.data, {h, w, channels},
                        {static_cast<int64_t>(image.step[0]), channels, 1},
                        at::TensorOptions().dtype(at::kByte));
  } else {
    // LibTorch 1.13 has no uint16: widen to int32 first (exact).
    cv::Mat wide;
    image.convertTo(wide, CV_MAKETYPE(CV_32S, channels));
    hwc = at::from_blob(wide.data, {h, w, channels}, at::TensorOptions().dtype(at::kInt)).clone();
    max_value = 65535.0;
  }
  // convert_image_dtype(uint8 -> float32): image.to(float32) / max_value.
  at::Tensor chw = hwc.permute({2, 0, 1}).to(at::kFloat).contiguous().div(max_value);
  if (channels == 1) chw = chw.expand({3, h, w}).contiguous();
  return chw;
}

at::Tensor normalize(const at::Tensor& image, const std::vector<double>& mean,
                     const std::vector<double>& std) {
  if (!image.defined() || !image.is_floating_point() || image.dim() != 3) {
    throw InputError("bad_image", "normalize: expected a floating point [C, H, W] tensor");
  }
  const auto channels = static_cast<size_t>(image.size(0));
  if (mean.size() != channels || std.size() != channels) {
    throw ConfigError("bad_normalization", "normalize: mean and std need " + std::to_string(channels) +
                                               " values (one per channel)");
  }
  for (double s : std) {
    if (!(s != 0.0) || !std::isfinite(s)) {
      throw ConfigError("bad_normalization", "normalize: std values must be finite and nonzero");
    }
  }
  // torch.as_tensor(list, dtype=image.dtype, device=image.device)
  const auto opts = image.options();
  const at::Tensor m = at::tensor(mean, at::TensorOptions().dtype(at::kDouble)).to(opts);
  const at::Tensor s = at::tensor(std, at::TensorOptions().dtype(at::kDouble)).to(opts);
  return (image - m.view({-1, 1, 1})) / s.view({-1, 1, 1});
}

namespace {

/// Each channel's normalised results for the values 0..255, by the
/// reference functions (image_to_tensor, normalize on a ramp); computed once
/// per thread and normalisation, not per image.
struct Lut {
  std::vector<double> mean, std;
  at::Tensor values;  // [3, 1, 256]
  bool identity_exact = false;  // every value finite and none -0 (identity_resize_is_exact)
};

const Lut& lut_for(const std::vector<double>& mean, const std::vector<double>& std) {
  thread_local Lut table;
  if (!table.values.defined() || table.mean != mean || table.std != std) {
    cv::Mat ramp(1, 256, CV_8UC3);
    for (int v = 0; v < 256; ++v) {
      ramp.at<cv::Vec3b>(0, v) = cv::Vec3b(static_cast<uint8_t>(v), static_cast<uint8_t>(v), static_cast<uint8_t>(v));
    }
    at::Tensor values = normalize(image_to_tensor(ramp), mean, std).contiguous();
    const float* p = values.data_ptr<float>();
    bool exact = true;
    for (int64_t i = 0; i < values.numel(); ++i) {
      if (!std::isfinite(p[i]) || (p[i] == 0.0f && std::signbit(p[i]))) exact = false;
    }
    table.values = std::move(values);
    table.mean = mean;
    table.std = std;
    table.identity_exact = exact;
  }
  return table;
}

bool is_8bit_1_or_3(const cv::Mat& image) {
  return !image.empty() && image.dims == 2 && image.depth() == CV_8U && (image.channels() == 1 || image.channels() == 3);
}

/// out[c][y][flip ? w-1-x : x] = lut[c][pixel(y, x)[channels == 3 ? c : 0]];
/// planes `plane_stride` floats apart, rows `row_stride` floats apart. The
/// output of a `streaming` pass (12 bytes a pixel, far larger than the
/// caches, read next by another thread or the model) is written with
/// non-temporal stores where SSE2 has them: the same values, without
/// reading every cache line of the destination first. Not for an image read
/// again at once (the resize's input): that one is better left in the cache.
template <int Channels, bool Flip>
void lut_pass(const cv::Mat& image, const float* lut, float* out, int64_t plane_stride, int64_t row_stride,
              bool streaming) {
  const int64_t h = image.rows;
  const int64_t w = image.cols;
  for (int64_t y = 0; y < h; ++y) {
    const uint8_t* src = image.ptr<uint8_t>(static_cast<int>(y));
    for (int c = 0; c < 3; ++c) {
      const float* table = lut + c * 256;
      float* dst = out + c * plane_stride + y * row_stride;
      const uint8_t* s = src + (Channels == 3 ? c : 0);
      // Output column o takes source column x = o, or w - 1 - o mirrored.
      auto value = [&](int64_t o) { return table[s[(Flip ? w - 1 - o : o) * Channels]]; };
      int64_t o = 0;
#if defined(__SSE2__)
      if (streaming) {
        for (; o < w && (reinterpret_cast<uintptr_t>(dst + o) & 15) != 0; ++o) dst[o] = value(o);
        for (; o + 4 <= w; o += 4) {
          _mm_stream_ps(dst + o, _mm_setr_ps(value(o), value(o + 1), value(o + 2), value(o + 3)));
        }
      }
#endif
      for (; o < w; ++o) dst[o] = value(o);
    }
  }
#if defined(__SSE2__)
  if (streaming) _mm_sfence();  // the streamed stores are visible before the slot is handed on
#else
  (void)streaming;
#endif
}

}  // namespace

bool identity_resize_is_exact(const std::vector<double>& mean, const std::vector<double>& std) {
  return lut_for(mean, std).identity_exact;
}

void normalized_image_into(const cv::Mat& image, const std::vector<double>& mean, const std::vector<double>& std,
                           bool flip, const at::Tensor& out, bool streaming) {
  if (!is_8bit_1_or_3(image)) {
    at::Tensor t = normalized_image_tensor(image, mean, std, flip);  // 16-bit, or the error it names
    if (!out.defined() || out.sizes() != t.sizes() || !out.is_cpu() || out.scalar_type() != at::kFloat) {
      throw InputError("bad_image", "normalized_image_into: the output must be a float32 CPU tensor of the image's size");
    }
    out.copy_(t);
    return;
  }
  const int64_t h = image.rows;
  const int64_t w = image.cols;
  if (!out.defined() || out.dim() != 3 || !out.is_cpu() || out.scalar_type() != at::kFloat || out.size(0) != 3 ||
      out.size(1) != h || out.size(2) != w || out.stride(2) != 1) {
    throw InputError("bad_image", "normalized_image_into: expected a float32 CPU [3, " + std::to_string(h) + ", " +
                                      std::to_string(w) + "] output with contiguous rows");
  }
  const float* lut = lut_for(mean, std).values.data_ptr<float>();
  float* o = out.data_ptr<float>();
  const int64_t ps = out.stride(0), rs = out.stride(1);
  if (image.channels() == 3) {
    flip ? lut_pass<3, true>(image, lut, o, ps, rs, streaming) : lut_pass<3, false>(image, lut, o, ps, rs, streaming);
  } else {
    flip ? lut_pass<1, true>(image, lut, o, ps, rs, streaming) : lut_pass<1, false>(image, lut, o, ps, rs, streaming);
  }
}

at::Tensor normalized_image_tensor(const cv::Mat& image, const std::vector<double>& mean,
                                   const std::vector<double>& std, bool flip) {
  if (!is_8bit_1_or_3(image)) {
    at::Tensor t = normalize(image_to_tensor(image), mean, std);  // 16-bit, or the error image_to_tensor names
    return flip ? t.flip({2}) : t;
  }
  at::Tensor out = at::empty({3, image.rows, image.cols}, at::kFloat);
  normalized_image_into(image, mean, std, flip, out);
  return out;
}

double resize_scale(int64_t h, int64_t w, double self_min_size, double self_max_size) {
  if (h <= 0 || w <= 0) {
    throw InputError("bad_image", "resize: empty image " + std::to_string(h) + "x" + std::to_string(w));
  }
  // im_shape = torch.tensor(image.shape[-2:])  (int64)
  const at::Tensor im_shape = at::tensor(std::vector<int64_t>{h, w}, at::TensorOptions().dtype(at::kLong));
  const at::Tensor min_size = at::min(im_shape).to(at::kFloat);
  const at::Tensor max_size = at::max(im_shape).to(at::kFloat);
  // self_min_size / min_size  ==  Tensor.__rtruediv__ == min_size.reciprocal() * self_min_size
  const at::Tensor scale =
      at::min(min_size.reciprocal() * self_min_size, max_size.reciprocal() * self_max_size);
  return scale.item<double>();
}

Size2 resized_size(int64_t h, int64_t w, double self_min_size, double self_max_size) {
  const double s = resize_scale(h, w, self_min_size, self_max_size);
  // torch.nn.functional.interpolate with recompute_scale_factor=True
  return {static_cast<int64_t>(std::floor(static_cast<double>(h) * s)),
          static_cast<int64_t>(std::floor(static_cast<double>(w) * s))};
}

Resized resize_image_and_masks(const at::Tensor& image, double self_min_size, double self_max_size,
                               const at::Tensor& masks) {
  if (!image.defined() || image.dim() != 3) {
    throw InputError("bad_image", "resize_image_and_masks: expected a [C, H, W] image tensor");
  }
  const double s = resize_scale(image.size(1), image.size(2), self_min_size, self_max_size);
  Resized out;
  out.image = F::interpolate(image.unsqueeze(0), F::InterpolateFuncOptions()
                                                     .scale_factor(std::vector<double>{s, s})
                                                     .mode(torch::kBilinear)
                                                     .align_corners(false)
                                                     .recompute_scale_factor(true))
                  .select(0, 0);
  if (!masks.defined()) return out;
  if (masks.dim() != 3 || masks.size(1) != image.size(1) || masks.size(2) != image.size(2)) {
    throw InputError("mask_size_mismatch", "resize_image_and_masks: masks must be [N, " +
                                               std::to_string(image.size(1)) + ", " +
                                               std::to_string(image.size(2)) + "]");
  }
  const auto nearest = F::InterpolateFuncOptions()
                           .scale_factor(std::vector<double>{s, s})
                           .mode(torch::kNearest)
                           .recompute_scale_factor(true);
  if (masks.size(0) == 0) {
    out.masks = at::empty({0, out.image.size(1), out.image.size(2)}, masks.options().dtype(at::kByte));
  } else if (masks.is_cpu() && masks.scalar_type() == at::kByte) {
    out.masks = resize_masks_nearest(masks, {out.image.size(1), out.image.size(2)});
  } else {
    // mask[:, None].float() -> interpolate -> [:, 0].byte(), literally.
    out.masks = F::interpolate(masks.unsqueeze(1).to(at::kFloat), nearest).select(1, 0).to(at::kByte);
  }
  return out;
}

void resize_bilinear_into(const at::Tensor& image, const at::Tensor& out) {
  auto is_cpu_float3d = [](const at::Tensor& t) {
    return t.defined() && t.dim() == 3 && t.is_cpu() && t.scalar_type() == at::kFloat;
  };
  if (!is_cpu_float3d(image) || image.numel() == 0) {
    throw InputError("bad_image", "resize_bilinear_into: expected a non-empty float32 [C, H, W] CPU image");
  }
  if (!is_cpu_float3d(out) || out.size(0) != image.size(0) || out.numel() == 0) {
    throw InputError("bad_image", "resize_bilinear_into: the output must be a non-empty float32 [" +
                                      std::to_string(image.size(0)) + ", h, w] CPU tensor");
  }
#ifdef PASTEFLOW_HAVE_ATEN_STUB
  // upsample_bilinear2d.out would allocate a contiguous proxy for a strided
  // `out` and copy it back; the kernel itself iterates over any strides.
  at::native::upsample_bilinear2d_kernel(c10::DeviceType::CPU, out.unsqueeze(0), image.contiguous().unsqueeze(0),
                                         /*align_corners=*/false, c10::nullopt, c10::nullopt);
#else
  out.copy_(at::upsample_bilinear2d(image.unsqueeze(0), {out.size(1), out.size(2)}, /*align_corners=*/false).select(0, 0));
#endif
}

namespace {

// ATen's nearest_idx (ATen/native/UpSample.h) with scales = None, as
// interpolate(recompute_scale_factor=True) calls it.
std::vector<int64_t> nearest_source_indices(int64_t input_size, int64_t output_size) {
  std::vector<int64_t> idx(static_cast<size_t>(output_size));
  const float scale = static_cast<float>(input_size) / static_cast<float>(output_size);
  for (int64_t i = 0; i < output_size; ++i) {
    if (output_size == input_size) {
      idx[static_cast<size_t>(i)] = i;
    } else if (output_size == 2 * input_size) {
      idx[static_cast<size_t>(i)] = i >> 1;
    } else {
      idx[static_cast<size_t>(i)] =
          std::min(static_cast<int64_t>(std::floor(static_cast<float>(i) * scale)), input_size - 1);
    }
  }
  return idx;
}

}  // namespace

at::Tensor resize_masks_nearest(const at::Tensor& masks, Size2 out, bool flip) {
  if (!masks.defined() || masks.dim() != 3 || !masks.is_cpu() || masks.scalar_type() != at::kByte ||
      out[0] <= 0 || out[1] <= 0) {
    throw InputError("bad_masks", "resize_masks_nearest: expected CPU uint8 masks [N, H, W] and a positive size");
  }
  const at::Tensor src = masks.contiguous();
  const int64_t n = src.size(0), h = src.size(1), w = src.size(2);
  at::Tensor result = at::empty({n, out[0], out[1]}, src.options());
  if (n == 0) return result;
  const std::vector<int64_t> ys = nearest_source_indices(h, out[0]);
  std::vector<int64_t> xs = nearest_source_indices(w, out[1]);
  if (flip) {
    for (int64_t& x : xs) x = w - 1 - x;  // out[y][x] = flipped[sy][sx] = masks[sy][w - 1 - sx]
  }
  const uint8_t* in = src.data_ptr<uint8_t>();
  uint8_t* o = result.data_ptr<uint8_t>();
  const auto ow = static_cast<size_t>(out[1]);
  for (int64_t k = 0; k < n; ++k) {
    const uint8_t* plane = in + k * h * w;
    uint8_t* dst_plane = o + k * out[0] * out[1];
    for (int64_t y = 0; y < out[0]; ++y) {
      uint8_t* dst = dst_plane + y * out[1];
      if (y > 0 && ys[static_cast<size_t>(y)] == ys[static_cast<size_t>(y - 1)]) {
        std::memcpy(dst, dst - out[1], ow);
        continue;
      }
      const uint8_t* row = plane + ys[static_cast<size_t>(y)] * w;
      for (size_t x = 0; x < ow; ++x) dst[x] = row[xs[x]];
    }
  }
  return result;
}

at::Tensor resize_boxes(const at::Tensor& boxes, Size2 original_size, Size2 new_size) {
  const auto opts = at::TensorOptions().dtype(at::kFloat).device(boxes.device());
  // ratios = torch.tensor(s, float32) / torch.tensor(s_orig, float32)
  const at::Tensor ratio_height = at::scalar_tensor(static_cast<double>(new_size[0]), opts) /
                                  at::scalar_tensor(static_cast<double>(original_size[0]), opts);
  const at::Tensor ratio_width = at::scalar_tensor(static_cast<double>(new_size[1]), opts) /
                                 at::scalar_tensor(static_cast<double>(original_size[1]), opts);
  const std::vector<at::Tensor> c = boxes.unbind(1);
  const at::Tensor xmin = c[0] * ratio_width;
  const at::Tensor xmax = c[2] * ratio_width;
  const at::Tensor ymin = c[1] * ratio_height;
  const at::Tensor ymax = c[3] * ratio_height;
  return at::stack({xmin, ymin, xmax, ymax}, 1);
}

Size2 padded_size(int64_t max_h, int64_t max_w, int64_t size_divisible) {
  // int(math.ceil(float(max_size[1]) / stride) * stride)
  const double stride = static_cast<double>(size_divisible);
  return {static_cast<int64_t>(std::ceil(static_cast<double>(max_h) / stride) * stride),
          static_cast<int64_t>(std::ceil(static_cast<double>(max_w) / stride) * stride)};
}

at::Tensor batch_images(const std::vector<at::Tensor>& images, int64_t size_divisible) {
  if (images.empty()) throw InputError("bad_image", "batch_images: no images");
  if (size_divisible <= 0) {
    throw ConfigError("bad_size_divisible", "batch_images: size_divisible must be positive");
  }
  std::vector<int64_t> max_size = images[0].sizes().vec();
  if (max_size.size() != 3) throw InputError("bad_image", "batch_images: expected [C, H, W] tensors");
  for (const at::Tensor& img : images) {
    if (img.dim() != 3) throw InputError("bad_image", "batch_images: expected [C, H, W] tensors");
    for (size_t i = 0; i < 3; ++i) max_size[i] = std::max(max_size[i], img.size(static_cast<int64_t>(i)));
  }
  const Size2 padded = padded_size(max_size[1], max_size[2], size_divisible);
  const std::vector<int64_t> batch_shape{static_cast<int64_t>(images.size()), max_size[0], padded[0],
                                         padded[1]};
  // images[0].new_full(shape, 0), then each image copied top-left: only the
  // padding is zeroed here (the same values, half the memory traffic).
  at::Tensor batched = at::empty(batch_shape, images[0].options());
  for (size_t i = 0; i < images.size(); ++i) {
    const at::Tensor& img = images[i];
    at::Tensor slot = batched.select(0, static_cast<int64_t>(i));
    slot.narrow(0, 0, img.size(0)).narrow(1, 0, img.size(1)).narrow(2, 0, img.size(2)).copy_(img);
    if (img.size(0) < max_size[0]) slot.narrow(0, img.size(0), max_size[0] - img.size(0)).zero_();
    at::Tensor channels = slot.narrow(0, 0, img.size(0));
    if (img.size(1) < padded[0]) channels.narrow(1, img.size(1), padded[0] - img.size(1)).zero_();
    if (img.size(2) < padded[1]) channels.narrow(1, 0, img.size(1)).narrow(2, img.size(2), padded[1] - img.size(2)).zero_();
  }
  return batched;
}

at::Tensor postprocess_boxes(const at::Tensor& boxes, Size2 image_size, Size2 original_size) {
  return resize_boxes(boxes, image_size, original_size);
}

int choose_min_size(const std::vector<int>& min_sizes, bool training, Rng& rng) {
  if (min_sizes.empty()) throw ConfigError("bad_min_size", "min_size list is empty");
  for (int s : min_sizes) {
    if (s <= 0) throw ConfigError("bad_min_size", "min_size values must be positive");
  }
  if (!training) return min_sizes.back();  // "assume for now that testing uses the largest scale"
  return min_sizes[static_cast<size_t>(rng.below(min_sizes.size()))];
}

}  // namespace pasteflow::stages::rcnn
