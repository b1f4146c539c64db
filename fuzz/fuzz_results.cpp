// COCO results reader (eval::parse_results) and the evaluation of what it
// reads. Input: the results JSON, read against a fixed tiny ground truth
// (tests/data/fuzz/results_ground_truth.json). Results that load are
// evaluated (bbox; segm when they carry masks) and must give stats in
// [0, 1] or -1.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"

using namespace pasteflow;

namespace {

// 2 images, categories 1 and 7, boxes, polygons and a crowd RLE; also the
// ground truth of tests/eval/fuzz_regression_test.cpp.
const std::string kGroundTruth = PASTEFLOW_TEST_DATA "/fuzz/results_ground_truth.json";

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
  static const io::CocoDataset gt = io::load_coco(kGroundTruth);
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
