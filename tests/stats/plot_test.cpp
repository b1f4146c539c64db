// Size histogram: bin counts, and the PNG (decodes, size, threshold markers
// in their colour at the expected columns, atomic write).
#include "pasteflow/stats/plot.hpp"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "pasteflow/core/error.hpp"

namespace ps = pasteflow::stats;
namespace fs = std::filesystem;

namespace {

std::vector<double> sample_areas() {
  std::vector<double> areas;
  // sides 2..400 spread log-uniformly, plus a cluster of small objects
  for (int k = 0; k < 300; ++k) {
    const double side = 2.0 * std::pow(200.0, k / 299.0);
    areas.push_back(side * side);
  }
  for (int k = 0; k < 100; ++k) areas.push_back(100.0 + k);
  return areas;
}

bool is_marker(const cv::Vec3b& px) {
  return px[0] == ps::kThresholdMarkerBgr[0] && px[1] == ps::kThresholdMarkerBgr[1] &&
         px[2] == ps::kThresholdMarkerBgr[2];
}

int marker_pixels_in_column(const cv::Mat& img, int x, int y0, int y1) {
  int n = 0;
  for (int y = y0; y <= y1; ++y) n += is_marker(img.at<cv::Vec3b>(y, x));
  return n;
}

// The file's scratch directory, one per process, removed when the test
// program exits (it used to stay in /tmp with the plots of the last run).
struct ScratchDir {
  fs::path path = fs::path(testing::TempDir()) / ("pasteflow_plot_test_" + std::to_string(::getpid()));
  ScratchDir() { fs::create_directories(path); }
  ~ScratchDir() {
    std::error_code ec;
    fs::remove_all(path, ec);
  }
};

fs::path temp_dir() {
  static const ScratchDir dir;
  return dir.path;
}

}  // namespace

TEST(SizeHistogram, CountsAndEdges) {
  const std::vector<double> thresholds = {1024.0, 9216.0};
  const std::vector<double> areas = {0.0, 0.25, 1.0, 6.25, 1023.0, 1100.0, 1e6, 1e12};
  ps::SizeHistogramOptions o;
  o.bins = 10;
  o.max_side = 1024.0;
  const ps::SizeHistogram h = ps::size_histogram(areas, thresholds, o);
  ASSERT_EQ(h.edges.size(), 11u);
  ASSERT_EQ(h.counts.size(), 10u);
  EXPECT_EQ(h.edges.front(), 1.0);
  EXPECT_EQ(h.edges.back(), 1024.0);
  EXPECT_NEAR(h.edges[1], 2.0, 1e-12);  // log-spaced: 2^(10 k / 10)
  EXPECT_NEAR(h.edges[5], 32.0, 1e-9);
  // sides 0, 0.5 and 1 (<= min) -> bin 0; 2.5 -> bin 1; 31.98 -> bin 4;
  // 33.2 -> bin 5; 1000 and 1e6 (beyond max) -> last bin
  const std::vector<int64_t> expected = {3, 1, 0, 0, 1, 1, 0, 0, 0, 2};
  EXPECT_EQ(h.counts, expected);
  EXPECT_EQ(h.total, 8);
  // automatic range: next power of two above the data and 1.5 x the thresholds
  const ps::SizeHistogram a = ps::size_histogram({100.0}, thresholds);
  EXPECT_EQ(a.edges.back(), 256.0);  // 1.5 * 96 = 144 -> 256
  EXPECT_THROW(ps::size_histogram(areas, thresholds, ps::SizeHistogramOptions{960, 560, 0, 1.0, 0.0, ""}),
               pasteflow::ConfigError);
  EXPECT_THROW(ps::size_histogram(areas, thresholds, ps::SizeHistogramOptions{960, 560, 4, 8.0, 4.0, ""}),
               pasteflow::ConfigError);
}

TEST(SizeHistogramPlot, PngWithThresholdMarkers) {
  const std::vector<double> areas = sample_areas();
  const std::vector<double> thresholds = {32.0 * 32.0, 96.0 * 96.0};
  ps::SizeHistogramOptions o;
  o.width = 800;
  o.height = 500;
  const fs::path png = temp_dir() / "sizes.png";
  fs::remove(png);
  ps::plot_size_histogram(areas, thresholds, png.string(), o);
  ASSERT_TRUE(fs::exists(png));
  const cv::Mat img = cv::imread(png.string(), cv::IMREAD_COLOR);
  ASSERT_FALSE(img.empty());
  EXPECT_EQ(img.cols, 800);
  EXPECT_EQ(img.rows, 500);

  const ps::SizeHistogram h = ps::size_histogram(areas, thresholds, o);
  const ps::SizeHistogramLayout l = ps::size_histogram_layout(h, o);
  const int plot_h = l.plot_bottom - l.plot_top + 1;
  for (double side : {32.0, 96.0}) {
    const int x = l.x_of(side);
    ASSERT_GT(x, l.plot_left);
    ASSERT_LT(x, l.plot_right);
    // the marker is a full-height line in its own colour
    EXPECT_GE(marker_pixels_in_column(img, x, l.plot_top, l.plot_bottom), plot_h - 2) << "side " << side;
  }
  // nowhere else: columns away from both markers carry no marker colour
  const int x32 = l.x_of(32.0), x96 = l.x_of(96.0);
  for (int x = l.plot_left; x <= l.plot_right; ++x) {
    if (std::abs(x - x32) <= 2 || std::abs(x - x96) <= 2) continue;
    // labels are drawn to the right of each marker, in its top 24 pixels
    const int n = marker_pixels_in_column(img, x, l.plot_top + 24, l.plot_bottom);
    ASSERT_EQ(n, 0) << "marker colour at column " << x;
  }
  // the threshold labels exist (some marker-coloured pixels right of the line, near the top)
  int label_px = 0;
  for (int x = x32 + 4; x < x32 + 60; ++x) label_px += marker_pixels_in_column(img, x, l.plot_top, l.plot_top + 24);
  EXPECT_GT(label_px, 0);
  // bars were drawn: the bar colour appears under the tallest bin
  size_t tallest = 0;
  for (size_t k = 1; k < h.counts.size(); ++k) {
    if (h.counts[k] > h.counts[tallest]) tallest = k;
  }
  const int bx = (l.x_of(h.edges[tallest]) + l.x_of(h.edges[tallest + 1])) / 2;
  const cv::Vec3b bar = img.at<cv::Vec3b>(l.plot_bottom - 3, bx);
  EXPECT_EQ(bar, cv::Vec3b(180, 119, 31));
  // no temporary file is left next to the PNG
  for (const auto& e : fs::directory_iterator(temp_dir())) {
    EXPECT_EQ(e.path().filename().string().find(".tmp"), std::string::npos) << e.path();
  }
}

TEST(SizeHistogramPlot, ReplacesAnExistingFileAndReportsWriteErrors) {
  const fs::path png = temp_dir() / "again.png";
  ps::plot_size_histogram({4.0, 16.0}, {1024.0}, png.string());
  const auto first = fs::file_size(png);
  ps::plot_size_histogram(sample_areas(), {1024.0, 9216.0}, png.string());
  EXPECT_NE(fs::file_size(png), first);
  const cv::Mat img = cv::imread(png.string(), cv::IMREAD_COLOR);
  EXPECT_EQ(img.cols, 960);
  EXPECT_EQ(img.rows, 560);
  try {
    ps::plot_size_histogram({4.0}, {1024.0}, (temp_dir() / "no_such_dir" / "x.png").string());
    FAIL() << "no exception";
  } catch (const pasteflow::Error& e) {
    EXPECT_EQ(e.reason(), "write_failed");
  }
}
