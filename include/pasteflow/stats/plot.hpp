// Histogram of object sizes (sqrt(area) on a log x axis) drawn with OpenCV,
// with the size-class thresholds marked and labelled.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

namespace pasteflow::stats {

struct SizeHistogramOptions {
  int width = 960;    ///< image size in pixels
  int height = 560;
  int bins = 36;      ///< log-spaced bins of sqrt(area)
  double min_side = 1.0;  ///< left end of the x axis (sqrt(area), > 0)
  double max_side = 0.0;  ///< right end; 0: the next power of two above the data and thresholds
  std::string title = "Object sizes";
};

/// Counts per log-spaced bin of sqrt(area). Values below min_side go to the
/// first bin, above max_side to the last one.
struct SizeHistogram {
  std::vector<double> edges;    ///< bins + 1 increasing sqrt(area) edges
  std::vector<int64_t> counts;  ///< bins
  int64_t total = 0;
};

/// Where things land in the picture (pixels).
struct SizeHistogramLayout {
  int plot_left = 0;    ///< x of min_side
  int plot_right = 0;   ///< x of max_side
  int plot_top = 0;
  int plot_bottom = 0;  ///< y of count 0 (the x axis)
  double log_min = 0.0;
  double log_max = 0.0;
  /// Pixel column of the side length `side` (sqrt(area)).
  int x_of(double side) const;
};

/// Colour (B, G, R) of the threshold markers; used for nothing else.
inline constexpr std::array<uint8_t, 3> kThresholdMarkerBgr = {0, 0, 220};

/// Throws ConfigError for bad options (non-positive sizes, < 1 bin, max <= min).
SizeHistogram size_histogram(const std::vector<double>& areas, const std::vector<double>& area_thresholds,
                             const SizeHistogramOptions& options = {});
SizeHistogramLayout size_histogram_layout(const SizeHistogram& histogram, const SizeHistogramOptions& options = {});

/// Draws the histogram of sqrt(areas) with a vertical marker at
/// sqrt(threshold) for each of `area_thresholds` (labelled with the side
/// length, e.g. "32" and "96"), axis labels, bin counts over the bars, and
/// writes a PNG of options.width x options.height to `png_path` through a
/// temporary file in the same directory renamed into place. Throws Error
/// ("write_failed") when the file cannot be written.
void plot_size_histogram(const std::vector<double>& areas, const std::vector<double>& area_thresholds,
                         const std::string& png_path, const SizeHistogramOptions& options = {});

}  // namespace pasteflow::stats
