// `pasteflow bench pipeline` end to end on the bundled sample: valid JSON
// with the documented keys and plausible values (no timing thresholds).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <algorithm>
#include <string>
#include <vector>

#include "common/command.hpp"

namespace {

const std::string kBin = PASTEFLOW_BIN;
const std::string kSample = PASTEFLOW_SAMPLE_DATA;
const std::string kSource = PASTEFLOW_SOURCE_DIR;

std::string run(const std::string& args, int& status) {
  const pasteflow::testing::CommandResult r = pasteflow::testing::run_command(kBin + " " + args, /*keep_stderr=*/false);
  status = r.status;
  return r.output;
}

TEST(CliBenchPipeline, PrintsJsonWithTheKeys) {
  int status = -1;
  // Small resize target so one epoch of each run stays short.
  const std::string out = run("bench pipeline -c " + kSource + "/configs/paper/original_aug.yaml -a " + kSample +
                                  "/annotations.json -i " + kSample +
                                  "/images --seconds 1 --threads 2 --scaling --json batch.min_size=200 batch.max_size=320",
                              status);
  ASSERT_EQ(status, 0) << out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out;
  for (const char* key : {"threads", "baseline_images_per_s", "pipeline_images_per_s", "ratio", "peak_rss_mb"}) {
    double v = -1;
    ASSERT_EQ(doc[key].get_double().get(v), simdjson::SUCCESS) << key;
    EXPECT_GT(v, 0) << key;
  }
  EXPECT_EQ(int64_t(doc["threads"]), 2);
  const double ratio = double(doc["ratio"]);
  EXPECT_NEAR(ratio, double(doc["pipeline_images_per_s"]) / double(doc["baseline_images_per_s"]), 1e-9);
  // One epoch at least: 16 images without augmentation; original_aug adds
  // the 12 augmented copies.
  EXPECT_GE(int64_t(doc["baseline"]["images"]), 16);
  EXPECT_GE(int64_t(doc["pipeline"]["images"]), 28);
  EXPECT_GE(int64_t(doc["pipeline"]["epochs"]), 1);
  for (const char* stage : {"load", "augment", "prepare", "batch"}) {
    EXPECT_GT(uint64_t(doc["pipeline"]["stages"][stage]["calls"]), 0u) << stage;
  }
  EXPECT_GT(double(doc["scaling"]["pipeline_scaling"]), 0);
  EXPECT_GT(double(doc["scaling"]["pipeline_images_per_s_1_thread"]), 0);
}

TEST(CliBenchPipeline, RoundsReportTheMedianOfEachRatio) {
  int status = -1;
  const std::string out = run("bench pipeline -c " + kSource + "/configs/paper/original_aug.yaml -a " + kSample +
                                  "/annotations.json -i " + kSample +
                                  "/images --seconds 0 --threads 2 --scaling --rounds 3 --json batch.min_size=160 "
                                  "batch.max_size=256",
                              status);
  ASSERT_EQ(status, 0) << out;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out;
  EXPECT_EQ(int64_t(doc["rounds"]), 3);
  std::vector<double> ratios, scalings;
  for (simdjson::dom::element r : doc["per_round"].get_array()) {
    ratios.push_back(double(r["ratio"]));
    scalings.push_back(double(r["pipeline_scaling"]));
  }
  ASSERT_EQ(ratios.size(), 3u);
  std::sort(ratios.begin(), ratios.end());
  std::sort(scalings.begin(), scalings.end());
  EXPECT_EQ(double(doc["ratio"]), ratios[1]);
  EXPECT_EQ(double(doc["scaling"]["pipeline_scaling"]), scalings[1]);
}

}  // namespace
