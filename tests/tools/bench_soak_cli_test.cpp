// `pasteflow bench soak` end to end for a few seconds on tests/data/paste:
// the JSON summary's shape, a non-empty series consistent with the totals,
// the flatness figures over the samples after the warm-up, and Ctrl-C
// (summary printed, exit 130). No timing thresholds: it is a benchmark.
#include <gtest/gtest.h>
#include <signal.h>
#include <simdjson.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <filesystem>
#include <string>
#include <thread>

#include "common/command.hpp"
#include "common/file.hpp"

namespace {

using pasteflow::testing::read_file;

const std::string kBin = PASTEFLOW_BIN;
const std::string kSource = PASTEFLOW_SOURCE_DIR;

std::string soak_args(const std::string& more) {
  const std::string data = kSource + "/tests/data/paste";
  return "bench soak -c " + kSource + "/configs/paper/all_objects_3x.yaml -a " + data + "/annotations.json -i " +
         data + "/images --threads 2 --json batch.min_size=160 batch.max_size=256 " + more;
}

TEST(CliBenchSoak, PrintsTheSeriesAndTheFlatness) {
  const pasteflow::testing::CommandResult r = pasteflow::testing::run_command(
      kBin + " " + soak_args("--duration 3 --interval 0.5 --warmup 1"), /*keep_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(r.output).get(doc), simdjson::SUCCESS) << r.output;
  EXPECT_EQ(int64_t(doc["threads"]), 2);
  EXPECT_FALSE(bool(doc["interrupted"]));
  EXPECT_GE(double(doc["seconds"]), 3.0);
  EXPECT_GT(uint64_t(doc["images"]), 0u);
  EXPECT_GT(double(doc["peak_rss_mib"]), 0.0);

  simdjson::dom::array series;
  ASSERT_EQ(doc["series"].get_array().get(series), simdjson::SUCCESS);
  ASSERT_GE(series.size(), 2u);
  double last_t = -1;
  uint64_t last_images = 0;
  uint64_t after_warmup = 0;
  for (simdjson::dom::element s : series) {
    const double t = double(s["t_s"]);
    EXPECT_GT(t, last_t);
    EXPECT_GE(uint64_t(s["images"]), last_images);
    EXPECT_GT(double(s["rss_mib"]), 0.0);
    EXPECT_GE(double(s["images_per_s"]), 0.0);
    last_t = t;
    last_images = uint64_t(s["images"]);
    if (t >= 1.0) ++after_warmup;
  }
  // The last sample is taken at the end of the run: it holds the totals.
  EXPECT_EQ(last_images, uint64_t(doc["images"]));
  EXPECT_EQ(last_t, double(doc["seconds"]));

  const simdjson::dom::element f = doc["flatness"];
  EXPECT_EQ(uint64_t(f["samples"]), after_warmup);
  ASSERT_GE(after_warmup, 2u);
  double slope = 0;
  EXPECT_EQ(f["rss_slope_mib_per_10min"].get_double().get(slope), simdjson::SUCCESS);  // a number, not null
  EXPECT_EQ(f["rss_ls_slope_mib_per_10min"].get_double().get(slope), simdjson::SUCCESS);
  EXPECT_NEAR(double(f["rss_range_mib"]), double(f["rss_max_mib"]) - double(f["rss_min_mib"]), 1e-9);
  EXPECT_GE(double(f["rss_range_mib"]), 0.0);
}

// Ctrl-C ends the soak early, still prints the summary, and exits 130.
TEST(CliBenchSoak, InterruptPrintsTheSummaryAndExits130) {
  char dir_template[] = "/tmp/pasteflow_soak_XXXXXX";
  ASSERT_NE(mkdtemp(dir_template), nullptr);
  const std::filesystem::path dir = dir_template;
  const std::string cmd = "exec " + kBin + " " + soak_args("--duration 600 --interval 0.2") + " >" +
                          (dir / "out.json").string() + " 2>" + (dir / "err.txt").string();
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", cmd.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  // Wait for the first sample line (the signal handlers are installed by then).
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline &&
         read_file(dir / "err.txt").find("MiB") == std::string::npos) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
  kill(pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  const std::string out = read_file(dir / "out.json");
  const std::string err = read_file(dir / "err.txt");
  std::filesystem::remove_all(dir);
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 130) << err;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(out).get(doc), simdjson::SUCCESS) << out << err;
  EXPECT_TRUE(bool(doc["interrupted"]));
  EXPECT_LT(double(doc["seconds"]), 600.0);
  EXPECT_GE(doc["series"].get_array().size(), 1u);
}

}  // namespace
