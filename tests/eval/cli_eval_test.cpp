// pasteflow eval end to end: the built program on the copied oracle inputs.
// Oracle: pycocotools 8c9bcc3 via shared/golden/coco_mini_val2017_expected.json
// (copied to tests/data/eval/).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include <sys/wait.h>
#include <unistd.h>

namespace {

namespace fs = std::filesystem;
const std::string kData = PASTEFLOW_TEST_DATA;
const std::string kBin = PASTEFLOW_BIN;
const std::string kGt = kData + "/coco_mini/instances_val2017.json";

struct CliRun {
  int status;
  std::string out;
};

CliRun run(const std::string& args, bool with_stderr = false) {
  const std::string cmd = kBin + " " + args + (with_stderr ? " 2>&1" : " 2>/dev/null");
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out};
}

class CliEval : public ::testing::TestWithParam<std::string> {};

TEST_P(CliEval, JsonOutputEqualsPycocotools) {
  const std::string type = GetParam();
  const CliRun r = run("eval --gt " + kGt + " --results " + kData + "/eval/coco_mini_val2017_" + type +
                       "_results.json --type " + type + " --json --threads 2");
  ASSERT_EQ(r.status, 0);
  simdjson::dom::parser out_parser, exp_parser;
  simdjson::dom::element out = out_parser.parse(r.out);
  simdjson::dom::element exp = exp_parser.load(kData + "/eval/coco_mini_val2017_expected.json")[type];
  simdjson::dom::array got_stats = out["stats"].get_array();
  simdjson::dom::array exp_stats = exp["stats"].get_array();
  ASSERT_EQ(got_stats.size(), 12u);
  for (size_t i = 0; i < 12; ++i) {
    // Shortest round-trip doubles: the printed numbers parse back exactly.
    EXPECT_NEAR(double(got_stats.at(i)), double(exp_stats.at(i)), 1e-9) << "stats[" << i << "]";
  }
  simdjson::dom::object got_ap = out["per_category_ap"].get_object();
  simdjson::dom::object exp_ap = exp["per_category_ap"].get_object();
  EXPECT_EQ(got_ap.size(), exp_ap.size());
  for (auto kv : exp_ap) {
    double v = 0;
    ASSERT_EQ(got_ap.at_key(kv.key).get_double().get(v), simdjson::SUCCESS) << kv.key;
    EXPECT_NEAR(v, double(kv.value), 1e-9) << "category " << kv.key;
  }
}

INSTANTIATE_TEST_SUITE_P(BboxSegm, CliEval, ::testing::Values("bbox", "segm"));

TEST(CliEvalText, PrintsPycocotoolsSummaryTable) {
  const CliRun r = run("eval --gt " + kGt + " --results " + kData + "/eval/coco_mini_val2017_bbox_results.json");
  ASSERT_EQ(r.status, 0);
  // The oracle's bbox stats printed with pycocotools' format string.
  const std::string expected =
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.124\n"
      " Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.397\n"
      " Average Precision  (AP) @[ IoU=0.75      | area=   all | maxDets=100 ] = 0.046\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.145\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.182\n"
      " Average Precision  (AP) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.117\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.139\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets= 10 ] = 0.188\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.189\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= small | maxDets=100 ] = 0.172\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.236\n"
      " Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.166\n";
  EXPECT_EQ(r.out, expected);
}

TEST(CliEvalErrors, BadResultsFileFailsWithFileAndIndex) {
  const fs::path dir = fs::temp_directory_path() / ("pasteflow_cli_eval_" + std::to_string(getpid()));
  fs::create_directories(dir);
  const std::string bad = (dir / "bad.json").string();
  std::ofstream(bad) << "[{\"image_id\": 139, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"score\": 0.5},"
                        " {\"image_id\": 123456789, \"category_id\": 1, \"bbox\": [1, 2, 3, 4], \"score\": 0.5}]";
  const CliRun r = run("eval --gt " + kGt + " --results " + bad, true);
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.out.find("bad.json"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("[1].image_id"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("123456789"), std::string::npos) << r.out;
  fs::remove_all(dir);
}

}  // namespace
