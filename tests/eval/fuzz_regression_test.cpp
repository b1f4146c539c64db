// Regression tests for what fuzz/fuzz_results found (fuzz/FINDINGS.md); the
// reproducers are in tests/data/fuzz/fuzz_results/. The ground truth is the
// fuzz target's own.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "common/file.hpp"
#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"

namespace {

using namespace pasteflow;

const std::string kFuzzData = std::string(PASTEFLOW_TEST_DATA) + "/fuzz/fuzz_results/";
constexpr double kOnePrecision = 1.0 / (1.0 + 2.220446049250313e-16);  // see coco_eval_test.cpp

// fuzz/fuzz_results.cpp's ground truth: cat 1 has a box on image 1 and a
// crowd region on image 2, cat 7 a box on image 1.
const std::string kGroundTruth = std::string(PASTEFLOW_TEST_DATA) + "/fuzz/results_ground_truth.json";

TEST(EvalRegression, ImageAndCategoryWithoutDetectionsIsNoNullPointerArithmetic) {
  // UBSan: "applying non-zero offset 1 to null pointer" in evaluate_images:
  // an (image, category) pair with ground truth but no detection took a
  // pointer into its empty flags array. The reproducer's one detection
  // misses the only box of cat 1 (y 27.67 is below it); cat 7 and image 2
  // have no detection at all.
  const io::CocoDataset gt = io::load_coco(kGroundTruth);
  const std::string path = kFuzzData + "image_without_detections.json";
  const auto misses = eval::parse_results(pasteflow::testing::read_file(path), path, gt);
  ASSERT_EQ(misses.size(), 1u);
  EXPECT_EQ(eval::evaluate(gt, misses, {}).stats[0], 0.0);

  // One detection exactly on cat 1's box: AP 1 for cat 1, 0 for cat 7.
  const auto hit = eval::parse_results(
      R"([{"image_id": 1, "category_id": 1, "bbox": [2, 3, 10, 8], "score": 0.9}])", "hit.json", gt);
  EXPECT_DOUBLE_EQ(eval::evaluate(gt, hit, {}).stats[0], kOnePrecision / 2);
}

}  // namespace
