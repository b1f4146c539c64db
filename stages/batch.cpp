// Batching stage (see the header for the steps and their torchvision origin).
#include "pasteflow/stages/batch.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <exception>
#include <string>
#include <utility>

#include <ATen/ATen.h>
#include <c10/core/Device.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pasteflow::stages {

namespace {

Location config_key(const std::string& field) {
  Location where;
  where.key = "batch." + field;
  return where;
}

c10::Device parse_device(const std::string& text) {
  try {
    return c10::Device(text);
  } catch (const std::exception&) {
    throw ConfigError("bad_device", "unknown device \"" + text + "\" (expected cpu, cuda or cuda:N)",
                      config_key("device"));
  }
}

Location sample_where(const Sample& sample, int64_t annotation_id = -1) {
  Location where;
  where.file = sample.path;
  where.record = "image id " + std::to_string(sample.image_id);
  if (annotation_id >= 0) where.record += ", annotation id " + std::to_string(annotation_id);
  return where;
}

}  // namespace

void validate(const BatchConfig& config) {
  if (config.min_size <= 0) throw ConfigError("out_of_range", "min_size must be positive", config_key("min_size"));
  for (int s : config.train_min_sizes) {
    if (s <= 0) {
      throw ConfigError("out_of_range", "train_min_sizes values must be positive", config_key("train_min_sizes"));
    }
  }
  if (config.max_size <= 0) throw ConfigError("out_of_range", "max_size must be positive", config_key("max_size"));
  if (config.size_divisible <= 0) {
    throw ConfigError("out_of_range", "size_divisible must be positive", config_key("size_divisible"));
  }
  if (config.mean.size() != 3) throw ConfigError("bad_normalization", "mean needs 3 values", config_key("mean"));
  if (config.std.size() != 3) throw ConfigError("bad_normalization", "std needs 3 values", config_key("std"));
  for (double v : config.mean) {
    if (!std::isfinite(v)) throw ConfigError("bad_normalization", "mean values must be finite", config_key("mean"));
  }
  for (double v : config.std) {
    if (!std::isfinite(v) || v == 0.0) {
      throw ConfigError("bad_normalization", "std values must be finite and nonzero", config_key("std"));
    }
  }
  parse_device(config.device);
}

// ------------------------------------------------------------- CategoryMap

CategoryMap::CategoryMap(std::vector<int64_t> dataset_ids) : ids_(std::move(dataset_ids)) {
  std::sort(ids_.begin(), ids_.end());
  const auto dup = std::adjacent_find(ids_.begin(), ids_.end());
  if (dup != ids_.end()) {
    throw ConfigError("duplicate_category", "category id " + std::to_string(*dup) + " appears twice");
  }
}

int64_t CategoryMap::to_contiguous(int64_t category_id) const {
  const auto it = std::lower_bound(ids_.begin(), ids_.end(), category_id);
  if (it == ids_.end() || *it != category_id) {
    throw InputError("unknown_category", "category id " + std::to_string(category_id) + " is not in the category map");
  }
  return static_cast<int64_t>(it - ids_.begin()) + 1;
}

int64_t CategoryMap::to_dataset(int64_t label) const {
  if (label < 1 || label > static_cast<int64_t>(ids_.size())) {
    throw InputError("unknown_label", "label " + std::to_string(label) + " is outside 1.." +
                                          std::to_string(ids_.size()));
  }
  return ids_[static_cast<size_t>(label - 1)];
}

// ------------------------------------------------------------------ prepare

PreparedImage prepare(const Sample& sample, const BatchConfig& config, const CategoryMap& categories, Rng rng) {
  if (sample.image.empty()) throw InputError("bad_image", "sample has no pixels", sample_where(sample));
  const int64_t H = sample.image.rows;
  const int64_t W = sample.image.cols;

  // Random choices first, in a fixed order (see the header).
  const bool flip = rng.uniform() < 0.5 && config.hflip;
  int min_size = config.min_size;
  if (!config.train_min_sizes.empty()) min_size = rcnn::choose_min_size(config.train_min_sizes, true, rng);

  // 1. Instances -> boxes (ConvertCocoPolysToMask), labels, masks.
  struct Kept {
    const Instance* inst;
    float box[4];
  };
  std::vector<Kept> kept;
  kept.reserve(sample.instances.size());
  const float fw = static_cast<float>(W);
  const float fh = static_cast<float>(H);
  for (const Instance& inst : sample.instances) {
    if (config.drop_crowd && inst.iscrowd != 0) continue;
    // torch.as_tensor(bbox, dtype=float32); boxes[:, 2:] += boxes[:, :2]; clamp_(0, w / h)
    const float x = static_cast<float>(inst.bbox[0]);
    const float y = static_cast<float>(inst.bbox[1]);
    const float x2 = x + static_cast<float>(inst.bbox[2]);
    const float y2 = y + static_cast<float>(inst.bbox[3]);
    Kept k{&inst, {std::clamp(x, 0.0f, fw), std::clamp(y, 0.0f, fh), std::clamp(x2, 0.0f, fw),
                   std::clamp(y2, 0.0f, fh)}};
    // keep = (boxes[:, 3] > boxes[:, 1]) & (boxes[:, 2] > boxes[:, 0]); NaN fails both.
    if (!(k.box[3] > k.box[1] && k.box[2] > k.box[0])) continue;
    kept.push_back(k);
  }
  const auto n = static_cast<int64_t>(kept.size());

  at::Tensor boxes = at::empty({n, 4}, at::kFloat);
  at::Tensor labels = at::empty({n}, at::kLong);
  at::Tensor iscrowd = at::empty({n}, at::kByte);
  at::Tensor area = at::empty({n}, at::kFloat);
  at::Tensor ann_ids = at::empty({n}, at::kLong);
  {
    float* b = boxes.data_ptr<float>();
    int64_t* l = labels.data_ptr<int64_t>();
    uint8_t* c = iscrowd.data_ptr<uint8_t>();
    float* a = area.data_ptr<float>();
    int64_t* ids = ann_ids.data_ptr<int64_t>();
    for (int64_t i = 0; i < n; ++i) {
      const Kept& k = kept[static_cast<size_t>(i)];
      std::memcpy(b + 4 * i, k.box, sizeof k.box);
      try {
        l[i] = categories.to_contiguous(k.inst->category_id);
      } catch (const InputError& e) {
        throw InputError(e.reason(), e.detail(), sample_where(sample, k.inst->id));
      }
      c[i] = k.inst->iscrowd != 0 ? 1 : 0;
      a[i] = static_cast<float>(k.inst->area);
      ids[i] = k.inst->id;
    }
  }

  at::Tensor masks;
  if (config.keep_masks) {
    masks = at::empty({n, H, W}, at::kByte);  // decode_into writes every pixel
    uint8_t* m = masks.data_ptr<uint8_t>();
    for (int64_t i = 0; i < n; ++i) {
      const Instance& inst = *kept[static_cast<size_t>(i)].inst;
      if (!inst.has_mask) {
        throw InputError("missing_mask", "instance has no mask (set keep_masks: false for boxes-only data)",
                         sample_where(sample, inst.id));
      }
      if (static_cast<int64_t>(inst.mask.h) != H || static_cast<int64_t>(inst.mask.w) != W) {
        throw InputError("mask_size_mismatch",
                         "mask is " + std::to_string(inst.mask.w) + "x" + std::to_string(inst.mask.h) +
                             ", image is " + std::to_string(W) + "x" + std::to_string(H),
                         sample_where(sample, inst.id));
      }
      try {
        mask::decode_into(inst.mask, m + i * H * W, static_cast<size_t>(W));
      } catch (const InputError& e) {
        throw InputError(e.reason(), e.detail(), sample_where(sample, inst.id));
      }
    }
  }

  // 2. RandomHorizontalFlip: boxes[:, [0, 2]] = width - boxes[:, [2, 0]];
  // image and masks .flip(-1). The flip is value-exact, so the pixels are
  // mirrored while they are converted and normalised (steps 3-4), in one pass.
  if (flip) {
    float* b = boxes.data_ptr<float>();
    for (int64_t i = 0; i < n; ++i) {
      const float x1 = b[4 * i + 0];
      const float x2 = b[4 * i + 2];
      b[4 * i + 0] = fw - x2;
      b[4 * i + 2] = fw - x1;
    }
  }

  // 3-4. ToTensor, GeneralizedRCNNTransform.normalize; 5. resize (the masks
  // are mirrored while they are resized, also in one pass).
  at::Tensor image;
  try {
    image = rcnn::normalized_image_tensor(sample.image, config.mean, config.std, flip);
  } catch (const InputError& e) {
    throw InputError(e.reason(), e.detail(), sample_where(sample));
  }
  rcnn::Resized resized = rcnn::resize_image_and_masks(image, static_cast<double>(min_size),
                                                       static_cast<double>(config.max_size), at::Tensor());
  const rcnn::Size2 new_size{resized.image.size(1), resized.image.size(2)};
  if (masks.defined()) resized.masks = rcnn::resize_masks_nearest(masks, new_size, flip);

  PreparedImage out;
  out.image = std::move(resized.image);
  out.flipped = flip;
  out.min_size = min_size;
  out.seq = sample.seq;
  out.epoch = sample.epoch;
  Target& t = out.target;
  t.boxes = rcnn::resize_boxes(boxes, {H, W}, new_size);
  t.labels = std::move(labels);
  t.masks = std::move(resized.masks);
  t.iscrowd = std::move(iscrowd);
  t.area = std::move(area);
  t.annotation_ids = std::move(ann_ids);
  t.image_size = new_size;
  t.original_size = {H, W};
  t.image_id = sample.image_id;
  return out;
}

// ------------------------------------------------------------------ collate

Batch collate(std::vector<PreparedImage>&& images, const BatchConfig& config, uint64_t index) {
  if (images.empty()) throw InputError("empty_batch", "collate: no images");
  const c10::Device device = parse_device(config.device);
  std::vector<at::Tensor> pixels;
  pixels.reserve(images.size());
  for (const PreparedImage& p : images) pixels.push_back(p.image);

  Batch batch;
  batch.index = index;
  batch.epoch = images.front().epoch;
  batch.images = rcnn::batch_images(pixels, config.size_divisible).to(device);
  pixels.clear();
  batch.targets.reserve(images.size());
  for (PreparedImage& p : images) {
    Target t = std::move(p.target);
    t.boxes = t.boxes.to(device);
    t.labels = t.labels.to(device);
    if (t.masks.defined()) t.masks = t.masks.to(device);
    t.iscrowd = t.iscrowd.to(device);
    t.area = t.area.to(device);
    t.annotation_ids = t.annotation_ids.to(device);
    batch.image_sizes.push_back(t.image_size);
    batch.seqs.push_back(p.seq);
    batch.targets.push_back(std::move(t));
  }
  images.clear();
  return batch;
}

}  // namespace pasteflow::stages
