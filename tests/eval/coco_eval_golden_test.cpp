// COCOeval against pycocotools on the coco_mini val set.
// Oracle: pycocotools 8c9bcc3 via shared/golden/coco_mini_val2017_expected.json
// (copied to tests/data/eval/ with the two results files it was computed from).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <map>
#include <string>

#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"

namespace {

using namespace pasteflow;
const std::string kData = PASTEFLOW_TEST_DATA;

struct Expected {
  std::vector<double> stats;
  std::map<int64_t, double> per_category_ap;
};

Expected expected(const std::string& type) {
  simdjson::dom::parser parser;
  simdjson::dom::element doc = parser.load(kData + "/eval/coco_mini_val2017_expected.json");
  Expected e;
  for (double v : doc[type]["stats"].get_array()) e.stats.push_back(v);
  for (auto kv : doc[type]["per_category_ap"].get_object()) {
    e.per_category_ap[std::stoll(std::string(kv.key))] = double(kv.value);
  }
  return e;
}

class Golden : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(Golden, StatsAndPerCategoryApMatchPycocotools) {
  const auto& [type, threads] = GetParam();
  const io::CocoDataset gt = io::load_coco(kData + "/coco_mini/instances_val2017.json");
  const auto dets = eval::load_results(kData + "/eval/coco_mini_val2017_" + type + "_results.json", gt);
  ASSERT_EQ(dets.size(), 654u);
  eval::EvalParams params;
  params.iou_type = eval::parse_iou_type(type);
  eval::EvalOptions opts;
  opts.threads = threads;
  const eval::EvalResult r = eval::evaluate(gt, dets, params, opts);
  const Expected e = expected(type);
  ASSERT_EQ(e.stats.size(), 12u);
  // The contract is 1e-9; the operations are numpy's, so today the values
  // are bit-identical and the second check guards that.
  for (size_t i = 0; i < 12; ++i) {
    EXPECT_NEAR(r.stats[i], e.stats[i], 1e-9) << "stats[" << i << "]";
    EXPECT_EQ(r.stats[i], e.stats[i]) << "stats[" << i << "] not bit-identical";
  }
  ASSERT_EQ(r.per_category_ap.size(), e.per_category_ap.size());
  size_t absent = 0;
  for (const auto& [cat, ap] : r.per_category_ap) {
    ASSERT_TRUE(e.per_category_ap.count(cat)) << cat;
    EXPECT_NEAR(ap, e.per_category_ap.at(cat), 1e-9) << "category " << cat;
    EXPECT_EQ(ap, e.per_category_ap.at(cat)) << "category " << cat << " not bit-identical";
    if (e.per_category_ap.at(cat) == -1) ++absent;
  }
  EXPECT_EQ(absent, 2u);  // categories 58 and 88 have no ground truth in coco_mini val
  // Shapes of the curves.
  EXPECT_EQ(r.T, 10u);
  EXPECT_EQ(r.R, 101u);
  EXPECT_EQ(r.K, 80u);
  EXPECT_EQ(r.A, 4u);
  EXPECT_EQ(r.M, 3u);
  EXPECT_EQ(r.precision.size(), 10u * 101 * 80 * 4 * 3);
  EXPECT_EQ(r.recall.size(), 10u * 80 * 4 * 3);
}

INSTANTIATE_TEST_SUITE_P(BboxSegm, Golden,
                         ::testing::Combine(::testing::Values("bbox", "segm"), ::testing::Values(1, 2)),
                         [](const auto& info) {
                           return std::get<0>(info.param) + "_threads" + std::to_string(std::get<1>(info.param));
                         });

}  // namespace
