// `pasteflow bench distributed` end to end on the tiny model and the bundled
// sample, a few iterations: the JSON's figures are consistent with each
// other, and the runs' temporary directory is gone afterwards. No timing
// thresholds: it is a benchmark.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <string>

#include "common/command.hpp"
#include "common/temp_dir.hpp"

namespace {

const std::string kBin = PASTEFLOW_BIN;
const std::string kSource = PASTEFLOW_SOURCE_DIR;

TEST(CliBenchDistributed, TwoRanksAgainstOneOnTheSameGlobalBatch) {
  // The benchmark's scratch directory goes under TMPDIR: a fresh one, to see it removed.
  const pasteflow::testing::ScratchDir tmp("bench_distributed");
  const std::string sample = kSource + "/data/sample";
  const std::string cmd = "TMPDIR=" + tmp.path().string() + " " + kBin + " bench distributed -c " + kSource +
                          "/configs/train/sample_tiny.yaml --iters 3 --warmup 1 --compare-overlap --json" +
                          " data.train_annotations=" + sample + "/annotations.json data.train_images=" + sample +
                          "/images data.val_annotations=" + sample + "/annotations.json data.val_images=" + sample +
                          "/images pipeline.batch.min_size=96 pipeline.batch.max_size=128";
  const pasteflow::testing::CommandResult r = pasteflow::testing::run_command(cmd, /*keep_stderr=*/false);
  ASSERT_EQ(r.status, 0) << r.output;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(r.output).get(doc), simdjson::SUCCESS) << r.output;
  const double one = double(doc["one_rank_s_per_iter"]);
  const double two = double(doc["two_ranks_s_per_iter"]);
  const double independent = double(doc["independent_s_per_iter"]);
  EXPECT_GT(one, 0.0);
  EXPECT_GT(two, 0.0);
  EXPECT_GT(independent, 0.0);
  EXPECT_GT(double(doc["two_ranks_no_overlap_s_per_iter"]), 0.0);
  EXPECT_NEAR(double(doc["scaling_efficiency"]), one / (2 * two), 1e-9);
  EXPECT_NEAR(double(doc["contention_ceiling"]), one / (2 * independent), 1e-9);
  const double comm = double(doc["comm_share"]);
  EXPECT_GT(comm, 0.0);  // two ranks wait for all-reduces
  EXPECT_LT(comm, 1.0);
  EXPECT_EQ(uint64_t(doc["global_batch"]), 4u);  // twice sample_tiny's batch of 2
  EXPECT_EQ(uint64_t(doc["iters"]), 3u);
  // Only the benchmark's own scratch directory was made, and it is gone.
  EXPECT_TRUE(std::filesystem::is_empty(tmp.path())) << tmp.path().string();
}

}  // namespace
