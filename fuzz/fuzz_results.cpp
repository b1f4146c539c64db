// COCO results reader (eval::parse_results) and the evaluation of what it
// reads. Input: the results JSON, read against a fixed tiny ground truth (2
// images, 2 categories, boxes and polygons). Results that load are
// evaluated (bbox; segm when they carry masks) and must give stats in
// [0, 1] or -1.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>
#include <variant>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"

using namespace pasteflow;

namespace {

constexpr std::string_view kGroundTruth = R"({
  "images": [{"id": 1, "width": 40, "height": 30, "file_name": "a.jpg"},
             {"id": 2, "width": 24, "height": 32, "file_name": "b.jpg"}],
  "categories": [{"id": 1, "name": "cat"}, {"id": 7, "name": "dog"}],
  "annotations": [
    {"id": 1, "image_id": 1, "category_id": 1, "area": 80, "bbox": [2, 3, 10, 8], "iscrowd": 0,
     "segmentation": [[2, 3, 12, 3, 12, 11, 2, 11]]},
    {"id": 2, "image_id": 1, "category_id": 7, "area": 150, "bbox": [20, 10, 15, 10], "iscrowd": 0,
     "segmentation": [[20, 10, 35, 10, 35, 20, 20, 20]]},
    {"id": 3, "image_id": 2, "category_id": 1, "area": 40, "bbox": [0, 0, 20, 30], "iscrowd": 1,
     "segmentation": {"size": [32, 24], "counts": [100, 50, 618]}}
  ]})";

// Evaluation is quadratic in the detections of one image and category;
// longer inputs only test the reader.
constexpr size_t kMaxEvaluated = 200;

void check(const eval::EvalResult& result) {
  for (double s : result.stats) {
    if (!(s == -1.0 || (s >= 0.0 && s <= 1.0))) std::abort();
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const io::CocoDataset gt = io::parse_coco(kGroundTruth, "gt.json");
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  std::vector<eval::Detection> dets;
  try {
    dets = eval::parse_results(json, "results.json", gt);
  } catch (const InputError&) {
    return 0;
  }
  if (dets.empty() || dets.size() > kMaxEvaluated) return 0;
  eval::EvalOptions options;
  options.threads = 1;
  eval::EvalParams params;
  try {
    if (dets[0].bbox) check(eval::evaluate(gt, dets, params, options));
    if (!std::holds_alternative<std::monostate>(dets[0].segmentation)) {
      params.iou_type = eval::IouType::kSegm;
      check(eval::evaluate(gt, dets, params, options));
    }
  } catch (const InputError&) {
  }
  return 0;
}
