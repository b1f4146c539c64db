// pasteflow plot: training curves (loss, learning rate, data-wait share,
// evaluation) from a run's metrics.jsonl.
#include <memory>
#include <string>

#include "cli.hpp"
#include "pasteflow/train/plot.hpp"

namespace pasteflow::cli {

namespace {

struct PlotArgs {
  std::string metrics;
  std::string output;
  std::string title;
  int width = 1100;
};

void run_plot(const PlotArgs& a) {
  const train::MetricsLog log = train::read_metrics(a.metrics);
  train::CurvesOptions opts;
  opts.width = a.width;
  opts.title = a.title.empty() ? a.metrics : a.title;
  train::plot_curves(log, a.output, opts);
  std::string share;
  if (log.data_wait_share >= 0) share = fmt::format(", data wait {:.2f}% of iteration time", 100.0 * log.data_wait_share);
  spdlog::info("wrote {} ({} train points, {} evaluations{})", a.output, log.train.size(), log.eval.size(), share);
}

}  // namespace

void add_plot_command(CLI::App& app) {
  auto args = std::make_shared<PlotArgs>();
  CLI::App* cmd = app.add_subcommand(
      "plot", "Training curves from a run's metrics.jsonl: loss (total and parts), learning rate, share of time "
              "waiting for data (2% target) and validation AP, as one PNG");
  cmd->add_option("metrics", args->metrics, "metrics.jsonl written by pasteflow train")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("-o,--output", args->output, "PNG to write (atomically)")->required();
  cmd->add_option("--title", args->title, "title line (default: the metrics path)");
  cmd->add_option("--width", args->width, "image width in pixels")->check(CLI::Range(500, 8000))->capture_default_str();
  cmd->callback([args] { run_plot(*args); });
}

}  // namespace pasteflow::cli
