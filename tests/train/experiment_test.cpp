// Experiments (train/experiment.hpp, pasteflow experiment): the file's
// schema and its errors (key paths, positions, missing files), how a run's
// config is composed, the shipped configs/mini files, and end to end with
// the tiny model on the bundled sample: two runs -> table.md / table.json
// equal to each run's final evaluation in its metrics.jsonl, a second call
// trains nothing, an interrupted run resumes, a changed config is refused.
#include "pasteflow/train/experiment.hpp"

#include <gtest/gtest.h>

#include <atomic>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include "common/command.hpp"
#include "pasteflow/config/config.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/pipeline/config.hpp"
#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/plot.hpp"
#include "train_test_util.hpp"
#include "common/file.hpp"

namespace pasteflow::train {
namespace {

using pasteflow::testing::read_file;

namespace fs = std::filesystem;
using testing_util::TempDir;

using testing_util::kSource;
using testing_util::kSample;
using testing_util::kTiny;

void write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

/// The error parse_experiment(yaml) throws (reason "<no error>" when none).
ConfigError parse_error(const std::string& yaml, const std::string& name = "/exp/e.yaml") {
  try {
    parse_experiment(yaml, name);
  } catch (const ConfigError& e) {
    return e;
  }
  return ConfigError("<no error>", "");
}

/// The sample's data paths and 2 iterations, as the experiment's overrides.
std::string data_overrides() {
  return "[data.train_annotations=" + kSample + "/annotations.json, data.train_images=" + kSample +
         "/images, data.val_annotations=" + kSample + "/annotations.json, data.val_images=" + kSample +
         "/images, solver.max_iter=2]";
}

// ---------------------------------------------------------------- the file

TEST(ExperimentFile, LoadsKeysRunsAndResolvesPaths) {
  const ExperimentConfig e = parse_experiment(
      "title: T\n"
      "base: ../train/sample_tiny.yaml\n"
      "overrides: [solver.max_iter=3]\n"
      "runs:\n"
      "  - name: a\n"
      "  - {name: b.2, label: \"B two\", config: /abs/t.yaml, pipeline: ../paper/aug.yaml, overrides: [x=1, y=2]}\n",
      "/cfg/mini/e.yaml");
  EXPECT_EQ(e.title, "T");
  EXPECT_EQ(e.base, "/cfg/train/sample_tiny.yaml");
  EXPECT_EQ(e.overrides, std::vector<std::string>{"solver.max_iter=3"});
  EXPECT_EQ(e.output_dir, "runs/e");  // runs/<stem> by default
  EXPECT_EQ(e.file, "/cfg/mini/e.yaml");
  ASSERT_EQ(e.runs.size(), 2u);
  EXPECT_EQ(e.runs[0].name, "a");
  EXPECT_EQ(e.runs[0].label, "a");  // the name when no label
  EXPECT_EQ(e.runs[0].config, "");
  EXPECT_EQ(e.runs[1].label, "B two");
  EXPECT_EQ(e.runs[1].config, "/abs/t.yaml");
  EXPECT_EQ(e.runs[1].pipeline, "/cfg/paper/aug.yaml");
  EXPECT_EQ(e.runs[1].overrides, (std::vector<std::string>{"x=1", "y=2"}));
  EXPECT_EQ(parse_experiment("runs: [{name: a}]", "dir/x.yaml").title, "x.yaml");
}

TEST(ExperimentFile, ErrorsNameTheKeyPathAndPosition) {
  ConfigError e = parse_error("base: t.yaml\nrunz: 1\nruns: [{name: a}]\n");
  EXPECT_EQ(e.reason(), "unknown_key");
  EXPECT_EQ(e.where().key, "runz");
  EXPECT_EQ(e.where().file, "/exp/e.yaml:2:1");

  e = parse_error("runs:\n  - name: a\n  - name: b\n    pipline: p.yaml\n");
  EXPECT_EQ(e.reason(), "unknown_key");
  EXPECT_EQ(e.where().key, "runs[1].pipline");
  EXPECT_EQ(e.where().file, "/exp/e.yaml:4:5");
  EXPECT_NE(std::string(e.what()).find("did you mean 'pipeline'"), std::string::npos) << e.what();

  e = parse_error("runs:\n  - name: a\n    overrides: 5\n");
  EXPECT_EQ(e.reason(), "type_mismatch");
  EXPECT_EQ(e.where().key, "runs[0].overrides");
  EXPECT_EQ(e.where().file, "/exp/e.yaml:3:16");

  e = parse_error("overrides: [a=1, [b]]\nruns: [{name: a}]\n");
  EXPECT_EQ(e.reason(), "type_mismatch");
  EXPECT_EQ(e.where().key, "overrides[1]");

  EXPECT_EQ(parse_error("title: x\n").reason(), "missing_key");
  EXPECT_EQ(parse_error("title: x\n").where().key, "runs");
  EXPECT_EQ(parse_error("runs: []\n").where().key, "runs");
  EXPECT_EQ(parse_error("runs: {name: a}\n").where().key, "runs");
  EXPECT_EQ(parse_error("runs: [a]\n").where().key, "runs[0]");
  EXPECT_EQ(parse_error("runs: [{label: x}]\n").where().key, "runs[0].name");
  e = parse_error("runs: [{name: a}, {name: b}, {name: a}]\n");
  EXPECT_EQ(e.reason(), "duplicate_run");
  EXPECT_EQ(e.where().key, "runs[2].name");
  EXPECT_EQ(parse_error("runs: [{name: a/b}]\n").where().key, "runs[0].name");
  EXPECT_EQ(parse_error("runs: [{name: a, name: b}]\n").reason(), "duplicate_key");
  EXPECT_EQ(parse_error("_base_: x.yaml\nruns: [{name: a}]\n").reason(), "bad_base");
  EXPECT_EQ(parse_error("runs: [{name: a}\n").reason(), "yaml_syntax");
  EXPECT_EQ(parse_error("- 1\n").reason(), "type_mismatch");

  try {
    load_experiment("/nonexistent/exp.yaml");
    FAIL() << "no error";
  } catch (const ConfigError& err) {
    EXPECT_EQ(err.reason(), "cannot_open");
    EXPECT_EQ(err.where().file, "/nonexistent/exp.yaml");
  }
}

// ---------------------------------------------------------------- composing

TEST(ExperimentCompose, OrderOfConfigPipelineFileAndOverrides) {
  const ExperimentConfig e = parse_experiment(
      "base: " + kTiny + "\noutput_dir: /out\noverrides: [solver.max_iter=7, solver.base_lr=0.5]\n"
      "runs:\n"
      "  - {name: a, pipeline: " + kSource + "/configs/paper/oversample_3x.yaml, overrides: [solver.base_lr=0.25]}\n"
      "  - {name: b, overrides: [eval.at_end=false, output_dir=/elsewhere]}\n",
      "/exp/e.yaml");
  const TrainConfig tiny = config::load_config<TrainConfig>(kTiny);
  const TrainConfig a = compose_run(e, e.runs[0], {"solver.base_lr=0.125"});
  EXPECT_EQ(a.solver.max_iter, 7u);         // the experiment's override
  EXPECT_EQ(a.solver.base_lr, 0.125);       // caller's after the run's after the experiment's
  EXPECT_EQ(a.pipeline.sampler.oversample, 3.0);  // from the paper file
  EXPECT_EQ(a.pipeline.sampler.aug_mode, "none");  // replaces sample_tiny's original_aug
  EXPECT_EQ(a.pipeline.batch.min_size, tiny.pipeline.batch.min_size);  // the training config keeps batch, loader
  EXPECT_EQ(a.pipeline.loader.batch_size, tiny.pipeline.loader.batch_size);
  EXPECT_EQ(a.output_dir, "/out/a");

  const TrainConfig b = compose_run(e, e.runs[1]);
  EXPECT_EQ(b.pipeline.sampler.aug_mode, "original_aug");  // sample_tiny's own
  EXPECT_EQ(b.solver.base_lr, 0.5);
  EXPECT_TRUE(b.eval.at_end);   // the table needs the final evaluation
  EXPECT_EQ(b.output_dir, "/out/b");  // always <output_dir>/<name>
}

ConfigError compose_error(const std::string& yaml, const std::string& file = "/exp/e.yaml") {
  try {
    const ExperimentConfig e = parse_experiment(yaml, file);
    for (const RunSpec& r : e.runs) compose_run(e, r);
  } catch (const ConfigError& err) {
    return err;
  }
  return ConfigError("<no error>", "");
}

TEST(ExperimentCompose, MissingFilesAndBadKeysAreNamed) {
  TempDir dir;
  ConfigError e = compose_error("runs: [{name: a, config: " + kTiny + "}, {name: b, config: nope.yaml}]\n",
                                dir.str("e.yaml"));
  EXPECT_EQ(e.reason(), "cannot_open");
  EXPECT_EQ(e.where().file, dir.str("nope.yaml"));  // relative to the experiment file
  EXPECT_EQ(e.where().key, "runs[1].config");
  EXPECT_EQ(e.where().record, "run 'b'");
  EXPECT_NE(std::string(e.what()).find(dir.str("nope.yaml")), std::string::npos);

  e = compose_error("base: " + dir.str("gone.yaml") + "\nruns: [{name: a}]\n");
  EXPECT_EQ(e.reason(), "cannot_open");
  EXPECT_EQ(e.where().file, dir.str("gone.yaml"));
  EXPECT_EQ(e.where().key, "base");

  e = compose_error("base: " + kTiny + "\nruns: [{name: a, pipeline: " + dir.str("p.yaml") + "}]\n");
  EXPECT_EQ(e.reason(), "cannot_open");
  EXPECT_EQ(e.where().file, dir.str("p.yaml"));
  EXPECT_EQ(e.where().key, "runs[0].pipeline");

  // A pipeline file that sets keys the run would not take.
  write(dir.str("p.yaml"), "_base_: " + kSource + "/configs/paper/oversample_2x.yaml\nbatch: {min_size: 64}\n");
  e = compose_error("base: " + kTiny + "\nruns: [{name: a, pipeline: " + dir.str("p.yaml") + "}]\n");
  EXPECT_EQ(e.reason(), "ignored_keys");
  EXPECT_EQ(e.where().key, "runs[0].pipeline");
  EXPECT_NE(std::string(e.what()).find("batch.min_size"), std::string::npos) << e.what();

  // A bad training key in an override: the training key, the override, the run.
  e = compose_error("base: " + kTiny + "\nruns: [{name: a}, {name: b, overrides: [solver.max_itr=3]}]\n");
  EXPECT_EQ(e.reason(), "unknown_key");
  EXPECT_EQ(e.where().key, "solver.max_itr");
  EXPECT_EQ(e.where().record, "run 'b'");

  // No validation set: nothing to put in the table.
  e = compose_error("base: " + kTiny + "\noverrides: [data.val_annotations=]\nruns: [{name: a}]\n");
  EXPECT_EQ(e.where().key, "data.val_annotations");
  EXPECT_EQ(compose_error("runs: [{name: a}]\n").where().key, "runs[0].config");
}

// A run takes only the sampler and augment sections of a pipeline file:
// that is all the paper's rows change, so every configs/paper file can be
// a run's pipeline without losing a key.
TEST(ExperimentCompose, PaperFilesChangeOnlySamplerAndAugment) {
  const ExperimentConfig e = parse_experiment("base: " + kTiny + "\nruns: [{name: a}]\n", "/exp/e.yaml");
  size_t files = 0;
  for (const auto& entry : fs::directory_iterator(kSource + "/configs/paper")) {
    if (entry.path().extension() != ".yaml") continue;
    ++files;
    const pipeline::PipelineConfig p = pipeline::load_pipeline_config(entry.path().string());
    for (const std::string& key : config::config_diff(p, pipeline::PipelineConfig{})) {
      EXPECT_TRUE(key.rfind("sampler.", 0) == 0 || key.rfind("augment.", 0) == 0) << entry.path() << ": " << key;
    }
    RunSpec r;
    r.name = "a";
    r.pipeline = entry.path().string();
    const TrainConfig t = compose_run(e, r);
    EXPECT_TRUE(config::config_diff(t.pipeline.sampler, p.sampler).empty()) << entry.path();
    EXPECT_TRUE(config::config_diff(t.pipeline.augment, p.augment).empty()) << entry.path();
  }
  EXPECT_GE(files, 20u);
}

// ---------------------------------------------------------------- shipped files

// Every configs/mini training config loads and validates; the variants
// carry exactly the sampler/augment settings of their configs/paper file;
// every experiment file there loads and plans (composes every run).
TEST(ExperimentMiniConfigs, LoadValidateAndMatchThePaperFiles) {
  const std::string mini = kSource + "/configs/mini";
  std::set<std::string> experiments;
  size_t trains = 0;
  for (const auto& entry : fs::directory_iterator(mini)) {
    if (entry.path().extension() != ".yaml") continue;
    const std::string name = entry.path().stem().string();
    if (name.rfind("table", 0) == 0) {
      experiments.insert(entry.path().string());
      continue;
    }
    ++trains;
    const TrainConfig t = load_train_config(entry.path().string());
    EXPECT_EQ(t.model.backbone.depth, 18) << name;
    EXPECT_EQ(t.data.val_images, "data/coco_mini/val2017") << name;
    EXPECT_EQ(t.output_dir, "runs/mini/" + name) << name;
    const std::string paper = kSource + "/configs/paper/" + name + ".yaml";
    ASSERT_TRUE(fs::exists(paper)) << name << " has no configs/paper counterpart";
    const pipeline::PipelineConfig p = pipeline::load_pipeline_config(paper);
    EXPECT_EQ(config::config_diff(t.pipeline.sampler, p.sampler), std::vector<std::string>{}) << name;
    EXPECT_EQ(config::config_diff(t.pipeline.augment, p.augment), std::vector<std::string>{}) << name;
  }
  EXPECT_GE(trains, 4u);
  ASSERT_TRUE(experiments.count(mini + "/table3.yaml"));
  TempDir dir;
  for (const std::string& file : experiments) {
    ExperimentConfig e = load_experiment(file);
    e.output_dir = dir.str("out");
    const ExperimentPlan plan = plan_experiment(e);
    ASSERT_GE(plan.runs.size(), 2u) << file;
    for (const PlannedRun& r : plan.runs) {
      EXPECT_EQ(r.state, RunState::kNew) << file;
      EXPECT_EQ(r.config.data.train_annotations, "data/coco_mini/annotations/instances_train2017.json");
      // Rows differ in the pipeline's sampler / augment only.
      for (const std::string& key : r.differs) {
        EXPECT_TRUE(key.rfind("pipeline.sampler.", 0) == 0 || key.rfind("pipeline.augment.", 0) == 0)
            << file << " run " << r.spec.name << ": " << key;
      }
    }
  }
}

TEST(ExperimentDocs, DocsExperimentMdIsTheSchema) {
  // The file is the command's output (print_stdout adds a newline).
  EXPECT_EQ(read_file(kSource + "/docs/experiment.md"), experiment_schema_markdown() + "\n")
      << "regenerate: pasteflow experiment --schema > docs/experiment.md";
  for (const char* key : {"`base`", "`output_dir`", "`overrides`", "`runs`", "`name`", "`pipeline`", "`label`"}) {
    EXPECT_NE(experiment_schema_markdown().find(key), std::string::npos) << key;
  }
}

TEST(ExperimentTable, CellsAndNulls) {
  ExperimentConfig e;
  e.title = "T";
  e.file = "t.yaml";
  RunResult a;
  a.name = "a";
  a.label = "a | b";
  a.finished = true;
  a.iteration = 5;
  for (const char* c : kTableColumns) a.metrics[c] = 0.1234;
  a.metrics["segm_AP_small"] = 0.000123;  // short runs: below 0.0005 keeps two digits
  a.metrics["bbox_AP_large"] = -1.0;      // COCOeval: no ground truth of that size
  a.metrics["bbox_AP"] = 0.0;
  RunResult b;
  b.name = "b";
  b.label = "b";
  const std::string md = table_markdown(e, {a, b});
  EXPECT_NE(md.find("| a \\| b | 1.2e-04 | 0.123 | 0.123 | 0.123 | 0.123 | 0.123 | n/a | 0.000 |\n"), std::string::npos)
      << md;
  EXPECT_NE(md.find("| b | - | - | - | - | - | - | - | - |\n"), std::string::npos) << md;
  EXPECT_NE(md.find("(iteration 5)"), std::string::npos) << md;
  EXPECT_NE(md.find("1 of 2 runs finished"), std::string::npos) << md;
  const std::string json = table_json(e, {a, b});
  EXPECT_NE(json.find("\"segm_AP_small\": 0.000123,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"bbox_AP_large\": -1.0,"), std::string::npos) << json;
  EXPECT_NE(json.find("\"finished\": false"), std::string::npos) << json;
  EXPECT_NE(json.find("\"bbox_AP\": null"), std::string::npos) << json;
}

// ---------------------------------------------------------------- end to end

/// Two runs of the tiny model (2 iterations, the second `max_iter`), evaluated on 2 images.
std::string two_run_experiment(const TempDir& dir, uint64_t max_iter = 2) {
  const std::string path = dir.str("exp.yaml");
  write(path, "title: \"Tiny | two runs\"\n"
              "base: " + kTiny + "\n"
              "output_dir: " + dir.str("out") + "\n"
              "overrides: " + data_overrides() + "\n"  // with solver.max_iter=2
              "runs:\n"
              "  - {name: baseline, pipeline: " + kSource + "/configs/paper/baseline.yaml}\n"
              "  - name: original_aug\n"
              "    label: \"original+aug\"\n"
              "    pipeline: " + kSource + "/configs/paper/original_aug.yaml\n"
              "    overrides: [solver.max_iter=" + std::to_string(max_iter) + "]\n");
  return path;
}

const std::vector<std::string> kFast = {"eval.period=0", "eval.max_images=2",
                                        "checkpoint.period=1", "log_period=1", "torch_threads=1",
                                        "pipeline.loader.threads=1"};

TEST(ExperimentRun, TableEqualsFinalEvaluationsAndSecondCallTrainsNothing) {
  TempDir dir;
  const ExperimentConfig e = load_experiment(two_run_experiment(dir));
  ExperimentPlan plan = plan_experiment(e, kFast);
  ASSERT_EQ(plan.runs.size(), 2u);
  EXPECT_EQ(plan.runs[1].differs, std::vector<std::string>{"pipeline.sampler.aug_mode"});
  std::vector<std::string> ended;
  ExperimentHooks hooks;
  hooks.on_run_end = [&](const RunResult& r) { ended.push_back(r.name); };
  ExperimentResult res = run_experiment(plan, hooks);
  EXPECT_FALSE(res.interrupted);
  EXPECT_EQ(ended, (std::vector<std::string>{"baseline", "original_aug"}));
  EXPECT_EQ(res.table_md, dir.str("out/table.md"));
  EXPECT_EQ(res.table_json, dir.str("out/table.json"));

  const std::string md = read_file(res.table_md);
  const std::string json = read_file(res.table_json);
  EXPECT_NE(md.find("# Tiny | two runs"), std::string::npos) << md;
  EXPECT_NE(md.find("| original+aug |"), std::string::npos) << md;
  EXPECT_NE(md.find("segm AP small"), std::string::npos) << md;
  EXPECT_NE(md.find("2 of 2 runs finished"), std::string::npos) << md;
  // table.json's numbers are those of each run's last "eval" line, exactly.
  for (size_t i = 0; i < 2; ++i) {
    const RunResult& r = res.runs[i];
    ASSERT_TRUE(r.finished) << r.name;
    EXPECT_TRUE(r.trained);
    EXPECT_EQ(r.iteration, 2u);
    const MetricsLog log = read_metrics(dir.str("out/" + r.name + "/metrics.jsonl"));
    ASSERT_EQ(log.eval.size(), 1u);
    EXPECT_EQ(log.eval.back().iteration, 2u);
    for (const char* column : kTableColumns) {
      ASSERT_TRUE(log.eval.back().metrics.count(column)) << column;
      const double v = log.eval.back().metrics.at(column);
      EXPECT_EQ(r.metrics.at(column), v) << column;
      std::string exact;
      JsonWriter::append_double(v, exact);
      EXPECT_NE(json.find("\"" + std::string(column) + "\": " + exact), std::string::npos) << column << json;
      char cell[32];
      std::snprintf(cell, sizeof cell, v > 0 && v < 0.0005 ? "%.1e" : "%.3f", v);
      EXPECT_NE(md.find(v < 0 ? std::string("n/a") : std::string(cell)), std::string::npos) << column;
    }
    EXPECT_TRUE(fs::exists(dir.str("out/" + r.name + "/run.yaml")));
  }

  // Second call: both finished, nothing trained, metrics files untouched.
  const std::string metrics_before = read_file(dir.str("out/baseline/metrics.jsonl"));
  plan = plan_experiment(e, kFast);
  EXPECT_EQ(plan.runs[0].state, RunState::kFinished);
  EXPECT_EQ(plan.runs[1].state, RunState::kFinished);
  bool started = false;
  hooks.on_run_start = [&](const PlannedRun&, size_t) { started = true; };
  res = run_experiment(plan, hooks);
  EXPECT_FALSE(started);
  EXPECT_FALSE(res.runs[0].trained);
  EXPECT_TRUE(res.runs[0].finished);
  EXPECT_EQ(read_file(dir.str("out/baseline/metrics.jsonl")), metrics_before);
  EXPECT_EQ(read_file(res.table_json), json);

  // Another config for the same directories is refused, not mixed in.
  try {
    std::vector<std::string> changed = kFast;
    changed.push_back("solver.base_lr=0.001");
    plan_experiment(e, changed);
    FAIL() << "no error";
  } catch (const Error& err) {
    EXPECT_EQ(err.reason(), "stale_run");
    EXPECT_NE(std::string(err.what()).find("(differs in solver.base_lr)"), std::string::npos) << err.what();
  }
}

TEST(ExperimentRun, InterruptedRunResumes) {
  TempDir dir;
  const ExperimentConfig e = load_experiment(two_run_experiment(dir, 3));
  std::vector<std::string> fast = kFast;
  fast.push_back("checkpoint.period=100");  // only the stop and the last iteration checkpoint
  std::atomic<bool> stop{false};
  ExperimentHooks hooks;
  hooks.stop = &stop;
  hooks.trainer_hooks = [&](const PlannedRun& run) {
    TrainerHooks th;
    if (run.spec.name == "original_aug") {
      th.on_iteration = [&](const IterationRecord& rec) {
        if (rec.iteration == 1) stop = true;
      };
    }
    return th;
  };
  ExperimentResult res = run_experiment(plan_experiment(e, fast), hooks);
  EXPECT_TRUE(res.interrupted);
  EXPECT_TRUE(res.runs[0].finished);
  EXPECT_FALSE(res.runs[1].finished);
  EXPECT_EQ(res.runs[1].iteration, 1u);
  EXPECT_NE(read_file(res.table_md).find("| original+aug | - |"), std::string::npos) << read_file(res.table_md);
  EXPECT_NE(read_file(res.table_json).find("\"segm_AP\": null"), std::string::npos);

  stop = false;
  ExperimentPlan plan = plan_experiment(e, fast);
  EXPECT_EQ(plan.runs[0].state, RunState::kFinished);
  EXPECT_EQ(plan.runs[1].state, RunState::kPartial);
  EXPECT_EQ(plan.runs[1].checkpoint_iteration, 1u);
  hooks.trainer_hooks = nullptr;
  res = run_experiment(plan, hooks);
  EXPECT_FALSE(res.interrupted);
  EXPECT_FALSE(res.runs[0].trained);
  ASSERT_TRUE(res.runs[1].finished);
  EXPECT_EQ(res.runs[1].iteration, 3u);
  const MetricsLog log = read_metrics(dir.str("out/original_aug/metrics.jsonl"));
  ASSERT_EQ(log.train.size(), 3u);  // iterations 1 (before the stop), 2, 3 (resumed)
  EXPECT_EQ(log.train.back().iteration, 3u);
  EXPECT_EQ(res.runs[1].metrics, *final_evaluation(dir.str("out/original_aug/metrics.jsonl"), 3));
}

// ---------------------------------------------------------------- the command

using testing_util::kBin;

TEST(ExperimentCli, SchemaDryRunErrorsAndARun) {
  using pasteflow::testing::run_command;
  TempDir dir;
  const auto schema = run_command(kBin + " experiment --schema", false);
  ASSERT_EQ(schema.status, 0);
  EXPECT_EQ(schema.output, read_file(kSource + "/docs/experiment.md"));

  const std::string exp = two_run_experiment(dir);
  std::string fast;
  for (const std::string& o : kFast) fast += " " + o;
  auto r = run_command(kBin + " experiment " + exp + fast + " --dry-run --json", false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"state\": \"new\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"differs\": [\n        \"pipeline.sampler.aug_mode\""), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir.str("out/baseline")));  // a dry run trains nothing

  write(dir.str("bad.yaml"), "base: " + kTiny + "\nruns:\n  - {name: a, pipline: x.yaml}\n");
  r = run_command(kBin + " experiment " + dir.str("bad.yaml"));
  EXPECT_EQ(r.status, 1);
  EXPECT_NE(r.output.find("runs[0].pipline"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("bad.yaml:3:"), std::string::npos) << r.output;

  r = run_command(kBin + " experiment " + exp + fast + " --json");  // logs (stderr) first, then the table
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string table = read_file(dir.str("out/table.json")) + "\n";
  ASSERT_GE(r.output.size(), table.size());
  EXPECT_EQ(r.output.substr(r.output.size() - table.size()), table) << r.output;
  EXPECT_NE(r.output.find("\"finished\": true"), std::string::npos);
  r = run_command(kBin + " experiment " + exp + fast);  // again: skipped, table printed
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("not trained again"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("| original+aug |"), std::string::npos) << r.output;
}

// Ctrl-C checkpointed the running run and then exited 0, so a scheduler
// saw an interrupted experiment as finished: it now exits 130.
TEST(ExperimentCliRegression, SigintExits130AfterACheckpoint) {
  TempDir dir;
  const std::string exp = two_run_experiment(dir);
  std::string args;
  for (const std::string& o : kFast) args += " " + o;
  const int status = testing_util::run_until_signal(kBin + " experiment " + exp + args + " solver.max_iter=200",
                                                    dir.str("out/baseline/metrics.jsonl"), dir.str("stderr.txt"),
                                                    SIGINT);
  const std::string err = read_file(dir.str("stderr.txt"));
  ASSERT_TRUE(WIFEXITED(status)) << err;
  EXPECT_EQ(WEXITSTATUS(status), 130) << err;
  EXPECT_NE(err.find("run the same command again to resume"), std::string::npos) << err;
  const auto cps = list_checkpoints(dir.str("out/baseline/checkpoints"));
  ASSERT_FALSE(cps.empty());
  EXPECT_GE(cps.back().first, 2u);
  EXPECT_LT(cps.back().first, 200u);
  EXPECT_TRUE(fs::exists(dir.str("out/table.md")));
}

}  // namespace
}  // namespace pasteflow::train
