// Merging of overlapping slices' detections (slice/merge.hpp): SAHI's
// class-wise NMS and greedy non-maximum merging on run-length masks.
#include "pasteflow/slice/merge.hpp"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>

namespace pasteflow::slice {

namespace {

Location merge_key(const std::string& field) {
  Location where;
  where.key = "merge." + field;
  return where;
}

/// Indices of `dets` grouped by category (ascending ids), each group by
/// decreasing score, ties in input order.
std::map<int64_t, std::vector<size_t>> by_category(const std::vector<SliceDetection>& dets) {
  std::map<int64_t, std::vector<size_t>> groups;
  for (size_t i = 0; i < dets.size(); ++i) groups[dets[i].category_id].push_back(i);
  for (auto& [cat, idx] : groups) {
    std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return dets[a].score > dets[b].score; });
  }
  return groups;
}

void sort_by_score(std::vector<SliceDetection>& dets) {
  std::stable_sort(dets.begin(), dets.end(),
                   [](const SliceDetection& a, const SliceDetection& b) { return a.score > b.score; });
}

}  // namespace

MergeMethod parse_merge_method(const std::string& text) {
  if (text == "nms") return MergeMethod::kNms;
  if (text == "greedy_nmm") return MergeMethod::kGreedyNmm;
  throw ConfigError("bad_value", "merge method must be 'nms' or 'greedy_nmm', got '" + text + "'",
                    merge_key("method"));
}

MergeMetric parse_merge_metric(const std::string& text, MergeMethod method) {
  if (text.empty()) return method == MergeMethod::kNms ? MergeMetric::kIou : MergeMetric::kIos;
  if (text == "iou") return MergeMetric::kIou;
  if (text == "ios") return MergeMetric::kIos;
  throw ConfigError("bad_value", "merge metric must be 'iou' or 'ios', got '" + text + "'", merge_key("metric"));
}

const char* to_string(MergeMethod method) noexcept { return method == MergeMethod::kNms ? "nms" : "greedy_nmm"; }
const char* to_string(MergeMetric metric) noexcept { return metric == MergeMetric::kIou ? "iou" : "ios"; }

void validate(const MergeConfig& config) {
  const MergeMethod m = parse_merge_method(config.method);
  parse_merge_metric(config.metric, m);
  if (!(config.threshold >= 0.0 && config.threshold <= 1.0)) {
    throw ConfigError("out_of_range", "merge threshold must be in [0, 1]", merge_key("threshold"));
  }
}

double box_overlap(const std::array<double, 4>& a, const std::array<double, 4>& b, MergeMetric metric) {
  const double ax2 = a[0] + a[2], ay2 = a[1] + a[3];
  const double bx2 = b[0] + b[2], by2 = b[1] + b[3];
  const double iw = std::max(0.0, std::min(ax2, bx2) - std::max(a[0], b[0]));
  const double ih = std::max(0.0, std::min(ay2, by2) - std::max(a[1], b[1]));
  const double inter = iw * ih;
  const double area_a = a[2] * a[3];
  const double area_b = b[2] * b[3];
  const double denom = metric == MergeMetric::kIou ? area_a + area_b - inter : std::min(area_a, area_b);
  if (!(denom > 0.0)) return 0.0;
  return inter / denom;
}

std::vector<size_t> nms(const std::vector<SliceDetection>& dets, MergeMetric metric, double threshold) {
  std::vector<size_t> keep;
  for (const auto& [cat, order] : by_category(dets)) {
    std::vector<bool> gone(order.size(), false);
    for (size_t i = 0; i < order.size(); ++i) {
      if (gone[i]) continue;
      keep.push_back(order[i]);
      for (size_t j = i + 1; j < order.size(); ++j) {
        if (!gone[j] && box_overlap(dets[order[i]].bbox, dets[order[j]].bbox, metric) >= threshold) gone[j] = true;
      }
    }
  }
  std::stable_sort(keep.begin(), keep.end(), [&](size_t a, size_t b) {
    if (dets[a].score != dets[b].score) return dets[a].score > dets[b].score;
    return a < b;
  });
  return keep;
}

std::vector<std::pair<size_t, std::vector<size_t>>> greedy_nmm_plan(const std::vector<SliceDetection>& dets,
                                                                    MergeMetric metric, double threshold) {
  std::vector<std::pair<size_t, std::vector<size_t>>> plan;
  for (const auto& [cat, order] : by_category(dets)) {
    std::vector<bool> gone(order.size(), false);
    for (size_t i = 0; i < order.size(); ++i) {
      if (gone[i]) continue;
      gone[i] = true;
      std::vector<size_t> matches;
      for (size_t j = i + 1; j < order.size(); ++j) {
        if (!gone[j] && box_overlap(dets[order[i]].bbox, dets[order[j]].bbox, metric) >= threshold) {
          gone[j] = true;
          matches.push_back(order[j]);  // `order` is by decreasing score, so are the matches
        }
      }
      plan.emplace_back(order[i], std::move(matches));
    }
  }
  return plan;
}

SliceDetection merge_pair(const SliceDetection& a, const SliceDetection& b) {
  SliceDetection out = a;
  const double x1 = std::min(a.bbox[0], b.bbox[0]);
  const double y1 = std::min(a.bbox[1], b.bbox[1]);
  const double x2 = std::max(a.bbox[0] + a.bbox[2], b.bbox[0] + b.bbox[2]);
  const double y2 = std::max(a.bbox[1] + a.bbox[3], b.bbox[1] + b.bbox[3]);
  out.bbox = {x1, y1, x2 - x1, y2 - y1};
  out.score = std::max(a.score, b.score);
  out.category_id = a.score > b.score ? a.category_id : b.category_id;  // SAHI get_merged_category
  out.merged = a.merged + b.merged;
  if (a.has_mask && b.has_mask) {
    // Both local masks placed in the bounding region of the two, then their union.
    const int64_t rx0 = std::min(a.mask_x, b.mask_x);
    const int64_t ry0 = std::min(a.mask_y, b.mask_y);
    const int64_t rx1 = std::max(a.mask_x + int64_t(a.mask.w), b.mask_x + int64_t(b.mask.w));
    const int64_t ry1 = std::max(a.mask_y + int64_t(a.mask.h), b.mask_y + int64_t(b.mask.h));
    const int64_t rw = rx1 - rx0, rh = ry1 - ry0;
    if (rw <= 0 || rh <= 0) {
      out.mask = mask::empty(0, 0);
    } else {
      if (static_cast<uint64_t>(rw) * static_cast<uint64_t>(rh) > mask::kMaxPixels) {
        throw InputError("mask_too_large", "the union of two detections' masks spans " + std::to_string(rw) + " x " +
                                               std::to_string(rh) + " pixels (above 2^32)");
      }
      const auto h = static_cast<uint32_t>(rh), w = static_cast<uint32_t>(rw);
      const mask::Rle pa = mask::translate(a.mask, static_cast<int>(a.mask_x - rx0), static_cast<int>(a.mask_y - ry0), h, w);
      const mask::Rle pb = mask::translate(b.mask, static_cast<int>(b.mask_x - rx0), static_cast<int>(b.mask_y - ry0), h, w);
      out.mask = mask::merge({pa, pb}, false);
    }
    out.mask_x = rx0;
    out.mask_y = ry0;
  } else if (!a.has_mask && b.has_mask) {
    out.has_mask = true;
    out.mask = b.mask;
    out.mask_x = b.mask_x;
    out.mask_y = b.mask_y;
  }
  return out;
}

std::vector<SliceDetection> merge(const std::vector<SliceDetection>& dets, MergeMethod method, MergeMetric metric,
                                  double threshold, MergeCounts* counts) {
  MergeCounts c;
  c.input = dets.size();
  std::vector<SliceDetection> out;
  if (method == MergeMethod::kNms) {
    const std::vector<size_t> keep = nms(dets, metric, threshold);
    out.reserve(keep.size());
    for (size_t i : keep) out.push_back(dets[i]);
    c.suppressed = dets.size() - keep.size();
  } else {
    for (const auto& [keeper, matches] : greedy_nmm_plan(dets, metric, threshold)) {
      SliceDetection k = dets[keeper];
      for (size_t m : matches) {
        if (box_overlap(k.bbox, dets[m].bbox, metric) > threshold) {  // SAHI has_match: strictly greater
          k = merge_pair(k, dets[m]);
          ++c.merged;
        } else {
          ++c.rejected;
        }
      }
      out.push_back(std::move(k));
    }
    sort_by_score(out);
  }
  c.output = out.size();
  if (counts != nullptr) counts->add(c);
  return out;
}

std::vector<SliceDetection> merge(const std::vector<SliceDetection>& dets, const MergeConfig& config,
                                  MergeCounts* counts) {
  validate(config);
  const MergeMethod m = parse_merge_method(config.method);
  return merge(dets, m, parse_merge_metric(config.metric, m), config.threshold, counts);
}

SliceDetection from_window(int64_t category_id, double score, const std::array<double, 4>& bbox,
                           const mask::Rle* window_mask, int64_t window_x, int64_t window_y, uint32_t slice) {
  SliceDetection d;
  d.category_id = category_id;
  d.score = score;
  d.bbox = {bbox[0] + static_cast<double>(window_x), bbox[1] + static_cast<double>(window_y), bbox[2], bbox[3]};
  d.slice = slice;
  if (window_mask != nullptr) {
    d.has_mask = true;
    const std::array<double, 4> mb = mask::bbox(*window_mask);  // integers: pixel extents
    const auto x = static_cast<int>(mb[0]), y = static_cast<int>(mb[1]);
    const auto w = static_cast<uint32_t>(mb[2]), h = static_cast<uint32_t>(mb[3]);
    d.mask = mask::crop(*window_mask, x, y, w, h);
    d.mask_x = window_x + x;
    d.mask_y = window_y + y;
  }
  return d;
}

mask::Rle full_mask(const SliceDetection& det, int64_t height, int64_t width) {
  if (height <= 0 || width <= 0 || height > int64_t(UINT32_MAX) || width > int64_t(UINT32_MAX) ||
      static_cast<uint64_t>(height) * static_cast<uint64_t>(width) > mask::kMaxPixels) {
    throw InputError("mask_too_large", "an image of " + std::to_string(width) + " x " + std::to_string(height) +
                                           " pixels has no COCO run-length mask (above 2^32 pixels)");
  }
  const auto H = static_cast<uint32_t>(height), W = static_cast<uint32_t>(width);
  if (!det.has_mask || det.mask.w == 0 || det.mask.h == 0) return mask::empty(H, W);
  const uint64_t h = det.mask.h, w = det.mask.w;
  uint64_t sum = 0;
  for (uint32_t c : det.mask.counts) sum += c;
  const bool inside = det.mask_x >= 0 && det.mask_y >= 0 && det.mask_x + int64_t(w) <= width &&
                      det.mask_y + int64_t(h) <= height;
  if (!inside || sum != h * w) {
    // The general case (and malformed runs, which translate refuses): mask::translate.
    return mask::translate(det.mask, static_cast<int>(det.mask_x), static_cast<int>(det.mask_y), H, W);
  }
  // The region lies inside the canvas: each run of ones of the local mask
  // maps to one run per column it spans, so the full-size runs come out in
  // O(runs + local width), whatever the image's width.
  mask::Rle out;
  out.h = H;
  out.w = W;
  uint64_t run = 0;    // length of the run being built
  bool ones = false;   // its value
  uint64_t cursor = 0; // full-image pixels emitted so far (column-major)
  auto push = [&](bool value, uint64_t length) {
    if (length == 0) return;
    if (value != ones) {
      out.counts.push_back(static_cast<uint32_t>(run));
      run = 0;
      ones = value;
    }
    run += length;
  };
  const auto mx = static_cast<uint64_t>(det.mask_x), my = static_cast<uint64_t>(det.mask_y);
  uint64_t q = 0;  // local pixel index (column-major)
  bool value = false;
  for (uint32_t len : det.mask.counts) {
    if (value) {
      for (uint64_t a = q, end = q + len; a < end;) {
        const uint64_t col = a / h, row = a % h;
        const uint64_t take = std::min(end - a, h - row);
        const uint64_t p = (mx + col) * H + my + row;
        push(false, p - cursor);
        push(true, take);
        cursor = p + take;
        a += take;
      }
    }
    q += len;
    value = !value;
  }
  push(false, uint64_t(H) * W - cursor);
  out.counts.push_back(static_cast<uint32_t>(run));
  return out;
}

}  // namespace pasteflow::slice
