// Experiment repeats (issue 12, section 2): `seeds:` expands every run into
// one run per seed (<name>/seed_<S>, pipeline.seed = S), and the table gets
// mean ± sample standard deviation over seeds and the paired difference to
// the baseline row. The aggregation is checked on hand-made metrics with
// numbers worked out by hand; the expansion on the plan (and the command's
// --dry-run --json); and end to end with 2 seeds x 2 runs of the tiny model.
#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <string>
#include <vector>

#include "common/command.hpp"
#include "common/file.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/experiment.hpp"
#include "pasteflow/train/plot.hpp"
#include "train_test_util.hpp"

namespace pasteflow::train {
namespace {

using pasteflow::testing::read_file;
namespace fs = std::filesystem;
using testing_util::TempDir;

using testing_util::kSource;
using testing_util::kSample;
using testing_util::kTiny;
using testing_util::kBin;

void write(const std::string& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

ConfigError parse_error(const std::string& yaml) {
  try {
    parse_experiment(yaml, "/exp/e.yaml");
  } catch (const ConfigError& e) {
    return e;
  }
  return ConfigError("<no error>", "");
}

// ---------------------------------------------------------------- the math

TEST(ExperimentSeedsMath, MeanAndSampleStandardDeviation) {
  const MeanSd m = mean_sd({0.1, 0.2, 0.3, 0.6});
  EXPECT_EQ(m.n, 4u);
  EXPECT_NEAR(m.mean, 0.3, 1e-12);
  // deviations -0.2 -0.1 0 0.3: squares 0.04 + 0.01 + 0 + 0.09 = 0.14, / (n - 1) = 3
  EXPECT_NEAR(m.sd, std::sqrt(0.14 / 3.0), 1e-12);
  const MeanSd one = mean_sd({0.25});
  EXPECT_EQ(one.n, 1u);
  EXPECT_EQ(one.mean, 0.25);
  EXPECT_TRUE(std::isnan(one.sd));  // no spread from one value
  const MeanSd none = mean_sd({});
  EXPECT_EQ(none.n, 0u);
  EXPECT_TRUE(std::isnan(none.mean));
}

std::map<std::string, double> metrics(double segm_ap, double bbox_small) {
  std::map<std::string, double> m;
  for (const char* c : kAggregateColumns) m[c] = 0.5;
  m["segm_AP"] = segm_ap;
  m["bbox_AP_small"] = bbox_small;
  return m;
}

TEST(ExperimentSeedsMath, PairedDifferencesOnHandMadeMetrics) {
  SeedRow base{"baseline", "baseline", 3, {}};
  base.by_seed[1] = metrics(0.10, 0.02);
  base.by_seed[2] = metrics(0.20, -1.0);  // COCOeval: no small ground truth -> left out
  base.by_seed[3] = metrics(0.30, 0.04);
  SeedRow aug{"aug", "copy-paste", 4, {}};
  aug.by_seed[1] = metrics(0.15, 0.03);
  aug.by_seed[2] = metrics(0.22, 0.05);
  aug.by_seed[3] = metrics(0.41, 0.07);
  aug.by_seed[4] = metrics(0.50, 0.09);  // the baseline has no seed 4: not paired
  SeedRow other{"other", "other", 3, {}};
  other.by_seed[2] = metrics(0.25, 0.01);

  const std::vector<AggregateRow> rows = aggregate_seeds({aug, base, other}, 1);
  ASSERT_EQ(rows.size(), 3u);
  EXPECT_FALSE(rows[0].baseline);
  EXPECT_TRUE(rows[1].baseline);
  EXPECT_EQ(rows[0].seeds, (std::vector<uint64_t>{1, 2, 3, 4}));
  EXPECT_EQ(rows[0].planned, 4u);

  // aug segm_AP over 4 seeds: 0.15 0.22 0.41 0.50 -> mean 0.32.
  const MeanSd v = rows[0].value.at("segm_AP");
  EXPECT_EQ(v.n, 4u);
  EXPECT_NEAR(v.mean, 0.32, 1e-12);
  // deviations -0.17 -0.10 0.09 0.18: 0.0289 + 0.01 + 0.0081 + 0.0324 = 0.0794, / 3
  EXPECT_NEAR(v.sd, std::sqrt(0.0794 / 3.0), 1e-12);
  // Paired with the baseline on seeds 1-3: 0.05 0.02 0.11 -> mean 0.06,
  // deviations -0.01 -0.04 0.05: 0.0001 + 0.0016 + 0.0025 = 0.0042, / 2.
  const MeanSd d = rows[0].diff.at("segm_AP");
  EXPECT_EQ(d.n, 3u);
  EXPECT_NEAR(d.mean, 0.06, 1e-12);
  EXPECT_NEAR(d.sd, std::sqrt(0.0042 / 2.0), 1e-12);
  // bbox_AP_small: the baseline's seed 2 is n/a: values 0.02, 0.04; pairs seeds 1 and 3.
  EXPECT_EQ(rows[1].value.at("bbox_AP_small").n, 2u);
  EXPECT_NEAR(rows[1].value.at("bbox_AP_small").mean, 0.03, 1e-12);
  const MeanSd ds = rows[0].diff.at("bbox_AP_small");
  EXPECT_EQ(ds.n, 2u);
  EXPECT_NEAR(ds.mean, (0.01 + 0.03) / 2.0, 1e-12);
  EXPECT_NEAR(ds.sd, std::sqrt(2 * 0.01 * 0.01), 1e-12);
  // A constant column: sd 0, difference 0.
  EXPECT_EQ(rows[0].value.at("bbox_AP").sd, 0.0);
  EXPECT_EQ(rows[0].diff.at("bbox_AP").mean, 0.0);
  // The baseline has no differences; a one-seed row has a mean and no sd.
  EXPECT_TRUE(rows[1].diff.empty());
  EXPECT_EQ(rows[2].diff.at("segm_AP").n, 1u);
  EXPECT_NEAR(rows[2].diff.at("segm_AP").mean, 0.05, 1e-12);
  EXPECT_TRUE(std::isnan(rows[2].diff.at("segm_AP").sd));

  const std::string md = aggregate_markdown(rows);
  EXPECT_NE(md.find("| copy-paste | 4 | 0.320 ± 0.163 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| other | 1 of 3 | 0.250 |"), std::string::npos) << md;
  EXPECT_NE(md.find("Paired difference to the baseline (baseline)"), std::string::npos) << md;
  EXPECT_NE(md.find("| copy-paste | 3 | +0.060 ± 0.046 |"), std::string::npos) << md;
  EXPECT_NE(md.find("+0.020 ± 0.014 (n=2) |"), std::string::npos) << md;  // bbox AP small
  EXPECT_THROW(aggregate_seeds({aug}, 1), std::out_of_range);
}

// ---------------------------------------------------------------- the file and the plan

TEST(ExperimentSeedsFile, KeysAndErrors) {
  const ExperimentConfig e = parse_experiment(
      "base: t.yaml\nseeds: [3, 1]\nbaseline: b\nruns:\n  - {name: a}\n  - {name: b, seeds: [7]}\n", "/exp/e.yaml");
  EXPECT_EQ(e.seeds, (std::vector<uint64_t>{3, 1}));
  EXPECT_EQ(e.baseline, "b");
  EXPECT_EQ(seeds_of(e, e.runs[0]), (std::vector<uint64_t>{3, 1}));
  EXPECT_EQ(seeds_of(e, e.runs[1]), (std::vector<uint64_t>{7}));

  ConfigError err = parse_error("base: t.yaml\nseeds: [1, 2, 1]\nruns: [{name: a}]\n");
  EXPECT_EQ(err.reason(), "duplicate_seed");
  EXPECT_EQ(err.where().key, "seeds[2]");
  err = parse_error("base: t.yaml\nruns:\n  - {name: a, seeds: [4, 4]}\n");
  EXPECT_EQ(err.reason(), "duplicate_seed");
  EXPECT_EQ(err.where().key, "runs[0].seeds[1]");
  err = parse_error("base: t.yaml\nbaseline: nope\nruns: [{name: a}]\n");
  EXPECT_EQ(err.reason(), "bad_value");
  EXPECT_EQ(err.where().key, "baseline");
  err = parse_error("base: t.yaml\nseeds: [-1]\nruns: [{name: a}]\n");
  EXPECT_NE(err.reason(), "<no error>");
  EXPECT_EQ(err.where().key.rfind("seeds", 0), 0u) << err.what();
}

/// 2 runs x seeds of the tiny model, 2 iterations, evaluated on 2 images.
std::string seeded_experiment(const TempDir& dir, const std::string& seeds_lines) {
  const std::string path = dir.str("exp.yaml");
  write(path, "title: \"Tiny seeds\"\n"
              "base: " + kTiny + "\n"
              "output_dir: " + dir.str("out") + "\n" + seeds_lines +
              "overrides: [data.train_annotations=" + kSample + "/annotations.json, data.train_images=" + kSample +
              "/images, data.val_annotations=" + kSample + "/annotations.json, data.val_images=" + kSample +
              "/images, solver.max_iter=2, eval.period=0, eval.max_images=2, checkpoint.period=1, log_period=1, "
              "torch_threads=1, pipeline.loader.threads=1]\n"
              "runs:\n"
              "  - {name: baseline, pipeline: " + kSource + "/configs/paper/baseline.yaml}\n"
              "  - {name: original_aug, label: \"original+aug\", pipeline: " + kSource +
              "/configs/paper/original_aug.yaml}\n");
  return path;
}

TEST(ExperimentSeedsPlan, EveryRunOncePerSeedInItsOwnDirectory) {
  TempDir dir;
  const ExperimentConfig e = load_experiment(seeded_experiment(dir, "seeds: [11, 12]\nbaseline: original_aug\n"));
  const ExperimentPlan plan = plan_experiment(e, {"pipeline.seed=99"});  // the repeat's seed wins
  EXPECT_TRUE(plan.seeded);
  EXPECT_EQ(plan.baseline, 1u);
  ASSERT_EQ(plan.runs.size(), 4u);
  const std::vector<std::string> ids = {"baseline/seed_11", "baseline/seed_12", "original_aug/seed_11",
                                        "original_aug/seed_12"};
  for (size_t i = 0; i < 4; ++i) {
    const PlannedRun& r = plan.runs[i];
    EXPECT_EQ(r.id, ids[i]);
    EXPECT_EQ(r.row, i / 2);
    ASSERT_TRUE(r.seed.has_value());
    EXPECT_EQ(*r.seed, 11u + i % 2);
    EXPECT_EQ(r.config.pipeline.seed, 11u + i % 2);
    EXPECT_EQ(r.config.output_dir, dir.str("out/" + ids[i]));
    EXPECT_EQ(r.state, RunState::kNew);
  }
  // Differs: the seed is what repeats are, not a difference.
  EXPECT_TRUE(plan.runs[1].differs.empty());
  EXPECT_EQ(plan.runs[3].differs, std::vector<std::string>{"pipeline.sampler.aug_mode"});

  // Without seeds the plan is one run per entry, as before.
  const ExperimentPlan single = plan_experiment(load_experiment(seeded_experiment(dir, "")), {});
  EXPECT_FALSE(single.seeded);
  ASSERT_EQ(single.runs.size(), 2u);
  EXPECT_EQ(single.runs[0].id, "baseline");
  EXPECT_FALSE(single.runs[0].seed.has_value());
  EXPECT_EQ(single.runs[0].config.output_dir, dir.str("out/baseline"));
  std::vector<RunResult> none(2);
  none[0].name = none[0].label = "baseline";
  none[1].name = none[1].label = "original_aug";
  EXPECT_EQ(experiment_table_markdown(single, none), table_markdown(single.experiment, none));
  EXPECT_EQ(experiment_table_json(single, none), table_json(single.experiment, none));
}

TEST(ExperimentSeedsCli, DryRunJsonListsEveryRepeatAndSeedsFlagReplacesTheFile) {
  using pasteflow::testing::run_command;
  TempDir dir;
  const std::string exp = seeded_experiment(dir, "seeds: [1, 2]\n");
  auto r = run_command(kBin + " experiment " + exp + " --dry-run --json", false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"id\": \"original_aug/seed_2\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"baseline\": \"baseline\""), std::string::npos) << r.output;
  r = run_command(kBin + " experiment " + exp + " --seeds 5,6,7 --dry-run", false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("original_aug/seed_7"), std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("seed_1 "), std::string::npos) << r.output;
  // An override after --seeds is an override, not a seed (CLI11 vectors would swallow it).
  r = run_command(kBin + " experiment " + exp + " --seeds 3,4 solver.max_iter=5 --dry-run", false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("baseline/seed_4      new      iter 0/5"), std::string::npos) << r.output;
  r = run_command(kBin + " experiment " + exp + " --seeds 1,x --dry-run");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("'x' is not a seed"), std::string::npos) << r.output;
  r = run_command(kBin + " experiment " + exp + " --seeds 5,5 --dry-run");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.output.find("listed twice"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.str("out/baseline")));
}

// ---------------------------------------------------------------- end to end

TEST(ExperimentSeedsRun, TwoSeedsTimesTwoRunsAggregateTheirOwnMetrics) {
  TempDir dir;
  const ExperimentConfig e = load_experiment(seeded_experiment(dir, "seeds: [1, 2]\n"));
  ExperimentPlan plan = plan_experiment(e, {});
  ExperimentResult res = run_experiment(plan);
  ASSERT_EQ(res.runs.size(), 4u);
  for (const RunResult& r : res.runs) {
    ASSERT_TRUE(r.finished) << r.output_dir;
    ASSERT_TRUE(r.seed.has_value());
    // Each repeat's metrics are its own metrics.jsonl's final evaluation, and its config has its seed.
    EXPECT_EQ(r.metrics, *final_evaluation(r.output_dir + "/metrics.jsonl", 2));
    EXPECT_NE(read_file(r.output_dir + "/run.yaml").find("seed: " + std::to_string(*r.seed)), std::string::npos);
  }
  // The aggregate of the table is computed from those per-run numbers.
  const std::string json = read_file(res.table_json);
  const std::string md = read_file(res.table_md);
  EXPECT_NE(md.find("# Tiny seeds"), std::string::npos) << md;
  EXPECT_NE(md.find("| original+aug | 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("Paired difference to the baseline (baseline)"), std::string::npos) << md;
  EXPECT_NE(md.find("| baseline, seed 2 |"), std::string::npos) << md;
  EXPECT_NE(md.find("4 of 4 runs finished"), std::string::npos) << md;
  EXPECT_NE(json.find("\"aggregate\": ["), std::string::npos) << json;
  EXPECT_NE(json.find("\"seed\": 2,"), std::string::npos) << json;
  for (const char* column : kAggregateColumns) {
    for (size_t row = 0; row < 2; ++row) {
      const double a = res.runs[2 * row].metrics.at(column);
      const double b = res.runs[2 * row + 1].metrics.at(column);
      std::string exact;
      JsonWriter::append_double((a + b) / 2.0, exact);
      EXPECT_NE(json.find("\"" + std::string(column) + "\": " + exact), std::string::npos) << column << json;
    }
  }
  const std::vector<AggregateRow> agg = aggregate_seeds(seed_rows(plan, res.runs), 0);
  EXPECT_EQ(agg[1].diff.at("segm_AP").n, 2u);
  EXPECT_DOUBLE_EQ(agg[1].diff.at("segm_AP").mean,
                   ((res.runs[2].metrics.at("segm_AP") - res.runs[0].metrics.at("segm_AP")) +
                    (res.runs[3].metrics.at("segm_AP") - res.runs[1].metrics.at("segm_AP"))) /
                       2.0);

  // Second call: all four found finished, nothing trained, the table the same.
  plan = plan_experiment(e, {});
  for (const PlannedRun& r : plan.runs) EXPECT_EQ(r.state, RunState::kFinished) << r.id;
  bool started = false;
  ExperimentHooks hooks;
  hooks.on_run_start = [&](const PlannedRun&, size_t) { started = true; };
  res = run_experiment(plan, hooks);
  EXPECT_FALSE(started);
  EXPECT_EQ(read_file(res.table_json), json);

  // A third seed: only its two runs are new; the table counts 2 of 3 until they finish.
  const ExperimentConfig e3 = load_experiment(seeded_experiment(dir, "seeds: [1, 2, 3]\n"));
  plan = plan_experiment(e3, {});
  ASSERT_EQ(plan.runs.size(), 6u);
  EXPECT_EQ(plan.runs[2].state, RunState::kNew);
  EXPECT_EQ(plan.runs[1].state, RunState::kFinished);
  std::vector<RunResult> partial = res.runs;
  partial.insert(partial.begin() + 2, RunResult{});
  partial.insert(partial.begin() + 5, RunResult{});
  EXPECT_NE(experiment_table_markdown(plan, partial).find("| baseline | 2 of 3 |"), std::string::npos);
}

// A repeat stopped part-way resumes from its own checkpoint; the finished
// repeats are not trained again; the aggregate counts only finished seeds.
TEST(ExperimentSeedsRun, AnInterruptedRepeatResumesAlone) {
  TempDir dir;
  const std::string path = dir.str("exp.yaml");
  write(path, "base: " + kTiny + "\noutput_dir: " + dir.str("out") + "\nseeds: [1, 2]\n" +
                  "overrides: [data.train_annotations=" + kSample + "/annotations.json, data.train_images=" + kSample +
                  "/images, data.val_annotations=" + kSample + "/annotations.json, data.val_images=" + kSample +
                  "/images, solver.max_iter=3, eval.period=0, eval.max_images=2, checkpoint.period=100, "
                  "log_period=1, torch_threads=1, pipeline.loader.threads=1]\n"
                  "runs: [{name: only}]\n");
  const ExperimentConfig e = load_experiment(path);
  std::atomic<bool> stop{false};
  ExperimentHooks hooks;
  hooks.stop = &stop;
  hooks.trainer_hooks = [&](const PlannedRun& run) {
    TrainerHooks th;
    if (run.seed && *run.seed == 2) {
      th.on_iteration = [&](const IterationRecord& rec) {
        if (rec.iteration == 1) stop = true;
      };
    }
    return th;
  };
  ExperimentResult res = run_experiment(plan_experiment(e, {}), hooks);
  EXPECT_TRUE(res.interrupted);
  ASSERT_EQ(res.runs.size(), 2u);
  EXPECT_TRUE(res.runs[0].finished);
  EXPECT_FALSE(res.runs[1].finished);
  EXPECT_NE(read_file(res.table_md).find("| only | 1 of 2 |"), std::string::npos) << read_file(res.table_md);

  stop = false;
  const ExperimentPlan plan = plan_experiment(e, {});
  EXPECT_EQ(plan.runs[0].state, RunState::kFinished);
  EXPECT_EQ(plan.runs[1].state, RunState::kPartial);
  EXPECT_EQ(plan.runs[1].checkpoint_iteration, 1u);
  std::vector<std::string> started;
  hooks.trainer_hooks = nullptr;
  hooks.on_run_start = [&](const PlannedRun& r, size_t) { started.push_back(r.id); };
  res = run_experiment(plan, hooks);
  EXPECT_FALSE(res.interrupted);
  EXPECT_EQ(started, std::vector<std::string>{"only/seed_2"});
  ASSERT_TRUE(res.runs[1].finished);
  EXPECT_EQ(res.runs[1].iteration, 3u);
  EXPECT_NE(read_file(res.table_md).find("| only | 2 |"), std::string::npos) << read_file(res.table_md);
}

}  // namespace
}  // namespace pasteflow::train
