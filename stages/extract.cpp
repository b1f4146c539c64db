#include "pasteflow/stages/extract.hpp"

#include <cmath>
#include <limits>

#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"
#include "pasteflow/stats/size_class.hpp"

namespace pasteflow::stages {

namespace {

ConfigError extract_error(const std::string& field, const std::string& message) {
  Location where;
  where.key = "augment.extract." + field;
  return ConfigError("bad_config", message, where);
}

void check_mask_size(const Instance& inst, int width, int height) {
  if (inst.mask.h != static_cast<uint32_t>(height) || inst.mask.w != static_cast<uint32_t>(width)) {
    Location where;
    where.record = "annotation id " + std::to_string(inst.id);
    throw InputError("mask_size",
                     "instance mask is " + std::to_string(inst.mask.w) + "x" + std::to_string(inst.mask.h) +
                         ", image is " + std::to_string(width) + "x" + std::to_string(height),
                     where);
  }
}

/// The instance's occupied region as a pixel rectangle (mask box or box).
cv::Rect instance_rect(const Instance& inst, int width, int height) {
  if (inst.has_mask) return tight_box(inst.mask);
  return box_pixels(inst.bbox, width, height);
}

bool boxes_overlap(const std::array<double, 4>& a, const std::array<double, 4>& b) {
  const double ix = std::min(a[0] + a[2], b[0] + b[2]) - std::max(a[0], b[0]);
  const double iy = std::min(a[1] + a[3], b[1] + b[3]) - std::max(a[1], b[1]);
  return ix > 0.0 && iy > 0.0;
}

}  // namespace

void ExtractConfig::validate() const {
  if (size_classes.empty()) throw extract_error("size_classes", "at least one size class is needed");
  for (const std::string& name : size_classes) {
    if (name != "small" && name != "medium" && name != "large")
      throw extract_error("size_classes", "unknown size class '" + name + "' (small, medium, large)");
  }
  if (occlusion != "mask" && occlusion != "box" && occlusion != "none")
    throw extract_error("occlusion", "must be \"mask\", \"box\" or \"none\", not '" + occlusion + "'");
}

cv::Rect tight_box(const mask::Rle& rle) {
  int x0 = std::numeric_limits<int>::max(), y0 = std::numeric_limits<int>::max();
  int x1 = -1, y1 = -1;
  for_each_column_run(rle, [&](int x, int ya, int yb) {
    x0 = std::min(x0, x);
    x1 = std::max(x1, x);
    y0 = std::min(y0, ya);
    y1 = std::max(y1, yb - 1);
  });
  if (x1 < 0) return cv::Rect();
  return cv::Rect(x0, y0, x1 - x0 + 1, y1 - y0 + 1);
}

cv::Rect box_pixels(const std::array<double, 4>& bbox, int width, int height) {
  const auto clampi = [](double v, int lo, int hi) {
    if (!(v > lo)) return lo;  // also NaN
    if (v > hi) return hi;
    return static_cast<int>(v);
  };
  int x0 = clampi(std::round(bbox[0]), 0, width);
  int y0 = clampi(std::round(bbox[1]), 0, height);
  int x1 = clampi(std::round(bbox[0] + bbox[2]), 0, width);
  int y1 = clampi(std::round(bbox[1] + bbox[3]), 0, height);
  const bool inside = bbox[0] < width && bbox[1] < height && bbox[0] + bbox[2] > 0 && bbox[1] + bbox[3] > 0 &&
                      bbox[2] > 0 && bbox[3] > 0;
  if (!inside) return cv::Rect();
  if (x1 <= x0) {
    if (x0 >= width) x0 = width - 1;
    x1 = x0 + 1;
  }
  if (y1 <= y0) {
    if (y0 >= height) y0 = height - 1;
    y1 = y0 + 1;
  }
  return cv::Rect(x0, y0, x1 - x0, y1 - y0);
}

void paint_instance(const Instance& inst, cv::Mat& dst, uint8_t value) {
  CV_Assert(dst.type() == CV_8UC1);
  if (inst.has_mask) {
    check_mask_size(inst, dst.cols, dst.rows);
    for_each_column_run(inst.mask, [&](int x, int y0, int y1) {
      for (int y = y0; y < y1; ++y) dst.ptr<uint8_t>(y)[x] = value;
    });
  } else {
    const cv::Rect r = box_pixels(inst.bbox, dst.cols, dst.rows);
    if (!r.empty()) dst(r).setTo(value);
  }
}

Extractor::Extractor(ExtractConfig config) : config_(std::move(config)) {
  config_.validate();
  for (const std::string& name : config_.size_classes)
    classes_.push_back(static_cast<uint8_t>(stats::parse_size_class(name)));
  if (config_.occlusion == "box") occlusion_ = Occlusion::kBox;
  else if (config_.occlusion == "none") occlusion_ = Occlusion::kNone;
  else occlusion_ = Occlusion::kMask;
}

std::vector<uint32_t> Extractor::eligible(const Sample& sample) const {
  const int width = sample.image.cols, height = sample.image.rows;
  const size_t n = sample.instances.size();

  // First pass: the cheap per-instance rules.
  std::vector<uint32_t> candidates;
  for (size_t i = 0; i < n; ++i) {
    const Instance& inst = sample.instances[i];
    if (config_.exclude_crowd && inst.iscrowd) continue;
    bool class_ok = false;
    for (uint8_t c : classes_) class_ok = class_ok || c == inst.size_class;
    if (!class_ok) continue;
    if (inst.has_mask) check_mask_size(inst, width, height);
    if (instance_rect(inst, width, height).empty()) continue;
    candidates.push_back(static_cast<uint32_t>(i));
  }
  if (candidates.empty()) return candidates;

  // Occlusion. "mask": count, per pixel, how many instances cover it
  // (saturating at 2); a candidate is free when all of its pixels count 1.
  std::vector<uint32_t> free;
  if (occlusion_ == Occlusion::kMask) {
    cv::Mat count(height, width, CV_8UC1, cv::Scalar(0));
    const auto bump = [&](int x, int y) {
      uint8_t& c = count.ptr<uint8_t>(y)[x];
      if (c < 2) ++c;
    };
    for (const Instance& inst : sample.instances) {
      if (inst.has_mask) {
        check_mask_size(inst, width, height);
        for_each_column_run(inst.mask, [&](int x, int y0, int y1) {
          for (int y = y0; y < y1; ++y) bump(x, y);
        });
      } else {
        const cv::Rect r = box_pixels(inst.bbox, width, height);
        for (int y = r.y; y < r.y + r.height; ++y)
          for (int x = r.x; x < r.x + r.width; ++x) bump(x, y);
      }
    }
    for (uint32_t i : candidates) {
      const Instance& inst = sample.instances[i];
      bool ok = true;
      if (inst.has_mask) {
        for_each_column_run(inst.mask, [&](int x, int y0, int y1) {
          for (int y = y0; ok && y < y1; ++y) ok = count.ptr<uint8_t>(y)[x] == 1;
        });
      } else {
        const cv::Rect r = box_pixels(inst.bbox, width, height);
        ok = cv::countNonZero(count(r) != 1) == 0;
      }
      if (ok) free.push_back(i);
    }
  } else if (occlusion_ == Occlusion::kBox) {
    for (uint32_t i : candidates) {
      bool ok = true;
      for (size_t j = 0; ok && j < n; ++j)
        if (j != i) ok = !boxes_overlap(sample.instances[i].bbox, sample.instances[j].bbox);
      if (ok) free.push_back(i);
    }
  } else {
    free = std::move(candidates);
  }

  if (config_.allow_multipart) return free;
  std::vector<uint32_t> single;
  for (uint32_t i : free) {
    const Instance& inst = sample.instances[i];
    if (!inst.has_mask) {  // a box is one piece
      single.push_back(i);
      continue;
    }
    const ObjectPatch patch = extract(sample, i);
    cv::Mat labels;
    if (cv::connectedComponents(patch.mask, labels, 8, CV_32S) == 2) single.push_back(i);
  }
  return single;
}

ObjectPatch Extractor::extract(const Sample& sample, uint32_t index) const {
  const Instance& inst = sample.instances.at(index);
  const int width = sample.image.cols, height = sample.image.rows;
  ObjectPatch patch;
  patch.instance = index;
  patch.source_id = inst.id;
  patch.category_id = inst.category_id;
  patch.size_class = inst.size_class;
  patch.from_box = !inst.has_mask;
  if (inst.has_mask) check_mask_size(inst, width, height);
  patch.box = instance_rect(inst, width, height);
  if (patch.box.empty()) return patch;
  patch.pixels = sample.image(patch.box).clone();
  patch.mask = cv::Mat(patch.box.size(), CV_8UC1, cv::Scalar(0));
  if (inst.has_mask) {
    const mask::Rle window = mask::crop(inst.mask, patch.box.x, patch.box.y,
                                        static_cast<uint32_t>(patch.box.width),
                                        static_cast<uint32_t>(patch.box.height));
    mask::decode_into(window, patch.mask.ptr<uint8_t>(), patch.mask.step[0]);
    patch.area = mask::area(window);
  } else {
    patch.mask.setTo(1);
    patch.area = static_cast<uint64_t>(patch.box.area());
  }
  return patch;
}

std::vector<ObjectPatch> Extractor::operator()(const Sample& sample) const {
  std::vector<ObjectPatch> out;
  for (uint32_t i : eligible(sample)) out.push_back(extract(sample, i));
  return out;
}

}  // namespace pasteflow::stages
