#include "pasteflow/train/plot.hpp"

#include <simdjson.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <limits>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"
#include "pasteflow/train/checkpoint.hpp"

namespace pasteflow::train {

// ---------------------------------------------------------------- reading

MetricsLog read_metrics(const std::string& path) {
  Location where;
  where.file = path;
  std::ifstream in(path);
  if (!in) throw InputError("cannot_open", "cannot open the metrics file", where);
  MetricsLog log;
  simdjson::dom::parser parser;
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
    where.record = "line " + std::to_string(line_no);
    simdjson::dom::object obj;
    if (parser.parse(line).get_object().get(obj) != simdjson::SUCCESS) {
      throw InputError("malformed_json", "not a JSON object", where);
    }
    std::string_view type;
    if (obj["type"].get_string().get(type) != simdjson::SUCCESS) continue;
    auto number = [&](std::string_view key, double& out) {
      simdjson::dom::element e;
      if (obj[key].get(e) != simdjson::SUCCESS) return false;
      if (e.is_double()) {
        out = e.get_double().value_unsafe();
      } else if (e.is_int64()) {
        out = static_cast<double>(e.get_int64().value_unsafe());
      } else if (e.is_uint64()) {
        out = static_cast<double>(e.get_uint64().value_unsafe());
      } else if (e.is_null()) {
        out = std::numeric_limits<double>::quiet_NaN();
      } else {
        return false;
      }
      return true;
    };
    double iter = 0;
    if (type == "train") {
      TrainPoint p;
      if (!number("iter", iter) || !number("lr", p.lr) || !number("loss", p.loss)) {
        throw InputError("missing_field", "a train line needs iter, lr and loss", where);
      }
      p.iteration = static_cast<uint64_t>(iter);
      number("data_share", p.data_share);
      number("images_per_s", p.images_per_s);
      number("time_s", p.time_s);
      number("data_s", p.data_s);
      number("comm_s", p.comm_s);
      double world = 1;
      if (number("world_size", world)) p.world_size = static_cast<uint64_t>(world);
      for (auto field : obj) {
        const std::string key(field.key);
        double v = 0;
        if (key.rfind("loss_", 0) == 0 && number(field.key, v)) p.losses[key] = v;
      }
      log.train.push_back(std::move(p));
    } else if (type == "eval") {
      EvalPoint p;
      if (!number("iter", iter)) throw InputError("missing_field", "an eval line needs iter", where);
      p.iteration = static_cast<uint64_t>(iter);
      std::string_view metric;
      if (obj["metric"].get_string().get(metric) == simdjson::SUCCESS) p.metric = std::string(metric);
      number("value", p.value);
      for (auto field : obj) {
        const std::string key(field.key);
        double v = 0;
        if ((key.rfind("bbox_", 0) == 0 || key.rfind("segm_", 0) == 0) && number(field.key, v)) p.metrics[key] = v;
      }
      log.eval.push_back(std::move(p));
    } else if (type == "summary") {
      number("data_wait_share", log.data_wait_share);
    }
  }
  return log;
}

// ---------------------------------------------------------------- drawing

namespace {

const cv::Scalar kBlack(0, 0, 0);
const cv::Scalar kGrey(110, 110, 110);
const cv::Scalar kGrid(228, 228, 228);
const cv::Scalar kWhite(255, 255, 255);
const cv::Scalar kRed(40, 40, 210);
// matplotlib's tab10, BGR.
const cv::Scalar kPalette[] = {{180, 119, 31}, {14, 127, 255}, {44, 160, 44},  {40, 39, 214},
                               {189, 103, 148}, {75, 86, 140}, {194, 119, 227}, {127, 127, 127}};
constexpr int kFont = cv::FONT_HERSHEY_SIMPLEX;

std::string format_tick(double v) {
  char buf[32];
  const double a = std::fabs(v);
  if (v == 0.0) {
    return "0";
  } else if (a >= 1e5 || a < 1e-3) {
    std::snprintf(buf, sizeof buf, "%.1e", v);
  } else if (a >= 100 || v == std::floor(v)) {
    std::snprintf(buf, sizeof buf, "%.0f", v);
  } else {
    std::snprintf(buf, sizeof buf, "%.3g", v);
  }
  return buf;
}

/// Round step (1, 2, 2.5 or 5 times a power of ten) giving about `n` ticks
/// over `range`; `integer`: a whole number (iterations), 2.5 not used.
double nice_step(double range, int n, bool integer = false) {
  if (!(range > 0)) return 1.0;
  const double raw = range / n;
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  const double f = raw / mag;
  const double nice = f <= 1 ? 1 : f <= 2 ? 2 : (f <= 2.5 && !integer) ? 2.5 : f <= 5 ? 5 : 10;
  return integer ? std::max(1.0, std::round(nice * mag)) : nice * mag;
}

struct Series {
  std::string name;
  std::vector<double> x, y;
  cv::Scalar colour;
  int thickness = 1;
  bool markers = false;
  bool dashed = false;
};

struct Panel {
  cv::Rect area;  // the plotting rectangle
  double x0, x1, y0, y1;
  int px(double x) const {
    return area.x + static_cast<int>(std::lround((x - x0) / (x1 - x0) * area.width));
  }
  int py(double y) const {
    return area.y + area.height - static_cast<int>(std::lround((y - y0) / (y1 - y0) * area.height));
  }
};

void dashed_line(cv::Mat& img, cv::Point a, cv::Point b, const cv::Scalar& colour, int thickness) {
  const double len = std::hypot(b.x - a.x, b.y - a.y);
  const int dash = 8;
  for (double t = 0; t < len; t += 2 * dash) {
    const double t2 = std::min(len, t + dash);
    const cv::Point p(a.x + static_cast<int>((b.x - a.x) * t / len), a.y + static_cast<int>((b.y - a.y) * t / len));
    const cv::Point q(a.x + static_cast<int>((b.x - a.x) * t2 / len), a.y + static_cast<int>((b.y - a.y) * t2 / len));
    cv::line(img, p, q, colour, thickness, cv::LINE_AA);
  }
}

void draw_panel(cv::Mat& img, const cv::Rect& box, const std::string& title, const std::string& y_label,
                const std::vector<Series>& series, double x0, double x1, double y_min_hint) {
  Panel p;
  p.area = cv::Rect(box.x + 78, box.y + 28, box.width - 78 - 200, box.height - 28 - 38);
  p.x0 = x0;
  p.x1 = x1 > x0 ? x1 : x0 + 1;
  double lo = std::numeric_limits<double>::infinity(), hi = -lo;
  for (const Series& s : series) {
    for (double v : s.y) {
      if (!std::isfinite(v)) continue;
      lo = std::min(lo, v);
      hi = std::max(hi, v);
    }
  }
  if (!std::isfinite(lo)) lo = 0, hi = 1;
  lo = std::min(lo, y_min_hint);
  if (hi <= lo) hi = lo + (lo == 0 ? 1.0 : std::fabs(lo) * 0.1);
  const double step = nice_step(hi - lo, 5);
  p.y0 = std::floor(lo / step) * step;
  p.y1 = std::ceil(hi * 1.02 / step) * step;
  if (p.y1 <= p.y0) p.y1 = p.y0 + step;

  cv::putText(img, title, {box.x + 78, box.y + 19}, kFont, 0.5, kBlack, 1, cv::LINE_AA);
  // Grid and y ticks.
  for (double v = p.y0; v <= p.y1 + step * 1e-9; v += step) {
    const int y = p.py(v);
    cv::line(img, {p.area.x, y}, {p.area.x + p.area.width, y}, kGrid, 1);
    const std::string t = format_tick(std::fabs(v) < step * 1e-9 ? 0.0 : v);
    int base = 0;
    const cv::Size ts = cv::getTextSize(t, kFont, 0.38, 1, &base);
    cv::putText(img, t, {p.area.x - 6 - ts.width, y + ts.height / 2}, kFont, 0.38, kGrey, 1, cv::LINE_AA);
  }
  // x ticks.
  const double xstep = nice_step(p.x1 - p.x0, 8, /*integer=*/true);
  for (double v = std::ceil(p.x0 / xstep) * xstep; v <= p.x1 + xstep * 1e-9; v += xstep) {
    const int x = p.px(v);
    cv::line(img, {x, p.area.y + p.area.height}, {x, p.area.y + p.area.height + 4}, kGrey, 1);
    const std::string t = format_tick(v);
    int base = 0;
    const cv::Size ts = cv::getTextSize(t, kFont, 0.38, 1, &base);
    cv::putText(img, t, {x - ts.width / 2, p.area.y + p.area.height + 8 + ts.height}, kFont, 0.38, kGrey, 1,
                cv::LINE_AA);
  }
  cv::rectangle(img, p.area, kGrey, 1);
  cv::putText(img, "iteration", {p.area.x + p.area.width / 2 - 30, box.y + box.height - 4}, kFont, 0.4, kGrey, 1,
              cv::LINE_AA);
  // Rotated y label: drawn into a strip and rotated.
  {
    int base = 0;
    const cv::Size ts = cv::getTextSize(y_label, kFont, 0.42, 1, &base);
    cv::Mat strip(ts.height + base + 4, ts.width + 4, CV_8UC3, kWhite);
    cv::putText(strip, y_label, {2, ts.height + 1}, kFont, 0.42, kBlack, 1, cv::LINE_AA);
    cv::Mat rotated;
    cv::rotate(strip, rotated, cv::ROTATE_90_COUNTERCLOCKWISE);
    const int x = box.x + 4;
    const int y = p.area.y + std::max(0, (p.area.height - rotated.rows) / 2);
    if (y + rotated.rows <= img.rows && x + rotated.cols <= img.cols) rotated.copyTo(img(cv::Rect(x, y, rotated.cols, rotated.rows)));
  }
  // Series, clipped to the plotting rectangle.
  cv::Mat roi = img(p.area);
  int legend_y = p.area.y + 12;
  for (const Series& s : series) {
    std::vector<cv::Point> pts;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.y[i])) continue;
      pts.emplace_back(p.px(s.x[i]) - p.area.x, p.py(s.y[i]) - p.area.y);
    }
    if (s.dashed && pts.size() >= 2) {
      dashed_line(roi, pts.front(), pts.back(), s.colour, s.thickness);
    } else if (pts.size() >= 2) {
      cv::polylines(roi, pts, false, s.colour, s.thickness, cv::LINE_AA);
    }
    if (s.markers || pts.size() == 1) {
      for (const cv::Point& q : pts) cv::circle(roi, q, 3, s.colour, cv::FILLED, cv::LINE_AA);
    }
    // Legend entry.
    const int lx = p.area.x + p.area.width + 12;
    if (s.dashed) {
      dashed_line(img, {lx, legend_y - 4}, {lx + 24, legend_y - 4}, s.colour, s.thickness);
    } else {
      cv::line(img, {lx, legend_y - 4}, {lx + 24, legend_y - 4}, s.colour, std::max(2, s.thickness), cv::LINE_AA);
    }
    cv::putText(img, s.name, {lx + 30, legend_y}, kFont, 0.4, kBlack, 1, cv::LINE_AA);
    legend_y += 18;
  }
}

}  // namespace

void plot_curves(const MetricsLog& log, const std::string& png_path, const CurvesOptions& options) {
  if (log.train.empty()) throw InputError("no_data", "the metrics file has no train lines");
  const bool with_eval = !log.eval.empty();
  const int panels = with_eval ? 4 : 3;
  const int title_h = 36;
  cv::Mat img(title_h + panels * options.panel_height, options.width, CV_8UC3, kWhite);
  const std::string title =
      options.title.empty() ? std::filesystem::path(png_path).filename().string() : options.title;
  cv::putText(img, title, {12, 24}, kFont, 0.6, kBlack, 1, cv::LINE_AA);

  double x0 = std::numeric_limits<double>::infinity(), x1 = 0;
  for (const TrainPoint& t : log.train) {
    x0 = std::min(x0, static_cast<double>(t.iteration));
    x1 = std::max(x1, static_cast<double>(t.iteration));
  }
  for (const EvalPoint& e : log.eval) x1 = std::max(x1, static_cast<double>(e.iteration));
  x0 = std::min(x0, 0.0);

  std::vector<double> xs;
  for (const TrainPoint& t : log.train) xs.push_back(static_cast<double>(t.iteration));
  auto column = [&](auto get) {
    std::vector<double> v;
    for (const TrainPoint& t : log.train) v.push_back(get(t));
    return v;
  };
  int row = 0;
  auto panel_box = [&] {
    return cv::Rect(0, title_h + (row++) * options.panel_height, options.width, options.panel_height);
  };

  // Loss.
  {
    std::vector<Series> s;
    s.push_back({"loss (total)", xs, column([](const TrainPoint& t) { return t.loss; }), kBlack, 2});
    std::vector<std::string> names;
    for (const TrainPoint& t : log.train) {
      for (const auto& [name, v] : t.losses) {
        if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
      }
    }
    for (size_t k = 0; k < names.size(); ++k) {
      const std::string& name = names[k];
      s.push_back({name, xs, column([&](const TrainPoint& t) {
                     const auto it = t.losses.find(name);
                     return it == t.losses.end() ? std::numeric_limits<double>::quiet_NaN() : it->second;
                   }),
                   kPalette[k % 8], 1});
    }
    draw_panel(img, panel_box(), "training loss (mean over each logging window)", "loss", s, x0, x1, 0.0);
  }
  // Learning rate.
  {
    std::vector<Series> s{{"learning rate", xs, column([](const TrainPoint& t) { return t.lr; }), kPalette[0], 2}};
    draw_panel(img, panel_box(), "learning rate", "lr", s, x0, x1, 0.0);
  }
  // Data-wait share.
  {
    std::vector<Series> s{
        {"data wait", xs, column([](const TrainPoint& t) { return 100.0 * t.data_share; }), kPalette[1], 2},
        {"2% target", {x0, x1}, {2.0, 2.0}, kRed, 1, false, true}};
    std::string t = "share of iteration time waiting for data (%)";
    if (log.data_wait_share >= 0) {
      char buf[64];
      std::snprintf(buf, sizeof buf, "; whole run: %.2f%%", 100.0 * log.data_wait_share);
      t += buf;
    }
    draw_panel(img, panel_box(), t, "data wait %", s, x0, x1, 0.0);
  }
  // Evaluation.
  if (with_eval) {
    std::vector<Series> s;
    std::vector<std::string> names;
    const std::string chosen = log.eval.back().metric;
    if (!chosen.empty()) names.push_back(chosen);
    for (const char* n : {"bbox_AP", "segm_AP"}) {
      if (std::find(names.begin(), names.end(), n) == names.end()) names.push_back(n);
    }
    size_t k = 0;
    for (const std::string& name : names) {
      Series se{name, {}, {}, kPalette[(k + 2) % 8], name == chosen ? 2 : 1, true};
      for (const EvalPoint& e : log.eval) {
        const auto it = e.metrics.find(name);
        if (it == e.metrics.end()) continue;
        se.x.push_back(static_cast<double>(e.iteration));
        se.y.push_back(it->second);
      }
      if (!se.x.empty()) s.push_back(std::move(se));
      ++k;
    }
    draw_panel(img, panel_box(), "validation (COCO AP; -1 = no ground truth in the range)", "AP", s, x0, x1, 0.0);
  }

  std::vector<uchar> png;
  if (!cv::imencode(".png", img, png)) {
    Location where;
    where.file = png_path;
    throw Error("cannot_write", "cannot encode the PNG", where);
  }
  write_file_atomic(png_path, png.data(), png.size());
}

}  // namespace pasteflow::train
