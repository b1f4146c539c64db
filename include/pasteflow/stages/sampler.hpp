// Epoch sampler: which images a training epoch visits, how many times, in
// which order, on which rank, and which copies get paste augmentation.
//
// It combines the paper's oversampling of images that contain small objects
// (Kisantal et al., sec. 4-5: 2x/3x/4x, and the augmentation settings
// "replace", "aug+oversample" and "original+aug") with detectron2's
// category-frequency repeat factor (RepeatFactorTrainingSampler). It knows
// nothing about the dataset type: it is given one ImageInfo per image.
//
// Definitions (N images, i an image index, c a copy number):
//
//   oversample-eligible(i)  info.has_<class> for any class in
//                           SamplerConfig::oversample_classes
//   augment-eligible(i)     info.has_small (the paper augments only images
//                           with small objects; other images never are)
//
//   n(i)      = number of non-crowd objects of oversample_classes in image
//               i (ImageInfo::num_small/medium/large; a class flagged
//               present counts at least 1)
//   r_size(i) = oversample_by "presence" (default, the paper's rule):
//                 k = oversample if oversample-eligible(i), else 1;
//               oversample_by "count":
//                 1 + (k - 1) * n(i) / mean of n over the eligible images
//                 (1 when no image is eligible), so the mean factor over the
//                 dataset, 1 + (k - 1) * eligible / N, and the expected
//                 epoch length equal presence's at the same k;
//               in aug_mode "aug_oversample" and "original_aug", an
//               augment-eligible image has r_size(i) = max(r_size(i), 2)
//               (those settings are defined by the paper as 2x).
//   f(c)      = (images whose category_ids contain c) / N
//   r_cat(i)  = max(1, max over c in i of sqrt(t / f(c))) when
//               t = repeat_threshold > 0, else 1 (1 for an image without
//               categories)
//   r(i)      = max(r_size, r_cat)   (combine "max")
//             = r_size * r_cat       (combine "product")
//
// One epoch e (seed s = SamplerConfig::seed):
//   1. copies n_i = floor(r(i)) + [u < frac(r(i))], u = Rng(s, {e, i}).uniform()
//      (stochastic rounding: E[n_i] = r(i); integral r(i) gives exactly r(i)).
//   2. the expanded list holds (i, c) for c in [0, n_i), sorted by (i, c);
//      when shuffle, it is permuted by Fisher-Yates driven by Rng(s, {e}).
//      The list is the same on every rank (ranks share the seed).
//   3. sharding like torch.utils.data.DistributedSampler: with M entries and
//      W = world_size, the list is padded by wrapping around to its start
//      (entry M + j repeats entry j mod M) up to ceil(M / W) * W entries, or,
//      with drop_last, cut to floor(M / W) * W entries. Rank r takes the
//      entries at positions r, r + W, r + 2W, ... so every shard has the same
//      size, the shards are disjoint, and their union is the (padded or cut)
//      list. Padding entries are flagged `padding`.
//   4. augment flag of copy c of image i:
//        not augment-eligible(i) or aug_mode "none"  -> false
//        "replace", "aug_oversample"                  -> true (every copy)
//        "original_aug", aug_probability == 0.5       -> c is odd: copies
//            alternate original (c = 0, 2, ...) / augmented (c = 1, 3, ...),
//            so at 2 copies exactly one original and one augmented (paper)
//        "original_aug", other aug_probability p      -> independent
//            Rng(s, {e, i, c, kAugmentStream}).bernoulli(p) per copy
//      A padding entry keeps the flag of the entry it repeats.
//
// The offline mode the paper used ("we create multiple copies of images with
// small objects offline") is materialise(): the multiset of epoch 0 under the
// given seed, unshuffled and unsharded, which for integral repeat factors is
// exactly r(i) copies of every image with no randomness at all.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>


namespace pasteflow::stages {

/// What the sampler needs to know about one image (computed elsewhere from
/// the annotations: which COCO size classes occur in it, and its categories).
struct ImageInfo {
  bool has_small = false;
  bool has_medium = false;
  bool has_large = false;
  uint32_t num_small = 0;   ///< non-crowd objects of each size class (oversample_by "count")
  uint32_t num_medium = 0;
  uint32_t num_large = 0;
  std::vector<int64_t> category_ids;  ///< categories annotated in the image (duplicates allowed)
};

struct SamplerConfig {
  /// Shared by every rank. Not a config key: the pipeline copies its one
  /// root seed here (PipelineConfig::derive).
  uint64_t seed = 0;
  /// Oversampling factor k (>= 1, fractional allowed) for images containing
  /// at least one object of `oversample_classes`. The paper used 2, 3 and 4.
  double oversample = 1.0;
  std::vector<std::string> oversample_classes = {"small"};  ///< of "small", "medium", "large"
  /// "presence": an eligible image gets factor k (the paper); "count": the
  /// factor grows with the image's number of such objects, with the same
  /// mean as presence (see the header comment).
  std::string oversample_by = "presence";
  /// Threshold t of the category-frequency repeat factor (detectron2 /
  /// LVIS); 0 turns it off.
  double repeat_threshold = 0.0;
  std::string combine = "max";  ///< "max" or "product" of r_size and r_cat
  bool shuffle = true;
  uint64_t rank = 0;        ///< this process's shard (distributed training)
  uint64_t world_size = 1;  ///< number of shards
  /// The paper's augmentation settings: "none", "replace", "aug_oversample",
  /// "original_aug" (see the header comment for the exact rules).
  std::string aug_mode = "none";
  double aug_probability = 0.5;  ///< used by "original_aug" only, in [0, 1]
  /// Cut the epoch to a multiple of world_size instead of padding it.
  bool drop_last = false;

  /// Config keys under "sampler." (seed is not one: see above).
  template <class Describer>
  static void describe(Describer& d) {
    d.field("oversample", &SamplerConfig::oversample,
            "oversampling factor k for images with an object of oversample_classes (paper: 2, 3, 4; fractional: "
            "stochastic rounding per epoch)")
        .range(1.0, 1e6);
    d.field("oversample_classes", &SamplerConfig::oversample_classes,
            "size classes whose presence makes an image oversample-eligible")
        .one_of({"small", "medium", "large"});
    d.field("oversample_by", &SamplerConfig::oversample_by,
            "presence: images with an object of oversample_classes get factor k (paper); count: "
            "r_i = 1 + (k-1) * n_i / mean(n over images with n >= 1), n_i = the image's number of such objects "
            "(same mean factor as presence)")
        .one_of({"presence", "count"});
    d.field("repeat_threshold", &SamplerConfig::repeat_threshold,
            "category-frequency repeat factor threshold t (detectron2 RepeatFactorTrainingSampler); 0 = off")
        .range(0.0, 1.0);
    d.field("combine", &SamplerConfig::combine, "how the size and category repeat factors combine")
        .one_of({"max", "product"});
    d.field("shuffle", &SamplerConfig::shuffle, "shuffle each epoch (seeded; same order on every rank)");
    d.field("rank", &SamplerConfig::rank, "this process's shard, < world_size (distributed training)");
    d.field("world_size", &SamplerConfig::world_size, "number of shards the epoch is split into").min(1);
    d.field("aug_mode", &SamplerConfig::aug_mode,
            "the paper's augmentation setting (Table 4): none, replace (every copy augmented), aug_oversample "
            "(2x, all augmented), original_aug (2x, original + augmented copy)")
        .one_of({"none", "replace", "aug_oversample", "original_aug"});
    d.field("aug_probability", &SamplerConfig::aug_probability,
            "original_aug: probability that a copy is augmented (0.5 = exactly alternating, the paper's best)")
        .range(0.0, 1.0);
    d.field("drop_last", &SamplerConfig::drop_last, "cut the epoch to a multiple of world_size instead of padding it");
  }
};

/// One entry of a rank's epoch: what the source stage turns into a Sample.
struct SampleTicket {
  uint64_t seq = 0;       ///< position in this rank's shard, 0 .. epoch_size - 1 (order key)
  uint64_t epoch = 0;
  uint32_t image_index = 0;
  uint32_t copy = 0;      ///< c: the copy number of this image within the epoch
  bool augment = false;
  uint64_t position = 0;  ///< position in the whole (padded) epoch list: seq * world_size + rank
  bool padding = false;   ///< a wrap-around repeat added to even out the shards
};

class Sampler {
 public:
  /// Id mixed into the per-copy augmentation stream (see header comment).
  static constexpr uint64_t kAugmentStream = 0x5a3d1e5f0a9c2b71ULL;

  /// Validates the config (ConfigError with key "sampler.<field>") and
  /// computes every image's repeat factor.
  Sampler(SamplerConfig config, std::vector<ImageInfo> infos);

  /// This rank's tickets of epoch `epoch`, in order (seq = 0, 1, ...).
  std::vector<SampleTicket> epoch(uint64_t epoch) const;
  /// Number of tickets epoch(epoch) returns (same on every rank).
  std::size_t epoch_size(uint64_t epoch) const;
  /// Entries of the epoch before padding or cutting (sum of n_i).
  std::size_t expanded_size(uint64_t epoch) const;

  /// Offline mode: every image index repeated n_i times (copies adjacent,
  /// images in index order), n_i rounded as in epoch 0 with `seed`; exactly
  /// r(i) copies when r(i) is integral.
  std::vector<uint32_t> materialise(uint64_t seed) const;
  /// The same list as tickets (epoch 0, seq = position = list index), with
  /// the augment flags of epoch 0 under `seed`, for export.
  std::vector<SampleTicket> materialise_tickets(uint64_t seed) const;

  /// r(i) of every image.
  const std::vector<double>& repeat_factors() const noexcept { return repeat_; }
  double repeat_factor(std::size_t image_index) const { return repeat_.at(image_index); }
  bool augment_eligible(std::size_t image_index) const;
  const SamplerConfig& config() const noexcept { return config_; }
  std::size_t num_images() const noexcept { return infos_.size(); }

  /// detectron2's category-level factor r(c) = max(1, sqrt(t / f)).
  static double category_repeat_factor(double threshold, double frequency);
  /// r_cat(i) of every image under threshold t (1 everywhere when t == 0).
  static std::vector<double> category_repeat_factors(const std::vector<ImageInfo>& infos,
                                                     double threshold);

 private:
  /// n_i of every image for `epoch` under `seed`.
  std::vector<uint32_t> copies(uint64_t seed, uint64_t epoch) const;
  bool augment_flag(uint64_t seed, uint64_t epoch, uint32_t image, uint32_t copy) const;

  SamplerConfig config_;
  std::vector<ImageInfo> infos_;
  std::vector<double> repeat_;
};

}  // namespace pasteflow::stages
