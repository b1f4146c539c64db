#include "pasteflow/stages/paste.hpp"

#include <numeric>
#include <string>

#include "pasteflow/core/error.hpp"

namespace pasteflow::stages {

namespace {

ConfigError paste_error(const std::string& field, const std::string& message) {
  Location where;
  where.key = "augment." + field;
  return ConfigError("bad_config", message, where);
}

}  // namespace

void PasteConfig::validate() const {
  if (strategy != "one" && strategy != "several" && strategy != "all")
    throw paste_error("strategy", "must be \"one\", \"several\" or \"all\", not '" + strategy + "'");
  if (copies < 1) throw paste_error("copies", "must be >= 1");
  if (num_objects < 1) throw paste_error("num_objects", "must be >= 1");
  extract.validate();
  transform.validate();
  placement.validate();
  composite.validate();
}

Paster::Paster(PasteConfig config)
    : config_((config.validate(), std::move(config))),
      extractor_(config_.extract),
      transformer_(config_.transform),
      placer_(config_.placement),
      compositor_(config_.composite) {
  if (config_.strategy == "one") strategy_ = Strategy::kOne;
  else if (config_.strategy == "several") strategy_ = Strategy::kSeveral;
  else strategy_ = Strategy::kAll;
}

std::vector<uint32_t> Paster::choose(uint32_t num_eligible, Rng& rng) const {
  std::vector<uint32_t> objects;
  if (num_eligible == 0) return objects;
  switch (strategy_) {
    case Strategy::kOne:
      objects.push_back(static_cast<uint32_t>(rng.below(num_eligible)));
      break;
    case Strategy::kSeveral: {
      // Partial Fisher-Yates: the first k of a uniform random permutation.
      std::vector<uint32_t> all(num_eligible);
      std::iota(all.begin(), all.end(), 0u);
      const uint32_t k = std::min<uint32_t>(num_eligible, static_cast<uint32_t>(config_.num_objects));
      for (uint32_t i = 0; i < k; ++i) {
        const uint32_t j = i + static_cast<uint32_t>(rng.below(num_eligible - i));
        std::swap(all[i], all[j]);
      }
      objects.assign(all.begin(), all.begin() + k);
      break;
    }
    case Strategy::kAll:
      objects.resize(num_eligible);
      std::iota(objects.begin(), objects.end(), 0u);
      break;
  }
  std::vector<uint32_t> order;
  order.reserve(objects.size() * static_cast<size_t>(config_.copies));
  for (int c = 0; c < config_.copies; ++c) order.insert(order.end(), objects.begin(), objects.end());
  return order;
}

void Paster::operator()(Sample& sample) const {
  if (!sample.augment) return;
  const std::vector<uint32_t> eligible = extractor_.eligible(sample);
  Rng choose_rng(config_.seed, {sample.epoch, sample.seq, kChooseStream});
  const std::vector<uint32_t> order = choose(static_cast<uint32_t>(eligible.size()), choose_rng);
  if (order.empty()) return;
  if (order.size() > config_.composite.ids_per_sample)
    throw Error("paste_id_overflow", std::to_string(order.size()) + " pastes in one sample exceed ids_per_sample " +
                                         std::to_string(config_.composite.ids_per_sample));

  // Cut every chosen object out of the untouched image first.
  std::vector<ObjectPatch> sources(eligible.size());
  std::vector<bool> cut(eligible.size(), false);
  for (uint32_t e : order) {
    if (!cut[e]) {
      sources[e] = extractor_.extract(sample, eligible[e]);
      cut[e] = true;
    }
  }

  const bool overlap = config_.placement.allow_overlap;
  const int width = sample.image.cols, height = sample.image.rows;
  Occupancy occupancy = overlap ? Occupancy(0, 0) : Occupancy::of(sample);
  std::vector<uint64_t> reference;
  if (overlap) {
    reference.reserve(sample.instances.size() + order.size());
    for (const Instance& inst : sample.instances) reference.push_back(occupied_area(inst, width, height));
  }

  sample.paste.requested += static_cast<uint32_t>(order.size());
  for (size_t j = 0; j < order.size(); ++j) {
    Rng transform_rng(config_.seed, {sample.epoch, sample.seq, kTransformStream, j});
    const ObjectPatch patch = transformer_(sources[order[j]], transform_rng);
    if (patch.empty()) {
      ++sample.paste.failed;
      continue;
    }
    Rng place_rng(config_.seed, {sample.epoch, sample.seq, kPlaceStream, j});
    const PlacementResult where = overlap ? placer_.find(patch.mask, cv::Size(width, height), place_rng)
                                          : placer_.find(patch.mask, occupancy, place_rng);
    sample.paste.tries += where.tries;
    if (!where.placed) {
      ++sample.paste.failed;
      continue;
    }
    if (overlap) {
      const mask::Rle placed =
          placed_rle(patch.mask, where.tl, static_cast<uint32_t>(height), static_cast<uint32_t>(width));
      sample.paste.dropped_occluded += placer_.occlude(sample.instances, reference, placed);
    }
    const Instance& added = compositor_(sample, patch, where.tl, static_cast<uint32_t>(j));
    if (overlap) reference.push_back(occupied_area(added, width, height));
    else occupancy.add(patch.mask, where.tl);
    ++sample.paste.placed;
  }
}

}  // namespace pasteflow::stages
