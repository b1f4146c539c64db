#include "pasteflow/stages/placement.hpp"

#include <algorithm>
#include <utility>

#include "pasteflow/core/error.hpp"
#include "pasteflow/stages/extract.hpp"

namespace pasteflow::stages {

namespace {

ConfigError placement_error(const std::string& field, const std::string& message) {
  Location where;
  where.key = "augment.placement." + field;
  return ConfigError("bad_config", message, where);
}

using Interval = std::pair<uint64_t, uint64_t>;  // [begin, end) of ones, column-major

std::vector<Interval> one_intervals(const mask::Rle& r) {
  std::vector<Interval> out;
  uint64_t pos = 0;
  bool one = false;
  for (uint32_t c : r.counts) {
    if (one && c > 0) {
      if (!out.empty() && out.back().second == pos) out.back().second = pos + c;
      else out.emplace_back(pos, pos + c);
    }
    pos += c;
    one = !one;
  }
  return out;
}

mask::Rle from_intervals(const std::vector<Interval>& iv, uint32_t h, uint32_t w) {
  mask::Rle r;
  r.h = h;
  r.w = w;
  const uint64_t total = static_cast<uint64_t>(h) * w;
  uint64_t prev = 0;
  for (const Interval& i : iv) {
    if (i.second <= i.first) continue;
    if (!r.counts.empty() && i.first == prev) {  // touching: extend the last run of ones
      r.counts.back() += static_cast<uint32_t>(i.second - i.first);
    } else {
      r.counts.push_back(static_cast<uint32_t>(i.first - prev));
      r.counts.push_back(static_cast<uint32_t>(i.second - i.first));
    }
    prev = i.second;
  }
  if (prev < total) r.counts.push_back(static_cast<uint32_t>(total - prev));
  return r;
}

bool intersects(const cv::Rect& r, const std::array<double, 4>& b) {
  const double ix = std::min<double>(r.x + r.width, b[0] + b[2]) - std::max<double>(r.x, b[0]);
  const double iy = std::min<double>(r.y + r.height, b[1] + b[3]) - std::max<double>(r.y, b[1]);
  return ix > 0.0 && iy > 0.0;
}

/// remaining / reference; 0 for an empty reference (nothing left to see).
double visible_fraction(uint64_t left, double reference) {
  return reference > 0.0 ? static_cast<double>(left) / reference : 0.0;
}

}  // namespace

void PlacementConfig::validate() const {
  if (border < 0) throw placement_error("border", "must be >= 0");
  if (max_tries < 1) throw placement_error("max_tries", "must be >= 1");
  if (!(min_visible >= 0.0 && min_visible <= 1.0)) throw placement_error("min_visible", "must be in [0, 1]");
}

// ------------------------------------------------------------------ Occupancy

Occupancy::Occupancy(int height, int width) : map_(height, width, CV_8UC1, cv::Scalar(0)) {}

Occupancy Occupancy::of(const Sample& sample) {
  Occupancy occ(sample.image.rows, sample.image.cols);
  for (const Instance& inst : sample.instances) occ.add(inst);
  return occ;
}

void Occupancy::add(const Instance& inst) { paint_instance(inst, map_, 1); }

void Occupancy::add(const cv::Mat& mask, cv::Point tl) {
  CV_Assert(mask.type() == CV_8UC1);
  const cv::Rect dst = cv::Rect(tl, mask.size()) & cv::Rect(0, 0, map_.cols, map_.rows);
  for (int y = dst.y; y < dst.y + dst.height; ++y) {
    const uint8_t* m = mask.ptr<uint8_t>(y - tl.y);
    uint8_t* o = map_.ptr<uint8_t>(y);
    for (int x = dst.x; x < dst.x + dst.width; ++x)
      if (m[x - tl.x]) o[x] = 1;
  }
}

bool Occupancy::overlaps(const cv::Mat& mask, cv::Point tl) const {
  CV_Assert(mask.type() == CV_8UC1);
  for (int my = 0; my < mask.rows; ++my) {
    const uint8_t* m = mask.ptr<uint8_t>(my);
    const int y = tl.y + my;
    const bool row_inside = y >= 0 && y < map_.rows;
    const uint8_t* o = row_inside ? map_.ptr<uint8_t>(y) : nullptr;
    for (int mx = 0; mx < mask.cols; ++mx) {
      if (!m[mx]) continue;
      const int x = tl.x + mx;
      if (!row_inside || x < 0 || x >= map_.cols || o[x]) return true;
    }
  }
  return false;
}

// ------------------------------------------------------------------ Placer

Placer::Placer(PlacementConfig config) : config_(config) { config_.validate(); }

bool Placer::position_range(cv::Size patch, cv::Size frame, cv::Point& lo, cv::Point& hi) const {
  lo = cv::Point(config_.border, config_.border);
  hi = cv::Point(frame.width - config_.border - patch.width, frame.height - config_.border - patch.height);
  return patch.width > 0 && patch.height > 0 && hi.x >= lo.x && hi.y >= lo.y;
}

PlacementResult Placer::find(const cv::Mat& mask, cv::Size frame, Rng& rng) const {
  if (!config_.allow_overlap)
    throw Error("needs_occupancy", "placement without allow_overlap needs the occupancy mask");
  return search(mask, frame, nullptr, rng);
}

PlacementResult Placer::find(const cv::Mat& mask, const Occupancy& occupancy, Rng& rng) const {
  return search(mask, cv::Size(occupancy.width(), occupancy.height()), config_.allow_overlap ? nullptr : &occupancy,
                rng);
}

PlacementResult Placer::search(const cv::Mat& mask, cv::Size frame, const Occupancy* occupancy, Rng& rng) const {
  PlacementResult res;
  cv::Point lo, hi;
  if (!position_range(mask.size(), frame, lo, hi)) return res;
  const int tries = occupancy ? config_.max_tries : 1;
  for (int t = 0; t < tries; ++t) {
    const int x = static_cast<int>(rng.range(lo.x, hi.x));
    const int y = static_cast<int>(rng.range(lo.y, hi.y));
    ++res.tries;
    if (!occupancy || !occupancy->overlaps(mask, cv::Point(x, y))) {
      res.placed = true;
      res.tl = cv::Point(x, y);
      return res;
    }
  }
  return res;
}

uint64_t occupied_area(const Instance& inst, int width, int height) {
  if (inst.has_mask) return mask::area(inst.mask);
  return static_cast<uint64_t>(box_pixels(inst.bbox, width, height).area());
}

uint32_t Placer::occlude(std::vector<Instance>& instances, std::vector<uint64_t>& reference_area,
                         const mask::Rle& placed) const {
  if (reference_area.size() != instances.size())
    throw Error("occlude_size", "reference_area must run parallel to instances");
  const cv::Rect placed_box = tight_box(placed);
  if (placed_box.empty()) return 0;
  const int width = static_cast<int>(placed.w), height = static_cast<int>(placed.h);
  uint32_t dropped = 0;
  size_t keep = 0;
  for (size_t i = 0; i < instances.size(); ++i) {
    Instance& inst = instances[i];
    bool drop = false;
    if (intersects(placed_box, inst.bbox)) {
      const double ref = static_cast<double>(reference_area[i]);
      if (inst.has_mask) {
        mask::Rle trimmed = rle_subtract(inst.mask, placed);
        const uint64_t left = mask::area(trimmed);
        if (left != mask::area(inst.mask)) {
          drop = left == 0 || visible_fraction(left, ref) < config_.min_visible;
          if (!drop) {
            inst.mask = std::move(trimmed);
            inst.bbox = mask::bbox(inst.mask);
            inst.area = static_cast<double>(left);
          }
        }
      } else {
        const cv::Rect r = box_pixels(inst.bbox, width, height);
        const mask::Rle window =
            mask::crop(placed, r.x, r.y, static_cast<uint32_t>(r.width), static_cast<uint32_t>(r.height));
        const uint64_t covered = mask::area(window);
        if (covered > 0) {
          const uint64_t left = static_cast<uint64_t>(r.area()) - covered;
          drop = left == 0 || visible_fraction(left, ref) < config_.min_visible;
        }
      }
    }
    if (drop) {
      ++dropped;
      continue;
    }
    if (keep != i) {
      instances[keep] = std::move(instances[i]);
      reference_area[keep] = reference_area[i];
    }
    ++keep;
  }
  instances.resize(keep);
  reference_area.resize(keep);
  return dropped;
}

mask::Rle rle_subtract(const mask::Rle& a, const mask::Rle& b) {
  if (a.h != b.h || a.w != b.w)
    throw InputError("rle_size_mismatch", "rle_subtract of masks of different sizes");
  const std::vector<Interval> ia = one_intervals(a), ib = one_intervals(b);
  std::vector<Interval> out;
  size_t j = 0;
  for (const Interval& iv : ia) {
    uint64_t cur = iv.first;
    while (j < ib.size() && ib[j].second <= cur) ++j;
    size_t k = j;
    while (cur < iv.second) {
      if (k >= ib.size() || ib[k].first >= iv.second) {
        out.emplace_back(cur, iv.second);
        break;
      }
      if (ib[k].first > cur) out.emplace_back(cur, ib[k].first);
      cur = std::max(cur, ib[k].second);
      ++k;
    }
  }
  return from_intervals(out, a.h, a.w);
}

}  // namespace pasteflow::stages
