// COCO detection evaluation with the semantics of pycocotools' COCOeval
// (cocoapi 8c9bcc3, PythonAPI/pycocotools/cocoeval.py + coco.py loadRes) for
// iouType 'bbox' and 'segm'; results equal pycocotools' to the last bits
// where the order of floating point operations decides them.
//
// What is reproduced (and why results match):
//   - loadRes: results get ids 1..N in their order and iscrowd 0. The FIRST
//     result decides how every result is read: when it has a non-empty bbox,
//     every result needs a bbox, area = w * h of that bbox and a result
//     without segmentation gets the polygon [x1,y1, x1,y2, x2,y1, x2,y2]
//     (as pycocotools writes it); otherwise every result needs a
//     segmentation, area = pixel area of the mask and a missing bbox is the
//     mask's box (toBbox).
//   - evaluate: per (image, category) detections sorted by score with a
//     stable sort (np.argsort(-s, kind='mergesort')) and cut to the largest
//     maxDets before IoU; IoU = maskUtils.iou (bbIou / rleIou, crowd ground
//     truth: intersection over the detection's area); ground truth sorted by
//     ignore flag (stable); threshold min(t, 1 - 1e-10); ignore = iscrowd or
//     GT `area` field outside the range (inclusive bounds); unmatched
//     detections outside the range are ignored. A match to a ground truth of
//     id 0 counts as no match (pycocotools stores matched ids, 0 = none).
//   - accumulate: per (category, area, maxDets) the detections of all images
//     (image id order) cut to maxDets, stable-sorted by score; tp/fp running
//     sums as doubles, rc = tp / npig, pr = tp / (fp + tp + 2^-52), the
//     monotone envelope, np.searchsorted(rc, recThrs, 'left'); -1 where a
//     category has no ground truth left.
//   - summarize: the 12 numbers, each the mean (numpy pairwise summation) of
//     the entries > -1, -1 when there are none; print format as pycocotools.
//
// Differences, all on inputs where pycocotools raises: an empty result list
// evaluates (every AP 0 where there is ground truth); polygon / uncompressed
// RLE segmentations in results are accepted in both loadRes branches.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pasteflow::eval {

enum class IouType { kBbox, kSegm };

/// "bbox" / "segm"; throws ConfigError otherwise.
IouType parse_iou_type(const std::string& text);
const char* to_string(IouType type) noexcept;

struct AreaRange {
  std::string label;  ///< "all", "small", ... (summarize looks ranges up by label)
  double lo = 0;
  double hi = 0;
};

/// np.linspace(start, stop, num) exactly as numpy computes it
/// (i * ((stop - start) / (num - 1)) + start, last element = stop).
std::vector<double> linspace(double start, double stop, size_t num);

/// pycocotools Params (setDetParams). Defaults are COCO's.
struct EvalParams {
  IouType iou_type = IouType::kBbox;
  /// np.linspace(.5, 0.95, 10)
  std::vector<double> iou_thrs = linspace(0.5, 0.95, 10);
  /// np.linspace(.0, 1.00, 101)
  std::vector<double> rec_thrs = linspace(0.0, 1.0, 101);
  /// Sorted before use, as COCOeval.evaluate does.
  std::vector<int> max_dets{1, 10, 100};
  std::vector<AreaRange> area_ranges{{"all", 0.0, 1e5 * 1e5},
                                     {"small", 0.0, 32.0 * 32.0},
                                     {"medium", 32.0 * 32.0, 96.0 * 96.0},
                                     {"large", 96.0 * 96.0, 1e5 * 1e5}};
  bool use_cats = true;
  /// Images / categories to evaluate; empty = all of the ground truth.
  /// Sorted and deduplicated (np.unique) before use.
  std::vector<int64_t> img_ids;
  std::vector<int64_t> cat_ids;
};

/// A compressed RLE as in results files: {"size": [h, w], "counts": "..."}.
struct CompressedMask {
  uint32_t h = 0, w = 0;
  std::string counts;
};

/// Polygons [[x0, y0, x1, y1, ...], ...], rasterised at the image's size.
struct PolygonMask {
  std::vector<std::vector<double>> parts;
};

using Segmentation = std::variant<std::monostate, mask::Rle, CompressedMask, PolygonMask>;

/// One result of a COCO results file.
struct Detection {
  int64_t image_id = 0;
  int64_t category_id = 0;
  double score = 0;
  std::optional<std::array<double, 4>> bbox;  ///< [x, y, w, h]
  Segmentation segmentation;                  ///< std::monostate = none
};

/// Accumulated evaluation (COCOeval.eval + stats).
struct EvalResult {
  EvalParams params;             ///< as used: max_dets sorted, img_ids / cat_ids resolved
  std::vector<int64_t> cat_ids;  ///< the K categories (one entry -1 when !use_cats)
  size_t T = 0, R = 0, K = 0, A = 0, M = 0;
  /// [T][R][K][A][M] row-major; -1 where there is no ground truth.
  std::vector<double> precision;
  /// [T][K][A][M] row-major; -1 where there is no ground truth.
  std::vector<double> recall;
  /// [T][R][K][A][M]: score of the detection reaching each recall threshold
  /// (0 beyond the last one), -1 where there is no ground truth.
  std::vector<double> scores;
  /// AP, AP50, AP75, APs, APm, APl, AR1, AR10, AR100, ARs, ARm, ARl.
  std::array<double, 12> stats{};
  /// (category id, AP) for every category in cat_ids order: mean precision
  /// over IoU and recall thresholds at area range 0 ("all") and the largest
  /// maxDets; -1 when the category has no ground truth.
  std::vector<std::pair<int64_t, double>> per_category_ap;
  /// The 12 lines pycocotools' summarize() prints, '\n'-terminated.
  std::string summary;
  /// Ground truth and detections left out under ErrorPolicy::kSkip.
  SkipReport skipped;

  double precision_at(size_t t, size_t r, size_t k, size_t a, size_t m) const {
    return precision[(((t * R + r) * K + k) * A + a) * M + m];
  }
  double recall_at(size_t t, size_t k, size_t a, size_t m) const {
    return recall[((t * K + k) * A + a) * M + m];
  }
  double score_at(size_t t, size_t r, size_t k, size_t a, size_t m) const {
    return scores[(((t * R + r) * K + k) * A + a) * M + m];
  }
};

struct EvalOptions {
  int threads = 0;  ///< worker threads for the per-image step; 0 = all cores
  /// A bad ground-truth annotation (no area or bbox to evaluate, a
  /// segmentation that does not rasterise) or detection (unknown ids, no
  /// bbox / segmentation, non-finite score): kStrict throws, kSkip leaves it
  /// out and counts it in EvalResult::skipped.
  ErrorPolicy policy = ErrorPolicy::kStrict;
};

/// COCOeval(gt, loadRes(detections), type).evaluate(); accumulate();
/// summarize(). Results never depend on `options.threads`.
///
/// Throws InputError ("results[i]" in the location path; under
/// EvalOptions::policy kSkip the record is left out and counted instead)
/// for a detection
/// whose image or category is not in the ground truth ("unknown_image",
/// "unknown_category"), that lacks what the first detection decided
/// ("missing_field": bbox or segmentation), a non-finite score ("bad_value")
/// or a malformed mask ("bad_rle", "rle_sum", ...); for ground truth without
/// the fields the evaluation reads ("missing_field": area, bbox; mask errors
/// of annotation_rle, checked for every evaluated annotation before the
/// per-image step). ConfigError for unusable params ("bad_params").
EvalResult evaluate(const io::CocoDataset& gt, const std::vector<Detection>& detections,
                    const EvalParams& params, const EvalOptions& options = {});

/// The summary lines for `result` (what EvalResult::summary holds).
std::string format_summary(const EvalResult& result);

}  // namespace pasteflow::eval
