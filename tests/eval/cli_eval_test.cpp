// pasteflow eval end to end: the built program on the copied oracle inputs.
// Oracle: pycocotools 8c9bcc3 via shared/golden/coco_mini_val2017_expected.json
// (copied to tests/data/eval/).
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
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

// ------------------------------------------------------------ issue 10

/// A temporary directory with a tiny ground truth (one 100x100 image, one
/// box object) and the files a test writes.
class EvalCliRegression : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pasteflow_cli_eval_" + std::to_string(getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  std::string write(const std::string& name, const std::string& text) {
    const std::string path = (dir_ / name).string();
    std::ofstream(path) << text;
    return path;
  }
  /// `eval ARGS --on-error skip --json` finishes with AP 1 (the exact
  /// detection on the one object left) and these skip counts.
  void expect_skipped(const std::string& args, const std::map<std::string, int64_t>& expected) {
    const CliRun r = run("eval " + args + " --on-error skip --json");
    ASSERT_EQ(r.status, 0) << r.out;
    simdjson::dom::parser parser;
    const simdjson::dom::element doc = parser.parse(r.out);
    EXPECT_NEAR(double(doc["stats"].at(0)), 1.0, 1e-12);
    simdjson::dom::object per_category;
    EXPECT_EQ(doc["per_category_ap"].get(per_category), simdjson::SUCCESS);  // existing keys stay
    EXPECT_EQ(simdjson::dom::object(doc["skipped"]).size(), expected.size()) << r.out;
    for (const auto& [reason, n] : expected) EXPECT_EQ(int64_t(doc["skipped"][reason]), n) << reason;
  }
  std::string gt(const std::string& image, const std::string& more_annotations = "") {
    return write("gt.json", R"({"images":[)" + image + R"(],"categories":[{"id":1,"name":"thing"}],"annotations":[)"
                                R"({"id":1,"image_id":1,"category_id":1,"area":400,"bbox":[10,10,20,20],)"
                                R"("segmentation":[[10,10,30,10,30,30,10,30]]})" +
                                more_annotations + "]}");
  }
  fs::path dir_;
};

const char* const kImage100 = R"({"id":1,"width":100,"height":100,"file_name":"a.jpg"})";
const char* const kExact = R"({"image_id":1,"category_id":1,"bbox":[10,10,20,20],"score":0.9})";

TEST_F(EvalCliRegression, ZeroWidthImageFailsInsteadOfAWrongAp) {
  // width 0 used to evaluate (segm masks of [100, 0]) to AP 0.298, exit 0.
  const std::string g = gt(R"({"id":1,"width":0,"height":100,"file_name":"a.jpg"})");
  const std::string res = write("res.json", std::string("[") + kExact + "]");
  const CliRun r = run("eval --gt " + g + " --results " + res + " --type segm --json", true);
  EXPECT_EQ(r.status, 1) << r.out;
  EXPECT_NE(r.out.find("gt.json:byte "), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("images[0].width"), std::string::npos) << r.out;
  EXPECT_EQ(r.out.find("\"stats\""), std::string::npos) << r.out;
  // The same file with a valid width: AP 1.
  const std::string ok = gt(kImage100);
  const CliRun good = run("eval --gt " + ok + " --results " + res + " --type bbox --json");
  ASSERT_EQ(good.status, 0) << good.out;
  simdjson::dom::parser parser;
  const simdjson::dom::element doc = parser.parse(good.out);
  EXPECT_NEAR(double(doc["stats"].at(0)), 1.0, 1e-12);
  EXPECT_EQ(simdjson::dom::object(doc["skipped"]).size(), 0u);
}

TEST_F(EvalCliRegression, NanResultStrictNamesOffsetSkipCountsIt) {
  const std::string g = gt(kImage100);
  const std::string text = std::string("[") + kExact +
                           R"(,{"image_id":1,"category_id":1,"bbox":[1,1,5,5],"score":NaN})" +
                           R"(,{"image_id":9,"category_id":1,"bbox":[1,1,5,5],"score":0.1})" +
                           R"(,{"image_id":1,"category_id":1,"bbox":[1,1,5],"score":0.1}])";
  const std::string res = write("res.json", text);
  const CliRun strict = run("eval --gt " + g + " --results " + res, true);
  EXPECT_EQ(strict.status, 1) << strict.out;
  EXPECT_NE(strict.out.find("res.json:byte " + std::to_string(text.find("NaN"))), std::string::npos) << strict.out;
  EXPECT_NE(strict.out.find("[1].score"), std::string::npos) << strict.out;
  EXPECT_EQ(strict.out.find("improper structure"), std::string::npos) << strict.out;

  expect_skipped("--gt " + g + " --results " + res, {{"bad_value", 2}, {"unknown_image", 1}});

  const CliRun text_out = run("eval --gt " + g + " --results " + res + " --on-error skip");
  ASSERT_EQ(text_out.status, 0) << text_out.out;
  EXPECT_NE(text_out.out.find("skipped 3 bad record(s) (--on-error skip): bad_value 2 unknown_image 1"),
            std::string::npos)
      << text_out.out;
}

TEST_F(EvalCliRegression, TruncatedResultsNameTheirEnd) {
  const std::string g = gt(kImage100);
  const std::string text = std::string("[") + kExact + R"(,{"image_id":1,"cat)";
  const std::string res = write("res.json", text);
  for (const char* policy : {"strict", "skip"}) {
    const CliRun r = run("eval --gt " + g + " --results " + res + " --on-error " + policy, true);
    EXPECT_EQ(r.status, 1) << r.out;
    EXPECT_NE(r.out.find("res.json:byte " + std::to_string(text.size())), std::string::npos) << r.out;
    EXPECT_NE(r.out.find("truncated"), std::string::npos) << r.out;
  }
}

TEST_F(EvalCliRegression, GroundTruthPolygon1e308AndEmptyListSkippedInSegm) {
  const std::string g = gt(kImage100, R"(,{"id":2,"image_id":1,"category_id":1,"area":4,"bbox":[50,50,2,2],)"
                                      R"("segmentation":[[50,50,1e308,50,52,52]]})"
                                      R"(,{"id":3,"image_id":1,"category_id":1,"area":4,"bbox":[60,60,2,2],)"
                                      R"("segmentation":[]})");
  const std::string res = write(
      "res.json", R"([{"image_id":1,"category_id":1,"score":0.9,"segmentation":[[10,10,30,10,30,30,10,30]]}])");
  const CliRun strict = run("eval --gt " + g + " --results " + res + " --type segm", true);
  EXPECT_EQ(strict.status, 1) << strict.out;
  EXPECT_NE(strict.out.find("annotations[1].segmentation[0][2]"), std::string::npos) << strict.out;
  EXPECT_NE(strict.out.find("annotation id 2"), std::string::npos) << strict.out;
  EXPECT_NE(strict.out.find("1e+308"), std::string::npos) << strict.out;
  EXPECT_LT(strict.out.size(), 400u) << strict.out;

  expect_skipped("--gt " + g + " --results " + res + " --type segm",
                 {{"polygon_range", 1}, {"empty_segmentation", 1}});
}

}  // namespace
