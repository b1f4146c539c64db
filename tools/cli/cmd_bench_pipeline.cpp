// pasteflow bench pipeline: the full pipeline of a config against a minimal
// loader on the same images, in one run.
//
// Minimal loader = the same Loader and config with no augmentation
// (sampler.aug_mode none, oversample 1, no repeat factor): decode, resize,
// normalise, batch. Full pipeline = the config as given. Each runs for
// --seconds of wall time and at least one whole epoch, cycling epochs;
// throughput = delivered images / wall time (loader construction excluded;
// the image files are read once beforehand so both start from a warm page
// cache). With --scaling both are also run at 1 thread. CPU time per image
// (and cpu_ratio, the minimal loader's CPU per image over the pipeline's)
// is reported too: unlike throughput, it does not move with other load on
// the machine. --rounds N repeats the whole set N times, interleaved, and
// reports the median of each ratio (the per-round figures are listed too):
// on a shared machine a burst of other load then spoils one round, not the
// figure.
#include <ATen/Parallel.h>

#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/io/bench.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/stages/decode.hpp"
#include "pipeline_args.hpp"

namespace pasteflow::cli {

namespace {

struct BenchPipelineArgs {
  PipelineArgs pipe;
  double seconds = 10.0;
  bool scaling = false;
  int rounds = 1;
  int torch_threads = 0;
};

struct RunResult {
  int threads = 0;
  double seconds = 0;
  uint64_t images = 0;
  uint64_t batches = 0;
  uint64_t epochs = 0;
  double images_per_s = 0;
  double cpu_s = 0;  ///< process CPU time (user + system) during the run
  pipeline::StageTimes times;
  SkipReport skipped;
};

double process_cpu_s() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + 1e-6 * static_cast<double>(t.tv_usec); };
  return sec(u.ru_utime) + sec(u.ru_stime);
}

RunResult run_loader(const io::CocoDataset& ds, pipeline::PipelineConfig cfg, double seconds) {
  cfg.loader.max_epochs = 0;  // cycle epochs
  RunResult r;
  r.threads = resolve_threads(cfg.loader.threads);
  pipeline::Loader loader(ds, cfg, pipeline::Output::kBatches);
  const double cpu0 = process_cpu_s();
  const auto t0 = std::chrono::steady_clock::now();
  auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
  while (true) {
    auto batch = loader.next_batch();
    if (!batch) {
      ++r.epochs;
      if (elapsed() >= seconds) break;
      continue;
    }
    r.images += batch->targets.size();
    ++r.batches;
    if (r.epochs >= 1 && elapsed() >= seconds) break;
  }
  r.seconds = elapsed();
  r.cpu_s = process_cpu_s() - cpu0;
  r.images_per_s = static_cast<double>(r.images) / r.seconds;
  r.times = loader.times();
  r.skipped = loader.skipped();
  return r;
}

pipeline::PipelineConfig minimal_config(pipeline::PipelineConfig cfg) {
  cfg.sampler.aug_mode = "none";
  cfg.sampler.oversample = 1.0;
  cfg.sampler.repeat_threshold = 0.0;
  return cfg;
}

void write_run(JsonWriter& w, const RunResult& r) {
  w.begin_object();
  w.field("threads", r.threads).field("images", r.images).field("batches", r.batches).field("epochs", r.epochs);
  w.field("seconds", r.seconds).field("images_per_s", r.images_per_s);
  // CPU cost per image does not depend on what else the machine runs;
  // utilisation = CPU time / (wall time x threads).
  w.field("cpu_s", r.cpu_s).field("cpu_ms_per_image", r.images > 0 ? 1e3 * r.cpu_s / static_cast<double>(r.images) : 0.0);
  w.field("utilisation", r.cpu_s / (r.seconds * r.threads));
  w.field("consumer_wait_s", r.times.consumer_wait_s);
  w.field("max_inflight", r.times.max_inflight).field("max_ready", r.times.max_ready);
  w.field("batches_copied", r.times.batches_copied);
  w.field("batch_tensors_allocated", r.times.batch_tensors_allocated).field("batch_tensors_reused", r.times.batch_tensors_reused);
  w.key("stages").begin_object();
  for (const auto& c : r.times.stages) {
    w.key(c.name).begin_object();
    w.field("calls", c.calls).field("seconds", c.seconds);
    w.field("ms_per_call", c.calls > 0 ? 1e3 * c.seconds / static_cast<double>(c.calls) : 0.0);
    w.end_object();
  }
  w.end_object();
  w.field("skipped", r.skipped.total());
  w.end_object();
}

void log_run(const char* name, const RunResult& r) {
  std::string stages;
  for (const auto& c : r.times.stages) {
    if (c.calls == 0) continue;
    stages += " " + c.name + " " + std::to_string(1e3 * c.seconds / static_cast<double>(c.calls)).substr(0, 6) + " ms";
  }
  spdlog::info("{} ({} threads): {:.1f} images/s ({} images, {} epochs, {:.1f} s, {:.1f} CPU ms/image, utilisation "
               "{:.2f}); per call:{}",
               name, r.threads, r.images_per_s, r.images, r.epochs, r.seconds,
               1e3 * r.cpu_s / static_cast<double>(std::max<uint64_t>(r.images, 1)), r.cpu_s / (r.seconds * r.threads),
               stages);
}

void run_bench_pipeline(const BenchPipelineArgs& a) {
  tune_allocator_for_pipeline();
  if (a.torch_threads > 0) at::set_num_threads(a.torch_threads);
  const pipeline::PipelineConfig cfg = load_pipeline_args(a.pipe);
  const io::CocoDataset ds = load_dataset_args(a.pipe, cfg);
  // Warm the page cache so neither run pays for the first reads.
  for (const auto& im : ds.images) {
    try {
      (void)stages::read_file_bytes(ds.image_path(im));
    } catch (const Error&) {  // missing files are the loader's business
    }
  }

  struct Round {
    RunResult base, full, base1, full1;
    double ratio() const { return full.images_per_s / base.images_per_s; }
    double cpu_ratio() const {
      return (base.cpu_s / static_cast<double>(base.images)) / (full.cpu_s / static_cast<double>(full.images));
    }
    double baseline_scaling() const { return base.images_per_s / base1.images_per_s; }
    double pipeline_scaling() const { return full.images_per_s / full1.images_per_s; }
  };
  std::vector<Round> rounds;
  for (int k = 0; k < a.rounds; ++k) {
    Round r;
    r.base = run_loader(ds, minimal_config(cfg), a.seconds);
    log_run("minimal loader", r.base);
    r.full = run_loader(ds, cfg, a.seconds);
    log_run("full pipeline", r.full);
    if (a.scaling) {
      pipeline::PipelineConfig one = cfg;
      one.loader.threads = 1;
      r.base1 = run_loader(ds, minimal_config(one), a.seconds);
      log_run("minimal loader", r.base1);
      r.full1 = run_loader(ds, one, a.seconds);
      log_run("full pipeline", r.full1);
    }
    rounds.push_back(std::move(r));
  }
  auto median = [&rounds](auto figure) {
    std::vector<double> v;
    for (const Round& r : rounds) v.push_back(figure(r));
    std::sort(v.begin(), v.end());
    const size_t n = v.size();
    return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
  };
  const Round& last = rounds.back();

  JsonWriter w(a.pipe.run.json ? 0 : 2);
  w.begin_object();
  w.field("config", a.pipe.config);
  w.field("threads", last.full.threads);
  w.field("rounds", a.rounds);
  w.field("baseline_images_per_s", median([](const Round& r) { return r.base.images_per_s; }));
  w.field("pipeline_images_per_s", median([](const Round& r) { return r.full.images_per_s; }));
  w.field("ratio", median([](const Round& r) { return r.ratio(); }));
  w.field("cpu_ratio", median([](const Round& r) { return r.cpu_ratio(); }));
  w.field("peak_rss_mb", io::peak_rss_mb());
  w.field("torch_threads", at::get_num_threads());
  w.key("baseline");
  write_run(w, last.base);
  w.key("pipeline");
  write_run(w, last.full);
  if (a.scaling) {
    w.key("scaling").begin_object();
    w.field("baseline_images_per_s_1_thread", median([](const Round& r) { return r.base1.images_per_s; }));
    w.field("pipeline_images_per_s_1_thread", median([](const Round& r) { return r.full1.images_per_s; }));
    w.field("baseline_scaling", median([](const Round& r) { return r.baseline_scaling(); }));
    w.field("pipeline_scaling", median([](const Round& r) { return r.pipeline_scaling(); }));
    w.key("baseline_1_thread");
    write_run(w, last.base1);
    w.key("pipeline_1_thread");
    write_run(w, last.full1);
    w.end_object();
  }
  w.key("per_round").begin_array();
  for (const Round& r : rounds) {
    w.begin_object();
    w.field("ratio", r.ratio()).field("cpu_ratio", r.cpu_ratio());
    w.field("pipeline_utilisation", r.full.cpu_s / (r.full.seconds * r.full.threads));
    if (a.scaling) w.field("baseline_scaling", r.baseline_scaling()).field("pipeline_scaling", r.pipeline_scaling());
    w.end_object();
  }
  w.end_array();
  w.end_object();
  print_stdout(w.str());
}

}  // namespace

void add_bench_pipeline_command(CLI::App& bench) {
  auto args = std::make_shared<BenchPipelineArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "pipeline",
      "The config's full pipeline vs a minimal loader (same Loader, no augmentation: decode, resize, normalise, "
      "batch) on the same images, in one run: {threads, baseline_images_per_s, pipeline_images_per_s, ratio, "
      "peak_rss_mb} and per-stage times; --scaling adds the 1-thread runs and the thread scaling ratio");
  add_pipeline_options(cmd, args->pipe);
  cmd->add_option("--seconds", args->seconds, "wall time of each run (at least one epoch is always run)")
      ->check(CLI::Range(0.0, 86400.0))
      ->capture_default_str();
  cmd->add_flag("--scaling", args->scaling, "also run both at 1 thread and report threads/1-thread throughput");
  cmd->add_option("--rounds", args->rounds,
                  "repeat all runs this many times, interleaved; the ratios reported are the medians over rounds")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--torch-threads", args->torch_threads,
                  "at::set_num_threads before running (0 = LibTorch's default)")
      ->check(CLI::Range(0, 1024));
  add_json_option(cmd, args->pipe.run);
  cmd->callback([args] { run_bench_pipeline(*args); });
}

}  // namespace pasteflow::cli
