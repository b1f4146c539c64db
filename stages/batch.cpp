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

/// prepare()'s random choices, in their draw order (see the header).
struct Choice {
  bool flip = false;
  int min_size = 0;
};

Choice draw_choice(const BatchConfig& config, Rng& rng) {
  Choice c;
  c.flip = rng.uniform() < 0.5 && config.hflip;
  c.min_size = config.min_size;
  if (!config.train_min_sizes.empty()) c.min_size = rcnn::choose_min_size(config.train_min_sizes, true, rng);
  return c;
}

/// Whether the config asks for torchvision's input (a list of [0, 1] images, no resize).
bool torchvision_output(const BatchConfig& config) { return config.output == "torchvision"; }

/// Whether `slot` is a CPU float [N, 3, H, W] place with room for an image of `size`.
bool fits(const BatchSlot& slot, const rcnn::Size2& size) {
  if (!slot.defined()) return false;
  const at::Tensor& t = slot.images;
  return t.is_cpu() && t.scalar_type() == at::kFloat && t.dim() == 4 && slot.index < t.size(0) && t.size(1) == 3 &&
         size[0] > 0 && size[1] > 0 && t.size(2) >= size[0] && t.size(3) >= size[1];
}

/// Whether resizing `image` to `size` is an identity bit for bit (scale 1,
/// an 8-bit image, and a normalisation rcnn::identity_resize_is_exact
/// accepts), so the normalised pixels need no interpolation.
bool identity_resize(const cv::Mat& image, const rcnn::Size2& size, const BatchConfig& config) {
  return size[0] == image.rows && size[1] == image.cols && image.depth() == CV_8U &&
         (image.channels() == 1 || image.channels() == 3) && rcnn::identity_resize_is_exact(config.mean, config.std);
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
  if (config.output != "model" && config.output != "torchvision") {
    throw ConfigError("bad_choice", "output must be model or torchvision, not '" + config.output + "'",
                      config_key("output"));
  }
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

rcnn::Size2 planned_size(int64_t H, int64_t W, const BatchConfig& config, Rng rng) {
  const Choice choice = draw_choice(config, rng);
  return rcnn::resized_size(H, W, static_cast<double>(choice.min_size), static_cast<double>(config.max_size));
}

at::Tensor allocate_batch(const std::vector<rcnn::Size2>& sizes, const BatchConfig& config) {
  if (sizes.empty()) throw InputError("empty_batch", "allocate_batch: no images");
  int64_t max_h = 0;
  int64_t max_w = 0;
  for (const rcnn::Size2& s : sizes) {
    if (s[0] <= 0 || s[1] <= 0) throw InputError("bad_image", "allocate_batch: image sizes must be positive");
    max_h = std::max(max_h, s[0]);
    max_w = std::max(max_w, s[1]);
  }
  const rcnn::Size2 padded = rcnn::padded_size(max_h, max_w, config.size_divisible);
  return at::empty({static_cast<int64_t>(sizes.size()), 3, padded[0], padded[1]}, at::kFloat);
}

PreparedImage prepare(const Sample& sample, const BatchConfig& config, const CategoryMap& categories, Rng rng,
                      const BatchSlot& slot) {
  if (sample.image.empty()) throw InputError("bad_image", "sample has no pixels", sample_where(sample));
  const int64_t H = sample.image.rows;
  const int64_t W = sample.image.cols;

  // Random choices first, in a fixed order (see the header).
  const Choice choice = draw_choice(config, rng);
  const bool flip = choice.flip;
  const int min_size = choice.min_size;

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

  PreparedImage out;
  out.flipped = flip;
  out.min_size = min_size;
  out.seq = sample.seq;
  out.epoch = sample.epoch;
  Target& t = out.target;
  t.labels = std::move(labels);
  t.iscrowd = std::move(iscrowd);
  t.area = std::move(area);
  t.annotation_ids = std::move(ann_ids);
  t.original_size = {H, W};
  t.image_id = sample.image_id;

  if (torchvision_output(config)) {
    // 3. ToTensor / ConvertImageDtype only: [0, 1] (mean 0, std 1 is x / 255
    // or x / 65535 exactly), mirrored in the same pass; no resize.
    try {
      out.image = rcnn::normalized_image_tensor(sample.image, {0.0, 0.0, 0.0}, {1.0, 1.0, 1.0}, flip);
    } catch (const InputError& e) {
      throw InputError(e.reason(), e.detail(), sample_where(sample));
    }
    t.boxes = std::move(boxes);
    t.masks = masks.defined() && flip ? masks.flip(-1) : std::move(masks);
    t.image_size = {H, W};
    return out;
  }

  // 3-4. ToTensor, GeneralizedRCNNTransform.normalize; 5. resize (the masks
  // are mirrored while they are resized, also in one pass).
  rcnn::Size2 new_size = rcnn::resized_size(H, W, static_cast<double>(min_size), static_cast<double>(config.max_size));
  try {
    if (fits(slot, new_size)) {
      at::Tensor place = slot.images.select(0, slot.index);
      out.image = place.narrow(1, 0, new_size[0]).narrow(2, 0, new_size[1]);
      if (identity_resize(sample.image, new_size, config)) {
        // Scale 1: the resize is an identity (rcnn::identity_resize_is_exact),
        // so the normalised pixels go straight into the batch, in one pass.
        rcnn::normalized_image_into(sample.image, config.mean, config.std, flip, out.image, /*streaming=*/true);
      } else {
        rcnn::resize_bilinear_into(rcnn::normalized_image_tensor(sample.image, config.mean, config.std, flip),
                                   out.image);
      }
      // The padding collate() would have zeroed: rows below, then the columns right of the image.
      if (place.size(1) > new_size[0]) place.narrow(1, new_size[0], place.size(1) - new_size[0]).zero_();
      if (place.size(2) > new_size[1]) {
        place.narrow(1, 0, new_size[0]).narrow(2, new_size[1], place.size(2) - new_size[1]).zero_();
      }
      out.slot = slot;
    } else {
      out.image = rcnn::resize_image_and_masks(rcnn::normalized_image_tensor(sample.image, config.mean, config.std, flip),
                                               static_cast<double>(min_size),
                                               static_cast<double>(config.max_size), at::Tensor())
                      .image;
      new_size = {out.image.size(1), out.image.size(2)};
    }
  } catch (const InputError& e) {
    throw InputError(e.reason(), e.detail(), sample_where(sample));
  }
  at::Tensor resized_masks;
  if (masks.defined()) {
    // Nearest at scale 1 without a flip takes every source pixel in place
    // (nearest_idx is the identity at equal sizes): the decoded masks are the result.
    const bool same = new_size[0] == H && new_size[1] == W && !flip;
    resized_masks = same ? masks : rcnn::resize_masks_nearest(masks, new_size, flip);
  }

  t.boxes = rcnn::resize_boxes(boxes, {H, W}, new_size);
  t.masks = std::move(resized_masks);
  t.image_size = new_size;
  return out;
}

// ------------------------------------------------------------------ collate

namespace {

/// Whether `images` are slots 0..N-1 of one allocate_batch() tensor that has
/// exactly the shape batch_images would give them (so it can be the batch).
bool filled_batch(const std::vector<PreparedImage>& images, const BatchConfig& config) {
  const at::Tensor& buffer = images.front().slot.images;
  if (!buffer.defined() || buffer.dim() != 4 || buffer.size(0) != static_cast<int64_t>(images.size())) return false;
  int64_t max_h = 0;
  int64_t max_w = 0;
  for (size_t i = 0; i < images.size(); ++i) {
    const PreparedImage& p = images[i];
    if (!p.slot.images.is_same(buffer) || p.slot.index != static_cast<int64_t>(i) || p.image.size(0) != buffer.size(1)) {
      return false;
    }
    max_h = std::max(max_h, p.image.size(1));
    max_w = std::max(max_w, p.image.size(2));
  }
  const rcnn::Size2 padded = rcnn::padded_size(max_h, max_w, config.size_divisible);
  return buffer.size(2) == padded[0] && buffer.size(3) == padded[1];
}

}  // namespace

Batch collate(std::vector<PreparedImage>&& images, const BatchConfig& config, uint64_t index) {
  if (images.empty()) throw InputError("empty_batch", "collate: no images");
  const c10::Device device = parse_device(config.device);
  std::vector<at::Tensor> pixels;
  pixels.reserve(images.size());
  for (const PreparedImage& p : images) pixels.push_back(p.image);

  Batch batch;
  batch.index = index;
  batch.epoch = images.front().epoch;
  if (torchvision_output(config)) {
    for (at::Tensor& p : pixels) batch.image_list.push_back(p.to(device));
  } else {
    batch.images = (filled_batch(images, config) ? images.front().slot.images
                                              : rcnn::batch_images(pixels, config.size_divisible))
                       .to(device);
  }
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
