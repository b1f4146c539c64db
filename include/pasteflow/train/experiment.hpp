// Experiments: several training runs that differ in a few keys, trained
// one after another, evaluated on the validation set, and summarised as a
// table like Kisantal et al.'s Tables 3-8 (segm and bbox AP of small,
// medium, large objects and all) (`pasteflow experiment E.yaml`).
//
//   auto exp = pasteflow::train::load_experiment("configs/mini/table3.yaml");
//   auto plan = pasteflow::train::plan_experiment(exp, {"solver.max_iter=100"});
//   auto result = pasteflow::train::run_experiment(plan);
//
// An experiment file is a YAML mapping (schema: experiment_schema_markdown(),
// docs/experiment.md):
//
//   title: "Table 3: oversampling (mini)"
//   base: baseline.yaml                  # training config of every run
//   output_dir: runs/mini_table3
//   overrides: [solver.max_iter=500]     # applied to every run
//   runs:
//     - {name: baseline}
//     - {name: oversample_2x, pipeline: ../paper/oversample_2x.yaml}
//     - {name: lr_half, overrides: [solver.base_lr=0.01]}
//     - {name: mine, config: other_train_config.yaml}
//
// A run's training config is composed as: its `config` (or the experiment's
// `base`), then the `sampler` and `augment` sections of its `pipeline` file
// (a pipeline config such as configs/paper/*.yaml; those two sections are
// what a row of the paper's tables changes, so they replace the training
// config's, which keeps its seed, decode, size, instances, batch and loader
// sections), then the experiment's `overrides`, the run's `overrides`, the
// caller's overrides, and last output_dir = <output_dir>/<name> and
// eval.at_end = true. Paths in the experiment file are relative to its
// directory; output_dir and the training configs' own paths to the working
// directory.
//
// Each run directory also holds run.yaml (the composed config). A run is
// finished when its newest checkpoint is at solver.max_iter and its
// metrics.jsonl has the evaluation of that iteration; finished runs are not
// trained again, interrupted ones resume from their newest checkpoint, and
// a run directory made with another config is refused (Error "stale_run")
// rather than mixed into the table. The table's numbers are each run's
// final evaluation as recorded in its metrics.jsonl; table.md and
// table.json are rewritten atomically after every run.
//
// Repeats (seeds): `seeds: [1, 2, 3]` (top level, or per run) trains every
// run once per seed, each in <output_dir>/<name>/seed_<S> with
// pipeline.seed = S (the one seed of the sampler, paste, batch streams and
// the trainer's torch / model generators), composed after every other
// override. Each seed's run is skipped / resumed / refused exactly as a run
// is. table.md then opens with the aggregated table: per row, mean ± sample
// standard deviation (n - 1) over its finished seeds of kAggregateColumns,
// and the paired difference to the baseline row (`baseline:`, else the
// first run): the mean ± standard deviation of the per-seed differences
// (row - baseline for each seed both finished), with n; the per-seed table
// follows. table.json gets "seeds" on each run and an "aggregate" list.
// Without seeds, everything is as it was (one run per entry, same tables).
#pragma once

#include <array>
#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "pasteflow/config/describe.hpp"
#include "pasteflow/train/config.hpp"
#include "pasteflow/train/trainer.hpp"

namespace pasteflow::train {

/// One entry of an experiment file's `runs` list.
struct RunSpec {
  std::string name;      ///< directory under output_dir; [A-Za-z0-9_.-], unique (required)
  std::string label;     ///< the table row's label (empty: name)
  std::string config;    ///< training config (empty: the experiment's base)
  std::string pipeline;  ///< pipeline config whose sampler and augment sections the run takes
  std::vector<std::string> overrides;  ///< key=value of the training config, after the experiment's
  std::vector<uint64_t> seeds;         ///< repeats of this run (empty: the experiment's seeds)

  static void describe(config::Describer<RunSpec>& d);
};

/// An experiment file. `runs` is a list of mappings (RunSpec's keys), which
/// the config schema cannot describe; load_experiment reads it.
struct ExperimentConfig {
  std::string title;       ///< the table's heading (empty: the file name)
  std::string base;        ///< training config of the runs that name none
  std::string output_dir;  ///< runs and tables (empty: runs/<file stem>)
  std::vector<std::string> overrides;  ///< key=value of every run's training config
  std::vector<uint64_t> seeds;         ///< repeats of every run that lists none (empty: one run each)
  std::string baseline;                ///< name of the run paired differences are taken to (empty: the first)
  std::vector<RunSpec> runs;           ///< not a schema key (see above)
  std::string file;        ///< the file it was loaded from (not a key)

  static void describe(config::Describer<ExperimentConfig>& d);
};

/// Reads and checks an experiment file: unknown keys, types, `runs` a
/// non-empty list of mappings, names valid and unique. `base`, `config`
/// and `pipeline` are returned resolved against the file's directory, an
/// empty output_dir as runs/<stem>, an empty title as the file name.
/// Throws ConfigError naming the key path ("runs[2].pipline") and
/// "file:line:column"; "cannot_open" naming the file.
ExperimentConfig load_experiment(const std::string& path);

/// As load_experiment, for YAML text; `name` stands for the file (its
/// directory resolves relative paths).
ExperimentConfig parse_experiment(const std::string& yaml, const std::string& name);

/// A run's composed and validated training config (see the top of this
/// file for the order). `extra_overrides` come after the run's own.
/// Throws ConfigError with Location::record "run '<name>'": a missing
/// training / pipeline file (named), a pipeline file that sets keys outside
/// sampler and augment (which the run would ignore), no validation set.
TrainConfig compose_run(const ExperimentConfig& experiment, const RunSpec& run,
                        const std::vector<std::string>& extra_overrides = {});

enum class RunState {
  kNew,       ///< nothing on disk yet
  kPartial,   ///< checkpoints below max_iter (or a final evaluation missing): resumes
  kFinished,  ///< final checkpoint and evaluation present: not trained again
};
const char* to_string(RunState state);

struct PlannedRun {
  RunSpec spec;             ///< the experiment file's run (its name: the table row)
  std::string id;           ///< "<name>" or, for a repeat, "<name>/seed_<S>" (its directory below output_dir)
  size_t row = 0;           ///< index of spec in experiment.runs
  std::optional<uint64_t> seed;  ///< the repeat's seed (none: the run has no seeds)
  TrainConfig config;       ///< compose_run()
  RunState state = RunState::kNew;
  uint64_t checkpoint_iteration = 0;  ///< newest checkpoint on disk (0: none)
  std::vector<std::string> differs;   ///< keys whose values differ from the first run's config
};

struct ExperimentPlan {
  ExperimentConfig experiment;
  std::vector<PlannedRun> runs;  ///< one per run, or per run and seed (in row order, then seed order)
  bool seeded = false;           ///< some run has seeds: the aggregated table is written
  size_t baseline = 0;           ///< row of the baseline (experiment.baseline, else 0)
};

/// The seeds of `run` in `experiment`: its own, else the experiment's (empty: none).
const std::vector<uint64_t>& seeds_of(const ExperimentConfig& experiment, const RunSpec& run);

/// Composes every run (so a mistake in the last run fails before the first
/// trains) and reads each run directory's state. Throws ConfigError (see
/// compose_run), Error "stale_run" (a run directory holding another
/// config's run.yaml, or checkpoints without run.yaml).
ExperimentPlan plan_experiment(const ExperimentConfig& experiment, const std::vector<std::string>& overrides = {});

/// The table's columns: segm then bbox AP of small, medium, large, all
/// (metric_names() spelling: "segm_AP_small", ..., "bbox_AP").
inline constexpr std::array<const char*, 8> kTableColumns = {
    "segm_AP_small", "segm_AP_medium", "segm_AP_large", "segm_AP",
    "bbox_AP_small", "bbox_AP_medium", "bbox_AP_large", "bbox_AP"};

/// The aggregated table's columns (with seeds): segm then bbox AP, AP50,
/// AP_small, AP_medium.
inline constexpr std::array<const char*, 8> kAggregateColumns = {
    "segm_AP", "segm_AP50", "segm_AP_small", "segm_AP_medium",
    "bbox_AP", "bbox_AP50", "bbox_AP_small", "bbox_AP_medium"};

/// One row of the table.
struct RunResult {
  std::string name;           ///< the run's name (a repeat: its row's name)
  size_t row = 0;             ///< index of its run in the experiment file
  std::optional<uint64_t> seed;  ///< a repeat's seed
  std::string label;
  std::string output_dir;
  bool finished = false;     ///< has its final evaluation
  bool trained = false;      ///< trained (or resumed) by this call; false: found finished, or not reached
  uint64_t iteration = 0;    ///< of the final evaluation (finished), else of the newest checkpoint
  double wall_s = 0.0;       ///< training and evaluation time in this call
  /// The final evaluation's numbers (metric_names() keys, as in metrics.jsonl);
  /// empty unless finished.
  std::map<std::string, double> metrics;
};

struct ExperimentResult {
  std::vector<RunResult> runs;  ///< one per planned run, in order
  bool interrupted = false;     ///< the stop flag ended a run before max_iter
  std::string table_md;         ///< paths of the files written
  std::string table_json;
};

/// Callbacks (the library never prints). All optional.
struct ExperimentHooks {
  std::function<void(const std::string&)> log;
  std::function<void(const PlannedRun&, size_t index)> on_run_start;  ///< before a run trains (not when skipped)
  std::function<void(const RunResult&)> on_run_end;                   ///< every run, skipped ones included
  /// Hooks of a run's Trainer (log, progress); the experiment's stop flag
  /// is used when they name none.
  std::function<TrainerHooks(const PlannedRun&)> trainer_hooks;
  /// When it becomes true the current run checkpoints and stops, and no
  /// further run starts (ExperimentResult::interrupted).
  const std::atomic<bool>* stop = nullptr;
};

/// Trains the runs that are not finished (resuming partial ones), in order,
/// and writes <output_dir>/table.md and table.json after each run. Throws
/// what Trainer throws; the tables written so far stay.
ExperimentResult run_experiment(const ExperimentPlan& plan, const ExperimentHooks& hooks = {});

/// The final evaluation of a finished run directory: the "eval" line of
/// metrics.jsonl at `max_iter`, if any. Throws what read_metrics throws.
std::optional<std::map<std::string, double>> final_evaluation(const std::string& metrics_jsonl, uint64_t max_iter);

/// The paper-style table: one row per run (label), columns kTableColumns
/// with 3 decimals (below 0.0005: "1.2e-04"; "n/a" where COCOeval has no
/// ground truth (-1); "-" for unfinished runs), and a note on what the
/// numbers are.
std::string table_markdown(const ExperimentConfig& experiment, const std::vector<RunResult>& runs);

/// The same as JSON: {"title", "experiment", "output_dir", "columns",
/// "runs": [{"name", "label", "output_dir", "finished", "iteration",
/// "metrics": {column: value}}]}; values are exact (round-trip doubles),
/// null when unfinished.
std::string table_json(const ExperimentConfig& experiment, const std::vector<RunResult>& runs);

// ---------------------------------------------------------------- repeats

/// Mean and sample standard deviation of n values (sd: divisor n - 1; NaN
/// when n < 2; mean NaN when n = 0).
struct MeanSd {
  size_t n = 0;
  double mean = 0.0;
  double sd = 0.0;
};
MeanSd mean_sd(const std::vector<double>& values);

/// A row's finished repeats: seed -> final evaluation (metric_names() keys).
struct SeedRow {
  std::string name;
  std::string label;
  size_t planned = 0;  ///< seeds planned (finished or not)
  std::map<uint64_t, std::map<std::string, double>> by_seed;
};

/// A row of the aggregated table. For each of kAggregateColumns: `value`
/// over the row's seeds whose value is >= 0 (COCOeval's -1, "no ground
/// truth of that size", is left out); `diff` over the seeds where both this
/// row and the baseline row have a value >= 0, of (row - baseline); the
/// baseline row's own diff is empty.
struct AggregateRow {
  std::string name;
  std::string label;
  bool baseline = false;
  size_t planned = 0;
  std::vector<uint64_t> seeds;  ///< finished seeds, ascending
  std::map<std::string, MeanSd> value;
  std::map<std::string, MeanSd> diff;
};

/// The aggregation (a pure function): one AggregateRow per SeedRow, paired
/// differences to rows[baseline]. Throws std::out_of_range when baseline
/// is not a row.
std::vector<AggregateRow> aggregate_seeds(const std::vector<SeedRow>& rows, size_t baseline);

/// The SeedRows of an experiment's results (finished repeats only).
std::vector<SeedRow> seed_rows(const ExperimentPlan& plan, const std::vector<RunResult>& runs);

/// The aggregated tables as Markdown (mean ± sd (n) per row; then paired
/// difference to the baseline ± sd (n)), without a heading.
std::string aggregate_markdown(const std::vector<AggregateRow>& rows);

/// What table.md holds for `plan` and `runs`: table_markdown() without
/// seeds; with seeds the aggregated tables, then the per-seed table.
std::string experiment_table_markdown(const ExperimentPlan& plan, const std::vector<RunResult>& runs);
/// What table.json holds: table_json() without seeds; with seeds each run
/// also has "seed", and "baseline" and "aggregate": [{"name", "label",
/// "baseline", "planned", "seeds", "mean": {column: value|null}, "sd",
/// "n", "diff_mean", "diff_sd", "diff_n"}] follow.
std::string experiment_table_json(const ExperimentPlan& plan, const std::vector<RunResult>& runs);

/// Reference of the experiment file's keys as Markdown (docs/experiment.md).
std::string experiment_schema_markdown();

}  // namespace pasteflow::train
