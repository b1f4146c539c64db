// Copy-paste stage 1 of 4: object extraction (Kisantal et al., sec. 4).
//
// Picks the instances of a sample that may be copied and cuts each one out:
// its pixel patch (the tight box of its mask, an owned cv::Mat copy of the
// image there) and its mask patch (CV_8U, 0/1, same size).
//
// Eligibility of instance i (all must hold):
//   - its size class (Instance::size_class) is one of `size_classes`;
//   - not crowd, when `exclude_crowd`;
//   - a non-empty mask (or, for a boxes-only instance, a box of >= 1 pixel);
//   - not occluded, by `occlusion`:
//       "mask": no pixel of i's mask belongs to any other instance (crowd
//               regions included; a boxes-only instance occupies its box);
//       "box":  i's box intersects no other instance's box with positive area;
//       "none": no check;
//   - when !allow_multipart: i's mask is one 8-connected component (an
//     object drawn as several polygon parts that do not touch, or a mask
//     split in pieces, is multipart). The paper's author's script copied only
//     single-polygon objects; connectivity is what the mask still tells.
//
// Boxes-only instances (has_mask = false), the lower-quality mode users of
// rectangle-based copy-paste ask for: the pixel patch is the box region and
// the mask patch is all ones (the box, background included). The box's pixel
// rectangle is [round(x), round(x + w)) x [round(y), round(y + h)), clipped to
// the image, widened to one pixel when it rounds to nothing.
//
// Pure: reads the sample, never modifies it. No randomness.
#pragma once

#include <algorithm>
#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "pasteflow/mask/rle.hpp"
#include "pasteflow/stages/sample.hpp"

namespace pasteflow::stages {

struct ExtractConfig {
  /// Size classes that may be copied: any of "small", "medium", "large".
  std::vector<std::string> size_classes = {"small"};
  bool exclude_crowd = true;
  /// "mask" (default), "box" or "none"; see the header comment.
  std::string occlusion = "mask";
  /// Allow objects whose mask has several 8-connected components.
  bool allow_multipart = true;

  /// Throws ConfigError with key "augment.extract.<field>".
  void validate() const;

  /// Config keys under "augment.extract.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("size_classes", &ExtractConfig::size_classes, "size classes of the objects that may be copied (paper: small)")
        .one_of({"small", "medium", "large"});
    d.field("exclude_crowd", &ExtractConfig::exclude_crowd, "never copy crowd regions");
    d.field("occlusion", &ExtractConfig::occlusion,
            "non-occluded test: mask (no pixel shared with another object), box (no box intersection), none")
        .one_of({"mask", "box", "none"});
    d.field("allow_multipart", &ExtractConfig::allow_multipart,
            "allow objects whose mask has several 8-connected parts (the author's script: single polygons only)");
  }
};

/// One object cut out of a sample (and, after the transform stage, its
/// transformed version: then `pixels` / `mask` are the transformed patch,
/// tight around the transformed mask, and scale / angle / flipped say how).
struct ObjectPatch {
  uint32_t instance = 0;    ///< index into Sample::instances at extraction time
  int64_t source_id = 0;    ///< annotation id of the instance
  int64_t category_id = 0;
  uint8_t size_class = 0;   ///< of the source instance
  bool from_box = false;    ///< boxes-only source: the mask is the whole box
  cv::Rect box;             ///< where the patch was cut from, in the source frame
  cv::Mat pixels;           ///< mask-sized, the image's type, owned
  cv::Mat mask;             ///< CV_8U, 0/1, tight: every border row/column has a 1
  uint64_t area = 0;        ///< number of ones in `mask`
  double scale = 1.0;       ///< transform applied (1, 0, false for an extracted patch)
  double angle = 0.0;       ///< degrees, counter-clockwise in image coordinates
  bool flipped = false;

  bool empty() const noexcept { return area == 0; }
};

/// Calls f(x, y_begin, y_end) for every vertical run of ones of `rle`
/// (runs are split at column boundaries), in column-major order.
template <typename F>
void for_each_column_run(const mask::Rle& rle, F&& f) {
  if (rle.h == 0) return;
  uint64_t pos = 0;
  bool one = false;
  for (uint32_t c : rle.counts) {
    if (one && c > 0) {
      uint64_t p = pos;
      const uint64_t end = pos + c;
      while (p < end) {
        const uint64_t x = p / rle.h;
        const uint64_t y0 = p % rle.h;
        const uint64_t y1 = std::min<uint64_t>(rle.h, y0 + (end - p));
        f(static_cast<int>(x), static_cast<int>(y0), static_cast<int>(y1));
        p += y1 - y0;
      }
    }
    pos += c;
    one = !one;
  }
}

/// Tight pixel box of a mask's ones (unlike mask::bbox, never widened by a
/// run that wraps a column); an empty cv::Rect when the mask is empty.
cv::Rect tight_box(const mask::Rle& rle);

/// Pixel rectangle of a COCO [x, y, w, h] box in a width x height image
/// (the boxes-only rule of the header comment). Empty when the box lies
/// outside the image.
cv::Rect box_pixels(const std::array<double, 4>& bbox, int width, int height);

/// The pixels an instance occupies: its mask, or its box when has_mask is false.
/// `dst` is a CV_8U frame-sized image; `value` is written at those pixels.
void paint_instance(const Instance& inst, cv::Mat& dst, uint8_t value = 1);

class Extractor {
 public:
  /// Validates the config.
  explicit Extractor(ExtractConfig config = {});

  /// Indices of the eligible instances, in instance order.
  std::vector<uint32_t> eligible(const Sample& sample) const;

  /// Cuts out instance `index` (eligible or not). Throws InputError
  /// "mask_size" when its mask is not image-sized.
  ObjectPatch extract(const Sample& sample, uint32_t index) const;

  /// All eligible instances cut out, in instance order.
  std::vector<ObjectPatch> operator()(const Sample& sample) const;

  const ExtractConfig& config() const noexcept { return config_; }

 private:
  ExtractConfig config_;
  std::vector<uint8_t> classes_;  ///< parsed size_classes
  enum class Occlusion { kMask, kBox, kNone } occlusion_ = Occlusion::kMask;
};

}  // namespace pasteflow::stages
