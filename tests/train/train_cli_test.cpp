// End-to-end tests of `pasteflow train` and `pasteflow plot` with the tiny
// model on the bundled sample: run, refuse a stale run directory, resume,
// Ctrl-C / SIGTERM (checkpoint, exit 130 / 143), fallback to the newest intact
// checkpoint, an all-skipped dataset, plot, schema.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/plot.hpp"
#include "train_test_util.hpp"
#include "common/file.hpp"

namespace pasteflow::train {
namespace {

using pasteflow::testing::read_file;

namespace fs = std::filesystem;
using testing_util::TempDir;

using testing_util::kBin;
using testing_util::kSample;
using testing_util::kTiny;

struct CliRun {
  int status;
  std::string out;
  std::string err;
};

CliRun run(const TempDir& dir, const std::string& args) {
  const std::string err = dir.str("stderr.txt");
  const std::string cmd = kBin + " " + args + " 2>" + err;
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out, read_file(err)};
}

std::string train_args(const TempDir& dir, const std::string& more) {
  return "train -c " + kTiny + " data.train_annotations=" + kSample + "/annotations.json data.train_images=" +
         kSample + "/images data.val_annotations=" + kSample + "/annotations.json data.val_images=" + kSample +
         "/images output_dir=" + dir.str("run") + " log_period=1 " + more;
}

TEST(TrainCli, TrainsRefusesStaleDirectoryResumesAndPlots) {
  TempDir dir;
  CliRun r = run(dir, train_args(dir, "solver.max_iter=3 checkpoint.period=2 eval.period=0 eval.max_images=2 --json"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"end_iter\": 3"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("data wait:"), std::string::npos) << r.err;  // reported at the end of every run
  EXPECT_TRUE(fs::exists(dir.str("run/config.yaml")));
  EXPECT_TRUE(fs::exists(dir.str("run/best.pt")));
  const auto cps = list_checkpoints(dir.str("run/checkpoints"));
  ASSERT_EQ(cps.size(), 2u);
  EXPECT_EQ(cps[0].first, 2u);
  EXPECT_EQ(cps[1].first, 3u);
  MetricsLog log = read_metrics(dir.str("run/metrics.jsonl"));
  EXPECT_EQ(log.train.size(), 3u);
  EXPECT_EQ(log.eval.size(), 1u);
  EXPECT_GE(log.data_wait_share, 0.0);

  // The same directory without --resume: refused, nothing changed.
  r = run(dir, train_args(dir, "solver.max_iter=3"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.err.find("earlier run"), std::string::npos) << r.err;

  // --resume continues from iteration 3 to 4.
  r = run(dir, train_args(dir, "solver.max_iter=4 eval.at_end=false --resume --json"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"start_iter\": 3"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"end_iter\": 4"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("config differs from the checkpoint's: solver.max_iter"), std::string::npos) << r.err;
  log = read_metrics(dir.str("run/metrics.jsonl"));
  ASSERT_EQ(log.train.size(), 4u);
  EXPECT_EQ(log.train.back().iteration, 4u);

  r = run(dir, "plot " + dir.str("run/metrics.jsonl") + " -o " + dir.str("curves.png"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_FALSE(cv::imread(dir.str("curves.png")).empty());
  r = run(dir, "plot " + dir.str("none.jsonl") + " -o " + dir.str("x.png"));
  EXPECT_NE(r.status, 0);
  EXPECT_FALSE(fs::exists(dir.str("x.png")));
}

/// Trains 200 iterations with no periodic checkpoint, sends `sig` after two
/// and checks what an interrupted run must leave: exit status 128 + sig,
/// the log line, one checkpoint. Returns its iteration (0 when missing).
uint64_t interrupt_training(const TempDir& dir, int sig) {
  const int status = testing_util::run_until_signal(
      kBin + " " + train_args(dir, "solver.max_iter=200 eval.period=0 eval.at_end=false checkpoint.period=1000"),
      dir.str("run/metrics.jsonl"), dir.str("stderr.txt"), sig);
  const std::string err = read_file(dir.str("stderr.txt"));
  EXPECT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 128 + sig) << err;
  EXPECT_NE(err.find("interrupted at iteration"), std::string::npos) << err;
  const auto cps = list_checkpoints(dir.str("run/checkpoints"));
  EXPECT_EQ(cps.size(), 1u);
  if (cps.size() != 1) return 0;
  EXPECT_GE(cps[0].first, 2u);
  EXPECT_LT(cps[0].first, 200u);
  return cps[0].first;
}

// Ctrl-C checkpointed and then exited 0, so a scheduler saw an interrupted
// run as finished: the current iteration finishes, a checkpoint is written,
// the exit status is 130, and --resume continues from that checkpoint.
TEST(TrainCliRegression, SigintExits130AfterACheckpointThatResumes) {
  TempDir dir;
  const uint64_t it = interrupt_training(dir, SIGINT);
  ASSERT_GT(it, 0u);
  const CliRun r = run(dir, train_args(dir, "solver.max_iter=" + std::to_string(it + 1) +
                                                " eval.period=0 eval.at_end=false --resume --json"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"start_iter\": " + std::to_string(it)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"end_iter\": " + std::to_string(it + 1)), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"resumed_iter\": " + std::to_string(it)), std::string::npos) << r.out;
}

TEST(TrainCliRegression, SigtermExits143AfterACheckpoint) {
  TempDir dir;
  EXPECT_GT(interrupt_training(dir, SIGTERM), 0u);
}

/// A PID no process has: a child that has exited and been reaped.
pid_t dead_pid() {
  const pid_t child = fork();
  if (child == 0) _exit(0);
  waitpid(child, nullptr, 0);
  return child;
}

// --resume failed on a corrupt newest checkpoint instead of falling back to
// the newest intact one; a killed run's temporary files were never removed.
TEST(TrainCliRegression, ResumeFallsBackToTheNewestIntactCheckpoint) {
  TempDir dir;
  CliRun r = run(dir, train_args(dir, "solver.max_iter=3 checkpoint.period=1 checkpoint.keep_last=0 eval.period=0 "
                                      "eval.at_end=false"));
  ASSERT_EQ(r.status, 0) << r.err;
  const std::string cps = dir.str("run/checkpoints/");
  ASSERT_EQ(list_checkpoints(cps).size(), 3u);
  const std::string third = read_file(cps + "model_0000003.pt");
  std::ofstream(cps + "model_0000003.pt", std::ios::binary) << third.substr(0, third.size() / 3);  // truncated
  std::ofstream(cps + "model_0000002.pt", std::ios::binary).flush();                                // empty
  const std::string stale_tmp = cps + "model_0000004.pt.tmp-" + std::to_string(dead_pid());
  std::ofstream(stale_tmp) << third;  // a killed run's temporary file

  // max_iter 1: resumed at iteration 1, nothing to train, nothing rewritten.
  r = run(dir, train_args(dir, "solver.max_iter=1 eval.at_end=false --resume --json"));
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.out.find("\"resumed_iter\": 1"), std::string::npos) << r.out;
  EXPECT_NE(r.out.find("\"checkpoints_passed_over\": 2"), std::string::npos) << r.out;
  EXPECT_NE(r.err.find("passed over checkpoint " + cps + "model_0000003.pt: the file is truncated"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("passed over checkpoint " + cps + "model_0000002.pt: the file is empty"), std::string::npos)
      << r.err;
  EXPECT_NE(r.err.find("resumed from " + cps + "model_0000001.pt at iteration 1"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("removed " + stale_tmp), std::string::npos) << r.err;
  EXPECT_FALSE(fs::exists(stale_tmp));
  const std::string metrics = read_file(dir.str("run/metrics.jsonl"));
  EXPECT_NE(metrics.find("\"resumed_iter\":1"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"reason\":\"truncated_weights_file\""), std::string::npos) << metrics;

  // No intact checkpoint: an error naming every file and its problem, never a fresh start.
  std::ofstream(cps + "model_0000001.pt", std::ios::binary) << "random bytes, not a checkpoint";
  r = run(dir, train_args(dir, "solver.max_iter=1 eval.at_end=false --resume"));
  EXPECT_EQ(r.status, 1) << r.err;
  for (const char* expected : {"none of the 3 checkpoint(s) can be read", "model_0000003.pt: the file is truncated",
                               "model_0000002.pt: the file is empty", "model_0000001.pt: not a PyTorch archive"}) {
    EXPECT_NE(r.err.find(expected), std::string::npos) << expected << "\n" << r.err;
  }
  EXPECT_EQ(r.err.find("torchvision"), std::string::npos) << r.err;
}

// Training on a dataset whose images were all skipped said only "the loader
// delivered no batch in a whole epoch": it now names the annotation file and
// the image directory and gives the skip counts with each reason's first message.
TEST(TrainCliRegression, AllImagesSkippedNamesTheDataAndTheSkipCounts) {
  TempDir dir;
  fs::create_directories(dir.path() / "images");
  std::ofstream(dir.str("annotations.json"))
      << R"({"images": [{"id": 1, "file_name": "a.jpg", "width": 64, "height": 48},)"
         R"( {"id": 2, "file_name": "b.jpg", "width": 64, "height": 48}],)"
         R"( "annotations": [{"id": 1, "image_id": 1, "category_id": 3, "bbox": [4, 4, 10, 10], "area": 100,)"
         R"( "iscrowd": 0, "segmentation": [[4, 4, 14, 4, 14, 14, 4, 14]]},)"
         R"( {"id": 2, "image_id": 2, "category_id": 3, "bbox": [4, 4, 10, 10], "area": 100,)"
         R"( "iscrowd": 0, "segmentation": [[4, 4, 14, 4, 14, 14, 4, 14]]}],)"
         R"( "categories": [{"id": 3, "name": "thing"}]})";
  const CliRun r = run(dir, "train -c " + kTiny + " data.train_annotations=" + dir.str("annotations.json") +
                                " data.train_images=" + dir.str("images") +
                                " data.val_annotations=" + dir.str("annotations.json") + " data.val_images=" +
                                dir.str("images") + " pipeline.loader.on_error=skip output_dir=" + dir.str("run") +
                                " solver.max_iter=2 eval.period=0 eval.at_end=false");
  EXPECT_EQ(r.status, 1) << r.err;
  for (const std::string& expected :
       std::vector<std::string>{dir.str("annotations.json"), "images in " + dir.str("images"),
                                "no batch in a whole epoch of 2 image(s)", "sample(s) or record(s) skipped:",
                                "missing_image (first: " + dir.str("images")}) {
    EXPECT_NE(r.err.find(expected), std::string::npos) << expected << "\n" << r.err;
  }
}

TEST(TrainCli, Schema) {
  TempDir dir;
  const CliRun r = run(dir, "train --schema");
  ASSERT_EQ(r.status, 0) << r.err;
  for (const char* key : {"solver.base_lr", "solver.steps", "checkpoint.keep_last", "eval.metric",
                          "pipeline.loader.batch_size", "model.backbone.depth", "device"}) {
    EXPECT_NE(r.out.find(key), std::string::npos) << key;
  }
}

}  // namespace
}  // namespace pasteflow::train
