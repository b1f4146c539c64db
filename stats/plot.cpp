#include "pasteflow/stats/plot.hpp"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"

namespace pasteflow::stats {

namespace {

double side_of(double area) { return area > 0.0 ? std::sqrt(area) : 0.0; }

std::string format_number(double v) {
  char buf[64];
  if (v >= 1.0 && v == std::floor(v)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

const cv::Scalar kBlack(0, 0, 0);
const cv::Scalar kGrey(110, 110, 110);
const cv::Scalar kGridGrey(225, 225, 225);
const cv::Scalar kBar(180, 119, 31);
const cv::Scalar kWhite(255, 255, 255);

cv::Scalar marker_colour() {
  return cv::Scalar(kThresholdMarkerBgr[0], kThresholdMarkerBgr[1], kThresholdMarkerBgr[2]);
}

}  // namespace

int SizeHistogramLayout::x_of(double side) const {
  const double t = (std::log(side) - log_min) / (log_max - log_min);
  return plot_left + static_cast<int>(std::lround(t * static_cast<double>(plot_right - plot_left)));
}

SizeHistogram size_histogram(const std::vector<double>& areas, const std::vector<double>& area_thresholds,
                             const SizeHistogramOptions& options) {
  if (options.bins < 1) throw ConfigError("bad_plot", "histogram needs at least one bin");
  if (!(options.min_side > 0.0)) throw ConfigError("bad_plot", "histogram min_side must be positive");
  if (options.width < 200 || options.height < 150) throw ConfigError("bad_plot", "plot must be >= 200x150 pixels");
  double max_side = options.max_side;
  if (max_side == 0.0) {
    double largest = options.min_side * 2.0;
    for (double a : areas) largest = std::max(largest, side_of(a));
    for (double t : area_thresholds) largest = std::max(largest, 1.5 * side_of(t));
    max_side = std::exp2(std::ceil(std::log2(largest)));
  }
  if (!(max_side > options.min_side)) throw ConfigError("bad_plot", "histogram max_side must exceed min_side");

  SizeHistogram h;
  const double lo = std::log(options.min_side);
  const double hi = std::log(max_side);
  const int n = options.bins;
  h.edges.resize(static_cast<size_t>(n) + 1);
  for (int k = 0; k <= n; ++k) h.edges[static_cast<size_t>(k)] = std::exp(lo + (hi - lo) * k / n);
  h.edges.front() = options.min_side;
  h.edges.back() = max_side;
  h.counts.assign(static_cast<size_t>(n), 0);
  for (double a : areas) {
    const double s = side_of(a);
    int k = 0;
    if (s > options.min_side) {
      k = static_cast<int>(std::floor((std::log(s) - lo) / (hi - lo) * n));
      k = std::clamp(k, 0, n - 1);
    }
    ++h.counts[static_cast<size_t>(k)];
    ++h.total;
  }
  return h;
}

SizeHistogramLayout size_histogram_layout(const SizeHistogram& histogram, const SizeHistogramOptions& options) {
  if (histogram.edges.size() < 2) throw ConfigError("bad_plot", "histogram has no bins");
  SizeHistogramLayout l;
  l.plot_left = 80;
  l.plot_right = options.width - 30;
  l.plot_top = 60;
  l.plot_bottom = options.height - 70;
  l.log_min = std::log(histogram.edges.front());
  l.log_max = std::log(histogram.edges.back());
  return l;
}

void plot_size_histogram(const std::vector<double>& areas, const std::vector<double>& area_thresholds,
                         const std::string& png_path, const SizeHistogramOptions& options) {
  const SizeHistogram h = size_histogram(areas, area_thresholds, options);
  const SizeHistogramLayout l = size_histogram_layout(h, options);
  cv::Mat img(options.height, options.width, CV_8UC3, kWhite);
  const int font = cv::FONT_HERSHEY_SIMPLEX;

  int64_t max_count = 1;
  for (int64_t c : h.counts) max_count = std::max(max_count, c);
  const double y_top = static_cast<double>(max_count) * 1.12;
  auto y_of = [&](double count) {
    return l.plot_bottom -
           static_cast<int>(std::lround(count / y_top * static_cast<double>(l.plot_bottom - l.plot_top)));
  };

  // y grid and tick labels
  const double raw_step = y_top / 5.0;
  const double mag = std::pow(10.0, std::floor(std::log10(raw_step)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0}) {
    if (m * mag >= raw_step) {
      step = m * mag;
      break;
    }
  }
  step = std::max(step, 1.0);
  for (double v = 0.0; v <= y_top; v += step) {
    const int y = y_of(v);
    cv::line(img, {l.plot_left, y}, {l.plot_right, y}, kGridGrey, 1, cv::LINE_8);
    const std::string label = format_number(v);
    int base = 0;
    const cv::Size ts = cv::getTextSize(label, font, 0.45, 1, &base);
    cv::putText(img, label, {l.plot_left - 8 - ts.width, y + ts.height / 2}, font, 0.45, kBlack, 1, cv::LINE_AA);
  }

  // bars with their counts
  for (size_t k = 0; k < h.counts.size(); ++k) {
    const int x0 = l.x_of(h.edges[k]);
    const int x1 = l.x_of(h.edges[k + 1]);
    const int64_t c = h.counts[k];
    if (c == 0) continue;
    const int y = y_of(static_cast<double>(c));
    cv::rectangle(img, cv::Point(x0 + 1, y), cv::Point(std::max(x0 + 1, x1 - 1), l.plot_bottom), kBar, cv::FILLED,
                  cv::LINE_8);
    const std::string label = std::to_string(c);
    int base = 0;
    const cv::Size ts = cv::getTextSize(label, font, 0.35, 1, &base);
    cv::putText(img, label, {(x0 + x1) / 2 - ts.width / 2, y - 4}, font, 0.35, kGrey, 1, cv::LINE_AA);
  }

  // axes
  cv::line(img, {l.plot_left, l.plot_bottom}, {l.plot_right, l.plot_bottom}, kBlack, 1, cv::LINE_8);
  cv::line(img, {l.plot_left, l.plot_top}, {l.plot_left, l.plot_bottom}, kBlack, 1, cv::LINE_8);
  // x ticks at powers of two
  for (double s = std::exp2(std::ceil(std::log2(h.edges.front()))); s <= h.edges.back() * 1.0000001; s *= 2.0) {
    const int x = l.x_of(s);
    cv::line(img, {x, l.plot_bottom}, {x, l.plot_bottom + 5}, kBlack, 1, cv::LINE_8);
    const std::string label = format_number(s);
    int base = 0;
    const cv::Size ts = cv::getTextSize(label, font, 0.45, 1, &base);
    cv::putText(img, label, {x - ts.width / 2, l.plot_bottom + 8 + ts.height}, font, 0.45, kBlack, 1, cv::LINE_AA);
  }
  {
    const std::string xl = "object size sqrt(area) [pixels], log scale";
    int base = 0;
    const cv::Size ts = cv::getTextSize(xl, font, 0.55, 1, &base);
    cv::putText(img, xl, {(l.plot_left + l.plot_right) / 2 - ts.width / 2, options.height - 18}, font, 0.55, kBlack, 1,
                cv::LINE_AA);
    cv::putText(img, "objects", {10, l.plot_top - 12}, font, 0.55, kBlack, 1, cv::LINE_AA);
    const std::string title = options.title + " (n = " + std::to_string(h.total) + ")";
    const cv::Size tt = cv::getTextSize(title, font, 0.7, 2, &base);
    cv::putText(img, title, {(options.width - tt.width) / 2, 32}, font, 0.7, kBlack, 2, cv::LINE_AA);
  }

  // threshold markers last, in their own colour
  for (double t : area_thresholds) {
    const double s = side_of(t);
    if (!(s > h.edges.front()) || !(s < h.edges.back())) continue;
    const int x = l.x_of(s);
    cv::line(img, {x, l.plot_top}, {x, l.plot_bottom}, marker_colour(), 2, cv::LINE_8);
    const std::string label = format_number(s) + "x" + format_number(s);
    cv::putText(img, label, {x + 5, l.plot_top + 16}, font, 0.5, marker_colour(), 1, cv::LINE_AA);
  }

  std::vector<uchar> png;
  if (!cv::imencode(".png", img, png)) throw Error("write_failed", "could not encode the histogram as PNG");
  namespace fs = std::filesystem;
  const fs::path target(png_path);
  fs::path tmp = target;
  tmp += ".tmp-" + std::to_string(static_cast<long>(::getpid()));
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) {
      Location loc;
      loc.file = png_path;
      throw Error("write_failed", "cannot open " + tmp.string() + " for writing", loc);
    }
    out.write(reinterpret_cast<const char*>(png.data()), static_cast<std::streamsize>(png.size()));
    out.close();
    if (!out) {
      std::error_code ignored;
      fs::remove(tmp, ignored);
      Location loc;
      loc.file = png_path;
      throw Error("write_failed", "writing " + tmp.string() + " failed", loc);
    }
  }
  std::error_code ec;
  fs::rename(tmp, target, ec);
  if (ec) {
    std::error_code ignored;
    fs::remove(tmp, ignored);
    Location loc;
    loc.file = png_path;
    throw Error("write_failed", "cannot rename " + tmp.string() + ": " + ec.message(), loc);
  }
}

}  // namespace pasteflow::stats
