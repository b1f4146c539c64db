// pasteflow bench soak: the loader of a pipeline config run for a long time
// (default 30 minutes) over a dataset, cycling epochs, to show that its
// memory stays flat after warm-up (a benchmark, never a test).
//
// Every --interval seconds it logs elapsed time, images delivered, images/s
// (over the interval and overall) and the current RSS (VmRSS of
// /proc/self/status); at the end it prints a JSON summary with the series
// and the flatness figures over the samples taken after --warmup seconds:
// the RSS slope in MiB per 10 minutes (Theil-Sen, and least squares) and the
// RSS range (max - min). Ctrl-C ends the run early: the summary of what was measured
// is printed and the exit status is 130 (143 for SIGTERM).
#include <ATen/Parallel.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/io/bench.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pipeline_args.hpp"

namespace pasteflow::cli {

namespace {

struct BenchSoakArgs {
  PipelineArgs pipe;
  double duration = 1800.0;
  double interval = 30.0;
  double warmup = 120.0;
  int torch_threads = 0;
};

struct Sample {
  double t_s = 0;
  uint64_t images = 0;
  uint64_t epochs = 0;
  double images_per_s = 0;  ///< over the interval that ends here
  double rss_mib = 0;
};

/// Flatness of the RSS over the samples taken at or after `warmup` seconds.
/// The slope is the Theil-Sen estimate (median of the slopes between every
/// pair of samples): transient peaks that fall back (a few batches of large
/// images in flight) do not tilt it, a steady climb does. The least-squares
/// slope, which such peaks near either end do tilt, is reported beside it.
struct Flatness {
  size_t samples = 0;
  double slope_mib_per_10min = std::numeric_limits<double>::quiet_NaN();  ///< NaN (null): fewer than 2 samples
  double ls_slope_mib_per_10min = std::numeric_limits<double>::quiet_NaN();
  double range_mib = std::numeric_limits<double>::quiet_NaN();
  double min_mib = std::numeric_limits<double>::quiet_NaN();
  double max_mib = std::numeric_limits<double>::quiet_NaN();
};

Flatness flatness(const std::vector<Sample>& series, double warmup) {
  Flatness f;
  std::vector<const Sample*> after;
  for (const Sample& s : series) {
    if (s.t_s >= warmup) after.push_back(&s);
  }
  f.samples = after.size();
  if (after.empty()) return f;
  f.min_mib = f.max_mib = after.front()->rss_mib;
  double mt = 0, mr = 0;
  for (const Sample* s : after) {
    f.min_mib = std::min(f.min_mib, s->rss_mib);
    f.max_mib = std::max(f.max_mib, s->rss_mib);
    mt += s->t_s;
    mr += s->rss_mib;
  }
  f.range_mib = f.max_mib - f.min_mib;
  if (after.size() < 2) return f;
  const double n = static_cast<double>(after.size());
  mt /= n;
  mr /= n;
  double sxy = 0, sxx = 0;
  for (const Sample* s : after) {
    sxy += (s->t_s - mt) * (s->rss_mib - mr);
    sxx += (s->t_s - mt) * (s->t_s - mt);
  }
  if (sxx > 0) f.ls_slope_mib_per_10min = 600.0 * sxy / sxx;
  std::vector<double> slopes;
  for (size_t i = 0; i < after.size(); ++i) {
    for (size_t j = i + 1; j < after.size(); ++j) {
      const double dt = after[j]->t_s - after[i]->t_s;
      if (dt > 0) slopes.push_back((after[j]->rss_mib - after[i]->rss_mib) / dt);
    }
  }
  if (!slopes.empty()) {
    std::sort(slopes.begin(), slopes.end());
    const size_t m = slopes.size();
    f.slope_mib_per_10min = 600.0 * (m % 2 == 1 ? slopes[m / 2] : 0.5 * (slopes[m / 2 - 1] + slopes[m / 2]));
  }
  return f;
}

void run_bench_soak(const BenchSoakArgs& a) {
  tune_allocator_for_pipeline();
  if (a.torch_threads > 0) at::set_num_threads(a.torch_threads);
  pipeline::PipelineConfig cfg = load_pipeline_args(a.pipe);
  cfg.loader.max_epochs = 0;  // cycle epochs
  const io::CocoDataset ds = load_dataset_args(a.pipe, cfg);
  const double rss_start = io::current_rss_mb();

  std::vector<Sample> series;
  uint64_t images = 0, batches = 0, epochs = 0;
  const int threads = resolve_threads(cfg.loader.threads);
  spdlog::info("soak: {} over {} ({} images), {} threads, {:.0f} s, a sample every {:.0f} s, warm-up {:.0f} s",
               a.pipe.config, a.pipe.annotations, ds.images.size(), threads, a.duration, a.interval, a.warmup);
  {
    const StopOnSignal stop_on_signal;
    pipeline::Loader loader(ds, cfg, pipeline::Output::kBatches);
    const auto t0 = std::chrono::steady_clock::now();
    auto elapsed = [&] { return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(); };
    double next_sample = a.interval;
    uint64_t images_at_last = 0;
    double t_last = 0;
    auto take_sample = [&](double t) {
      Sample s;
      s.t_s = t;
      s.images = images;
      s.epochs = epochs;
      s.images_per_s = t > t_last ? static_cast<double>(images - images_at_last) / (t - t_last) : 0.0;
      s.rss_mib = io::current_rss_mb();
      series.push_back(s);
      images_at_last = images;
      t_last = t;
      spdlog::info("soak {:7.1f} s: {} images ({} epochs), {:.1f} images/s (overall {:.1f}), RSS {:.1f} MiB", s.t_s,
                   s.images, s.epochs, s.images_per_s, t > 0 ? static_cast<double>(images) / t : 0.0, s.rss_mib);
    };
    while (!stop_flag()->load()) {
      auto batch = loader.next_batch();
      if (batch) {
        images += batch->targets.size();
        ++batches;
      } else {
        ++epochs;
      }
      const double t = elapsed();
      if (t >= a.duration) {
        take_sample(t);
        break;
      }
      if (t >= next_sample) {
        take_sample(t);
        while (next_sample <= t) next_sample += a.interval;
      }
    }
    if (stop_flag()->load() && (series.empty() || series.back().t_s < elapsed())) take_sample(elapsed());
  }

  const Flatness f = flatness(series, a.warmup);
  const double seconds = series.empty() ? 0.0 : series.back().t_s;
  if (f.samples >= 2) {
    spdlog::info("after the {:.0f} s warm-up ({} samples): RSS {:.1f}-{:.1f} MiB (range {:.1f}), slope {:+.2f} MiB per "
                 "10 minutes (Theil-Sen; least squares {:+.2f})",
                 a.warmup, f.samples, f.min_mib, f.max_mib, f.range_mib, f.slope_mib_per_10min,
                 f.ls_slope_mib_per_10min);
  } else {
    spdlog::warn("fewer than 2 samples after the {:.0f} s warm-up: no slope (lengthen --duration or shorten --warmup)",
                 a.warmup);
  }

  JsonWriter w(a.pipe.run.json ? 0 : 2);
  w.begin_object();
  w.field("config", a.pipe.config);
  w.field("annotations", a.pipe.annotations);
  w.field("threads", threads);
  w.field("duration_s", a.duration).field("interval_s", a.interval).field("warmup_s", a.warmup);
  w.field("seconds", seconds).field("images", images).field("batches", batches).field("epochs", epochs);
  w.field("images_per_s", seconds > 0 ? static_cast<double>(images) / seconds : 0.0);
  w.field("rss_start_mib", rss_start).field("peak_rss_mib", io::peak_rss_mb());
  w.field("interrupted", stop_signal() != 0);
  w.key("flatness").begin_object();
  w.field("samples", static_cast<uint64_t>(f.samples));
  w.field("rss_slope_mib_per_10min", f.slope_mib_per_10min);
  w.field("rss_ls_slope_mib_per_10min", f.ls_slope_mib_per_10min);
  w.field("rss_range_mib", f.range_mib);
  w.field("rss_min_mib", f.min_mib).field("rss_max_mib", f.max_mib);
  w.end_object();
  w.key("series").begin_array();
  for (const Sample& s : series) {
    w.begin_object();
    w.field("t_s", s.t_s).field("images", s.images).field("epochs", s.epochs);
    w.field("images_per_s", s.images_per_s).field("rss_mib", s.rss_mib);
    w.end_object();
  }
  w.end_array();
  w.end_object();
  print_stdout(w.str());
  throw_if_interrupted("soak interrupted after " + std::to_string(static_cast<int>(seconds)) + " s");
}

}  // namespace

void add_bench_soak_command(CLI::App& bench) {
  auto args = std::make_shared<BenchSoakArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "soak",
      "Run the config's loader for --duration seconds (cycling epochs), log images/s and RSS every --interval "
      "seconds, then print a JSON summary: the series and the RSS slope (MiB per 10 minutes) and range after "
      "--warmup seconds");
  add_pipeline_options(cmd, args->pipe);
  cmd->add_option("--duration", args->duration, "wall time of the run in seconds")
      ->check(CLI::Range(0.0, 7.0 * 86400.0))
      ->capture_default_str();
  cmd->add_option("--interval", args->interval, "seconds between samples")
      ->check(CLI::Range(0.01, 86400.0))
      ->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "seconds excluded from the flatness figures")
      ->check(CLI::Range(0.0, 7.0 * 86400.0))
      ->capture_default_str();
  cmd->add_option("--torch-threads", args->torch_threads,
                  "at::set_num_threads before running (0 = LibTorch's default)")
      ->check(CLI::Range(0, 1024));
  add_json_option(cmd, args->pipe.run);
  cmd->callback([args] { run_bench_soak(*args); });
}

}  // namespace pasteflow::cli
