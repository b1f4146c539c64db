// Batching stage: Samples -> an NCHW float tensor plus per-image targets,
// exactly what torchvision's Mask R-CNN sees after its dataset transforms
// (references/detection: ConvertCocoPolysToMask, RandomHorizontalFlip,
// PILToTensor, ConvertImageDtype) and its GeneralizedRCNNTransform
// (stages/rcnn_transform.hpp).
//
// prepare() works on one sample (parallel graph nodes); collate() pads and
// stacks (serial). Steps of prepare(), in torchvision's order:
//   1. instances: crowd ones dropped (drop_crowd, as ConvertCocoPolysToMask
//      does; torchvision's losses never look at iscrowd); bbox [x, y, w, h]
//      -> float32 [x, y, x + w, y + h] clamped to the image; instances whose
//      clamped box is empty (x2 <= x1 or y2 <= y1) are dropped; masks decoded
//      full-frame to uint8 [n, H, W] (keep_masks)
//   2. hflip: with probability 0.5 the image, masks (flip(-1)) and boxes
//      (x1' = W - x2, x2' = W - x1) are mirrored
//   3. pixels -> float32 [3, H, W] in [0, 1] (grey repeated to 3 channels;
//      8-bit / 255, 16-bit / 65535)
//   4. normalize (mean, std) -- torchvision normalises BEFORE resizing
//   5. resize: shorter side to the chosen min size, longer side capped at
//      max_size; masks nearest; boxes scaled per axis
// collate(): zero padding to a multiple of size_divisible (after
// normalisation, as torchvision), stacked, moved to `device`. The pipeline
// allocates each batch's tensor before its images are prepared (sizes
// planned from the annotation file), so the stacking is usually free.
//
// output "torchvision" stops after step 3: each image stays a float32
// [3, H, W] tensor in [0, 1] at its augmented size, targets in that frame
// (flip applied), and collate() neither pads nor stacks (Batch::image_list):
// what torchvision's detection models take, since they normalise and resize
// themselves (GeneralizedRCNNTransform). The random draws are the same.
//
// Randomness: Rng(seed, {epoch, seq, kBatchRngTag}); first draw
// uniform() < 0.5 decides the flip (drawn even when hflip is off, so the size
// choice does not depend on it), then, when train_min_sizes has values, the
// size train_min_sizes[below(n)] (torch_choice).
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <ATen/core/Tensor.h>

#include "pasteflow/core/random.hpp"
#include "pasteflow/stages/rcnn_transform.hpp"
#include "pasteflow/stages/sample.hpp"

namespace pasteflow::stages {

/// Stream id of the batching stage's random numbers ("batc").
inline constexpr uint64_t kBatchRngTag = 0x62617463ULL;

struct BatchConfig {
  int min_size = 800;                ///< shorter side (evaluation, or training without multi-scale)
  std::vector<int> train_min_sizes;  ///< non-empty: one drawn per image (multi-scale training)
  int max_size = 1333;               ///< cap of the longer side
  bool hflip = false;                ///< whole-image horizontal flip with probability 0.5
  std::vector<double> mean = rcnn::imagenet_mean();
  std::vector<double> std = rcnn::imagenet_std();
  int size_divisible = 32;
  bool keep_masks = true;   ///< masks in the targets; false for boxes-only datasets
  bool drop_crowd = true;   ///< drop iscrowd instances (else kept with iscrowd = 1)
  std::string device = "cpu";  ///< where collate() puts the tensors ("cpu", "cuda", "cuda:1")
  /// "model": normalised, resized, padded NCHW batch (pasteflow's model);
  /// "torchvision": unnormalised [0, 1] images at their own sizes, a list.
  std::string output = "model";

  /// Config keys under "batch.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("min_size", &BatchConfig::min_size, "shorter image side after resizing (torchvision min_size)")
        .range(1, 100000);
    d.field("train_min_sizes", &BatchConfig::train_min_sizes,
            "multi-scale training: one shorter-side size drawn per image (empty: min_size)")
        .range(1, 100000);
    d.field("max_size", &BatchConfig::max_size, "cap of the longer side after resizing").range(1, 100000);
    d.field("hflip", &BatchConfig::hflip, "whole-image horizontal flip with probability 0.5");
    d.field("mean", &BatchConfig::mean, "per-channel RGB mean subtracted from pixels in [0, 1] (3 values)");
    d.field("std", &BatchConfig::std, "per-channel RGB std the pixels are divided by (3 nonzero values)");
    d.field("size_divisible", &BatchConfig::size_divisible, "batch H and W are padded to a multiple of this")
        .range(1, 4096);
    d.field("keep_masks", &BatchConfig::keep_masks, "put instance masks in the targets (off for boxes-only data)");
    d.field("drop_crowd", &BatchConfig::drop_crowd, "drop crowd instances from the targets (else kept with iscrowd = 1)");
    d.field("device", &BatchConfig::device, "where batches are put: cpu, cuda or cuda:N");
    d.field("output", &BatchConfig::output,
            "model: normalised, resized, padded batch tensor; torchvision: list of [0, 1] images at their own sizes")
        .one_of({"model", "torchvision"});
  }
};

/// Throws ConfigError (key "batch.<field>") for sizes <= 0, mean/std not 3
/// values, a zero std, or a device string LibTorch does not parse.
void validate(const BatchConfig& config);

/// Dataset category ids <-> contiguous labels 1..K (0 = background, as
/// torchvision's models expect); ids are ordered by value.
class CategoryMap {
 public:
  CategoryMap() = default;
  /// Throws ConfigError "duplicate_category" when an id repeats.
  explicit CategoryMap(std::vector<int64_t> dataset_ids);

  /// 1..K; throws InputError "unknown_category".
  int64_t to_contiguous(int64_t category_id) const;
  /// The dataset id of label 1..K; throws InputError "unknown_label".
  int64_t to_dataset(int64_t label) const;
  /// K (number of categories, background not counted).
  size_t size() const noexcept { return ids_.size(); }
  /// K + 1, the num_classes of a torchvision detection model.
  int64_t num_classes() const noexcept { return static_cast<int64_t>(ids_.size()) + 1; }
  const std::vector<int64_t>& dataset_ids() const noexcept { return ids_; }

 private:
  std::vector<int64_t> ids_;  // sorted
};

/// One image's training target, in the frame of the resized (unpadded) image.
struct Target {
  at::Tensor boxes;    ///< float32 [n, 4] x1, y1, x2, y2
  at::Tensor labels;   ///< int64 [n], contiguous 1..K
  at::Tensor masks;    ///< uint8 [n, h, w]; undefined when keep_masks is false
  at::Tensor iscrowd;  ///< uint8 [n]
  at::Tensor area;     ///< float32 [n], the annotation's area in the ORIGINAL frame (COCO eval)
  at::Tensor annotation_ids;  ///< int64 [n], Instance::id
  rcnn::Size2 image_size{};     ///< resized {h, w}
  rcnn::Size2 original_size{};  ///< {h, w} of the sample's image
  int64_t image_id = 0;
};

/// A place for one image in a batch tensor allocated before its images are
/// prepared (allocate_batch): prepare() resizes straight into it and
/// collate() hands the whole tensor over instead of copying every image into
/// a new one (the copy was a tenth of the stage's time and the part that
/// slowed down most when two threads share the memory bus).
struct BatchSlot {
  at::Tensor images;  ///< float32 [N, 3, H, W], the whole batch (CPU)
  int64_t index = -1;  ///< this image's position in it
  bool defined() const noexcept { return images.defined() && index >= 0; }
};

/// One sample after prepare(): everything but the padding.
struct PreparedImage {
  at::Tensor image;  ///< float32 [3, h, w], normalised and resized (CPU); a view into `slot` when it has one
  BatchSlot slot;    ///< where `image` lives when prepare() was given a slot it fits
  Target target;
  bool flipped = false;
  int min_size = 0;  ///< the shorter-side size used
  uint64_t seq = 0;
  uint64_t epoch = 0;
};

struct Batch {
  at::Tensor images;  ///< float32 [N, 3, H, W], H and W multiples of size_divisible (output "model")
  std::vector<at::Tensor> image_list;  ///< output "torchvision": float32 [3, h, w] in [0, 1] each; `images` undefined
  std::vector<Target> targets;
  std::vector<rcnn::Size2> image_sizes;  ///< resized {h, w} of each image (ImageList.image_sizes)
  std::vector<uint64_t> seqs;            ///< Sample::seq of each image
  uint64_t index = 0;                    ///< batch number within the epoch
  uint64_t epoch = 0;
};

/// The Rng prepare() uses for `sample`: Rng(seed, {epoch, seq, kBatchRngTag}).
inline Rng batch_rng(uint64_t seed, const Sample& sample) {
  return Rng(seed, {sample.epoch, sample.seq, kBatchRngTag});
}

/// The Rng for the sample at stream position `seq` of `epoch` (Sample::seq,
/// Sample::epoch), for planning before the sample exists.
inline Rng batch_rng(uint64_t seed, uint64_t epoch, uint64_t seq) {
  return Rng(seed, {epoch, seq, kBatchRngTag});
}

/// The resized {h, w} prepare() gives an H x W image with `rng` (the same
/// draws, so the same shorter-side size).
rcnn::Size2 planned_size(int64_t H, int64_t W, const BatchConfig& config, Rng rng);

/// An uninitialised float32 [N, 3, H, W] CPU tensor for images of the
/// given resized sizes, H and W padded as collate() pads them; prepare()
/// fills slot i (pixels and padding). Throws InputError "empty_batch" for
/// no sizes, "bad_image" for a non-positive size.
at::Tensor allocate_batch(const std::vector<rcnn::Size2>& sizes, const BatchConfig& config);

/// Steps 1-5 above for one sample. Throws InputError "bad_image" (empty or
/// unsupported pixels), "unknown_category", "missing_mask" (keep_masks and an
/// instance without a mask), "mask_size_mismatch" (mask not of the image's
/// size); the Location names the image id / annotation id and path.
/// With a `slot` (see BatchSlot) that has room for the resized image, the
/// pixels are resized into it (rcnn::resize_bilinear_into, bit-identical)
/// and the rest of the slot is zeroed; otherwise they get a tensor of their
/// own. At scale 1 (the resized size is the image's) an 8-bit image with a
/// normalisation for which the resize is an identity bit for bit
/// (rcnn::identity_resize_is_exact: the ImageNet statistics are) is
/// converted, normalised and mirrored straight into its slot in one pass,
/// with no float image of its own.
PreparedImage prepare(const Sample& sample, const BatchConfig& config, const CategoryMap& categories,
                      Rng rng, const BatchSlot& slot = {});

/// Output "torchvision": the images (no padding, no stacking) in
/// Batch::image_list. Otherwise pads and stacks prepared images (in the given order) and moves images
/// and targets to config.device. `epoch` is taken from the first image.
/// When the images are slots 0..N-1 of one allocate_batch() tensor of
/// exactly the padded size, that tensor is the batch (no copy); otherwise
/// (a sample of the group was skipped, or a slot was too small) the images
/// are copied into a new one. Either way the values are the same.
/// Throws InputError "empty_batch" for no images.
Batch collate(std::vector<PreparedImage>&& images, const BatchConfig& config, uint64_t index = 0);

}  // namespace pasteflow::stages
