// Training curves from a metrics.jsonl file (trainer.hpp): loss (total and
// each component), learning rate, and the share of iteration time spent
// waiting for data (with the 2 % target), plus the evaluation metric when
// the run evaluated. Drawn with OpenCV, written atomically.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace pasteflow::train {

/// One "train" line.
struct TrainPoint {
  uint64_t iteration = 0;
  double lr = 0.0;
  double loss = 0.0;
  std::map<std::string, double> losses;  ///< loss_* members
  double data_share = 0.0;
  double images_per_s = 0.0;
  double time_s = 0.0;   ///< mean wall time per iteration
  double data_s = 0.0;   ///< mean wait for the batch per iteration
  double comm_s = 0.0;   ///< distributed: mean gradient all-reduce wait (0 when absent)
  uint64_t world_size = 1;
};

/// One "eval" line.
struct EvalPoint {
  uint64_t iteration = 0;
  std::string metric;
  double value = 0.0;
  std::map<std::string, double> metrics;  ///< bbox_* and segm_* members
};

struct MetricsLog {
  std::vector<TrainPoint> train;
  std::vector<EvalPoint> eval;
  /// Of the last "summary" line; -1 when there is none.
  double data_wait_share = -1.0;
};

/// Reads a metrics.jsonl file. Unknown members and line types are ignored;
/// blank lines skipped. Throws InputError "cannot_open", "malformed_json"
/// (Location: file, record "line N"), "missing_field" (a train line
/// without iter, lr or loss).
MetricsLog read_metrics(const std::string& path);

struct CurvesOptions {
  int width = 1100;
  int panel_height = 260;  ///< height of each panel
  std::string title;       ///< empty: the file name
};

/// Draws the panels (loss, learning rate, data-wait share; evaluation when
/// present) to a PNG at `png_path` (temporary file + rename). Throws
/// InputError "no_data" when the log has no train lines, Error
/// "cannot_write" when the file cannot be written.
void plot_curves(const MetricsLog& log, const std::string& png_path, const CurvesOptions& options = {});

}  // namespace pasteflow::train
