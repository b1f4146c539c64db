// torchvision 0.14 resize / anchors / IoU / Matcher in float32. This file is
// compiled with -ffp-contract=off so that no multiply-add is fused: every
// float operation rounds exactly like the corresponding torch CPU op.
#include "pasteflow/stats/anchors.hpp"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <string>

#include "pasteflow/core/error.hpp"

namespace pasteflow::stats {

std::vector<float> box_iou_matrix(Span<const BoxF> boxes1, Span<const BoxF> boxes2) {
  std::vector<float> out(boxes1.size() * boxes2.size());
  for (size_t i = 0; i < boxes1.size(); ++i) {
    float* row = out.data() + i * boxes2.size();
    for (size_t j = 0; j < boxes2.size(); ++j) row[j] = box_iou(boxes1[i], boxes2[j]);
  }
  return out;
}

// --------------------------------------------------------------- resize

int64_t pad_to_multiple(int64_t size, int64_t divisible) {
  if (divisible <= 0) throw ConfigError("bad_divisor", "size_divisible must be positive");
  // torchvision: int(math.ceil(float(size) / stride) * stride)
  return static_cast<int64_t>(std::ceil(static_cast<double>(size) / static_cast<double>(divisible))) *
         divisible;
}

ResizeInfo detection_resize(int64_t height, int64_t width, const ResizeConfig& config) {
  if (!(config.min_size > 0.0) || !(config.max_size > 0.0)) {
    throw ConfigError("bad_resize", "resize min_size and max_size must be positive");
  }
  if (height <= 0 || width <= 0) {
    throw InputError("bad_image_size", "image size must be positive, got " + std::to_string(height) + "x" +
                                           std::to_string(width));
  }
  ResizeInfo r;
  const double min_side = static_cast<double>(std::min(height, width));
  const double max_side = static_cast<double>(std::max(height, width));
  // _resize_image_and_masks: scale = min(self_min_size / min_size, self_max_size / max_size)
  if (config.arithmetic == ResizeArithmetic::kDouble) {
    r.scale = std::min(config.min_size / min_side, config.max_size / max_side);
  } else {
    // float32 tensors; Tensor.__rtruediv__ is reciprocal() * other
    const float a = (1.0f / static_cast<float>(min_side)) * static_cast<float>(config.min_size);
    const float b = (1.0f / static_cast<float>(max_side)) * static_cast<float>(config.max_size);
    r.scale = static_cast<double>(std::min(a, b));  // scale.item()
  }
  // F.interpolate(scale_factor=scale, recompute_scale_factor=True): floor(size * scale) in double
  r.height = static_cast<int64_t>(std::floor(static_cast<double>(height) * r.scale));
  r.width = static_cast<int64_t>(std::floor(static_cast<double>(width) * r.scale));
  // resize_boxes: torch.tensor(new, float32) / torch.tensor(orig, float32)
  r.ratio_h = static_cast<float>(r.height) / static_cast<float>(height);
  r.ratio_w = static_cast<float>(r.width) / static_cast<float>(width);
  r.padded_height = pad_to_multiple(r.height, config.size_divisible);
  r.padded_width = pad_to_multiple(r.width, config.size_divisible);
  return r;
}

BoxF coco_bbox_to_xyxy(double x, double y, double w, double h) {
  return BoxF{static_cast<float>(x), static_cast<float>(y), static_cast<float>(x + w), static_cast<float>(y + h)};
}

BoxF coco_bbox_to_xyxy(const double (&xywh)[4]) { return coco_bbox_to_xyxy(xywh[0], xywh[1], xywh[2], xywh[3]); }

// --------------------------------------------------------------- anchors

AnchorGeneratorConfig AnchorGeneratorConfig::mask_rcnn_fpn() {
  AnchorGeneratorConfig c;
  for (double s : {32.0, 64.0, 128.0, 256.0, 512.0}) {
    c.sizes.push_back({s});
    c.aspect_ratios.push_back({0.5, 1.0, 2.0});
  }
  return c;
}

void AnchorGeneratorConfig::validate() const {
  if (sizes.empty()) throw ConfigError("bad_anchors", "anchor generator needs at least one level");
  if (sizes.size() != aspect_ratios.size()) {
    throw ConfigError("bad_anchors", "anchor sizes have " + std::to_string(sizes.size()) +
                                         " levels but aspect ratios " + std::to_string(aspect_ratios.size()));
  }
  for (size_t l = 0; l < sizes.size(); ++l) {
    if (sizes[l].empty() || aspect_ratios[l].empty()) {
      throw ConfigError("bad_anchors", "anchor level " + std::to_string(l) + " has no sizes or no ratios");
    }
    for (double v : sizes[l]) {
      if (!(v > 0.0)) throw ConfigError("bad_anchors", "anchor sizes must be positive");
    }
    for (double v : aspect_ratios[l]) {
      if (!(v > 0.0)) throw ConfigError("bad_anchors", "anchor aspect ratios must be positive");
    }
  }
}

std::vector<BoxF> cell_anchors(const std::vector<double>& sizes, const std::vector<double>& aspect_ratios) {
  std::vector<BoxF> out;
  out.reserve(sizes.size() * aspect_ratios.size());
  for (double ratio : aspect_ratios) {
    const float h_ratio = std::sqrt(static_cast<float>(ratio));  // torch.sqrt on float32
    const float w_ratio = 1.0f / h_ratio;
    for (double size : sizes) {
      const float scale = static_cast<float>(size);
      const float ws = w_ratio * scale;
      const float hs = h_ratio * scale;
      // torch.stack([-ws, -hs, ws, hs]) / 2, then .round() (half to even)
      out.push_back(BoxF{std::nearbyint(-ws / 2.0f), std::nearbyint(-hs / 2.0f), std::nearbyint(ws / 2.0f),
                         std::nearbyint(hs / 2.0f)});
    }
  }
  return out;
}

namespace {
int64_t ceil_half(int64_t v) { return (v + 1) / 2; }
}  // namespace

std::vector<GridSize> fpn_grid_sizes(int64_t image_height, int64_t image_width) {
  if (image_height <= 0 || image_width <= 0) {
    throw InputError("bad_image_size", "feature sizes need a positive image size");
  }
  // conv1 (7x7, stride 2, pad 3) and maxpool (3x3, stride 2, pad 1) -> C2;
  // stride-2 3x3 convs (pad 1) -> C3..C5: each output is ceil(in / 2).
  int64_t h = ceil_half(ceil_half(image_height));
  int64_t w = ceil_half(ceil_half(image_width));
  std::vector<GridSize> out;
  for (int level = 0; level < 4; ++level) {
    out.push_back(GridSize{h, w});
    h = ceil_half(h);
    w = ceil_half(w);
  }
  out.push_back(GridSize{ceil_half(out.back().height), ceil_half(out.back().width)});  // P6
  return out;
}

AnchorGrid::AnchorGrid(const AnchorGeneratorConfig& config, int64_t image_height, int64_t image_width,
                       const std::vector<GridSize>& grids) {
  config.validate();
  if (grids.size() != config.num_levels()) {
    throw ConfigError("bad_anchors", "anchor generator has " + std::to_string(config.num_levels()) +
                                         " levels but " + std::to_string(grids.size()) + " feature maps were given");
  }
  levels_.reserve(grids.size());
  for (size_t l = 0; l < grids.size(); ++l) {
    const GridSize& g = grids[l];
    if (g.height <= 0 || g.width <= 0) throw ConfigError("bad_anchors", "feature map sizes must be positive");
    AnchorLevel level;
    level.grid = g;
    level.stride_h = image_height / g.height;  // torchvision: image_size // grid_size
    level.stride_w = image_width / g.width;
    level.cell = cell_anchors(config.sizes[l], config.aspect_ratios[l]);
    level.offset = size_;
    size_ += level.count();
    levels_.push_back(std::move(level));
  }
}

BoxF AnchorGrid::operator[](size_t index) const {
  for (const AnchorLevel& level : levels_) {
    if (index < level.offset + level.count()) {
      const size_t local = index - level.offset;
      const size_t nc = level.cell.size();
      const BoxF& c = level.cell[local % nc];
      const int64_t pos = static_cast<int64_t>(local / nc);
      const float sx = static_cast<float>((pos % level.grid.width) * level.stride_w);
      const float sy = static_cast<float>((pos / level.grid.width) * level.stride_h);
      return BoxF{sx + c.x1, sy + c.y1, sx + c.x2, sy + c.y2};
    }
  }
  throw Error("out_of_range", "anchor index " + std::to_string(index) + " >= " + std::to_string(size_));
}

std::vector<BoxF> AnchorGrid::boxes() const {
  std::vector<BoxF> out;
  out.reserve(size_);
  for (const AnchorLevel& level : levels_) {
    for (int64_t y = 0; y < level.grid.height; ++y) {
      const float sy = static_cast<float>(y * level.stride_h);
      for (int64_t x = 0; x < level.grid.width; ++x) {
        const float sx = static_cast<float>(x * level.stride_w);
        for (const BoxF& c : level.cell) out.push_back(BoxF{sx + c.x1, sy + c.y1, sx + c.x2, sy + c.y2});
      }
    }
  }
  return out;
}

std::vector<BoxF> generate_anchors(const AnchorGeneratorConfig& config, int64_t image_height, int64_t image_width,
                                   const std::vector<GridSize>& grids) {
  return AnchorGrid(config, image_height, image_width, grids).boxes();
}

// --------------------------------------------------------------- matcher

Matcher::Matcher(MatcherConfig config)
    : config_(config),
      high_(static_cast<float>(config.high_threshold)),
      low_(static_cast<float>(config.low_threshold)) {
  if (!(config.low_threshold <= config.high_threshold)) {
    throw ConfigError("bad_matcher", "matcher low_threshold must be <= high_threshold");
  }
}

std::vector<int32_t> Matcher::operator()(Span<const float> quality, size_t num_gt, size_t num_pred) const {
  if (quality.size() != num_gt * num_pred) {
    throw Error("bad_shape", "quality matrix has " + std::to_string(quality.size()) + " values, expected " +
                                 std::to_string(num_gt) + "x" + std::to_string(num_pred));
  }
  std::vector<int32_t> matches(num_pred, kBelowLowThreshold);
  if (num_gt == 0) return matches;
  // max(dim=0): first index of the maximum (torch CPU updates on !(v <= max)).
  std::vector<float> vals(quality.data(), quality.data() + num_pred);
  std::vector<int32_t> all(num_pred, 0);
  for (size_t g = 1; g < num_gt; ++g) {
    const float* row = quality.data() + g * num_pred;
    for (size_t p = 0; p < num_pred; ++p) {
      if (!(row[p] <= vals[p]) && !std::isnan(vals[p])) {
        vals[p] = row[p];
        all[p] = static_cast<int32_t>(g);
      }
    }
  }
  for (size_t p = 0; p < num_pred; ++p) {
    if (vals[p] < low_) {
      matches[p] = kBelowLowThreshold;
    } else if (vals[p] >= low_ && vals[p] < high_) {
      matches[p] = kBetweenThresholds;
    } else {
      matches[p] = all[p];
    }
  }
  if (config_.allow_low_quality_matches) {
    for (size_t g = 0; g < num_gt; ++g) {
      const float* row = quality.data() + g * num_pred;
      float best = row[0];
      for (size_t p = 1; p < num_pred; ++p) {
        if (!(row[p] <= best) && !std::isnan(best)) best = row[p];
      }
      for (size_t p = 0; p < num_pred; ++p) {
        if (row[p] == best) matches[p] = all[p];
      }
    }
  }
  return matches;
}

namespace {

// Index range [lo, hi] of grid positions along one axis whose anchor
// [pos * stride + c1, pos * stride + c2] may overlap (g1, g2) with positive
// length; positions outside have an IoU of exactly 0. Empty when lo > hi.
void overlap_range(float g1, float g2, float c1, float c2, int64_t stride, int64_t n, int64_t& lo, int64_t& hi) {
  const double s = static_cast<double>(stride);
  lo = static_cast<int64_t>(std::floor((static_cast<double>(g1) - static_cast<double>(c2)) / s)) - 1;
  hi = static_cast<int64_t>(std::ceil((static_cast<double>(g2) - static_cast<double>(c1)) / s)) + 1;
  lo = std::max<int64_t>(lo, 0);
  hi = std::min<int64_t>(hi, n - 1);
}

// Calls fn(anchor_index, anchor_box) for every anchor of `grid` that may
// overlap `g` (a superset of those with IoU > 0).
template <typename Fn>
void for_each_overlapping(const AnchorGrid& grid, const BoxF& g, Fn&& fn) {
  for (const AnchorLevel& level : grid.levels()) {
    const size_t nc = level.cell.size();
    for (size_t c = 0; c < nc; ++c) {
      const BoxF& cell = level.cell[c];
      int64_t x_lo, x_hi, y_lo, y_hi;
      overlap_range(g.x1, g.x2, cell.x1, cell.x2, level.stride_w, level.grid.width, x_lo, x_hi);
      overlap_range(g.y1, g.y2, cell.y1, cell.y2, level.stride_h, level.grid.height, y_lo, y_hi);
      for (int64_t y = y_lo; y <= y_hi; ++y) {
        const float sy = static_cast<float>(y * level.stride_h);
        size_t index = level.offset + (static_cast<size_t>(y * level.grid.width + x_lo)) * nc + c;
        for (int64_t x = x_lo; x <= x_hi; ++x, index += nc) {
          const float sx = static_cast<float>(x * level.stride_w);
          fn(index, BoxF{sx + cell.x1, sy + cell.y1, sx + cell.x2, sy + cell.y2});
        }
      }
    }
  }
}

}  // namespace

AnchorMatch Matcher::match(const AnchorGrid& anchors, Span<const BoxF> gt) const {
  AnchorMatch out;
  Workspace ws;
  match(anchors, gt, out, ws);
  return out;
}

void Matcher::match(const AnchorGrid& anchors, Span<const BoxF> gt, AnchorMatch& out, Workspace& ws) const {
  const size_t num_anchors = anchors.size();
  const size_t num_gt = gt.size();
  for (size_t g = 0; g < num_gt; ++g) {
    const BoxF& b = gt[g];
    if (!(b.x2 > b.x1) || !(b.y2 > b.y1)) {
      throw InputError("degenerate_box", "ground-truth box " + std::to_string(g) +
                                             " has no positive width and height");
    }
  }
  if (num_anchors > static_cast<size_t>(UINT32_MAX)) {
    throw Error("too_many_anchors", "more than 2^32 anchors in one image");
  }
  out.matches.assign(num_anchors, kBelowLowThreshold);
  out.max_iou.assign(num_gt, 0.0f);
  out.matched_anchors.assign(num_gt, 0);
  if (num_gt == 0) return;

  // Pass 1: per anchor the first gt of maximal IoU (anchors overlapping no
  // gt keep (0, gt 0), as torch's max over an all-zero column), per gt its
  // maximal IoU and the anchors attaining it. gts are visited in order and an
  // anchor takes a later gt only on a strictly greater IoU: the first
  // maximum, as torch.
  std::vector<float>& best = ws.best;
  std::vector<int32_t>& best_gt = ws.best_gt;
  best.assign(num_anchors, 0.0f);
  best_gt.assign(num_anchors, 0);
  ws.ties.clear();
  ws.tie_offsets.assign(1, 0);
  for (size_t g = 0; g < num_gt; ++g) {
    const BoxF gb = gt[g];
    const int32_t gi = static_cast<int32_t>(g);
    const size_t tie_begin = ws.ties.size();
    float highest = 0.0f;
    for_each_overlapping(anchors, gb, [&](size_t a, const BoxF& ab) {
      const float iou = box_iou(gb, ab);
      if (iou > best[a]) {
        best[a] = iou;
        best_gt[a] = gi;
      }
      if (iou > highest) {
        highest = iou;
        ws.ties.resize(tie_begin);
        ws.ties.push_back(static_cast<uint32_t>(a));
      } else if (iou == highest && iou > 0.0f) {
        ws.ties.push_back(static_cast<uint32_t>(a));
      }
    });
    out.max_iou[g] = highest;
    ws.tie_offsets.push_back(ws.ties.size());
  }
  for (size_t a = 0; a < num_anchors; ++a) {
    const float v = best[a];
    if (v < low_) {
      out.matches[a] = kBelowLowThreshold;
    } else if (v < high_) {
      out.matches[a] = kBetweenThresholds;
    } else {
      out.matches[a] = best_gt[a];
    }
  }
  // Pass 2: anchors attaining a gt's maximum (ties included) get their best gt back.
  if (config_.allow_low_quality_matches) {
    for (size_t g = 0; g < num_gt; ++g) {
      if (out.max_iou[g] > 0.0f) {
        for (size_t k = ws.tie_offsets[g]; k < ws.tie_offsets[g + 1]; ++k) {
          const uint32_t a = ws.ties[k];
          out.matches[a] = best_gt[a];
        }
      } else {
        // No anchor overlaps this gt: every anchor ties at IoU 0.
        for (size_t a = 0; a < num_anchors; ++a) out.matches[a] = best_gt[a];
      }
    }
  }
  for (size_t a = 0; a < num_anchors; ++a) {
    const int32_t m = out.matches[a];
    if (m >= 0) ++out.matched_anchors[static_cast<size_t>(m)];
  }
}

}  // namespace pasteflow::stats
