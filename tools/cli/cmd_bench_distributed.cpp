// pasteflow bench distributed: data-parallel scaling of `pasteflow train`.
//
// The same total work, measured side by side in one run: one rank with one
// thread training on the global batch, then two ranks (Gloo over loopback,
// `train --nproc 2`) with one thread each training on half of it, for
// --iters iterations each (the first --warmup left out of the figures).
// scaling_efficiency = one_rank_s_per_iter / (2 x two_ranks_s_per_iter):
// 1.0 is perfect scaling; comm_share is the share of the two ranks'
// iteration time spent waiting for the gradient all-reduce after backward
// (the part backward did not hide). --rounds alternates the two settings
// (A B A B ...) and reports medians, against drift of a shared machine.
// Beside them, two independent single-process runs of half the batch at
// once (no communication): contention_ceiling = one_rank_s_per_iter /
// (2 x their s/iter) is what two processes can reach on this machine at all
// (shared memory bandwidth and caches), so the gap between it and
// scaling_efficiency is what communication costs. --compare-overlap adds
// two ranks with dist.overlap false (every bucket after backward). The runs'
// outputs go to a fresh temporary directory that is removed at the end.
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/dist/launch.hpp"
#include "pasteflow/train/config.hpp"
#include "pasteflow/train/plot.hpp"

namespace pasteflow::cli {

namespace {

namespace fs = std::filesystem;

struct BenchDistributedArgs {
  std::string config = "configs/demo.yaml";
  std::vector<std::string> overrides;
  int iters = 30;
  int warmup = 5;
  int global_batch = 0;  ///< 0: twice the config's pipeline.loader.batch_size
  int rounds = 1;
  bool compare_overlap = false;
  RunOptions run;
};

struct RunFigures {
  double s_per_iter = 0.0;  ///< mean iteration time after the warm-up
  double comm_s = 0.0;      ///< mean wait for the gradient all-reduce
  double data_s = 0.0;      ///< mean wait for the batch
  size_t iterations = 0;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  const size_t n = v.size();
  return n % 2 == 1 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/// The figures of a metrics.jsonl (train::read_metrics) after the warm-up.
RunFigures read_figures(const BenchDistributedArgs& a, const fs::path& metrics) {
  RunFigures f;
  for (const train::TrainPoint& p : train::read_metrics(metrics.string()).train) {
    if (p.iteration <= static_cast<uint64_t>(a.warmup)) continue;
    f.s_per_iter += p.time_s;
    f.data_s += p.data_s;
    f.comm_s += p.comm_s;
    ++f.iterations;
  }
  if (f.iterations == 0) throw Error("bench_failed", "no iterations after the warm-up in " + metrics.string());
  const double n = static_cast<double>(f.iterations);
  f.s_per_iter /= n;
  f.data_s /= n;
  f.comm_s /= n;
  return f;
}

/// `pasteflow train` on `ranks` ranks with one thread each, `batch` images
/// per rank, output in `out`; the figures of rank 0's metrics.jsonl. With
/// `independent`, `ranks` separate single-process runs at once (outputs
/// out/0, out/1, ...), no communication; the figures of the mean.
RunFigures run_training(const BenchDistributedArgs& a, int ranks, int batch, bool overlap, const fs::path& out,
                        bool independent = false) {
  dist::LocalLaunch l;
  l.nproc = ranks;
  l.independent = independent;
  l.program = dist::this_program();
  l.args = {"--log-level", "warn", "train", "--config", a.config, "--threads", "1",
            "solver.max_iter=" + std::to_string(a.iters), "log_period=1",
            "eval.period=0", "eval.at_end=false", "checkpoint.period=1000000",
            "pipeline.loader.batch_size=" + std::to_string(batch), std::string("dist.overlap=") +
            (overlap ? "true" : "false")};
  l.args.insert(l.args.end(), a.overrides.begin(), a.overrides.end());
  for (int r = 0; r < ranks; ++r) {
    l.rank_args.push_back({"output_dir=" + (independent ? out / std::to_string(r) : out).string()});
  }
  const dist::LaunchReport report = dist::launch_local(l, stop_flag(), &stop_signal);
  throw_if_interrupted("benchmark interrupted");
  if (report.exit_code != 0) {
    throw Error("bench_failed", "pasteflow train on " + std::to_string(ranks) + " rank(s) failed (rank " +
                                    std::to_string(report.first_failed) + ", exit status " +
                                    std::to_string(report.exit_code) + ")");
  }
  if (!independent) return read_figures(a, out / "metrics.jsonl");
  RunFigures mean;
  for (int r = 0; r < ranks; ++r) {
    const RunFigures f = read_figures(a, out / std::to_string(r) / "metrics.jsonl");
    mean.s_per_iter += f.s_per_iter / ranks;
    mean.data_s += f.data_s / ranks;
    mean.iterations += f.iterations;
  }
  return mean;
}

void run_bench_distributed(const BenchDistributedArgs& a) {
  if (a.warmup >= a.iters) throw CLI::ValidationError("--warmup", "must be less than --iters");
  const train::TrainConfig cfg = train::load_train_config(a.config, a.overrides);
  const int global = a.global_batch > 0 ? a.global_batch : 2 * cfg.pipeline.loader.batch_size;
  if (global % 2 != 0) throw CLI::ValidationError("--global-batch", "must be even (two ranks share it)");

  std::string tmpl = (fs::temp_directory_path() / "pasteflow-bench-distributed-XXXXXX").string();
  if (::mkdtemp(tmpl.data()) == nullptr) {
    throw Error("io_error", "cannot create a temporary directory: " + std::string(std::strerror(errno)));
  }
  const fs::path tmp = tmpl;
  struct Cleanup {
    fs::path dir;
    ~Cleanup() {
      std::error_code ec;
      fs::remove_all(dir, ec);
    }
  } cleanup{tmp};

  spdlog::info("{}: global batch {} ({} per rank on 2 ranks), {} iterations ({} warm-up), {} round(s)", a.config,
               global, global / 2, a.iters, a.warmup, a.rounds);
  std::vector<double> one, two, two_comm, two_data, one_data, no_overlap, independent;
  const StopOnSignal stop_on_signal;
  for (int r = 0; r < a.rounds; ++r) {
    const std::string round = std::to_string(r);
    const RunFigures f1 = run_training(a, 1, global, true, tmp / ("one_" + round));
    spdlog::info("round {}: 1 rank x 1 thread, batch {}: {:.3f} s/iter (data {:.3f})", r, global, f1.s_per_iter,
                 f1.data_s);
    const RunFigures f2 = run_training(a, 2, global / 2, true, tmp / ("two_" + round));
    spdlog::info("round {}: 2 ranks x 1 thread, batch {} each: {:.3f} s/iter (all-reduce wait {:.3f}, data {:.3f})",
                 r, global / 2, f2.s_per_iter, f2.comm_s, f2.data_s);
    const RunFigures f0 = run_training(a, 2, global / 2, true, tmp / ("independent_" + round), true);
    spdlog::info("round {}: 2 independent runs x 1 thread at once, batch {} each, no communication: {:.3f} s/iter",
                 r, global / 2, f0.s_per_iter);
    independent.push_back(f0.s_per_iter);
    one.push_back(f1.s_per_iter);
    one_data.push_back(f1.data_s / f1.s_per_iter);
    two.push_back(f2.s_per_iter);
    two_comm.push_back(f2.comm_s / f2.s_per_iter);
    two_data.push_back(f2.data_s / f2.s_per_iter);
    if (a.compare_overlap) {
      const RunFigures f3 = run_training(a, 2, global / 2, false, tmp / ("two_no_overlap_" + round));
      spdlog::info("round {}: 2 ranks, dist.overlap false: {:.3f} s/iter (all-reduce wait {:.3f})", r, f3.s_per_iter,
                   f3.comm_s);
      no_overlap.push_back(f3.s_per_iter);
    }
  }
  const double t1 = median(one), t2 = median(two);
  const double efficiency = t1 / (2.0 * t2);
  const double ceiling = t1 / (2.0 * median(independent));
  spdlog::info("scaling efficiency {:.3f} (1 rank {:.3f} s/iter, 2 ranks {:.3f} s/iter; ideal {:.3f}), all-reduce "
               "wait {:.1f}% of the 2-rank iteration; two independent runs reach {:.3f} (this machine's ceiling "
               "without communication)",
               efficiency, t1, t2, t1 / 2.0, 100.0 * median(two_comm), ceiling);

  JsonWriter j(a.run.json ? 0 : 2);
  j.begin_object();
  j.field("scaling_efficiency", efficiency);
  j.field("comm_share", median(two_comm));
  j.field("one_rank_s_per_iter", t1);
  j.field("two_ranks_s_per_iter", t2);
  j.field("independent_s_per_iter", median(independent));
  j.field("contention_ceiling", ceiling);
  if (a.compare_overlap) {
    j.field("two_ranks_no_overlap_s_per_iter", median(no_overlap));
    j.field("overlap_speedup", median(no_overlap) / t2);
  }
  j.field("one_rank_data_share", median(one_data));
  j.field("two_ranks_data_share", median(two_data));
  j.field("global_batch", static_cast<uint64_t>(global));
  j.field("iters", static_cast<uint64_t>(a.iters));
  j.field("warmup", static_cast<uint64_t>(a.warmup));
  j.field("rounds", static_cast<uint64_t>(a.rounds));
  j.field("bucket_mb", cfg.dist.bucket_mb);
  j.field("config", a.config);
  j.end_object();
  print_stdout(j.str() + "\n");
}

}  // namespace

void add_bench_distributed_command(CLI::App& bench) {
  auto args = std::make_shared<BenchDistributedArgs>();
  CLI::App* cmd = bench.add_subcommand(
      "distributed",
      "Data-parallel scaling of `pasteflow train`: 2 ranks x 1 thread against 1 rank x 1 thread on the same global "
      "batch, side by side; prints scaling_efficiency, comm_share and the s/iter of both");
  cmd->add_option("--config,-c", args->config, "training config (default: the demo's; run ./run.sh demo first)")
      ->check(CLI::ExistingFile)
      ->capture_default_str();
  cmd->add_option("overrides", args->overrides, "config overrides key=value for both settings");
  cmd->add_option("--iters", args->iters, "iterations of each run")
      ->check(CLI::Range(2, 100000))
      ->capture_default_str();
  cmd->add_option("--warmup", args->warmup, "first iterations left out of the figures")
      ->check(CLI::Range(0, 100000))
      ->capture_default_str();
  cmd->add_option("--global-batch", args->global_batch,
                  "images per iteration over all ranks (0: twice the config's pipeline.loader.batch_size)")
      ->check(CLI::Range(0, 100000));
  cmd->add_option("--rounds", args->rounds, "alternate the settings this many times; medians reported")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_flag("--compare-overlap", args->compare_overlap,
                "also run 2 ranks with dist.overlap false (all-reduce after backward)");
  add_json_option(cmd, args->run);
  cmd->callback([args] { run_bench_distributed(*args); });
}

}  // namespace pasteflow::cli
