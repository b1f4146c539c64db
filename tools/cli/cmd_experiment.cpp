// pasteflow experiment: train several runs (train/experiment.hpp), skip the
// finished ones, resume interrupted ones, and write the paper-style table.
#include <algorithm>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/train/experiment.hpp"

namespace pasteflow::cli {

namespace {

struct ExperimentArgs {
  std::string file;
  std::vector<std::string> overrides;
  std::string output_dir;
  std::string seeds;  ///< --seeds S,S,...
  bool dry_run = false;
  bool schema = false;
  RunOptions run;
};

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const std::string& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

void print_plan(const train::ExperimentPlan& plan, bool json) {
  const train::ExperimentConfig& e = plan.experiment;
  if (json) {
    JsonWriter j(2);
    j.begin_object();
    j.field("title", e.title);
    j.field("output_dir", e.output_dir);
    if (plan.seeded) j.field("baseline", e.runs.at(plan.baseline).name);
    j.key("runs").begin_array();
    for (const train::PlannedRun& r : plan.runs) {
      j.begin_object();
      j.field("name", r.spec.name);
      j.field("label", r.spec.label);
      if (r.seed) {
        j.field("id", r.id);
        j.field("seed", *r.seed);
      }
      j.field("state", train::to_string(r.state));
      j.field("checkpoint_iter", r.checkpoint_iteration);
      j.field("max_iter", r.config.solver.max_iter);
      j.field("output_dir", r.config.output_dir);
      j.key("differs").begin_array();
      for (const std::string& k : r.differs) j.value(k);
      j.end_array();
      j.end_object();
    }
    j.end_array();
    j.end_object();
    print_stdout(j.str());
    return;
  }
  std::string out = e.title + " -> " + e.output_dir + "\n";
  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const train::PlannedRun& r = plan.runs[i];
    out += fmt::format("  {:<20} {:<8} iter {}/{}  {}\n", r.id, train::to_string(r.state),
                       r.checkpoint_iteration, r.config.solver.max_iter,
                       i == 0 ? std::string("(reference)") : "differs: " + (r.differs.empty() ? "nothing" : join(r.differs)));
  }
  print_stdout(out.substr(0, out.size() - 1));
}

/// "1,2,3" -> {1, 2, 3}: unsigned integers, none twice.
std::vector<uint64_t> parse_seeds(const std::string& text) {
  std::vector<uint64_t> seeds;
  size_t begin = 0;
  while (begin <= text.size()) {
    const size_t end = std::min(text.find(',', begin), text.size());
    const std::string item = text.substr(begin, end - begin);
    if (item.empty() || item.size() > 19 || item.find_first_not_of("0123456789") != std::string::npos) {
      throw CLI::ValidationError("--seeds", "'" + item + "' is not a seed (unsigned integers separated by commas)");
    }
    const uint64_t seed = std::stoull(item);
    if (std::find(seeds.begin(), seeds.end(), seed) != seeds.end()) {
      throw CLI::ValidationError("--seeds", "seed " + item + " is listed twice");
    }
    seeds.push_back(seed);
    begin = end + 1;
  }
  return seeds;
}

void run_experiment_command(const ExperimentArgs& a) {
  if (a.schema) {
    print_stdout(train::experiment_schema_markdown());
    return;
  }
  if (a.file.empty()) throw CLI::ValidationError("EXPERIMENT", "is required (or --schema)");
  train::ExperimentConfig exp = train::load_experiment(a.file);
  if (!a.output_dir.empty()) exp.output_dir = a.output_dir;
  if (!a.seeds.empty()) exp.seeds = parse_seeds(a.seeds);
  const train::ExperimentPlan plan = train::plan_experiment(exp, a.overrides);
  if (a.dry_run) {
    print_plan(plan, a.run.json);
    return;
  }

  std::unique_ptr<Progress> bar;
  uint64_t bar_start = 0;
  train::ExperimentHooks hooks;
  hooks.log = [](const std::string& s) { spdlog::info("{}", s); };
  hooks.on_run_start = [&](const train::PlannedRun& r, size_t index) {
    spdlog::info("run {}/{} '{}' ({}, {} iterations{}) -> {}", index + 1, plan.runs.size(), r.id,
                 train::to_string(r.state), r.config.solver.max_iter,
                 r.differs.empty() ? std::string() : "; differs: " + join(r.differs), r.config.output_dir);
    bar_start = r.checkpoint_iteration;
    bar = std::make_unique<Progress>(r.id, r.config.solver.max_iter - bar_start);
  };
  hooks.trainer_hooks = [&](const train::PlannedRun&) {
    train::TrainerHooks th;
    th.log = [](const std::string& s) {
      clear_progress_line();
      spdlog::info("  {}", s);
    };
    th.on_window = [&](const train::MetricsWindow& w) {
      clear_progress_line();
      spdlog::info("  iter {} lr {:.3g} loss {:.3f} {:.2f}s/it data {:.1f}%", w.iteration, w.lr, w.loss, w.time_s,
                   100.0 * w.data_share);
    };
    th.on_iteration = [&](const train::IterationRecord& rec) {
      if (bar) bar->update(rec.iteration - bar_start);
    };
    return th;
  };
  hooks.on_run_end = [&](const train::RunResult& r) {
    if (bar) {
      bar->finish();
      bar.reset();
    }
    const std::string name = r.seed ? r.name + "/seed_" + std::to_string(*r.seed) : r.name;
    if (!r.finished) {
      spdlog::warn("run '{}' stopped at iteration {}; run the same command again to resume it", name, r.iteration);
      return;
    }
    const auto m = [&](const char* k) {
      const auto it = r.metrics.find(k);
      return it == r.metrics.end() ? -1.0 : it->second;
    };
    spdlog::info("run '{}' {}: segm AP small {:.4f} all {:.4f} | bbox AP small {:.4f} all {:.4f}{}", name,
                 r.trained ? "finished" : "already finished", m("segm_AP_small"), m("segm_AP"), m("bbox_AP_small"),
                 m("bbox_AP"), r.trained ? fmt::format(" ({:.0f}s)", r.wall_s) : std::string());
  };
  hooks.stop = stop_flag();

  train::ExperimentResult result;
  {
    const StopOnSignal stop_on_signal;
    result = train::run_experiment(plan, hooks);
  }

  spdlog::info("table: {} and {}", result.table_md, result.table_json);
  print_stdout(a.run.json ? slurp(result.table_json) : slurp(result.table_md));
  // The interrupted run is checkpointed: exit 128 + signal, never 0.
  if (result.interrupted) throw_if_interrupted("interrupted; run the same command again to resume");
}

}  // namespace

void add_experiment_command(CLI::App& app) {
  auto args = std::make_shared<ExperimentArgs>();
  CLI::App* cmd = app.add_subcommand(
      "experiment",
      "Train the runs of an experiment file one after another (finished runs are skipped, interrupted ones "
      "resume), evaluate each on the validation set and write the paper-style table (segm and bbox AP small / "
      "medium / large / all; with seeds: mean +- sd over seeds and the paired difference to the baseline) as table.md "
      "and table.json; Ctrl-C / SIGTERM checkpoint and stop with exit status "
      "130 / 143");
  cmd->add_option("experiment", args->file, "experiment file (YAML; see configs/mini/table3.yaml, --schema)")
      ->check(CLI::ExistingFile);
  cmd->add_option("overrides", args->overrides,
                  "training-config overrides key=value applied to every run (e.g. solver.max_iter=100)");
  cmd->add_option("--output-dir,-o", args->output_dir, "directory of the runs and tables (overrides output_dir)");
  cmd->add_option("--seeds", args->seeds,
                  "repeats: train every run that lists no seeds of its own once per seed (replaces the file's "
                  "`seeds`; directories <name>/seed_<S>, pipeline.seed=S) and add mean +- sd over seeds and the "
                  "paired difference to the baseline to the table, e.g. --seeds 1,2,3")
      ->type_name("S,S,...");
  cmd->add_flag("--dry-run", args->dry_run,
                "check every run's config, print each run's state and the keys it changes, train nothing");
  cmd->add_flag("--schema", args->schema, "print the experiment file's keys as Markdown (docs/experiment.md) and exit");
  add_json_option(cmd, args->run);
  cmd->callback([args] { run_experiment_command(*args); });
}

}  // namespace pasteflow::cli
