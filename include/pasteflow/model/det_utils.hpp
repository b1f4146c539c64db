// Tensor-level detection utilities of torchvision 0.14
// (models/detection/_utils.py, anchor_utils.py, image_list.py), written with
// the same torch ops in the same order: ImageList and targets, the
// AnchorGenerator, the Matcher and the BalancedPositiveNegativeSampler.
// (The float32 scalar versions used by the statistics live in
// stats/anchors.hpp; tests check both agree.)
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include "pasteflow/stages/rcnn_transform.hpp"

namespace pasteflow::model {

using Size2 = stages::rcnn::Size2;  ///< {height, width}

/// torchvision ImageList: padded batch + the size of each image before padding.
struct ImageList {
  at::Tensor tensors;              ///< float [N, C, H, W]
  std::vector<Size2> image_sizes;  ///< {h, w} of each image inside `tensors`
};

/// One image's ground truth (torchvision's target dict).
struct Target {
  at::Tensor boxes;   ///< float32 [n, 4] x1, y1, x2, y2 (x2 > x1, y2 > y1)
  at::Tensor labels;  ///< int64 [n], 1..num_classes-1
  at::Tensor masks;   ///< uint8 [n, H, W] in the image's frame (mask branch only)
};

// ------------------------------------------------------------ anchors

/// torchvision AnchorGenerator (aspect ratio = height / width).
class AnchorGenerator {
 public:
  /// sizes[i] and aspect_ratios[i] are level i's; throws ConfigError when
  /// the level counts differ or a level is empty.
  AnchorGenerator(std::vector<std::vector<double>> sizes, std::vector<std::vector<double>> aspect_ratios);

  /// generate_anchors: float32 [len(ratios) * len(sizes), 4], round([-w, -h, w, h] / 2).
  static at::Tensor generate_anchors(const std::vector<double>& scales, const std::vector<double>& aspect_ratios);

  /// len(sizes[i]) * len(aspect_ratios[i]) per level.
  std::vector<int64_t> num_anchors_per_location() const;
  size_t num_levels() const { return cell_anchors_.size(); }
  const std::vector<at::Tensor>& cell_anchors() const { return cell_anchors_; }

  /// grid_anchors: per level, (shifts [HW, 1, 4] + base [1, A, 4]).reshape(-1, 4)
  /// with int32 shifts arange(grid) * stride.
  std::vector<at::Tensor> grid_anchors(const std::vector<Size2>& grid_sizes,
                                       const std::vector<Size2>& strides) const;

  /// forward: the anchors of every image of `images` (one tensor each, all
  /// levels concatenated) for feature maps `features` (the strides are
  /// padded_size // grid_size). Same dtype / device as features[0].
  std::vector<at::Tensor> operator()(const ImageList& images, const std::vector<at::Tensor>& features) const;

 private:
  std::vector<std::vector<double>> sizes_;
  std::vector<std::vector<double>> aspect_ratios_;
  std::vector<at::Tensor> cell_anchors_;
};

// ------------------------------------------------------------ matcher

/// torchvision _utils.Matcher on a [num_gt, num_pred] quality matrix:
/// int64 [num_pred] of gt indices, -1 (below low) or -2 (between).
class Matcher {
 public:
  static constexpr int64_t kBelowLowThreshold = -1;
  static constexpr int64_t kBetweenThresholds = -2;

  /// Throws ConfigError when low_threshold > high_threshold.
  Matcher(double high_threshold, double low_threshold, bool allow_low_quality_matches);
  /// Throws InputError "no_ground_truth" / "no_proposals" for an empty
  /// matrix (torchvision raises ValueError).
  at::Tensor operator()(const at::Tensor& match_quality_matrix) const;

  double high_threshold() const { return high_; }
  double low_threshold() const { return low_; }
  bool allow_low_quality_matches() const { return allow_low_quality_; }

 private:
  double high_;
  double low_;
  bool allow_low_quality_;
};

// ------------------------------------------------------------ sampler

/// A permutation of 0..n-1 (int64 [n] on `device`). torchvision draws
/// torch::randperm(n); a deterministic one makes training comparable.
using PermutationFn = std::function<at::Tensor(int64_t n, const c10::Device& device)>;

/// torch::randperm(n) with the default generator (torchvision's choice).
at::Tensor random_permutation(int64_t n, const c10::Device& device);

/// A fixed permutation: argsort(((i + 1) * 2654435761) mod 2^32), i = 0..n-1
/// (the keys are distinct for n < 2^32). Reproduced by
/// tools/parity/model_parity.py to compare training losses with torchvision.
at::Tensor hash_permutation(int64_t n, const c10::Device& device);

/// torchvision _utils.BalancedPositiveNegativeSampler.
class BalancedPositiveNegativeSampler {
 public:
  BalancedPositiveNegativeSampler(int64_t batch_size_per_image, double positive_fraction,
                                  PermutationFn permutation = random_permutation);

  /// matched_idxs: per image, labels (-1 ignore, 0 negative, >= 1 positive),
  /// any numeric dtype. Returns per image two uint8 masks of the same length
  /// (sampled positives, sampled negatives): at most
  /// int(batch_size_per_image * positive_fraction) positives, negatives
  /// filling the rest, each chosen as the first entries of permutation(count).
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> operator()(
      const std::vector<at::Tensor>& matched_idxs) const;

  void set_permutation(PermutationFn permutation) { permutation_ = std::move(permutation); }
  int64_t batch_size_per_image() const { return batch_size_per_image_; }
  double positive_fraction() const { return positive_fraction_; }

 private:
  int64_t batch_size_per_image_;
  double positive_fraction_;
  PermutationFn permutation_;
};

/// "random" -> random_permutation, "deterministic" -> hash_permutation;
/// throws ConfigError "bad_choice" otherwise.
PermutationFn permutation_by_name(const std::string& name);

}  // namespace pasteflow::model
