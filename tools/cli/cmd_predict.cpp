// pasteflow predict: a trained Mask R-CNN on images or a COCO dataset ->
// COCO results (results.json) and overlay PNGs (train/predict.hpp).
#include <filesystem>
#if defined(__GLIBC__)
#include <malloc.h>
#endif
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/train/predict.hpp"

namespace pasteflow::cli {

namespace {

struct PredictArgs {
  train::PredictOptions o;
  std::vector<std::string> positional;  ///< images and key=value overrides
  bool no_overlays = false;
  RunOptions run;
};

void run_predict(PredictArgs& a) {
  train::PredictOptions o = a.o;
  for (const std::string& p : a.positional) {
    // key=value overrides the config; anything else is an image.
    const size_t eq = p.find('=');
    if (eq != std::string::npos && eq > 0 && p.find('/') > eq && !std::filesystem::exists(p)) {
      o.overrides.push_back(p);
    } else {
      o.images.push_back(p);
    }
  }
  if (!o.annotations.empty() && !o.images.empty()) {
    throw CLI::ValidationError("images", "give image files or --annotations/--images, not both");
  }
  if (o.annotations.empty() && o.images.empty()) {
    throw CLI::ValidationError("images", "give image files or --annotations with --images");
  }
  if (!o.annotations.empty() && o.image_dir.empty()) {
    throw CLI::ValidationError("--images", "is required with --annotations");
  }
  o.overlays = !a.no_overlays;
  o.threads = a.run.threads;
#if defined(__GLIBC__)
  // Sliced prediction frees and allocates 256 KiB TIFF tiles and multi-MiB
  // tensors window after window. glibc's dynamic mmap threshold then climbs,
  // later blocks come from fragmented heap arenas that never shrink, and the
  // resident size grows with the image (the 99 windows of cog_cmap.tif:
  // 1.04 GB peak). A fixed threshold (glibc's default value) keeps big
  // blocks mmap'ed and returned: 0.44 GB peak, about 10% slower.
  mallopt(M_MMAP_THRESHOLD, 128 * 1024);
#endif

  const train::PredictReport r = train::predict(o, [](const std::string& s) { spdlog::info("{}", s); });
  if (!r.skipped.empty()) {
    for (const auto& [reason, n] : r.skipped.counts()) {
      spdlog::warn("skipped {} image(s): {} (first: {})", n, reason, r.skipped.first_messages().at(reason));
    }
  }
  if (r.dropped > 0) spdlog::warn("{} detections of categories absent from {} dropped", r.dropped, o.annotations);
  spdlog::info("{} images, {} detections (score >= {}) in {:.1f}s ({:.1f}s inference, {:.1f}s overlays)", r.images,
               r.detections, o.score_threshold, r.wall_s, r.inference_s, r.overlay_s);
  if (r.sliced_images > 0) {
    spdlog::info("{} image(s) sliced (above {} px): {} slices, {} detections -> {} after {} ({} suppressed, {} merged)",
                 r.sliced_images, r.slice_above, r.slices, r.merge_input,
                 r.merge_input - r.merge_suppressed - r.merge_merged - r.merge_rejected, o.merge, r.merge_suppressed,
                 r.merge_merged);
  }
  if (r.masks_omitted > 0) {
    spdlog::warn("{} result(s) of images above 2^32 pixels written without segmentation (no COCO RLE holds them)",
                 r.masks_omitted);
  }
  spdlog::info("results {}{}", r.results_path, r.overlay_dir.empty() ? "" : ", overlays in " + r.overlay_dir);
  if (a.run.json) {
    JsonWriter j(2);
    j.begin_object();
    j.field("results", r.results_path);
    j.field("overlays", r.overlay_dir);
    j.field("config", r.config_source);
    j.field("categories", r.categories_source);
    j.field("images", static_cast<uint64_t>(r.images));
    j.field("detections", static_cast<uint64_t>(r.detections));
    j.field("below_threshold", static_cast<uint64_t>(r.below_threshold));
    j.field("dropped", static_cast<uint64_t>(r.dropped));
    j.field("skipped", r.skipped.total());
    j.field("slice_above", r.slice_above);
    j.field("sliced_images", static_cast<uint64_t>(r.sliced_images));
    j.field("slices", static_cast<uint64_t>(r.slices));
    j.key("merge").begin_object();
    j.field("method", o.merge);
    j.field("metric", o.merge_metric.empty() ? (o.merge == "nms" ? "iou" : "ios") : o.merge_metric);
    j.field("threshold", o.merge_threshold);
    j.field("input", r.merge_input);
    j.field("suppressed", r.merge_suppressed);
    j.field("merged", r.merge_merged);
    j.field("rejected", r.merge_rejected);
    j.end_object();
    j.field("masks_omitted", static_cast<uint64_t>(r.masks_omitted));
    j.field("inference_s", r.inference_s);
    j.field("overlay_s", r.overlay_s);
    j.field("wall_s", r.wall_s);
    j.end_object();
    print_stdout(j.str());
  }
}

}  // namespace

void add_predict_command(CLI::App& app) {
  auto args = std::make_shared<PredictArgs>();
  train::PredictOptions& o = args->o;
  CLI::App* cmd = app.add_subcommand(
      "predict",
      "Run a trained Mask R-CNN on image files (image_id = position in the list, from 1) or on a COCO dataset "
      "(--annotations/--images): OUT/results.json (COCO results, dataset category ids, compressed RLE masks) and "
      "OUT/overlays/<image_id>_<name>.png");
  cmd->add_option("--config,-c", o.config,
                  "training config (configs/train/) or model config (configs/models/); optional with a trainer "
                  "checkpoint, which embeds its config")
      ->check(CLI::ExistingFile);
  cmd->add_option("--weights,-w", o.weights, "weights file (best.pt, model/weights.hpp) or trainer checkpoint")
      ->required();
  cmd->add_option("--out,-o", o.out_dir, "output directory")->required();
  cmd->add_option("positional", args->positional, "image files, and config overrides key=value");
  cmd->add_option("--annotations", o.annotations, "predict the images of this COCO instances file")
      ->check(CLI::ExistingFile);
  cmd->add_option("--images", o.image_dir, "directory the --annotations file names resolve against");
  cmd->add_option("--categories", o.categories,
                  "COCO file whose categories give the label -> category id map (default: --annotations, else the "
                  "training config's data.train_annotations)")
      ->check(CLI::ExistingFile);
  cmd->add_option("--score-threshold", o.score_threshold, "write and draw detections with score >= this")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--mask-threshold", o.mask_threshold, "mask probability above which a pixel is the object")
      ->check(CLI::Range(0.0, 1.0));
  cmd->add_option("--batch-size", o.batch_size, "images per batch (0: the config's eval.batch_size / loader's)")
      ->check(CLI::Range(0, 4096));
  cmd->add_option("--device", o.device, "cpu, cuda or cuda:N (default: the config's)");
  cmd->add_option("--amp", o.amp, "mixed-precision inference: off, bf16 (CPU or CUDA), fp16 (CUDA) "
                                   "(default: the training config's solver.amp)")
      ->check(CLI::IsMember({"off", "bf16", "fp16"}));
  cmd->add_option("--on-error", o.on_error, "strict: stop at a bad image; skip: leave it out and count it")
      ->check(CLI::IsMember({"strict", "skip"}));
  cmd->add_flag("--no-overlays", args->no_overlays, "write results.json only");
  cmd->add_option("--overlay-style", o.overlay_style,
                  "how overlays draw detections: outline (a 1-px outline just outside each mask, the object's own "
                  "pixels visible; labels only where they fit), fill (tinted masks, outlines, 1-px boxes, labels "
                  "where they fit), masks-only (tinted masks and outlines; no boxes, no labels)")
      ->check(CLI::IsMember({"outline", "fill", "masks-only"}))
      ->capture_default_str();
  cmd->add_option("--slice-above", o.slice_above,
                  "predict images wider or taller than this many px slice by slice (0 = never; default: the "
                  "config's pipeline.slice.above)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40));
  cmd->add_option("--slice-size", o.slice_size,
                  "slice width and height in px (default: the config's pipeline.slice.size, 1024)")
      ->check(CLI::Range(int64_t(16), int64_t(1) << 20));
  cmd->add_option("--slice-overlap", o.slice_overlap,
                  "overlap ratio of neighbouring slices, SAHI grid (default: the config's pipeline.slice.overlap, 0.2)")
      ->check(CLI::Range(0.0, 0.95));
  cmd->add_option("--merge", o.merge,
                  "merging of detections across slice overlaps: nms (class-wise) or greedy_nmm (SAHI: union of "
                  "matching boxes and masks)")
      ->check(CLI::IsMember({"nms", "greedy_nmm"}))
      ->capture_default_str();
  cmd->add_option("--merge-threshold", o.merge_threshold, "box overlap at which two detections are one object")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--merge-metric", o.merge_metric,
                  "box overlap: iou, or ios (intersection over the smaller box); default iou for nms, ios for "
                  "greedy_nmm (SAHI)")
      ->check(CLI::IsMember({"iou", "ios"}));
  cmd->add_option("--overlay-max-side", o.overlay_max_side, "longer side of a sliced image's down-scaled overlay")
      ->check(CLI::Range(16, 1 << 16))
      ->capture_default_str();
  cmd->add_option("--threads", args->run.threads, "LibTorch and loader threads (0: the config's)")
      ->check(CLI::Range(0, 1024));
  add_json_option(cmd, args->run);
  cmd->callback([args] { run_predict(*args); });
}

}  // namespace pasteflow::cli
