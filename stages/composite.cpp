#include "pasteflow/stages/composite.hpp"

#include <limits>
#include <string>

#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"

namespace pasteflow::stages {

namespace {

ConfigError composite_error(const std::string& field, const std::string& message) {
  Location where;
  where.key = "augment.composite." + field;
  return ConfigError("bad_config", message, where);
}

template <typename T, int C>
void blend_typed(cv::Mat& image, const cv::Mat& pixels, const cv::Mat& mask, const cv::Mat* alpha, cv::Point tl) {
  using Px = cv::Vec<T, C>;
  for (int y = 0; y < mask.rows; ++y) {
    const uint8_t* m = mask.ptr<uint8_t>(y);
    const Px* src = pixels.ptr<Px>(y);
    Px* dst = image.ptr<Px>(tl.y + y) + tl.x;
    const double* a = alpha ? alpha->ptr<double>(y) : nullptr;
    for (int x = 0; x < mask.cols; ++x) {
      if (!m[x]) continue;
      if (!a || a[x] >= 1.0) {
        dst[x] = src[x];
        continue;
      }
      for (int c = 0; c < C; ++c)
        dst[x][c] = cv::saturate_cast<T>(a[x] * src[x][c] + (1.0 - a[x]) * dst[x][c]);
    }
  }
}

}  // namespace

void CompositeConfig::validate() const {
  if (blur_kernel != 0 && (blur_kernel < 3 || blur_kernel % 2 == 0))
    throw composite_error("blur_kernel", "must be 0 (hard paste) or an odd size >= 3");
  if (!(blur_sigma >= 0.0)) throw composite_error("blur_sigma", "must be >= 0 (0: derived from the kernel)");
  if (id_base < 0) throw composite_error("id_base", "must be >= 0");
  if (ids_per_sample < 1) throw composite_error("ids_per_sample", "must be >= 1");
  size_class.validate();
}

int64_t pasted_annotation_id(const CompositeConfig& config, uint64_t seq, uint32_t paste_index) {
  if (paste_index >= config.ids_per_sample)
    throw Error("paste_id_overflow", "paste " + std::to_string(paste_index) + " of a sample exceeds ids_per_sample " +
                                         std::to_string(config.ids_per_sample));
  const uint64_t limit = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());
  const uint64_t base = static_cast<uint64_t>(config.id_base) + 1;
  // base can exceed limit (id_base = INT64_MAX): compare before subtracting.
  if (base > limit || paste_index > limit - base || seq > (limit - base - paste_index) / config.ids_per_sample)
    throw Error("paste_id_overflow", "annotation id of sample seq " + std::to_string(seq) + " overflows int64");
  return static_cast<int64_t>(base + seq * config.ids_per_sample + paste_index);
}

mask::Rle placed_rle(const cv::Mat& patch_mask, cv::Point tl, uint32_t h, uint32_t w) {
  CV_Assert(patch_mask.type() == CV_8UC1);
  const mask::Rle local = mask::encode(patch_mask.ptr<uint8_t>(), static_cast<uint32_t>(patch_mask.rows),
                                       static_cast<uint32_t>(patch_mask.cols), patch_mask.step[0]);
  return mask::translate(local, tl.x, tl.y, h, w);
}

Compositor::Compositor(CompositeConfig config) : config_(config) { config_.validate(); }

cv::Mat Compositor::alpha(const cv::Mat& patch_mask) const {
  CV_Assert(patch_mask.type() == CV_8UC1);
  cv::Mat binary = patch_mask != 0;  // 0 / 255
  cv::Mat out;
  if (config_.blur_kernel == 0) {
    binary.convertTo(out, CV_64F, 1.0 / 255.0);
    return out;
  }
  const int r = (config_.blur_kernel - 1) / 2;
  cv::Mat padded, blurred;
  cv::copyMakeBorder(binary, padded, r, r, r, r, cv::BORDER_CONSTANT, cv::Scalar(0));
  padded.convertTo(padded, CV_64F, 1.0 / 255.0);
  cv::GaussianBlur(padded, blurred, cv::Size(config_.blur_kernel, config_.blur_kernel), config_.blur_sigma,
                   config_.blur_sigma, cv::BORDER_CONSTANT);
  out = blurred(cv::Rect(r, r, patch_mask.cols, patch_mask.rows)).clone();
  for (int y = 0; y < out.rows; ++y) {
    double* a = out.ptr<double>(y);
    const uint8_t* m = binary.ptr<uint8_t>(y);
    for (int x = 0; x < out.cols; ++x) {
      if (!m[x]) a[x] = 0.0;
      else if (a[x] > 1.0 - 1e-9) a[x] = 1.0;  // a full neighbourhood: the kernel sums to 1 up to rounding
    }
  }
  return out;
}

void Compositor::blend(cv::Mat& image, const ObjectPatch& patch, cv::Point tl) const {
  if (patch.mask.empty()) return;
  if (patch.pixels.type() != image.type() || patch.pixels.size() != patch.mask.size())
    throw Error("paste_type", "patch pixels must have the image's type and the mask's size");
  if (!(cv::Rect(0, 0, image.cols, image.rows).contains(tl) &&
        tl.x + patch.mask.cols <= image.cols && tl.y + patch.mask.rows <= image.rows))
    throw Error("paste_outside", "the patch does not lie inside the image");
  cv::Mat a;
  if (config_.blur_kernel > 0) a = alpha(patch.mask);
  const cv::Mat* ap = a.empty() ? nullptr : &a;
  switch (image.type()) {
    case CV_8UC1: blend_typed<uint8_t, 1>(image, patch.pixels, patch.mask, ap, tl); break;
    case CV_8UC3: blend_typed<uint8_t, 3>(image, patch.pixels, patch.mask, ap, tl); break;
    case CV_16UC1: blend_typed<uint16_t, 1>(image, patch.pixels, patch.mask, ap, tl); break;
    case CV_16UC3: blend_typed<uint16_t, 3>(image, patch.pixels, patch.mask, ap, tl); break;
    default:
      throw Error("image_type", "paste supports 8- and 16-bit images with 1 or 3 channels");
  }
}

Instance& Compositor::operator()(Sample& sample, const ObjectPatch& patch, cv::Point tl,
                                 uint32_t paste_index) const {
  const int64_t id = pasted_annotation_id(config_, sample.seq, paste_index);
  blend(sample.image, patch, tl);
  Instance inst;
  inst.id = id;
  inst.category_id = patch.category_id;
  inst.iscrowd = 0;
  inst.has_mask = !patch.from_box;
  inst.mask = placed_rle(patch.mask, tl, static_cast<uint32_t>(sample.image.rows),
                         static_cast<uint32_t>(sample.image.cols));
  inst.bbox = mask::bbox(inst.mask);
  inst.area = static_cast<double>(mask::area(inst.mask));
  inst.size_class = static_cast<uint8_t>(stats::classify_area(inst.area, config_.size_class));
  inst.pasted = true;
  inst.source_id = patch.source_id;
  sample.instances.push_back(std::move(inst));
  return sample.instances.back();
}

}  // namespace pasteflow::stages
