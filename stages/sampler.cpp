#include "pasteflow/stages/sampler.hpp"

#include <algorithm>
#include <cmath>
#include <unordered_map>
#include <unordered_set>
#include <utility>

#include "pasteflow/core/error.hpp"
#include "pasteflow/core/random.hpp"

namespace pasteflow::stages {

namespace {

constexpr double kMaxOversample = 1.0e6;

[[noreturn]] void bad(const std::string& field, const std::string& message) {
  Location where;
  where.key = "sampler." + field;
  throw ConfigError("bad_value", message, where);
}

void validate(const SamplerConfig& c) {
  if (!std::isfinite(c.oversample) || c.oversample < 1.0 || c.oversample > kMaxOversample) {
    bad("oversample", "oversample must be a number in [1, 1e6], got " + std::to_string(c.oversample));
  }
  for (const std::string& cls : c.oversample_classes) {
    if (cls != "small" && cls != "medium" && cls != "large") {
      bad("oversample_classes", "size class must be 'small', 'medium' or 'large', got '" + cls + "'");
    }
  }
  if (c.oversample_by != "presence" && c.oversample_by != "count") {
    bad("oversample_by", "oversample_by must be 'presence' or 'count', got '" + c.oversample_by + "'");
  }
  if (!std::isfinite(c.repeat_threshold) || c.repeat_threshold < 0.0 || c.repeat_threshold > 1.0) {
    bad("repeat_threshold",
        "repeat_threshold must be in [0, 1] (0 = off), got " + std::to_string(c.repeat_threshold));
  }
  if (c.combine != "max" && c.combine != "product") {
    bad("combine", "combine must be 'max' or 'product', got '" + c.combine + "'");
  }
  if (c.world_size == 0) bad("world_size", "world_size must be at least 1");
  if (c.rank >= c.world_size) {
    bad("rank", "rank " + std::to_string(c.rank) + " is not below world_size " +
                    std::to_string(c.world_size));
  }
  if (c.aug_mode != "none" && c.aug_mode != "replace" && c.aug_mode != "aug_oversample" &&
      c.aug_mode != "original_aug") {
    bad("aug_mode", "aug_mode must be 'none', 'replace', 'aug_oversample' or 'original_aug', got '" +
                        c.aug_mode + "'");
  }
  if (!(c.aug_probability >= 0.0 && c.aug_probability <= 1.0)) {
    bad("aug_probability", "aug_probability must be in [0, 1], got " + std::to_string(c.aug_probability));
  }
}

bool oversample_eligible(const SamplerConfig& c, const ImageInfo& info) {
  for (const std::string& cls : c.oversample_classes) {
    if ((cls == "small" && info.has_small) || (cls == "medium" && info.has_medium) ||
        (cls == "large" && info.has_large)) {
      return true;
    }
  }
  return false;
}

/// n(i): objects of the oversample classes; a class flagged present counts
/// at least once (ImageInfo built by hand may set only the flags).
double oversample_count(const SamplerConfig& c, const ImageInfo& info) {
  double n = 0.0;
  for (const std::string& cls : c.oversample_classes) {
    if (cls == "small") n += std::max<uint32_t>(info.num_small, info.has_small ? 1u : 0u);
    if (cls == "medium") n += std::max<uint32_t>(info.num_medium, info.has_medium ? 1u : 0u);
    if (cls == "large") n += std::max<uint32_t>(info.num_large, info.has_large ? 1u : 0u);
  }
  return n;
}

}  // namespace

double Sampler::category_repeat_factor(double threshold, double frequency) {
  if (threshold <= 0.0 || frequency <= 0.0) return 1.0;
  return std::max(1.0, std::sqrt(threshold / frequency));
}

std::vector<double> Sampler::category_repeat_factors(const std::vector<ImageInfo>& infos,
                                                     double threshold) {
  std::vector<double> out(infos.size(), 1.0);
  if (threshold <= 0.0 || infos.empty()) return out;
  // f(c): fraction of images in which category c appears (counted once per image).
  std::unordered_map<int64_t, uint64_t> images_with;
  std::unordered_set<int64_t> seen;
  for (const ImageInfo& info : infos) {
    seen.clear();
    for (int64_t c : info.category_ids) {
      if (seen.insert(c).second) ++images_with[c];
    }
  }
  const double n = static_cast<double>(infos.size());
  std::unordered_map<int64_t, double> factor;
  factor.reserve(images_with.size());
  for (const auto& [c, count] : images_with) {
    factor.emplace(c, category_repeat_factor(threshold, static_cast<double>(count) / n));
  }
  for (std::size_t i = 0; i < infos.size(); ++i) {
    double r = 1.0;
    for (int64_t c : infos[i].category_ids) r = std::max(r, factor.at(c));
    out[i] = r;
  }
  return out;
}

Sampler::Sampler(SamplerConfig config, std::vector<ImageInfo> infos)
    : config_(std::move(config)), infos_(std::move(infos)) {
  validate(config_);
  if (infos_.size() > UINT32_MAX) {
    throw InputError("too_many_images", "the sampler indexes images with 32 bits; got " +
                                            std::to_string(infos_.size()) + " images");
  }
  const std::vector<double> r_cat = category_repeat_factors(infos_, config_.repeat_threshold);
  const bool aug_doubles = config_.aug_mode == "aug_oversample" || config_.aug_mode == "original_aug";
  // oversample_by "count": mean of n over the eligible images (n >= 1).
  const bool by_count = config_.oversample_by == "count";
  double mean_count = 0.0;
  if (by_count) {
    double sum = 0.0;
    std::size_t eligible = 0;
    for (const ImageInfo& info : infos_) {
      const double n = oversample_count(config_, info);
      if (n > 0.0) {
        sum += n;
        ++eligible;
      }
    }
    if (eligible > 0) mean_count = sum / static_cast<double>(eligible);
  }
  repeat_.resize(infos_.size());
  for (std::size_t i = 0; i < infos_.size(); ++i) {
    double r_size = 1.0;
    if (by_count) {
      if (mean_count > 0.0) {
        r_size = 1.0 + (config_.oversample - 1.0) * oversample_count(config_, infos_[i]) / mean_count;
      }
    } else if (oversample_eligible(config_, infos_[i])) {
      r_size = config_.oversample;
    }
    if (aug_doubles && infos_[i].has_small) r_size = std::max(r_size, 2.0);
    repeat_[i] = config_.combine == "product" ? r_size * r_cat[i] : std::max(r_size, r_cat[i]);
  }
}

bool Sampler::augment_eligible(std::size_t image_index) const {
  return config_.aug_mode != "none" && infos_.at(image_index).has_small;
}

std::vector<uint32_t> Sampler::copies(uint64_t seed, uint64_t epoch) const {
  std::vector<uint32_t> n(repeat_.size());
  for (std::size_t i = 0; i < repeat_.size(); ++i) {
    const double whole = std::floor(repeat_[i]);
    const double frac = repeat_[i] - whole;
    uint32_t k = static_cast<uint32_t>(whole);
    if (frac > 0.0) {
      Rng rng(seed, {epoch, static_cast<uint64_t>(i)});
      if (rng.uniform() < frac) ++k;
    }
    n[i] = k;
  }
  return n;
}

bool Sampler::augment_flag(uint64_t seed, uint64_t epoch, uint32_t image, uint32_t copy) const {
  if (!augment_eligible(image)) return false;
  if (config_.aug_mode != "original_aug") return true;  // replace, aug_oversample
  if (config_.aug_probability == 0.5) return (copy % 2) == 1;
  Rng rng(seed, {epoch, image, copy, kAugmentStream});
  return rng.bernoulli(config_.aug_probability);
}

std::size_t Sampler::expanded_size(uint64_t epoch) const {
  std::size_t m = 0;
  for (uint32_t k : copies(config_.seed, epoch)) m += k;
  return m;
}

std::size_t Sampler::epoch_size(uint64_t epoch) const {
  const std::size_t m = expanded_size(epoch);
  const std::size_t w = config_.world_size;
  if (m == 0) return 0;
  return config_.drop_last ? m / w : (m + w - 1) / w;
}

std::vector<SampleTicket> Sampler::epoch(uint64_t epoch) const {
  const uint64_t seed = config_.seed;
  const std::vector<uint32_t> n = copies(seed, epoch);
  struct Entry {
    uint32_t image;
    uint32_t copy;
  };
  std::vector<Entry> list;
  std::size_t m = 0;
  for (uint32_t k : n) m += k;
  list.reserve(m);
  for (uint32_t i = 0; i < n.size(); ++i) {
    for (uint32_t c = 0; c < n[i]; ++c) list.push_back({i, c});
  }
  if (config_.shuffle && m > 1) {
    Rng rng(seed, {epoch});
    for (std::size_t j = m - 1; j > 0; --j) {
      const std::size_t k = static_cast<std::size_t>(rng.below(j + 1));
      std::swap(list[j], list[k]);
    }
  }
  const std::size_t w = config_.world_size;
  const std::size_t shard = epoch_size(epoch);
  std::vector<SampleTicket> out;
  out.reserve(shard);
  for (std::size_t s = 0; s < shard; ++s) {
    const std::size_t pos = s * w + config_.rank;
    const Entry& e = list[pos % m];  // pos >= m only when padding (not with drop_last)
    SampleTicket t;
    t.seq = s;
    t.epoch = epoch;
    t.image_index = e.image;
    t.copy = e.copy;
    t.augment = augment_flag(seed, epoch, e.image, e.copy);
    t.position = pos;
    t.padding = pos >= m;
    out.push_back(t);
  }
  return out;
}

std::vector<SampleTicket> Sampler::materialise_tickets(uint64_t seed) const {
  const std::vector<uint32_t> n = copies(seed, 0);
  std::vector<SampleTicket> out;
  for (uint32_t i = 0; i < n.size(); ++i) {
    for (uint32_t c = 0; c < n[i]; ++c) {
      SampleTicket t;
      t.seq = out.size();
      t.position = out.size();
      t.epoch = 0;
      t.image_index = i;
      t.copy = c;
      t.augment = augment_flag(seed, 0, i, c);
      out.push_back(t);
    }
  }
  return out;
}

std::vector<uint32_t> Sampler::materialise(uint64_t seed) const {
  const std::vector<uint32_t> n = copies(seed, 0);
  std::vector<uint32_t> out;
  for (uint32_t i = 0; i < n.size(); ++i) out.insert(out.end(), n[i], i);
  return out;
}

}  // namespace pasteflow::stages
