// The message that flows through the pipeline: one training sample (an image
// and its instances) that owns all of its data. Stages take a Sample by value
// or reference and return it transformed; nothing in here knows about TBB.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "pasteflow/mask/rle.hpp"

namespace pasteflow::stages {

/// One object instance of a sample, in the sample's current pixel frame.
struct Instance {
  int64_t id = 0;           ///< annotation id (pasted copies get new unique ids)
  int64_t category_id = 0;  ///< the dataset's own category id
  uint8_t iscrowd = 0;
  bool has_mask = false;     ///< false for boxes-only datasets
  mask::Rle mask;            ///< full-frame mask (h, w of the image) when has_mask
  std::array<double, 4> bbox{};  ///< [x, y, w, h]; recomputed from `mask` after any geometric change
  double area = 0.0;         ///< the annotation's area field; for pasted objects the mask's pixel area
  uint8_t size_class = 0;    ///< stages::SizeClass of the source annotation
  bool pasted = false;       ///< created by copy-paste augmentation
  int64_t source_id = -1;    ///< for pasted instances: id of the annotation it was copied from
};

/// Counters a sample carries out of the augmentation stages.
struct PasteCounters {
  uint32_t requested = 0;  ///< pastes the strategy asked for
  uint32_t placed = 0;     ///< pastes that found a valid position
  uint32_t failed = 0;     ///< pastes that gave up after max_tries
  uint32_t tries = 0;      ///< placement attempts in total
  uint32_t dropped_occluded = 0;  ///< existing objects removed as occluded (allow_overlap)
};

/// A training sample. `seq` is its position in the epoch's stream: the
/// pipeline restores order by it, and every random choice made for this
/// sample is drawn from Rng(seed, {epoch, seq, stage-specific id}).
struct Sample {
  uint64_t seq = 0;
  uint64_t epoch = 0;
  uint32_t image_index = 0;  ///< into the dataset's images
  int64_t image_id = 0;
  uint32_t copy = 0;         ///< k-th copy of this image within the epoch (oversampling)
  bool augment = false;      ///< the sampler decided this copy gets paste augmentation
  std::string path;          ///< image file it was decoded from
  cv::Mat image;             ///< pixels, RGB (3 channels) or grey; 8 or 16 bit; owned (clone before sharing)
  std::vector<Instance> instances;
  PasteCounters paste;
};

}  // namespace pasteflow::stages
