#include "pasteflow/train/experiment.hpp"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <cmath>
#include <set>
#include <sstream>

#include "pasteflow/config/config.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/pipeline/config.hpp"
#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/plot.hpp"

namespace pasteflow::train {

void RunSpec::describe(config::Describer<RunSpec>& d) {
  d.field("name", &RunSpec::name,
          "the run's directory under output_dir and its default row label; letters, digits, _ . - (required, "
          "unique)");
  d.field("label", &RunSpec::label, "the row's label in the table (empty: name), e.g. \"oversample 2x\"");
  d.field("config", &RunSpec::config,
          "training config of this run, relative to the experiment file (empty: the experiment's base)");
  d.field("pipeline", &RunSpec::pipeline,
          "pipeline config (e.g. ../paper/oversample_2x.yaml), relative to the experiment file: its sampler and "
          "augment sections replace the training config's (it may set no other key)");
  d.field("overrides", &RunSpec::overrides,
          "key=value overrides of the training config, applied after the experiment's overrides");
  d.field("seeds", &RunSpec::seeds,
          "repeats of this run, one per seed (<output_dir>/<name>/seed_<S>, pipeline.seed=S); empty: the "
          "experiment's seeds");
}

void ExperimentConfig::describe(config::Describer<ExperimentConfig>& d) {
  d.field("title", &ExperimentConfig::title, "heading of table.md (empty: the experiment file's name)");
  d.field("base", &ExperimentConfig::base,
          "training config of every run that names no config, relative to the experiment file");
  d.field("output_dir", &ExperimentConfig::output_dir,
          "directory of the runs (<output_dir>/<name>) and of table.md / table.json, relative to the working "
          "directory (empty: runs/<experiment file name without extension>)");
  d.field("overrides", &ExperimentConfig::overrides,
          "key=value overrides of every run's training config (before the run's own)");
  d.field("seeds", &ExperimentConfig::seeds,
          "repeats: every run that lists no seeds of its own is trained once per seed, in "
          "<output_dir>/<name>/seed_<S> with pipeline.seed=S, and table.md / table.json give mean +- sample sd "
          "over seeds and the paired difference to the baseline (empty: one run each, no aggregation)");
  d.field("baseline", &ExperimentConfig::baseline,
          "name of the run the aggregated table's paired differences are taken to (empty: the first run)");
}

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

// ---------------------------------------------------------------- loading

std::string mark_text(const std::string& file, const YAML::Mark& mark) {
  if (mark.is_null()) return file;
  return file + ":" + std::to_string(mark.line + 1) + ":" + std::to_string(mark.column + 1);
}

[[noreturn]] void fail(const char* reason, const std::string& message, const std::string& file, const std::string& key,
                       const std::string& record = {}) {
  Location where;
  where.file = file;
  where.key = key;
  where.record = record;
  throw ConfigError(reason, message, where);
}

/// Splits "a.b[2].c" into {"a", "b", "[2]", "c"}.
std::vector<std::string> key_parts(const std::string& key) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : key) {
    if (c == '.' || c == '[') {
      if (!cur.empty()) out.push_back(cur);
      cur = c == '[' ? "[" : "";
    } else {
      cur += c;
      if (c == ']') {
        out.push_back(cur);
        cur.clear();
      }
    }
  }
  if (!cur.empty()) out.push_back(cur);
  return out;
}

/// Where in the file `node` the (config-layer) key path `key` is: the
/// deepest node of the path that exists; for a key that does not belong
/// there (unknown_key), the key itself.
YAML::Mark mark_of(const YAML::Node& node, const std::string& key) {
  YAML::Mark mark = node.Mark();
  YAML::Node cur = node;
  for (const std::string& part : key_parts(key)) {
    if (part.front() == '[') {
      if (!cur.IsSequence()) break;
      const size_t i = std::stoul(part.substr(1, part.size() - 2));
      if (i >= cur.size()) break;
      cur.reset(cur[i]);
      mark = cur.Mark();
      continue;
    }
    if (!cur.IsMap()) break;
    bool found = false;
    for (auto it = cur.begin(); it != cur.end(); ++it) {
      if (it->first.IsScalar() && it->first.Scalar() == part) {
        mark = it->second.IsNull() ? it->first.Mark() : it->second.Mark();
        YAML::Node next = it->second;
        cur.reset(next);
        found = true;
        break;
      }
    }
    if (!found) break;
  }
  return mark;
}

/// The mark of the key `name` itself in mapping `node`.
YAML::Mark key_mark(const YAML::Node& node, const std::string& name) {
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == name) return it->first.Mark();
  }
  return node.Mark();
}

/// Applies the mapping `node` (of a file `file`) to a described struct
/// through the config layer; errors get `prefix` in front of their key and
/// the position in `file`.
/// Keys named in `skip` are left out (the caller reads them).
template <class T>
T apply_mapping(const YAML::Node& node, const std::string& file, const std::string& prefix,
                const std::string& skip = {}) {
  // Duplicate keys (yaml-cpp keeps both): the config layer would see one.
  std::set<std::string> seen;
  YAML::Node own(YAML::NodeType::Map);
  for (auto it = node.begin(); it != node.end(); ++it) {
    if (!it->first.IsScalar()) {
      fail("type_mismatch", "mapping keys must be plain names", mark_text(file, it->first.Mark()), prefix);
    }
    const std::string& name = it->first.Scalar();
    if (!seen.insert(name).second) {
      fail("duplicate_key", "key given twice in one mapping", mark_text(file, it->first.Mark()), prefix + name);
    }
    if (name == "_base_") {
      fail("bad_base", "experiment files do not inherit (`_base_`); `base:` names the runs' training config",
           mark_text(file, it->first.Mark()), prefix + name);
    }
    if (name != skip) own.force_insert(it->first, it->second);
  }
  YAML::Emitter out;
  out << own;
  try {
    return config::parse_config_string<T>(out.c_str(), file);
  } catch (const ConfigError& e) {
    const std::string key = e.where().key;
    std::string first = key.substr(0, std::min(key.find('.'), key.find('[')));
    const YAML::Mark mark = e.reason() == "unknown_key" && key.find_first_of(".[") == std::string::npos
                                ? key_mark(node, first)
                                : mark_of(node, key);
    Location where = e.where();
    where.key = prefix + key;
    where.file = mark_text(file, mark);
    throw ConfigError(e.reason(), e.detail(), where);
  }
}

bool valid_run_name(const std::string& name) {
  if (name.empty() || name == "." || name == "..") return false;
  return std::all_of(name.begin(), name.end(), [](char c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' || c == '.' ||
           c == '-';
  });
}

std::string resolve(const fs::path& dir, const std::string& p) {
  if (p.empty()) return p;
  const fs::path path(p);
  return (path.is_absolute() ? path : dir / path).lexically_normal().string();
}

ExperimentConfig from_document(const YAML::Node& doc, const std::string& file) {
  if (doc.IsNull()) fail("missing_key", "an experiment file needs a `runs` list", file, "runs");
  if (!doc.IsMap()) {
    fail("type_mismatch", "the top level of an experiment file must be a mapping of keys",
         mark_text(file, doc.Mark()), "");
  }
  YAML::Node runs;
  bool has_runs = false;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it->first.IsScalar() && it->first.Scalar() == "runs") {
      has_runs = true;
      runs.reset(it->second);
    }
  }
  ExperimentConfig e = apply_mapping<ExperimentConfig>(doc, file, "", "runs");

  if (!has_runs || runs.IsNull()) fail("missing_key", "an experiment file needs a `runs` list", file, "runs");
  if (!runs.IsSequence()) {
    fail("type_mismatch", "expected a list of runs (mappings with keys name, label, config, pipeline, overrides)",
         mark_text(file, runs.Mark()), "runs");
  }
  if (runs.size() == 0) fail("out_of_range", "`runs` lists no run", mark_text(file, runs.Mark()), "runs");
  std::set<std::string> names;
  for (size_t i = 0; i < runs.size(); ++i) {
    const YAML::Node item = runs[i];
    const std::string prefix = "runs[" + std::to_string(i) + "]";
    if (!item.IsMap()) {
      fail("type_mismatch", "expected a run (a mapping with keys name, label, config, pipeline, overrides)",
           mark_text(file, item.Mark()), prefix);
    }
    RunSpec r = apply_mapping<RunSpec>(item, file, prefix + ".");
    if (r.name.empty()) fail("missing_key", "every run needs a name", mark_text(file, item.Mark()), prefix + ".name");
    if (!valid_run_name(r.name)) {
      fail("bad_value", "run name '" + r.name + "' must be letters, digits, _ . - (it names a directory)",
           mark_text(file, mark_of(item, "name")), prefix + ".name");
    }
    if (!names.insert(r.name).second) {
      fail("duplicate_run", "two runs are named '" + r.name + "'", mark_text(file, mark_of(item, "name")),
           prefix + ".name");
    }
    for (size_t k = 0; k < r.seeds.size(); ++k) {
      if (std::find(r.seeds.begin(), r.seeds.begin() + static_cast<std::ptrdiff_t>(k), r.seeds[k]) !=
          r.seeds.begin() + static_cast<std::ptrdiff_t>(k)) {
        fail("duplicate_seed", "seed " + std::to_string(r.seeds[k]) + " is listed twice",
             mark_text(file, mark_of(item, "seeds[" + std::to_string(k) + "]")),
             prefix + ".seeds[" + std::to_string(k) + "]");
      }
    }
    e.runs.push_back(std::move(r));
  }
  for (size_t k = 0; k < e.seeds.size(); ++k) {
    if (std::find(e.seeds.begin(), e.seeds.begin() + static_cast<std::ptrdiff_t>(k), e.seeds[k]) !=
        e.seeds.begin() + static_cast<std::ptrdiff_t>(k)) {
      fail("duplicate_seed", "seed " + std::to_string(e.seeds[k]) + " is listed twice",
           mark_text(file, mark_of(doc, "seeds[" + std::to_string(k) + "]")), "seeds[" + std::to_string(k) + "]");
    }
  }
  if (!e.baseline.empty() && names.count(e.baseline) == 0) {
    fail("bad_value", "baseline '" + e.baseline + "' is not the name of a run", mark_text(file, mark_of(doc, "baseline")),
         "baseline");
  }

  const fs::path dir = fs::path(file).parent_path();
  e.base = resolve(dir, e.base);
  for (RunSpec& r : e.runs) {
    r.config = resolve(dir, r.config);
    r.pipeline = resolve(dir, r.pipeline);
    if (r.label.empty()) r.label = r.name;
  }
  const std::string stem = fs::path(file).stem().string();
  if (e.output_dir.empty()) e.output_dir = (fs::path("runs") / (stem.empty() ? "experiment" : stem)).string();
  if (e.title.empty()) e.title = fs::path(file).filename().string();
  e.file = file;
  return e;
}

YAML::Node parse_yaml(const std::string& text, const std::string& file) {
  try {
    return YAML::Load(text);
  } catch (const YAML::ParserException& ex) {
    fail("yaml_syntax", "YAML syntax error: " + ex.msg, mark_text(file, ex.mark), "");
  }
}

// ---------------------------------------------------------------- composing

std::string run_record(const RunSpec& r) { return "run '" + r.name + "'"; }
std::string run_record(const PlannedRun& r) { return "run '" + (r.id.empty() ? r.spec.name : r.id) + "'"; }

/// Runs `f`; ConfigErrors get the run's record.
template <class F>
auto in_run(const RunSpec& r, F f) -> decltype(f()) {
  try {
    return f();
  } catch (const ConfigError& e) {
    Location where = e.where();
    if (where.record.empty()) where.record = run_record(r);
    throw ConfigError(e.reason(), e.detail(), where);
  }
}

/// The sections of a pipeline config a run takes from its `pipeline` file.
bool taken_from_pipeline_file(const std::string& key) {
  return key.rfind("sampler.", 0) == 0 || key.rfind("augment.", 0) == 0;
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buf;
  buf << in.rdbuf();
  return buf.str();
}

// ---------------------------------------------------------------- run state

fs::path run_yaml_path(const TrainConfig& c) { return fs::path(c.output_dir) / "run.yaml"; }

fs::path checkpoint_dir_of(const TrainConfig& c) {
  const fs::path d(c.checkpoint.dir);
  return d.is_absolute() ? d : fs::path(c.output_dir) / d;
}

fs::path metrics_path_of(const TrainConfig& c) { return fs::path(c.output_dir) / "metrics.jsonl"; }

/// final_evaluation() of a run directory; none when metrics.jsonl is
/// missing or unreadable (a line cut short by a kill: the resumed trainer
/// rewrites the file).
std::optional<std::map<std::string, double>> final_evaluation_of(const TrainConfig& c) {
  const fs::path metrics = metrics_path_of(c);
  if (!fs::exists(metrics)) return std::nullopt;
  try {
    return final_evaluation(metrics.string(), c.solver.max_iter);
  } catch (const InputError&) {
    return std::nullopt;
  }
}

uint64_t newest_checkpoint(const TrainConfig& c) {
  const auto cps = list_checkpoints(checkpoint_dir_of(c).string());
  return cps.empty() ? 0 : cps.back().first;
}

/// State of a run directory; throws Error "stale_run" when it belongs to another config.
RunState read_state(const PlannedRun& run, uint64_t& checkpoint_iteration) {
  const TrainConfig& c = run.config;
  checkpoint_iteration = newest_checkpoint(c);
  const fs::path yaml = run_yaml_path(c);
  Location where;
  where.file = yaml.string();
  where.record = run_record(run);
  if (!fs::exists(yaml)) {
    if (checkpoint_iteration > 0) {
      where.file = checkpoint_dir_of(c).string();
      throw Error("stale_run",
                  "the run directory holds checkpoints but no run.yaml: not a run of this experiment; delete it or "
                  "choose another output_dir",
                  where);
    }
    return RunState::kNew;
  }
  std::vector<std::string> differs;
  try {
    const TrainConfig old = config::parse_config_string<TrainConfig>(read_text(yaml.string()), yaml.string());
    differs = config::config_diff(old, c);
  } catch (const ConfigError& e) {
    throw Error("stale_run", "run.yaml no longer loads (" + std::string(e.what()) + "); delete the run directory",
                where);
  }
  if (!differs.empty()) {
    std::string keys;
    for (size_t i = 0; i < differs.size() && i < 8; ++i) keys += (i == 0 ? "" : ", ") + differs[i];
    if (differs.size() > 8) keys += ", ...";
    throw Error("stale_run",
                "the run directory was made with another config (differs in " + keys +
                    "); delete it or choose another output_dir",
                where);
  }
  if (checkpoint_iteration >= c.solver.max_iter && final_evaluation_of(c)) {
    return RunState::kFinished;
  }
  return checkpoint_iteration > 0 ? RunState::kPartial : RunState::kNew;
}

// ---------------------------------------------------------------- tables

std::string cell(double v) {
  if (v < 0) return "n/a";  // COCOeval: no ground truth of that size
  // 3 decimals as in the paper; values below 0.001 (short runs) would all
  // read 0.000, so they keep two significant digits.
  char buf[32];
  std::snprintf(buf, sizeof buf, v > 0 && v < 0.0005 ? "%.1e" : "%.3f", v);
  return buf;
}

std::string md_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '|') out += '\\';
    out += c == '\n' ? ' ' : c;
  }
  return out;
}

void write_tables(const ExperimentPlan& plan, const std::vector<RunResult>& rows, ExperimentResult& result) {
  const ExperimentConfig& e = plan.experiment;
  std::error_code ec;
  fs::create_directories(e.output_dir, ec);
  result.table_md = (fs::path(e.output_dir) / "table.md").string();
  result.table_json = (fs::path(e.output_dir) / "table.json").string();
  write_file_atomic(result.table_md, experiment_table_markdown(plan, rows));
  write_file_atomic(result.table_json, experiment_table_json(plan, rows));
}

RunResult result_of(const PlannedRun& run) {
  RunResult r;
  r.name = run.spec.name;
  r.row = run.row;
  r.seed = run.seed;
  r.label = run.spec.label.empty() ? run.spec.name : run.spec.label;
  r.output_dir = run.config.output_dir;
  r.iteration = newest_checkpoint(run.config);
  if (r.iteration >= run.config.solver.max_iter) {
    if (auto m = final_evaluation_of(run.config)) {
      r.finished = true;
      r.iteration = run.config.solver.max_iter;
      r.metrics = std::move(*m);
    }
  }
  return r;
}

}  // namespace

// ---------------------------------------------------------------- public

ExperimentConfig load_experiment(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("cannot_open", "cannot open experiment file", path, "");
  std::ostringstream buf;
  buf << in.rdbuf();
  return parse_experiment(buf.str(), path);
}

ExperimentConfig parse_experiment(const std::string& yaml, const std::string& name) {
  return from_document(parse_yaml(yaml, name), name);
}

namespace {

/// compose_run(); with a seed, pipeline.seed=<seed> after every override and
/// the directory <output_dir>/<name>/seed_<seed>.
TrainConfig compose(const ExperimentConfig& e, const RunSpec& r, const std::vector<std::string>& extra,
                    std::optional<uint64_t> seed) {
  return in_run(r, [&] {
    // Key paths of this run in the experiment file ("runs[2]."; "run." when r is not one of e.runs).
    const auto pos = std::find_if(e.runs.begin(), e.runs.end(), [&](const RunSpec& x) { return x.name == r.name; });
    const std::string prefix =
        pos == e.runs.end() ? std::string("run.") : "runs[" + std::to_string(pos - e.runs.begin()) + "].";
    const std::string& path = r.config.empty() ? e.base : r.config;
    if (path.empty()) {
      fail("missing_key", "the run names no training config and the experiment has no base", e.file,
           prefix + "config");
    }
    if (!fs::is_regular_file(path)) {
      fail("cannot_open", "cannot open training config '" + path + "'", path,
           r.config.empty() ? std::string("base") : prefix + "config");
    }
    TrainConfig t = config::load_config<TrainConfig>(path);
    if (!r.pipeline.empty()) {
      if (!fs::is_regular_file(r.pipeline)) {
        fail("cannot_open", "cannot open pipeline config '" + r.pipeline + "'", r.pipeline, prefix + "pipeline");
      }
      const pipeline::PipelineConfig p = pipeline::load_pipeline_config(r.pipeline);
      std::vector<std::string> ignored;
      for (const std::string& key : config::config_diff(p, pipeline::PipelineConfig{})) {
        if (!taken_from_pipeline_file(key)) ignored.push_back(key);
      }
      if (!ignored.empty()) {
        std::string keys;
        for (const std::string& k : ignored) keys += (keys.empty() ? "" : ", ") + k;
        fail("ignored_keys",
             "a run takes only the sampler and augment sections of its pipeline file, which also sets " + keys +
                 " (set those in the training config or in overrides as pipeline.<key>)",
             r.pipeline, prefix + "pipeline");
      }
      t.pipeline.sampler = p.sampler;
      t.pipeline.augment = p.augment;
    }
    std::vector<std::string> overrides = e.overrides;
    overrides.insert(overrides.end(), r.overrides.begin(), r.overrides.end());
    overrides.insert(overrides.end(), extra.begin(), extra.end());
    fs::path dir = fs::path(e.output_dir) / r.name;
    if (seed) {
      overrides.push_back("pipeline.seed=" + std::to_string(*seed));
      dir /= "seed_" + std::to_string(*seed);
    }
    overrides.push_back("output_dir=" + dir.string());
    overrides.push_back("eval.at_end=true");
    TrainConfig out = parse_train_config(config::dump_config(t), path, overrides);
    if (out.data.val_annotations.empty()) {
      fail("missing_key", "an experiment run is evaluated: it needs a validation set", path, "data.val_annotations");
    }
    return out;
  });
}

}  // namespace

TrainConfig compose_run(const ExperimentConfig& e, const RunSpec& r, const std::vector<std::string>& extra) {
  return compose(e, r, extra, std::nullopt);
}

const std::vector<uint64_t>& seeds_of(const ExperimentConfig& e, const RunSpec& r) {
  return r.seeds.empty() ? e.seeds : r.seeds;
}

const char* to_string(RunState state) {
  switch (state) {
    case RunState::kNew: return "new";
    case RunState::kPartial: return "partial";
    case RunState::kFinished: return "finished";
  }
  return "?";
}

ExperimentPlan plan_experiment(const ExperimentConfig& e, const std::vector<std::string>& overrides) {
  ExperimentPlan plan;
  plan.experiment = e;
  for (size_t i = 0; i < e.runs.size(); ++i) {
    const RunSpec& r = e.runs[i];
    if (!e.baseline.empty() && r.name == e.baseline) plan.baseline = i;
    const std::vector<uint64_t>& seeds = seeds_of(e, r);
    if (!seeds.empty()) plan.seeded = true;
    std::vector<std::optional<uint64_t>> repeats;
    for (uint64_t s : seeds) repeats.emplace_back(s);
    if (repeats.empty()) repeats.emplace_back(std::nullopt);
    for (const std::optional<uint64_t>& seed : repeats) {
      PlannedRun run;
      run.spec = r;
      run.row = i;
      run.seed = seed;
      run.id = seed ? r.name + "/seed_" + std::to_string(*seed) : r.name;
      run.config = compose(e, r, overrides, seed);
      plan.runs.push_back(std::move(run));
    }
  }
  for (PlannedRun& run : plan.runs) {
    run.state = read_state(run, run.checkpoint_iteration);
    if (&run != &plan.runs.front()) {
      const bool both_seeded = run.seed && plan.runs.front().seed;
      for (const std::string& key : config::config_diff(plan.runs.front().config, run.config)) {
        if (key != "output_dir" && !(both_seeded && key == "pipeline.seed")) run.differs.push_back(key);
      }
    }
  }
  return plan;
}

std::optional<std::map<std::string, double>> final_evaluation(const std::string& metrics_jsonl, uint64_t max_iter) {
  const MetricsLog log = read_metrics(metrics_jsonl);
  for (auto it = log.eval.rbegin(); it != log.eval.rend(); ++it) {
    if (it->iteration == max_iter) return it->metrics;
  }
  return std::nullopt;
}

ExperimentResult run_experiment(const ExperimentPlan& plan, const ExperimentHooks& hooks) {
  auto log = [&](const std::string& s) {
    if (hooks.log) hooks.log(s);
  };
  ExperimentResult result;
  for (const PlannedRun& run : plan.runs) result.runs.push_back(result_of(run));
  write_tables(plan, result.runs, result);

  for (size_t i = 0; i < plan.runs.size(); ++i) {
    const PlannedRun& run = plan.runs[i];
    RunResult& row = result.runs[i];
    if (row.finished) {
      log(run_record(run) + " is finished (" + row.output_dir + "): not trained again");
      if (hooks.on_run_end) hooks.on_run_end(row);
      continue;
    }
    if (hooks.stop != nullptr && hooks.stop->load()) {
      result.interrupted = true;
      break;
    }
    if (hooks.on_run_start) hooks.on_run_start(run, i);
    const auto t0 = Clock::now();
    std::error_code ec;
    fs::create_directories(run.config.output_dir, ec);
    write_file_atomic(run_yaml_path(run.config).string(), config::dump_config(run.config));

    TrainerHooks th = hooks.trainer_hooks ? hooks.trainer_hooks(run) : TrainerHooks{};
    if (th.stop == nullptr) th.stop = hooks.stop;
    TrainSummary summary;
    {
      Trainer trainer(run.config, th);
      if (newest_checkpoint(run.config) > 0) {
        const std::string from = trainer.resume();
        log(run_record(run) + " resumes from " + from);
      }
      if (trainer.iteration() < run.config.solver.max_iter) summary = trainer.train();
    }
    const double wall = std::chrono::duration<double>(Clock::now() - t0).count();
    row = result_of(run);
    row.trained = true;
    row.wall_s = wall;
    write_tables(plan, result.runs, result);
    if (hooks.on_run_end) hooks.on_run_end(row);
    if (summary.interrupted) {
      result.interrupted = true;
      break;
    }
    if (!row.finished) {
      Location where;
      where.file = metrics_path_of(run.config).string();
      where.record = run_record(run);
      throw Error("run_not_finished",
                  "the run stopped at iteration " + std::to_string(row.iteration) + " of " +
                      std::to_string(run.config.solver.max_iter) +
                      " without its final evaluation (pipeline.loader.max_epochs ended the data?)",
                  where);
    }
  }
  return result;
}

std::string table_markdown(const ExperimentConfig& e, const std::vector<RunResult>& runs) {
  std::string out = "# " + e.title + "\n\n";
  out +=
      "| setting | segm AP small | segm AP medium | segm AP large | segm AP all "
      "| bbox AP small | bbox AP medium | bbox AP large | bbox AP all |\n"
      "|---|---:|---:|---:|---:|---:|---:|---:|---:|\n";
  size_t finished = 0;
  std::set<uint64_t> iterations;
  for (const RunResult& r : runs) {
    out += "| " + md_escape(r.label) + " |";
    for (const char* column : kTableColumns) {
      const auto it = r.metrics.find(column);
      out += " " + (r.finished && it != r.metrics.end() ? cell(it->second) : std::string("-")) + " |";
    }
    out += "\n";
    if (r.finished) {
      ++finished;
      iterations.insert(r.iteration);
    }
  }
  out += "\nCOCO AP (IoU 0.50:0.95) of masks (segm) and boxes (bbox) by object size (small < 32^2 <= medium < "
         "96^2 <= large px), each run's final model";
  if (iterations.size() == 1) out += " (iteration " + std::to_string(*iterations.begin()) + ")";
  out += " on its validation set, as in its metrics.jsonl; exact values in table.json. n/a: no ground truth of "
         "that size; -: the run has not finished. " +
         std::to_string(finished) + " of " + std::to_string(runs.size()) + " runs finished. Written by `pasteflow "
         "experiment " + e.file + "`.\n";
  return out;
}

namespace {

/// table_json()'s fields, into an open object.
void table_json_fields(JsonWriter& j, const ExperimentConfig& e, const std::vector<RunResult>& runs) {
  j.field("title", e.title);
  j.field("experiment", e.file);
  j.field("output_dir", e.output_dir);
  j.key("columns").begin_array();
  for (const char* c : kTableColumns) j.value(c);
  j.end_array();
  j.key("runs").begin_array();
  for (const RunResult& r : runs) {
    j.begin_object();
    j.field("name", r.name);
    j.field("label", r.label);
    j.field("output_dir", r.output_dir);
    if (r.seed) j.field("seed", *r.seed);
    j.field("finished", r.finished);
    j.field("iteration", r.iteration);
    j.key("metrics").begin_object();
    for (const char* c : kTableColumns) {
      const auto it = r.metrics.find(c);
      j.key(c);
      if (r.finished && it != r.metrics.end()) {
        j.value(it->second);
      } else {
        j.null();
      }
    }
    j.end_object();
    j.end_object();
  }
  j.end_array();
}

}  // namespace

std::string table_json(const ExperimentConfig& e, const std::vector<RunResult>& runs) {
  JsonWriter j(2);
  j.begin_object();
  table_json_fields(j, e, runs);
  j.end_object();
  return j.str() + "\n";
}

// ---------------------------------------------------------------- repeats

MeanSd mean_sd(const std::vector<double>& values) {
  MeanSd m;
  m.n = values.size();
  if (m.n == 0) {
    m.mean = m.sd = std::numeric_limits<double>::quiet_NaN();
    return m;
  }
  double sum = 0.0;
  for (double v : values) sum += v;
  m.mean = sum / static_cast<double>(m.n);
  if (m.n < 2) {
    m.sd = std::numeric_limits<double>::quiet_NaN();
    return m;
  }
  double ss = 0.0;
  for (double v : values) ss += (v - m.mean) * (v - m.mean);
  m.sd = std::sqrt(ss / static_cast<double>(m.n - 1));
  return m;
}

std::vector<AggregateRow> aggregate_seeds(const std::vector<SeedRow>& rows, size_t baseline) {
  const SeedRow& base = rows.at(baseline);
  std::vector<AggregateRow> out;
  for (size_t i = 0; i < rows.size(); ++i) {
    const SeedRow& r = rows[i];
    AggregateRow a;
    a.name = r.name;
    a.label = r.label;
    a.baseline = i == baseline;
    a.planned = r.planned;
    for (const auto& [seed, metrics] : r.by_seed) a.seeds.push_back(seed);
    for (const char* column : kAggregateColumns) {
      std::vector<double> values;
      std::vector<double> diffs;
      for (const auto& [seed, metrics] : r.by_seed) {
        const auto it = metrics.find(column);
        if (it == metrics.end() || !(it->second >= 0.0)) continue;
        values.push_back(it->second);
        if (a.baseline) continue;
        const auto b = base.by_seed.find(seed);
        if (b == base.by_seed.end()) continue;
        const auto bv = b->second.find(column);
        if (bv == b->second.end() || !(bv->second >= 0.0)) continue;
        diffs.push_back(it->second - bv->second);
      }
      a.value[column] = mean_sd(values);
      if (!a.baseline) a.diff[column] = mean_sd(diffs);
    }
    out.push_back(std::move(a));
  }
  return out;
}

std::vector<SeedRow> seed_rows(const ExperimentPlan& plan, const std::vector<RunResult>& runs) {
  std::vector<SeedRow> rows(plan.experiment.runs.size());
  for (size_t i = 0; i < rows.size(); ++i) {
    const RunSpec& spec = plan.experiment.runs[i];
    rows[i].name = spec.name;
    rows[i].label = spec.label.empty() ? spec.name : spec.label;
  }
  for (size_t k = 0; k < plan.runs.size(); ++k) {
    const PlannedRun& p = plan.runs[k];
    SeedRow& row = rows.at(p.row);
    ++row.planned;
    if (k >= runs.size() || !runs[k].finished) continue;
    // A run without seeds counts as the repeat of its config's pipeline.seed.
    const uint64_t seed = p.seed ? *p.seed : p.config.pipeline.seed;
    row.by_seed[seed] = runs[k].metrics;
  }
  return rows;
}

namespace {

std::string ms_cell(const MeanSd& m, bool signed_mean, size_t row_n) {
  if (m.n == 0) return "-";
  char buf[64];
  if (signed_mean) {
    std::snprintf(buf, sizeof buf, "%+.3f", m.mean);
  } else {
    std::snprintf(buf, sizeof buf, m.mean > 0 && m.mean < 0.0005 ? "%.1e" : "%.3f", m.mean);
  }
  std::string out = buf;
  if (m.n >= 2) {
    std::snprintf(buf, sizeof buf, m.sd > 0 && m.sd < 0.0005 ? " ± %.1e" : " ± %.3f", m.sd);
    out += buf;
  }
  if (m.n != row_n) out += " (n=" + std::to_string(m.n) + ")";
  return out;
}

}  // namespace

std::string aggregate_markdown(const std::vector<AggregateRow>& rows) {
  std::string header = "| setting | n |";
  std::string rule = "|---|---:|";
  for (const char* c : kAggregateColumns) {
    std::string name = c;
    std::replace(name.begin(), name.end(), '_', ' ');
    header += " " + name + " |";
    rule += "---:|";
  }
  std::string out = "Mean ± sample standard deviation (n - 1) over seeds; n: finished seeds (of those planned).\n\n" +
                    header + "\n" + rule + "\n";
  std::string base_label;
  for (const AggregateRow& r : rows) {
    if (r.baseline) base_label = r.label;
    out += "| " + md_escape(r.label) + " | " + std::to_string(r.seeds.size()) +
           (r.seeds.size() != r.planned ? " of " + std::to_string(r.planned) : std::string()) + " |";
    for (const char* c : kAggregateColumns) out += " " + ms_cell(r.value.at(c), false, r.seeds.size()) + " |";
    out += "\n";
  }
  out += "\nPaired difference to the baseline (" + md_escape(base_label) +
         "): mean ± standard deviation over the seeds both finished of (row - baseline); n: such seeds.\n\n" +
         header + "\n" + rule + "\n";
  for (const AggregateRow& r : rows) {
    if (r.baseline) continue;
    const size_t n = r.diff.at(kAggregateColumns[0]).n;
    out += "| " + md_escape(r.label) + " | " + std::to_string(n) + " |";
    for (const char* c : kAggregateColumns) out += " " + ms_cell(r.diff.at(c), true, n) + " |";
    out += "\n";
  }
  return out;
}

std::string experiment_table_markdown(const ExperimentPlan& plan, const std::vector<RunResult>& runs) {
  if (!plan.seeded) return table_markdown(plan.experiment, runs);
  const std::vector<AggregateRow> agg = aggregate_seeds(seed_rows(plan, runs), plan.baseline);
  std::vector<RunResult> labelled = runs;
  for (RunResult& r : labelled) {
    if (r.seed) r.label += ", seed " + std::to_string(*r.seed);
  }
  std::string per_seed = table_markdown(plan.experiment, labelled);
  per_seed = per_seed.substr(per_seed.find('\n') + 1);  // without its heading
  return "# " + plan.experiment.title + "\n\n" + aggregate_markdown(agg) + "\n## Per seed\n" + per_seed;
}

std::string experiment_table_json(const ExperimentPlan& plan, const std::vector<RunResult>& runs) {
  if (!plan.seeded) return table_json(plan.experiment, runs);
  const std::vector<AggregateRow> agg = aggregate_seeds(seed_rows(plan, runs), plan.baseline);
  JsonWriter j(2);
  j.begin_object();
  table_json_fields(j, plan.experiment, runs);
  j.field("baseline", plan.experiment.runs.at(plan.baseline).name);
  j.key("aggregate").begin_array();
  for (const AggregateRow& r : agg) {
    j.begin_object();
    j.field("name", r.name);
    j.field("label", r.label);
    j.field("baseline", r.baseline);
    j.field("planned", static_cast<uint64_t>(r.planned));
    j.key("seeds").begin_array();
    for (uint64_t s : r.seeds) j.value(s);
    j.end_array();
    const auto section = [&](const char* key, const std::map<std::string, MeanSd>& m, int what) {
      j.key(key).begin_object();
      for (const char* c : kAggregateColumns) {
        j.key(c);
        const auto it = m.find(c);
        if (it == m.end() || it->second.n == 0) {
          j.null();
        } else if (what == 0) {
          j.value(it->second.mean);
        } else if (what == 1) {
          j.value(it->second.sd);  // NaN (n < 2) -> null
        } else {
          j.value(static_cast<uint64_t>(it->second.n));
        }
      }
      j.end_object();
    };
    section("mean", r.value, 0);
    section("sd", r.value, 1);
    section("n", r.value, 2);
    if (!r.baseline) {
      section("diff_mean", r.diff, 0);
      section("diff_sd", r.diff, 1);
      section("diff_n", r.diff, 2);
    }
    j.end_object();
  }
  j.end_array();
  j.end_object();
  return j.str() + "\n";
}

std::string experiment_schema_markdown() {
  std::string out =
      "# pasteflow experiment file keys\n\n"
      "Generated by `pasteflow experiment --schema`; do not edit. An experiment file (e.g.\n"
      "`configs/mini/table3.yaml`) is a YAML mapping of the keys below; `runs` is a list of mappings of\n"
      "the run keys. Each run's training config (keys: `pasteflow train --schema`) is its `config` (or\n"
      "`base`), then the `sampler` and `augment` sections of its `pipeline` file, then the experiment's\n"
      "`overrides`, the run's `overrides`, the command line's `key=value` arguments, and last\n"
      "`output_dir=<output_dir>/<name>` and `eval.at_end=true`. With `seeds` (or `--seeds 1,2,3`) every run\n"
      "is repeated once per seed with `pipeline.seed=<S>` and `output_dir=<output_dir>/<name>/seed_<S>`, and\n"
      "table.md / table.json add mean +- sample sd over seeds and the paired difference to the `baseline` run.\n"
      "Unknown keys and wrong types are errors naming the key path (`runs[2].pipline`) and the file position.\n\n"
      "## Experiment keys\n\n" +
      config::schema_markdown<ExperimentConfig>() +
      "| `runs` | list[run] | `[]` | at least one | the runs, in the table's row order; each a mapping of the run "
      "keys below |\n"
      "\n## Run keys (`runs[i].<key>`)\n\n" +
      config::schema_markdown<RunSpec>();
  return out;
}

}  // namespace pasteflow::train
