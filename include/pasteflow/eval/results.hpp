// COCO results files: a JSON array of
//   {"image_id": int, "category_id": int, "score": number,
//    "bbox": [x, y, w, h]                                   (optional)
//    "segmentation": {"size": [h, w], "counts": "..."}      (optional)}
// as pycocotools' COCO.loadRes reads them (see coco_eval.hpp for how the
// first result decides which field is required). Segmentations may also be
// uncompressed RLE ({"size", "counts": [..]}) or polygon lists.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/io/coco.hpp"

namespace pasteflow::eval {

/// Reads and validates a results file against the ground truth `gt`.
/// Throws InputError naming the file, the array index ("[12].bbox") and the
/// result ("result 12") with a reason code:
///   "io_error", "malformed_json", "not_an_array" (the top level),
///   "wrong_type" (a result that is not an object, a field of the wrong type),
///   "missing_field" (image_id, category_id, score; bbox or segmentation as
///   the first result decides), "bad_value" (non-finite or non-integral
///   numbers, bbox not 4 numbers, bad size), "unknown_image" (pycocotools:
///   'Results do not correspond to current coco set'), "unknown_category",
///   and the mask codes "bad_rle", "rle_sum", "odd_polygon", "short_polygon",
///   "polygon_range" (compressed strings are decoded once to check them).
/// Also "bad_value" for a box of zero or negative width or height or with a
/// number beyond +-io::kMaxCoordinate, and for a
/// non-finite number literal (NaN, Infinity, -Infinity, as Python's json
/// writes them), "rle_size_mismatch" (an RLE "size" that is not its image's
/// [height, width]).
/// Unknown members are ignored (pycocotools keeps but never reads them).
///
/// Bad results: under kStrict the first one throws; under kSkip (with
/// `skipped` given) each is left out and counted in `skipped` by reason.
/// A file that is not JSON always throws "malformed_json" with the byte
/// offset of the problem (a truncated file: its end; a bad literal: the
/// literal) and the index of the result it is in; results that were read
/// from a malformed file carry their byte offset too.
std::vector<Detection> load_results(const std::string& path, const io::CocoDataset& gt,
                                    ErrorPolicy policy = ErrorPolicy::kStrict, SkipReport* skipped = nullptr);

/// Same from memory; `name` stands for the file in messages.
std::vector<Detection> parse_results(std::string_view json, const std::string& name, const io::CocoDataset& gt,
                                     ErrorPolicy policy = ErrorPolicy::kStrict, SkipReport* skipped = nullptr);

/// Writes detections as a COCO results JSON array (shortest round-trip
/// doubles; masks as compressed RLE strings, polygons as lists).
std::string results_to_json(const std::vector<Detection>& detections);

/// Synthetic detections for benchmarks and tests: `n` results on random
/// images and categories of `gt` with random boxes inside the image, about
/// half of them jittered copies of ground-truth boxes; with `with_masks`
/// each also gets a compressed RLE mask (an ellipse-like polygon inside its
/// box). Deterministic for a given seed.
std::vector<Detection> random_detections(const io::CocoDataset& gt, size_t n, uint64_t seed,
                                         bool with_masks);

}  // namespace pasteflow::eval
