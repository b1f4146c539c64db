#include "cli.hpp"

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <thread>

namespace pasteflow::cli {

void add_run_options(CLI::App* cmd, RunOptions& opts) {
  cmd->add_option("--threads", opts.threads, "worker threads (0 = all cores)")->check(CLI::Range(0, 1024));
  cmd->add_option("--seed", opts.seed, "random seed; results depend only on it, never on --threads");
}

void add_json_option(CLI::App* cmd, RunOptions& opts) {
  cmd->add_flag("--json", opts.json, "print machine-readable JSON on stdout (logs stay on stderr)");
}

int resolve_threads(int threads) {
  if (threads > 0) return threads;
  const unsigned n = std::thread::hardware_concurrency();
  return n == 0 ? 1 : static_cast<int>(n);
}

void write_skip_counts(JsonWriter& w, const SkipReport& skipped, const char* total_key, const char* reasons_key) {
  w.field(total_key, skipped.total());
  w.key(reasons_key).begin_object();
  for (const auto& [reason, n] : skipped.counts()) w.field(reason, n);
  w.end_object();
}

void print_stdout(const std::string& text) {
  std::fwrite(text.data(), 1, text.size(), stdout);
  std::fputc('\n', stdout);
  std::fflush(stdout);
}

bool stderr_is_terminal() { return isatty(STDERR_FILENO) == 1; }

void clear_progress_line() {
  if (stderr_is_terminal()) {
    std::fputs("\r\033[K", stderr);
    std::fflush(stderr);
  }
}

namespace {
std::atomic<bool> g_stop{false};
std::atomic<int> g_stop_signal{0};

extern "C" void on_stop_signal(int sig) {
  g_stop_signal.store(sig);
  g_stop.store(true);
  // A second Ctrl-C ends the process at once.
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}
}  // namespace

const std::atomic<bool>* stop_flag() { return &g_stop; }

int stop_signal() { return g_stop.load() ? g_stop_signal.load() : 0; }

void throw_if_interrupted(const std::string& what) {
  const int sig = stop_signal();
  if (sig != 0) throw Interrupted(sig, what);
}

StopOnSignal::StopOnSignal() {
  g_stop = false;
  g_stop_signal = 0;
  std::signal(SIGINT, on_stop_signal);
  std::signal(SIGTERM, on_stop_signal);
}

StopOnSignal::~StopOnSignal() {
  std::signal(SIGINT, SIG_DFL);
  std::signal(SIGTERM, SIG_DFL);
}

namespace {
int64_t now_ns() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now().time_since_epoch()).count();
}
}  // namespace

Progress::Progress(std::string label, uint64_t total)
    : label_(std::move(label)), total_(total), enabled_(stderr_is_terminal()), start_ns_(now_ns()) {}

Progress::~Progress() { finish(); }

void Progress::update(uint64_t done) {
  if (!enabled_ || finished_) return;
  const int64_t t = now_ns();
  if (done < total_ && t - last_draw_ns_ < 100'000'000) return;
  last_draw_ns_ = t;
  const double frac = total_ == 0 ? 1.0 : static_cast<double>(done) / static_cast<double>(total_);
  const int width = 30;
  const int filled = static_cast<int>(frac * width);
  const double elapsed = static_cast<double>(t - start_ns_) * 1e-9;
  const double eta = frac > 0 ? elapsed * (1.0 - frac) / frac : 0.0;
  std::string bar(static_cast<size_t>(filled), '#');
  bar.resize(width, '.');
  std::fprintf(stderr, "\r%s [%s] %llu/%llu  %.0fs elapsed, ETA %.0fs ", label_.c_str(), bar.c_str(),
               static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_), elapsed, eta);
  std::fflush(stderr);
}

void Progress::finish() {
  if (!enabled_ || finished_) return;
  update(total_);
  finished_ = true;
  std::fputc('\n', stderr);
}

}  // namespace pasteflow::cli
