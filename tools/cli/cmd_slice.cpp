// pasteflow slice: cut the images of a COCO dataset into a SAHI-style grid
// of slices and write them as a new dataset, OUT/images/ (lossless PNG) and
// OUT/annotations.json, through dataset::DatasetWriter (staged, published by
// rename, --overwrite replaces only a previous pasteflow output).
//
// Annotations are cut exactly by slice::slice_dataset (compressed RLE of the
// cropped mask, or clipped polygons with --polygons); each slice's image
// record carries "source_image_id" and "window": [x, y, width, height] in
// the source image's pixels. Slice files are named
// "<source stem>_<x>_<y>_<w>_<h>.png" (the source's sub-directories kept).
//
// Pixels: a TIFF is read by windows (stages::Decoder::decode_window over
// the raster layer: only the tiles touching a window are decoded; any
// size); JPEG and PNG are decoded once by the decode stage (its pixel limit
// applies) and cropped. Images
// are processed in parallel (oneTBB), windows of one TIFF too.
#include <tbb/parallel_for.h>
#include <tbb/task_arena.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/dataset/writer.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/slice/slice.hpp"
#include "pasteflow/stages/decode.hpp"

namespace pasteflow::cli {

namespace fs = std::filesystem;

namespace {

struct SliceArgs {
  std::string annotations;
  std::string images;
  std::string out;
  int64_t size = 1024;
  double overlap = 0.2;
  double min_area_ratio = 0.1;
  double keep_empty = 0.0;
  bool polygons = false;
  bool overwrite = false;
  std::string policy = "strict";
  int64_t tile_cache_mb = 64;
  RunOptions run;
};

bool file_is_tiff(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  uint8_t head[4] = {0, 0, 0, 0};
  in.read(reinterpret_cast<char*>(head), 4);
  return in.gcount() == 4 && raster::is_tiff(head, 4);
}

/// "<stem>_<x>_<y>_<w>_<h>.png", made unique among the reserved names.
std::string reserve_slice_name(dataset::DatasetWriter& writer, std::string_view source_name, const slice::Window& w,
                               const io::CocoDataset& ds, const io::ImageRecord& im) {
  const std::string clean = dataset::sanitize_file_name(source_name);
  if (clean.empty()) {
    Location loc;
    loc.file = ds.source_path;
    loc.record = "image id " + std::to_string(im.id);
    throw InputError("bad_file_name", "file_name '" + std::string(source_name) + "' has no usable path component",
                     loc);
  }
  const std::string stem = fs::path(clean).replace_extension("").generic_string();
  const std::string base = stem + "_" + std::to_string(w.x) + "_" + std::to_string(w.y) + "_" +
                           std::to_string(w.width) + "_" + std::to_string(w.height);
  std::string name = base + ".png";
  for (int k = 1; !writer.try_reserve(name); ++k) name = base + "_" + std::to_string(k) + ".png";
  return name;
}

/// The pixels of one source image, window by window: a TIFF through
/// Decoder::decode_window (only the tiles a window touches are decoded),
/// JPEG and PNG decoded once (Decoder::decode) and cropped.
class WindowSource {
 public:
  WindowSource(const std::string& path, const io::ImageRecord& im, const stages::Decoder& decoder)
      : path_(path), decoder_(decoder) {
    if (file_is_tiff(path)) {
      const std::shared_ptr<raster::TiffFile> tiff = decoder.tiff_pool()->open(path);
      if (tiff->width() != im.width || tiff->height() != im.height) {
        Location loc;
        loc.file = path;
        loc.record = "image id " + std::to_string(im.id);
        throw InputError("size_mismatch",
                         "the TIFF is " + std::to_string(tiff->width()) + "x" + std::to_string(tiff->height()) +
                             " but the annotations say " + std::to_string(im.width) + "x" +
                             std::to_string(im.height),
                         loc);
      }
      tiled_ = true;
    } else {
      whole_ = decoder.decode(path, im.width, im.height);
    }
  }
  bool tiled() const { return tiled_; }

  /// The window's pixels in OpenCV's channel order (BGR), ready to encode.
  cv::Mat read(const slice::Window& w) const {
    cv::Mat px;
    if (tiled_) {
      px = decoder_.decode_window(path_, w);
    } else {
      px = whole_(cv::Rect(static_cast<int>(w.x), static_cast<int>(w.y), static_cast<int>(w.width),
                           static_cast<int>(w.height)));
    }
    if (px.channels() == 3) {
      cv::Mat bgr;
      cv::cvtColor(px, bgr, cv::COLOR_RGB2BGR);
      return bgr;
    }
    return px;
  }

 private:
  std::string path_;
  const stages::Decoder& decoder_;
  bool tiled_ = false;
  cv::Mat whole_;
};

/// `ds` without the views marked in `view_failed` and their annotations (ids
/// renumbered 1, 2, ... as slice_dataset numbers them).
io::CocoDataset drop_views(const io::CocoDataset& ds, const std::vector<slice::View>& views,
                           const std::vector<uint8_t>& view_failed, std::vector<slice::View>& kept_views) {
  io::CocoDataset out = ds;
  out.images.clear();
  out.annotations.clear();
  kept_views.clear();
  for (size_t v = 0; v < ds.images.size(); ++v) {
    if (view_failed[v]) continue;
    io::ImageRecord im = ds.images[v];
    im.id = static_cast<int64_t>(out.images.size()) + 1;
    out.images.push_back(im);
    kept_views.push_back(views[v]);
    for (uint32_t ai : ds.annotations_of(v)) {
      io::AnnotationRecord a = ds.annotations[ai];
      a.id = static_cast<int64_t>(out.annotations.size()) + 1;
      a.image_id = im.id;
      out.annotations.push_back(a);
    }
  }
  out.rebuild_index();
  return out;
}

void run_slice(const SliceArgs& a) {
  const ErrorPolicy policy = parse_error_policy(a.policy);
  slice::SliceConfig config;
  config.size = a.size;
  config.overlap = a.overlap;
  config.min_area_ratio = a.min_area_ratio;
  config.keep_empty = a.keep_empty;
  config.polygons = a.polygons;
  slice::validate(config);

  io::LoadOptions load;
  load.policy = policy;
  load.max_pixels = 0;  // huge images are what slicing is for; pixels are read by windows
  load.keep_extra_fields = true;
  load.image_root = a.images;
  const io::CocoDataset source = io::load_coco(a.annotations, load);
  slice::SlicedDataset sliced = slice::slice_dataset(source, config, a.run.seed, /*slice_all=*/true, policy);
  io::CocoDataset& ds = sliced.dataset;
  SkipReport skipped = source.skipped;
  skipped.merge(ds.skipped);

  const StopOnSignal stop_on_signal;
  dataset::WriterOptions options;
  options.overwrite = a.overwrite;
  options.command = "slice";
  options.inputs = {a.annotations, a.images};
  for (const auto& im : source.images) options.inputs.push_back(source.image_path(im));
  dataset::DatasetWriter writer(a.out, options);
  for (const std::string& dir : writer.opened().removed_staging) {
    spdlog::info("removed {}, left by an interrupted pasteflow run", dir);
  }
  for (const std::string& dir : writer.opened().live_staging) {
    spdlog::warn("{} belongs to a pasteflow run that is still running; left alone", dir);
  }
  if (writer.opened().replaces_previous) {
    spdlog::info("replacing the {}output of a previous run in {} when this one completes",
                 writer.opened().previous_incomplete ? "half-published " : "", a.out);
  }

  // Output names, reserved in view order (deterministic), and the views of
  // each source image (contiguous: slice_dataset emits them image by image).
  std::vector<std::string> names(ds.images.size());
  std::vector<std::pair<size_t, size_t>> ranges(source.images.size(), {0, 0});
  for (size_t v = 0; v < ds.images.size(); ++v) {
    const slice::View& view = sliced.views[v];
    const io::ImageRecord& sim = source.images[view.source_image_index];
    names[v] = reserve_slice_name(writer, source.file_name(sim), view.window, source, sim);
    ds.images[v].file_name = ds.add_string(names[v]);
    auto& r = ranges[view.source_image_index];
    if (r.second == 0) r.first = v;
    r.second = v + 1;
  }
  std::vector<size_t> todo;  // source images with at least one view
  for (size_t i = 0; i < source.images.size(); ++i) {
    if (ranges[i].second > ranges[i].first) todo.push_back(i);
  }

  const int threads = resolve_threads(a.run.threads);
  spdlog::info("{} images -> {} slices of {} px (overlap {}), {} annotations; {} threads", source.images.size(),
               ds.images.size(), a.size, a.overlap, ds.annotations.size(), threads);

  stages::DecodeConfig decode_cfg;
  decode_cfg.color = "keep";
  decode_cfg.keep_16bit = true;
  // Windows go out row by row, so the tiles of about two rows of windows
  // are all the cache needs to keep (neighbours share tiles).
  raster::RasterConfig raster_cfg;
  raster_cfg.tile_cache_mb = a.tile_cache_mb;
  raster::validate(raster_cfg);
  const auto pool = std::make_shared<raster::TiffPool>(raster_cfg);
  const stages::Decoder decoder(decode_cfg, pool);
  std::mutex mutex;  // the writer, the progress bar, the failure list
  // Under --on-error skip: the slices left out, because their source image
  // cannot be opened (all its slices) or a tile or strip under the slice
  // cannot be decoded (that slice alone; the image's other slices stay).
  std::vector<uint8_t> view_failed(ds.images.size(), 0);
  Progress progress("slice", ds.images.size());
  std::atomic<uint64_t> done{0};
  const std::vector<int> png_params = {cv::IMWRITE_PNG_COMPRESSION, 3};

  auto write_view = [&](const WindowSource& px, size_t v) {
    if (stop_flag()->load()) return;
    cv::Mat m;
    try {
      m = px.read(sliced.views[v].window);
    } catch (const InputError& e) {
      if (policy == ErrorPolicy::kStrict) throw;
      std::lock_guard<std::mutex> lock(mutex);
      skipped.add(e);
      view_failed[v] = 1;
      progress.update(++done);
      return;
    }
    std::vector<uint8_t> bytes;
    if (!cv::imencode(".png", m, bytes, png_params)) {
      throw Error("io_error", "PNG encoding of " + names[v] + " failed");
    }
    std::lock_guard<std::mutex> lock(mutex);
    writer.write_image(names[v], bytes.data(), bytes.size());
    progress.update(++done);
  };

  tbb::task_arena arena(threads);
  arena.execute([&] {
    tbb::parallel_for(size_t(0), todo.size(), [&](size_t t) {
      if (stop_flag()->load()) return;
      const size_t i = todo[t];
      const io::ImageRecord& sim = source.images[i];
      std::unique_ptr<WindowSource> px;
      try {
        px = std::make_unique<WindowSource>(source.image_path(sim), sim, decoder);
      } catch (const InputError& e) {
        if (policy == ErrorPolicy::kStrict) throw;
        std::lock_guard<std::mutex> lock(mutex);
        skipped.add(e);
        for (size_t v = ranges[i].first; v < ranges[i].second; ++v) view_failed[v] = 1;
        done += ranges[i].second - ranges[i].first;
        progress.update(done);
        return;
      }
      const auto [first, last] = ranges[i];
      if (px->tiled()) {
        // Row of windows by row of windows (views are in grid order), the
        // windows of a row in parallel: the threads share tile rows, so the
        // cache holds what they need.
        for (size_t row = first; row < last;) {
          size_t end = row;
          while (end < last && sliced.views[end].window.y == sliced.views[row].window.y) ++end;
          tbb::parallel_for(row, end, [&](size_t v) { write_view(*px, v); });
          row = end;
        }
      } else {
        for (size_t v = first; v < last; ++v) write_view(*px, v);
      }
    });
  });
  progress.finish();
  if (stop_flag()->load()) {
    writer.abort();
    throw_if_interrupted("slice interrupted after " + std::to_string(done.load()) + " of " +
                         std::to_string(ds.images.size()) + " slices; nothing was written to " + a.out);
  }

  std::vector<slice::View> views = sliced.views;
  const io::CocoDataset* result = &ds;
  io::CocoDataset kept;
  bool any_failed = false;
  for (uint8_t f : view_failed) any_failed |= f != 0;
  if (any_failed) {
    kept = drop_views(ds, sliced.views, view_failed, views);
    result = &kept;
  }
  const uint64_t published = writer.commit(*result);

  spdlog::info("wrote {} slices ({} PNG files) and {} annotations to {}; {} empty slices left out, {} cut objects "
               "under min_area_ratio {}",
               result->images.size(), published, result->annotations.size(), a.out, sliced.empty_dropped,
               sliced.objects_dropped, a.min_area_ratio);
  const raster::TileCache::Stats cache = pool->cache()->stats();
  if (cache.hits + cache.misses > 0) {
    spdlog::info("TIFF tiles: {} decoded, {} reused from the cache ({:.1f}% hits, peak {} MiB of {} MiB)", cache.misses,
                 cache.hits, 100.0 * cache.hit_rate(), cache.peak_bytes >> 20, cache.max_bytes >> 20);
  }
  for (const auto& [reason, n] : skipped.counts()) {
    spdlog::warn("skipped {} record(s): {} (first: {})", n, reason, skipped.first_messages().at(reason));
  }
  if (a.run.json) {
    JsonWriter w(2);
    w.begin_object();
    w.field("out", fs::path(a.out).string());
    w.field("images", static_cast<uint64_t>(source.images.size()));
    w.field("slices", static_cast<uint64_t>(result->images.size()));
    w.field("annotations", static_cast<uint64_t>(result->annotations.size()));
    w.field("empty_dropped", sliced.empty_dropped);
    w.field("objects_dropped", sliced.objects_dropped);
    write_skip_counts(w, skipped);
    w.end_object();
    print_stdout(w.str());
  }
}

}  // namespace

void add_slice_command(CLI::App& app) {
  auto args = std::make_shared<SliceArgs>();
  CLI::App* cmd = app.add_subcommand(
      "slice",
      "Cut every image of a COCO dataset into a SAHI-style grid of slices (the last row and column shifted back "
      "inside) and write OUT/images/ (lossless PNG, <stem>_<x>_<y>_<w>_<h>.png) and OUT/annotations.json: "
      "annotations cut exactly to each slice (compressed RLE, or clipped polygons with --polygons), each slice "
      "record with source_image_id and window [x, y, width, height]. TIFFs of any size are read by windows. The "
      "output is staged in OUT and appears only when the run completes");
  cmd->add_option("--annotations,-a", args->annotations, "COCO instances JSON")->required()->check(CLI::ExistingFile);
  cmd->add_option("--images,-i", args->images, "directory the images' file names are relative to")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out,-o", args->out, "output directory (images/ and annotations.json)")->required();
  cmd->add_option("--size", args->size, "slice width and height in px")
      ->check(CLI::Range(int64_t(16), int64_t(1) << 20))
      ->capture_default_str();
  cmd->add_option("--overlap", args->overlap, "overlap ratio of neighbouring slices (SAHI: int(overlap * size) px)")
      ->check(CLI::Range(0.0, 0.95))
      ->capture_default_str();
  cmd->add_option("--min-area-ratio", args->min_area_ratio,
                  "keep a cut object when at least this share of its mask area is inside the slice")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_option("--keep-empty", args->keep_empty, "share of slices without objects kept (seeded by --seed)")
      ->check(CLI::Range(0.0, 1.0))
      ->capture_default_str();
  cmd->add_flag("--polygons", args->polygons,
                "polygon annotations keep clipped polygons (else compressed RLE of the cropped mask)");
  cmd->add_flag("--overwrite", args->overwrite,
                "replace the output a previous pasteflow run published in OUT (never files pasteflow did not write)");
  cmd->add_option("--on-error", args->policy,
                  "bad records, unreadable images and undecodable tiles: 'strict' fails, 'skip' leaves out and "
                  "counts the record, the image's slices, or the slices over the tile")
      ->check(CLI::IsMember({"strict", "skip"}))
      ->capture_default_str();
  cmd->add_option("--tile-cache-mb", args->tile_cache_mb,
                  "MiB of decoded TIFF tiles kept (shared by the threads; neighbouring slices share tiles)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 20))
      ->capture_default_str();
  add_run_options(cmd, args->run);
  add_json_option(cmd, args->run);
  cmd->callback([args] { run_slice(*args); });
}

}  // namespace pasteflow::cli
