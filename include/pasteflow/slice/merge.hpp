// Merging the detections of overlapping slices (sliced prediction of huge
// images). Torch-free pure functions on SliceDetection, a detection in
// full-image coordinates whose mask is kept as a LOCAL run-length mask of a
// small region (never a full-image raster), so memory follows the objects,
// not the image.
//
// Two methods, both class-wise (a detection only ever meets detections of
// its own category_id), both with SAHI's box overlap measures on
// [x1, y1, x2, y2] = [x, y, x + w, y + h] (no +1, as sahi/postprocess):
//   iou = inter / (area_a + area_b - inter)
//   ios = inter / min(area_a, area_b)        (intersection over smaller)
// where inter = max(0, min(x2) - max(x1)) * max(0, min(y2) - max(y1)); a zero
// denominator gives 0 (no match) where SAHI would divide by zero.
//
// "nms" (SAHI batched_nms / nms): per category, detections by decreasing
// score; the best is kept and every remaining one whose overlap with it is
// >= threshold is suppressed; repeat on the rest. Kept detections are
// returned by decreasing score.
//
// "greedy_nmm" (SAHI GreedyNMMPostprocess, class_agnostic false =
// batched_greedy_nmm + merge_object_prediction_pair):
//   1. per category, detections by decreasing score; the best one S is a
//      keeper; every remaining T with overlap(S, T) >= threshold (S's box as
//      the model gave it) is S's match and leaves the pool; repeat on the rest.
//   2. each keeper then absorbs its matches in decreasing score order: a
//      match T is merged into the keeper K (as it has grown so far) when
//      overlap(K, T) > threshold (SAHI's has_match, strictly greater, on the
//      merged box); a match that fails this re-check is dropped (as in SAHI:
//      it is neither merged nor kept).
//   3. merging K with T: box = the union box (min x1, y1, max x2, y2), score
//      = max, category = K's (the higher score's: the same category here),
//      mask = the exact union of both masks (SAHI unions shapely polygons;
//      here the run-length masks, pixel-exact). A detection without a mask
//      merged with one with a mask keeps the mask it has.
// Ties in score keep the input order (stable), so the result depends on the
// input order only, never on threads.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pasteflow::slice {

/// A detection in full-image coordinates with a local mask.
struct SliceDetection {
  int64_t category_id = 0;
  double score = 0.0;
  std::array<double, 4> bbox{};  ///< [x, y, w, h] in full-image pixels (COCO)
  bool has_mask = false;
  mask::Rle mask;                ///< the mask of the region mask_x, mask_y, mask.w x mask.h
  int64_t mask_x = 0;            ///< full-image column of the region's left edge
  int64_t mask_y = 0;            ///< full-image row of the region's top edge
  uint32_t slice = 0;            ///< the window it came from (merged: the keeper's)
  uint32_t merged = 1;           ///< how many model detections it stands for
};

enum class MergeMethod : uint8_t { kNms, kGreedyNmm };
enum class MergeMetric : uint8_t { kIou, kIos };

/// "nms" | "greedy_nmm"; anything else: ConfigError "bad_value" (key "merge").
MergeMethod parse_merge_method(const std::string& text);
/// "iou" | "ios"; "" = the method's default (nms: iou; greedy_nmm: ios, as SAHI).
MergeMetric parse_merge_metric(const std::string& text, MergeMethod method);
const char* to_string(MergeMethod method) noexcept;
const char* to_string(MergeMetric metric) noexcept;

struct MergeConfig {
  std::string method = "nms";  ///< nms | greedy_nmm
  double threshold = 0.5;      ///< overlap at which two detections are the same object
  std::string metric;          ///< iou | ios | "" (nms: iou, greedy_nmm: ios)

  /// Config keys under "merge.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("method", &MergeConfig::method,
            "merging of overlapping slices' detections: class-wise NMS, or SAHI's greedy non-maximum merging "
            "(union of boxes and masks)")
        .one_of({"nms", "greedy_nmm"});
    d.field("threshold", &MergeConfig::threshold, "box overlap at which two detections are one object")
        .range(0.0, 1.0);
    d.field("metric", &MergeConfig::metric,
            "box overlap measure: iou, or ios (intersection over the smaller box); empty: iou for nms, ios for "
            "greedy_nmm")
        .one_of({"", "iou", "ios"});
  }
};

/// Checks a MergeConfig (ConfigError with key "merge.<field>").
void validate(const MergeConfig& config);

struct MergeCounts {
  uint64_t input = 0;       ///< detections given
  uint64_t output = 0;      ///< detections returned
  uint64_t suppressed = 0;  ///< nms: removed by a better one
  uint64_t merged = 0;      ///< greedy_nmm: absorbed into a keeper
  uint64_t rejected = 0;    ///< greedy_nmm: matched but failed the re-check (dropped, as SAHI)
  void add(const MergeCounts& o) {
    input += o.input;
    output += o.output;
    suppressed += o.suppressed;
    merged += o.merged;
    rejected += o.rejected;
  }
};

/// Box overlap of [x, y, w, h] boxes (see the header comment).
double box_overlap(const std::array<double, 4>& a, const std::array<double, 4>& b, MergeMetric metric);

/// Indices of the detections NMS keeps, by decreasing score (stable).
std::vector<size_t> nms(const std::vector<SliceDetection>& dets, MergeMetric metric, double threshold);

/// SAHI's keeper -> matches plan (step 1): for each keeper (by decreasing
/// score), its matches by decreasing score.
std::vector<std::pair<size_t, std::vector<size_t>>> greedy_nmm_plan(const std::vector<SliceDetection>& dets,
                                                                    MergeMetric metric, double threshold);

/// `a` and `b` merged (step 3; `a` is the keeper).
SliceDetection merge_pair(const SliceDetection& a, const SliceDetection& b);

/// The merged detections (nms or greedy_nmm), by decreasing score.
std::vector<SliceDetection> merge(const std::vector<SliceDetection>& dets, MergeMethod method, MergeMetric metric,
                                  double threshold, MergeCounts* counts = nullptr);
std::vector<SliceDetection> merge(const std::vector<SliceDetection>& dets, const MergeConfig& config,
                                  MergeCounts* counts = nullptr);

/// A detection of the window whose top-left pixel is (window_x, window_y):
/// `bbox` [x, y, w, h] in the window's pixels, `window_mask` (nullable) the
/// window-size mask. The mask is kept as the crop of its own bounding box
/// (mask::bbox; O(runs + width)); the box is moved to full-image pixels.
SliceDetection from_window(int64_t category_id, double score, const std::array<double, 4>& bbox,
                           const mask::Rle* window_mask, int64_t window_x, int64_t window_y, uint32_t slice = 0);

/// The detection's mask placed in the full height x width image
/// (mask::translate: runs only, O(runs + width)). Throws InputError
/// "mask_too_large" when height * width exceeds mask::kMaxPixels (32-bit
/// runs, as pycocotools).
mask::Rle full_mask(const SliceDetection& det, int64_t height, int64_t width);

}  // namespace pasteflow::slice
