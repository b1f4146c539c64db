// pasteflow preview: a contact sheet of augmented samples.
//
// The samples are those of training epoch 0 under the config (same seed,
// same positions, so exactly the pixels training would see): the first -n
// tickets of the epoch that are augmented, then, if there are fewer, the
// first ones that are not. Each sample becomes one cell of a grid of
// `cols` = --cols (default ceil(sqrt(n))) columns and ceil(n / cols) rows;
// the sheet is exactly (cols * cell) x (rows * cell) pixels. A thumbnail
// keeps its aspect ratio inside the cell less a 4-pixel margin (stages/draw.hpp
// render_preview_cell); each object keeps its own pixels inside a 1-pixel
// outline drawn just outside it, magenta for pasted objects, green for the
// original ones (boxes-only objects as rectangles); --fill also tints them.
// A caption names the image id and the number of pasted objects. Written as
// PNG atomically.
#include <algorithm>
#include <cmath>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cli.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/stages/draw.hpp"
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
  bool fill = false;
};

const cv::Scalar kBackground(32, 32, 32);

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
    stages::PreviewStyle style;
    style.fill = a.fill;
    stages::render_preview_cell(sheet(cell), *s, style);
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
      "preview", "Contact sheet (PNG) of augmented training samples: each object keeps its own pixels inside a "
                 "1-px outline (pasted magenta, originals green); a grid of ceil(sqrt(n)) columns of cell x cell "
                 "thumbnails. Small objects stay visible at a larger --cell (e.g. 512: a 640-px image is then "
                 "shown at 0.79x)");
  add_pipeline_options(cmd, args->pipe);
  cmd->add_option("--out,-o", args->out, "PNG file to write")->required();
  cmd->add_option("-n", args->n, "samples on the sheet")->check(CLI::Range(1, 1024))->capture_default_str();
  cmd->add_option("--cols", args->cols, "grid columns (0 = ceil(sqrt(n)))")->check(CLI::Range(0, 1024));
  cmd->add_option("--cell", args->cell, "cell size in pixels")->check(CLI::Range(32, 4096))->capture_default_str();
  cmd->add_flag("--fill", args->fill, "also tint each object (semi-transparent) under its outline: the filled view");
  cmd->callback([args] { run_preview(*args); });
}

}  // namespace pasteflow::cli
