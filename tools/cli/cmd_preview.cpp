// pasteflow preview: a contact sheet of augmented samples.
//
// The samples are those of training epoch 0 under the config (same seed,
// same positions, so exactly the pixels training would see): the first -n
// tickets of the epoch that are augmented, then, if there are fewer, the
// first ones that are not. Each sample becomes one cell of a grid of
// `cols` = --cols (default ceil(sqrt(n))) columns and ceil(n / cols) rows;
// the sheet is exactly (cols * cell) x (rows * cell) pixels. A thumbnail
// keeps its aspect ratio inside the cell less a 4-pixel margin; outlines of
// pasted objects are drawn in magenta, of the original objects in green
// (boxes-only objects as rectangles); a caption names the image id and the
// number of pasted objects. Written as PNG atomically.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cli.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/train/checkpoint.hpp"
#include "pipeline_args.hpp"

namespace pasteflow::cli {

namespace {

struct PreviewArgs {
  PipelineArgs pipe;
  std::string out;
  int n = 16;
  int cols = 0;
  int cell = 256;
};

const cv::Scalar kPasted(255, 0, 255);  // magenta (RGB)
const cv::Scalar kOriginal(0, 255, 0);  // green
const cv::Scalar kBackground(32, 32, 32);
constexpr int kMargin = 4;

/// The sample's pixels as 8-bit RGB.
cv::Mat to_rgb8(const cv::Mat& image) {
  cv::Mat m = image;
  if (m.depth() == CV_16U) m.convertTo(m, CV_8U, 1.0 / 257.0);
  if (m.channels() == 1) cv::cvtColor(m, m, cv::COLOR_GRAY2RGB);
  return m;
}

void draw_instance(cv::Mat& thumb, const stages::Instance& inst, double scale, cv::Point offset) {
  const cv::Scalar colour = inst.pasted ? kPasted : kOriginal;
  const int thickness = inst.pasted ? 2 : 1;
  if (!inst.has_mask || inst.mask.h == 0) {
    const auto& b = inst.bbox;
    const cv::Point p0(offset.x + static_cast<int>(std::lround(b[0] * scale)),
                       offset.y + static_cast<int>(std::lround(b[1] * scale)));
    const cv::Point p1(offset.x + static_cast<int>(std::lround((b[0] + b[2]) * scale)),
                       offset.y + static_cast<int>(std::lround((b[1] + b[3]) * scale)));
    cv::rectangle(thumb, p0, p1, colour, thickness);
    return;
  }
  cv::Mat m(static_cast<int>(inst.mask.h), static_cast<int>(inst.mask.w), CV_8U);
  mask::decode_into(inst.mask, m.data, m.step[0]);
  std::vector<std::vector<cv::Point>> contours;
  cv::findContours(m, contours, cv::RETR_EXTERNAL, cv::CHAIN_APPROX_SIMPLE);
  for (auto& c : contours) {
    for (cv::Point& p : c) {
      p.x = offset.x + static_cast<int>(std::lround((p.x + 0.5) * scale - 0.5));
      p.y = offset.y + static_cast<int>(std::lround((p.y + 0.5) * scale - 0.5));
    }
  }
  cv::polylines(thumb, contours, true, colour, thickness, cv::LINE_AA);
}

/// Renders one sample into `cell_roi`.
void render_cell(cv::Mat cell_roi, const stages::Sample& s) {
  const cv::Mat rgb = to_rgb8(s.image);
  const int inner = cell_roi.cols - 2 * kMargin;
  const double scale = std::min(static_cast<double>(inner) / rgb.cols, static_cast<double>(inner) / rgb.rows);
  const cv::Size size(std::max(1, static_cast<int>(std::lround(rgb.cols * scale))),
                      std::max(1, static_cast<int>(std::lround(rgb.rows * scale))));
  const cv::Point offset((cell_roi.cols - size.width) / 2, (cell_roi.rows - size.height) / 2);
  cv::Mat small;
  cv::resize(rgb, small, size, 0, 0, cv::INTER_AREA);
  small.copyTo(cell_roi(cv::Rect(offset, size)));
  // Originals first, so pasted outlines stay on top.
  for (const auto& inst : s.instances) {
    if (!inst.pasted) draw_instance(cell_roi, inst, scale, offset);
  }
  uint32_t pasted = 0;
  for (const auto& inst : s.instances) {
    if (inst.pasted) {
      draw_instance(cell_roi, inst, scale, offset);
      ++pasted;
    }
  }
  const std::string caption = "id " + std::to_string(s.image_id) + (s.augment ? " +" + std::to_string(pasted) : "");
  cv::putText(cell_roi, caption, cv::Point(kMargin + 2, kMargin + 14), cv::FONT_HERSHEY_SIMPLEX, 0.45,
              cv::Scalar(0, 0, 0), 3, cv::LINE_AA);
  cv::putText(cell_roi, caption, cv::Point(kMargin + 2, kMargin + 14), cv::FONT_HERSHEY_SIMPLEX, 0.45,
              cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
}

void run_preview(const PreviewArgs& a) {
  tune_allocator_for_pipeline();
  pipeline::PipelineConfig cfg = load_pipeline_args(a.pipe);
  cfg.loader.max_epochs = 1;
  const io::CocoDataset source = load_dataset_args(a.pipe, cfg);
  // With slicing on (slice.above > 0) the sheet shows views: the sampler
  // draws them, and each is read by its window (the loader gets these views).
  const auto views = pipeline::make_views(source, cfg);
  const io::CocoDataset& ds = views ? views->dataset : source;
  if (views) spdlog::info("{} images -> {} views (slice.above {})", source.images.size(), ds.images.size(), cfg.slice.above);

  pipeline::PipelineConfig derived = cfg;
  derived.derive();
  const stages::Sampler sampler(derived.sampler, pipeline::image_infos(ds, derived.size));
  const std::vector<stages::SampleTicket> epoch = sampler.epoch(0);
  std::vector<stages::SampleTicket> chosen;
  for (int pass = 0; pass < 2; ++pass) {
    for (const auto& t : epoch) {
      if (chosen.size() >= static_cast<size_t>(a.n)) break;
      if (t.augment == (pass == 0)) chosen.push_back(t);
    }
  }

  const int cols = a.cols > 0 ? a.cols : static_cast<int>(std::ceil(std::sqrt(static_cast<double>(a.n))));
  const int rows = (a.n + cols - 1) / cols;
  cv::Mat sheet(rows * a.cell, cols * a.cell, CV_8UC3, kBackground);

  pipeline::Loader loader(source, views, cfg, pipeline::Output::kSamples,
                          [&chosen](uint64_t e) { return e == 0 ? chosen : std::vector<stages::SampleTicket>{}; });
  int index = 0;
  uint32_t pasted = 0;
  while (auto s = loader.next_sample()) {
    const cv::Rect cell((index % cols) * a.cell, (index / cols) * a.cell, a.cell, a.cell);
    render_cell(sheet(cell), *s);
    pasted += s->paste.placed;
    ++index;
  }
  const SkipReport skipped = loader.skipped();
  for (const auto& [reason, n] : skipped.counts()) {
    spdlog::warn("skipped {} sample(s): {} (first: {})", n, reason, skipped.first_messages().at(reason));
  }

  cv::Mat bgr;
  cv::cvtColor(sheet, bgr, cv::COLOR_RGB2BGR);
  std::vector<uint8_t> png;
  if (!cv::imencode(".png", bgr, png)) throw Error("io_error", "cannot encode the contact sheet");
  train::write_file_atomic(a.out, png.data(), png.size());
  spdlog::info("wrote {} ({}x{} px, {} samples, {} pasted objects: magenta; originals: green)", a.out, sheet.cols,
               sheet.rows, index, pasted);
}

}  // namespace

void add_preview_command(CLI::App& app) {
  auto args = std::make_shared<PreviewArgs>();
  CLI::App* cmd = app.add_subcommand(
      "preview", "Contact sheet (PNG) of augmented training samples: pasted objects outlined in magenta, originals in "
                 "green; a grid of ceil(sqrt(n)) columns of cell x cell thumbnails");
  add_pipeline_options(cmd, args->pipe);
  cmd->add_option("--out,-o", args->out, "PNG file to write")->required();
  cmd->add_option("-n", args->n, "samples on the sheet")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--cols", args->cols, "grid columns (0 = ceil(sqrt(n)))")->check(CLI::Range(0, 1024));
  cmd->add_option("--cell", args->cell, "cell size in pixels")->check(CLI::Range(32, 4096))->capture_default_str();
  cmd->callback([args] { run_preview(*args); });
}

}  // namespace pasteflow::cli
