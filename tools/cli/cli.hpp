// Shared pieces of the pasteflow command-line program. The CLI is the only
// place that prints or exits; library code throws pasteflow::Error.
#pragma once

#include <CLI/CLI.hpp>
#include <spdlog/spdlog.h>

#include <atomic>
#include <cstdint>
#include <stdexcept>
#include <string>

#include "pasteflow/core/error.hpp"
#include "pasteflow/core/json_writer.hpp"

namespace pasteflow::cli {

/// Options every subcommand doing parallel or random work takes.
struct RunOptions {
  int threads = 0;     ///< 0 = all cores
  uint64_t seed = 0;
  bool json = false;   ///< machine-readable output on stdout, logs on stderr
};

/// Adds --threads and --seed to `cmd`.
void add_run_options(CLI::App* cmd, RunOptions& opts);
/// Adds --json to `cmd`.
void add_json_option(CLI::App* cmd, RunOptions& opts);
/// Resolves threads = 0 to the number of cores.
int resolve_threads(int threads);

/// Writes `text` to stdout followed by a newline (the only stdout writer).
void print_stdout(const std::string& text);

/// Writes a --json summary's skip counts into the open object of `w`:
/// `total_key`: the number of records skipped, `reasons_key`: {reason: count}.
void write_skip_counts(JsonWriter& w, const SkipReport& skipped, const char* total_key = "skipped",
                       const char* reasons_key = "skipped_reasons");

/// True when stderr is a terminal (progress bars are drawn only then).
bool stderr_is_terminal();

/// Clears the progress bar's line before a log line (terminals only).
void clear_progress_line();

/// The flag StopOnSignal raises (for TrainerHooks::stop and the like).
const std::atomic<bool>* stop_flag();

/// The signal that raised stop_flag() (SIGINT, SIGTERM), 0 when none did.
int stop_signal();

/// While alive, SIGINT and SIGTERM raise stop_flag() (lowered on
/// construction) instead of ending the process; a second signal ends it at
/// once. The default handlers come back on destruction.
class StopOnSignal {
 public:
  StopOnSignal();
  ~StopOnSignal();
  StopOnSignal(const StopOnSignal&) = delete;
  StopOnSignal& operator=(const StopOnSignal&) = delete;
};

/// Thrown by a command that stopped early on a signal, after it has saved
/// or cleaned up what it must; main() logs `what()` and exits with
/// 128 + signal (130 for SIGINT, 143 for SIGTERM), so schedulers and shells
/// see the run as interrupted, never as finished.
class Interrupted : public std::runtime_error {
 public:
  Interrupted(int signal, const std::string& what) : std::runtime_error(what), signal_(signal) {}
  int signal() const noexcept { return signal_; }
  int exit_code() const noexcept { return 128 + signal_; }

 private:
  int signal_;
};

/// A command that ends with a given exit status after reporting `what()`
/// (e.g. the launcher of `train --nproc`, passing on a failed rank's status).
class ExitStatus : public std::runtime_error {
 public:
  ExitStatus(int code, const std::string& what) : std::runtime_error(what), code_(code) {}
  int code() const noexcept { return code_; }

 private:
  int code_;
};

/// Throws Interrupted(stop_signal(), what) when a signal raised stop_flag().
void throw_if_interrupted(const std::string& what);

/// A one-line progress bar on stderr, drawn only on terminals.
class Progress {
 public:
  Progress(std::string label, uint64_t total);
  ~Progress();
  void update(uint64_t done);
  void finish();

 private:
  std::string label_;
  uint64_t total_;
  bool enabled_;
  bool finished_ = false;
  int64_t start_ns_;
  int64_t last_draw_ns_ = 0;
};

// Subcommand registration; each lives in tools/cli/cmd_<name>.cpp.
void add_stats_command(CLI::App& app);
void add_rle_command(CLI::App& app);
void add_bench_command(CLI::App& app);
void add_generate_command(CLI::App& app);
void add_eval_command(CLI::App& app);
void add_config_command(CLI::App& app);
void add_augment_command(CLI::App& app);
void add_preview_command(CLI::App& app);
void add_train_command(CLI::App& app);
void add_plot_command(CLI::App& app);
void add_experiment_command(CLI::App& app);
void add_predict_command(CLI::App& app);
void add_slice_command(CLI::App& app);
/// `import masks`: instance masks (instance PNGs, label images) -> COCO.
void add_import_command(CLI::App& app);
/// Adds `bench pipeline` to the existing `bench` subcommand.
void add_bench_pipeline_command(CLI::App& bench);
/// Adds `bench soak` (the loader's memory over a long run) to `bench`.
void add_bench_soak_command(CLI::App& bench);
void add_bench_distributed_command(CLI::App& bench);
/// Adds `bench slices` (windows of a huge TIFF: pasteflow vs libvips vs whole decode) to `bench`.
void add_bench_slices_command(CLI::App& bench);

}  // namespace pasteflow::cli
