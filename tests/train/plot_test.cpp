// metrics.jsonl reading and the training-curve PNG.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <string>

#include "pasteflow/core/error.hpp"
#include "pasteflow/train/plot.hpp"
#include "train_test_util.hpp"

namespace pasteflow::train {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;

const char* kLog =
    R"({"type":"train","iter":5,"epoch":0,"iterations":5,"lr":0.002,"loss":6.5,"loss_classifier":4.0,"loss_mask":0.9,"time_s":0.6,"data_s":0.01,"data_share":0.0167,"images_per_s":3.3}
{"type":"train","iter":10,"epoch":0,"iterations":5,"lr":0.02,"loss":4.25,"loss_classifier":2.0,"loss_mask":0.8,"time_s":0.6,"data_s":0.002,"data_share":0.0033,"images_per_s":3.3}

{"type":"eval","iter":10,"images":16,"bbox_AP":0.01,"segm_AP":0.02,"segm_AP_small":-1,"metric":"segm_AP_small","value":-1,"best":true}
{"type":"something_else","iter":11}
{"type":"train","iter":15,"epoch":1,"iterations":5,"lr":0.02,"loss":3,"loss_classifier":1,"loss_mask":0.7,"time_s":0.6,"data_s":0.0,"data_share":0,"images_per_s":3.4}
{"type":"summary","iter":15,"data_wait_share":0.0066}
)";

std::string write(const TempDir& dir, const std::string& name, const std::string& text) {
  const std::string p = dir.str(name);
  std::ofstream(p) << text;
  return p;
}

TEST(MetricsPlot, ReadsTrainEvalAndSummaryLines) {
  TempDir dir;
  const MetricsLog log = read_metrics(write(dir, "m.jsonl", kLog));
  ASSERT_EQ(log.train.size(), 3u);
  EXPECT_EQ(log.train[0].iteration, 5u);
  EXPECT_EQ(log.train[1].lr, 0.02);
  EXPECT_EQ(log.train[2].loss, 3.0);  // integer JSON number
  EXPECT_EQ(log.train[0].losses.size(), 2u);
  EXPECT_EQ(log.train[0].losses.at("loss_classifier"), 4.0);
  EXPECT_EQ(log.train[1].data_share, 0.0033);
  ASSERT_EQ(log.eval.size(), 1u);
  EXPECT_EQ(log.eval[0].metric, "segm_AP_small");
  EXPECT_EQ(log.eval[0].value, -1.0);
  EXPECT_EQ(log.eval[0].metrics.size(), 3u);
  EXPECT_EQ(log.data_wait_share, 0.0066);
}

TEST(MetricsPlot, DrawsAllPanels) {
  TempDir dir;
  const MetricsLog log = read_metrics(write(dir, "m.jsonl", kLog));
  CurvesOptions opts;
  plot_curves(log, dir.str("curves.png"), opts);
  const cv::Mat img = cv::imread(dir.str("curves.png"));
  ASSERT_FALSE(img.empty());
  EXPECT_EQ(img.cols, opts.width);
  EXPECT_EQ(img.rows, 36 + 4 * opts.panel_height);  // loss, lr, data wait, eval
  // Not blank: the curves put dark pixels in each panel.
  for (int p = 0; p < 4; ++p) {
    const cv::Mat panel = img.rowRange(36 + p * opts.panel_height, 36 + (p + 1) * opts.panel_height);
    cv::Mat grey;
    cv::extractChannel(panel, grey, 0);
    EXPECT_GT(cv::countNonZero(grey < 128), 100) << "panel " << p;
  }
  // Without eval lines: three panels.
  MetricsLog no_eval = log;
  no_eval.eval.clear();
  plot_curves(no_eval, dir.str("curves3.png"), opts);
  EXPECT_EQ(cv::imread(dir.str("curves3.png")).rows, 36 + 3 * opts.panel_height);
  // Only the two PNGs and the input are in the directory (no temporaries).
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir.path())) n += e.is_regular_file();
  EXPECT_EQ(n, 3u);
}

TEST(MetricsPlot, Errors) {
  TempDir dir;
  try {
    read_metrics(write(dir, "bad.jsonl", std::string(kLog) + "{\"type\":\"train\",\n"));
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "malformed_json");
    EXPECT_EQ(e.where().record, "line 8");
  }
  try {
    read_metrics(write(dir, "missing.jsonl", "{\"type\":\"train\",\"iter\":1,\"loss\":2}\n"));
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "missing_field");
  }
  EXPECT_THROW(read_metrics(dir.str("none.jsonl")), InputError);
  const MetricsLog empty = read_metrics(write(dir, "empty.jsonl", "{\"type\":\"summary\",\"iter\":0}\n"));
  try {
    plot_curves(empty, dir.str("x.png"));
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "no_data");
  }
  EXPECT_FALSE(fs::exists(dir.str("x.png")));
}

}  // namespace
}  // namespace pasteflow::train
