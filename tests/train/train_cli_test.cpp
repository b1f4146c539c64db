// End-to-end tests of `pasteflow train` and `pasteflow plot` with the tiny
// model on the bundled sample: run, refuse a stale run directory, resume,
// Ctrl-C (checkpoint and stop), plot, schema.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <thread>

#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/plot.hpp"
#include "train_test_util.hpp"
#include "common/file.hpp"

namespace pasteflow::train {
namespace {

using pasteflow::testing::read_file;

namespace fs = std::filesystem;
using testing_util::TempDir;

const std::string kBin = PASTEFLOW_BIN;
const std::string kSample = PASTEFLOW_SAMPLE_DATA;
const std::string kConfig = std::string(PASTEFLOW_SOURCE_DIR) + "/configs/train/sample_tiny.yaml";

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
  return "train -c " + kConfig + " data.train_annotations=" + kSample + "/annotations.json data.train_images=" +
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

// Ctrl-C: the current iteration finishes, a checkpoint is written, exit 0.
TEST(TrainCli, InterruptWritesACheckpoint) {
  TempDir dir;
  const std::string cmd = "exec " + kBin + " " +
                          train_args(dir, "solver.max_iter=200 eval.period=0 eval.at_end=false checkpoint.period=1000") +
                          " >/dev/null 2>" + dir.str("stderr.txt");
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for two iterations in the metrics file (log_period 1).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(50);
  while (std::chrono::steady_clock::now() < deadline) {
    const std::string m = read_file(dir.str("run/metrics.jsonl"));
    if (m.find("\"iter\":2,") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  ASSERT_TRUE(WIFEXITED(status)) << read_file(dir.str("stderr.txt"));
  EXPECT_EQ(WEXITSTATUS(status), 0) << read_file(dir.str("stderr.txt"));
  EXPECT_NE(read_file(dir.str("stderr.txt")).find("interrupted at iteration"), std::string::npos);
  const auto cps = list_checkpoints(dir.str("run/checkpoints"));
  ASSERT_EQ(cps.size(), 1u);
  EXPECT_GE(cps[0].first, 2u);
  EXPECT_LT(cps[0].first, 200u);
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
