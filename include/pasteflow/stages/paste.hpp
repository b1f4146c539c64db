// The copy-paste augmentation of Kisantal et al. ("Augmentation for small
// object detection", sec. 4-6): extract -> transform -> placement ->
// composite, on one sample, with the paper's three strategies.
//
// Whether a sample is augmented at all is not decided here: the sampler
// (stages/sampler.hpp) sets Sample::augment per copy according to the
// paper's settings "replace", "aug_oversample" and "original_aug" (the last
// with probability p = 0.5 by default, the paper's best). Paster leaves a
// sample with augment == false untouched.
//
// Strategies (sec. 5.3; E = the eligible objects of the extract stage, in
// instance order; N = copies):
//   "one":     one object drawn uniformly from E, pasted N times (Table 5);
//   "several": min(num_objects, |E|) distinct objects drawn uniformly
//              without replacement, each pasted N times (Table 6); with
//              fewer than num_objects eligible objects, all of them are used;
//   "all":     every object of E, N times each (Table 7; the paper's
//              default setting, sec. 5.2, is "all" with N = 1).
// No eligible object: nothing happens (requested stays 0).
// Paste order: round-robin, copy 0 of every chosen object, then copy 1, ...
// so that when the image fills up every object got its earlier copies.
// Sources are always cut from the sample as it was before this augmentation
// (pasted copies are never copied again).
//
// Randomness (independent of threads and of other samples): with
// s = PasteConfig::seed, e = sample.epoch, q = sample.seq and j the paste's
// position in the paste order,
//   choice of objects:   Rng(s, {e, q, kChooseStream})
//   transform of paste j: Rng(s, {e, q, kTransformStream, j})
//   placement of paste j: Rng(s, {e, q, kPlaceStream, j})
// so a paste's transform and position do not depend on how many tries
// earlier pastes needed.
//
// Counters (Sample::paste, accumulated): requested += pastes in the order;
// a paste is placed (new annotation) or failed (transformed mask empty, did
// not fit between the borders, or max_tries positions all overlapped);
// tries += positions drawn; dropped_occluded += objects removed by
// allow_overlap. The j-th paste's annotation id is
// pasted_annotation_id(composite, seq, j) (composite.hpp).
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pasteflow/core/random.hpp"
#include "pasteflow/stages/composite.hpp"
#include "pasteflow/stages/extract.hpp"
#include "pasteflow/stages/placement.hpp"
#include "pasteflow/stages/sample.hpp"
#include "pasteflow/stages/transform.hpp"

namespace pasteflow::stages {

struct PasteConfig {
  std::string strategy = "all";  ///< "one", "several" or "all"
  int copies = 1;                ///< N: pastes per chosen object (>= 1)
  int num_objects = 2;           ///< k of "several" (>= 1)
  /// Not a config key: the pipeline copies its root seed here (PipelineConfig::derive).
  uint64_t seed = 0;
  ExtractConfig extract;
  TransformConfig transform;
  PlacementConfig placement;
  CompositeConfig composite;

  /// Throws ConfigError ("augment.<field>" / "augment.<stage>.<field>").
  void validate() const;

  /// Config keys under "augment." (seed is not one).
  template <class Describer>
  static void describe(Describer& d) {
    d.field("strategy", &PasteConfig::strategy,
            "one: one object pasted `copies` times (Table 5); several: num_objects objects (Table 6); all: every "
            "eligible object (Table 7)")
        .one_of({"one", "several", "all"});
    d.field("copies", &PasteConfig::copies, "pastes of each chosen object (the tables' 1x..5x)").range(1, 1000);
    d.field("num_objects", &PasteConfig::num_objects, "strategy several: distinct objects chosen per image")
        .range(1, 1000);
    d.field("extract", &PasteConfig::extract, "which objects may be copied");
    d.field("transform", &PasteConfig::transform, "random scale / rotation / flip of each pasted object");
    d.field("placement", &PasteConfig::placement, "where pasted objects may go");
    d.field("composite", &PasteConfig::composite, "how pasted pixels are written");
  }
};

class Paster {
 public:
  static constexpr uint64_t kChooseStream = 0x70a57e01c4005e01ULL;
  static constexpr uint64_t kTransformStream = 0x70a57e027a4f0002ULL;
  static constexpr uint64_t kPlaceStream = 0x70a57e03b1ace003ULL;

  /// Validates the config.
  explicit Paster(PasteConfig config = {});

  /// Augments `sample` in place when sample.augment is true.
  void operator()(Sample& sample) const;
  /// By-value form for pipelines.
  Sample operator()(Sample&& sample) const {
    (*this)(static_cast<Sample&>(sample));
    return std::move(sample);
  }

  /// The paste order for `num_eligible` eligible objects: positions into
  /// the eligible list, per the strategy (see the header comment).
  std::vector<uint32_t> choose(uint32_t num_eligible, Rng& rng) const;

  const PasteConfig& config() const noexcept { return config_; }

 private:
  enum class Strategy { kOne, kSeveral, kAll };
  PasteConfig config_;
  Strategy strategy_ = Strategy::kAll;
  Extractor extractor_;
  Transformer transformer_;
  Placer placer_;
  Compositor compositor_;
};

}  // namespace pasteflow::stages
