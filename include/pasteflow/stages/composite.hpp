// Copy-paste stage 4 of 4: writing a placed object into the image and
// annotating it.
//
// Pixels: only pixels of the patch's mask are ever written, so the new
// annotation's mask is exactly the set of changed pixels and nothing next
// to the object (another object, the border) is touched.
//   - blur_kernel 0 (default, the paper's choice): hard paste, every mask
//     pixel takes the patch's value.
//   - blur_kernel k (odd, 3 or 5 in the paper's Table 8 ablation): the
//     0/1 mask, zero-padded, is Gaussian-blurred (k x k, sigma blur_sigma,
//     0 = OpenCV's default 0.3 * ((k - 1) / 2 - 1) + 0.8) into alpha, and each
//     mask pixel becomes alpha * patch + (1 - alpha) * image, rounded. Pixels
//     whose k x k neighbourhood lies inside the mask have alpha 1 and are
//     copied exactly; so only mask pixels within (k - 1) / 2 pixels of the
//     mask's edge are blended (a feathered inner edge).
// Works on 8- and 16-bit images with 1 or 3 channels (the patch has the
// image's type).
//
// Annotation: a new Instance appended to Sample::instances with
//   id          = pasted_annotation_id(config, sample.seq, paste_index)
//   category_id = the source's, iscrowd = 0, pasted = true,
//   source_id   = the source annotation id,
//   mask        = the placed mask as a full-frame mask::Rle,
//   has_mask    = true; false for a boxes-only source, like the dataset's
//                 other instances (`mask` then still holds the written
//                 region, the transformed box; consumers use the bbox),
//   bbox        = mask::bbox(mask), area = mask::area(mask),
//   size_class  = the class of that area (stats::classify_area with
//                 CompositeConfig::size_class).
//
// Id scheme: id_base + 1 + seq * ids_per_sample + paste_index, where seq is
// the sample's position in the epoch stream (unique within one rank's epoch
// and within an exported, materialised dataset, where seq is the list index),
// and paste_index < ids_per_sample is the paste's position in the sample's
// paste order. With id_base = the largest annotation id of the dataset the
// new ids never collide with the dataset's ids nor with each other.
#pragma once

#include <cstdint>

#include <opencv2/core.hpp>

#include "pasteflow/mask/rle.hpp"
#include "pasteflow/stages/extract.hpp"
#include "pasteflow/stages/sample.hpp"
#include "pasteflow/stats/size_class.hpp"

namespace pasteflow::stages {

struct CompositeConfig {
  int blur_kernel = 0;       ///< 0 = hard paste; otherwise an odd kernel size >= 3
  double blur_sigma = 0.0;   ///< Gaussian sigma; 0 = derived from the kernel size
  /// Largest annotation id of the dataset. Not a config key: the pipeline's
  /// Loader sets it from the dataset.
  int64_t id_base = 0;
  uint64_t ids_per_sample = 1024;  ///< id block per sample; more pastes per sample are an error
  /// Thresholds for the pasted objects' size_class. Not a config key: the
  /// pipeline copies the root "size" section here (PipelineConfig::derive).
  stats::SizeClassConfig size_class;

  /// Throws ConfigError with key "augment.composite.<field>".
  void validate() const;

  /// Config keys under "augment.composite." (id_base and size_class are not).
  template <class Describer>
  static void describe(Describer& d) {
    d.field("blur_kernel", &CompositeConfig::blur_kernel,
            "0 = hard paste (paper); k = odd Gaussian kernel feathering the pasted edge (Table 8: 3, 5)")
        .range(0, 99);
    d.field("blur_sigma", &CompositeConfig::blur_sigma, "Gaussian sigma of the edge blur; 0 = OpenCV's default for the kernel")
        .range(0.0, 100.0);
    d.field("ids_per_sample", &CompositeConfig::ids_per_sample,
            "annotation-id block per sample: new id = max dataset id + 1 + seq * this + paste index; more pastes "
            "in one sample are an error")
        .range(1, 1u << 20);
  }
};

/// The id scheme of the header comment. Throws Error "paste_id_overflow"
/// when paste_index >= ids_per_sample or the id would overflow int64.
int64_t pasted_annotation_id(const CompositeConfig& config, uint64_t seq, uint32_t paste_index);

/// `patch.mask` (0/1) with its top-left at `tl` as a full-frame h x w Rle
/// (parts outside the frame are dropped).
mask::Rle placed_rle(const cv::Mat& patch_mask, cv::Point tl, uint32_t h, uint32_t w);

class Compositor {
 public:
  explicit Compositor(CompositeConfig config = {});

  /// Writes the patch's masked pixels into `image` at `tl` (hard or
  /// blended). The patch must lie inside the image and have its type.
  void blend(cv::Mat& image, const ObjectPatch& patch, cv::Point tl) const;

  /// blend() and append the new annotation; returns it (a reference into
  /// sample.instances, valid until the vector changes).
  Instance& operator()(Sample& sample, const ObjectPatch& patch, cv::Point tl, uint32_t paste_index) const;

  /// The alpha a blurred paste uses (CV_64F, patch-sized, 0 outside the
  /// mask); all ones inside the mask for a hard paste.
  cv::Mat alpha(const cv::Mat& patch_mask) const;

  const CompositeConfig& config() const noexcept { return config_; }

 private:
  CompositeConfig config_;
};

}  // namespace pasteflow::stages
