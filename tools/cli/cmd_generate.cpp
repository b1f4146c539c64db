// pasteflow generate ...: synthetic data sets.
#include <chrono>
#include <filesystem>
#include <memory>
#include <string>

#include "cli.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/io/bench.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/raster/tiff_writer.hpp"
#include "pasteflow/synth/mosaic.hpp"
#include "pasteflow/synth/shapes.hpp"

namespace pasteflow::cli {

namespace {

/// "A..B" or "N" (= N..N) into [lo, hi]; throws ConfigError.
void parse_count_range(const std::string& text, int& lo, int& hi) {
  auto parse_int = [&text](const std::string& part) {
    size_t used = 0;
    int v = -1;
    try {
      v = std::stoi(part, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (part.empty() || used != part.size() || v < 0) {
      Location loc;
      loc.key = "--objects";
      throw ConfigError("bad_value", "expected N or MIN..MAX (non-negative integers), got '" + text + "'", loc);
    }
    return v;
  };
  const size_t dots = text.find("..");
  if (dots == std::string::npos) {
    lo = hi = parse_int(text);
  } else {
    lo = parse_int(text.substr(0, dots));
    hi = parse_int(text.substr(dots + 2));
  }
}

void add_generate_shapes_command(CLI::App& gen) {
  struct Args {
    synth::DatasetOptions dataset;
    std::string backgrounds, out, objects = "8..30", format = "jpg";
    RunOptions run;
  };
  auto a = std::make_shared<Args>();
  synth::ShapesOptions& s = a->dataset.shapes;
  CLI::App* cmd = gen.add_subcommand(
      "shapes",
      "Synthetic small-object benchmark: textured shapes (circle, triangle, square, star, ring, cross) scattered "
      "over random crops of real background photos, with exact masks (polygons; compressed RLE for rings). Writes "
      "OUT/{train,val}/images/*.jpg|png and OUT/{train,val}/annotations.json");
  cmd->add_option("--backgrounds", a->backgrounds, "directory of background photos (*.jpg, *.png, ...)")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out", a->out, "output directory")->required();
  cmd->add_option("--train", a->dataset.train_images, "training images")->capture_default_str();
  cmd->add_option("--val", a->dataset.val_images, "validation images")->capture_default_str();
  cmd->add_option("--image-size", s.image_size, "side of the square output images, px")->capture_default_str();
  cmd->add_option("--min-size", s.min_size, "smallest object extent (max of mask box w, h), px")
      ->capture_default_str();
  cmd->add_option("--max-size", s.max_size, "largest object extent, px")->capture_default_str();
  cmd->add_option("--objects", a->objects, "objects per image, N or MIN..MAX (fewer when the image is full)")
      ->capture_default_str();
  cmd->add_option("--gap", s.gap, "free pixels kept between masks")->capture_default_str();
  cmd->add_option("--max-overlap", s.max_overlap,
                  "fraction of an object a later one may cover (0 = disjoint masks; covered objects become RLE)")
      ->capture_default_str();
  cmd->add_option("--format", a->format, "image format")->check(CLI::IsMember({"jpg", "png"}))->capture_default_str();
  cmd->add_option("--jpeg-quality", a->dataset.jpeg_quality, "JPEG quality")->capture_default_str();
  add_run_options(cmd, a->run);
  cmd->callback([a] {
    synth::DatasetOptions d = a->dataset;  // a copy: the progress callback below refers to a local
    parse_count_range(a->objects, d.shapes.min_objects, d.shapes.max_objects);
    d.shapes.seed = a->run.seed;
    d.threads = resolve_threads(a->run.threads);
    d.format = a->format == "png" ? synth::ImageFormat::kPng : synth::ImageFormat::kJpeg;
    d.shapes.validate();
    const synth::Backgrounds backgrounds = synth::Backgrounds::from_directory(a->backgrounds);
    Progress progress("shapes", d.train_images + d.val_images);
    d.progress = [&progress](size_t done, size_t) { progress.update(done); };
    const synth::DatasetSummary sum = synth::generate_dataset(backgrounds, a->out, d);
    progress.finish();
    for (const synth::SplitSummary* sp : {&sum.train, &sum.val}) {
      if (sp->images == 0) continue;
      spdlog::info("wrote {} ({} images in {}, {} annotations, {} as RLE)", sp->annotations_path, sp->images,
                   sp->images_dir, sp->annotations, sp->rle_annotations);
    }
  });
}

void add_generate_mosaic_command(CLI::App& gen) {
  struct Args {
    std::string annotations, images, out, compression = "jpeg";
    synth::MosaicConfig mosaic;
    bool overwrite = false;
    RunOptions run;
  };
  auto a = std::make_shared<Args>();
  CLI::App* cmd = gen.add_subcommand(
      "mosaic",
      "A huge annotated test image from real pixels: the images of a COCO dataset tiled (shelf packing, seeded "
      "order, cycled) into one tiled pyramidal BigTIFF of WIDTH x HEIGHT, with every annotation moved into "
      "full-image coordinates. Writes OUT/images/mosaic.tif and OUT/annotations.json (with a top-level "
      "\"placements\" list: source image id, x, y, width, height)");
  cmd->add_option("--annotations", a->annotations, "COCO instances file of the source images")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--images", a->images, "directory the file names resolve against")
      ->required()
      ->check(CLI::ExistingDirectory);
  cmd->add_option("--out", a->out, "output directory")->required();
  cmd->add_option("--width", a->mosaic.width, "mosaic width, px")->required();
  cmd->add_option("--height", a->mosaic.height, "mosaic height, px")->required();
  cmd->add_option("--compression", a->compression, "TIFF tile compression")
      ->check(CLI::IsMember({"jpeg", "deflate", "none"}))
      ->capture_default_str();
  cmd->add_option("--quality", a->mosaic.quality, "JPEG quality (1..100)")->capture_default_str();
  cmd->add_option("--tile", a->mosaic.tile, "TIFF tile size, px (multiple of 16)")->capture_default_str();
  cmd->add_option("--gap", a->mosaic.gap, "px between images and around the border")->capture_default_str();
  cmd->add_option("--background", a->mosaic.background, "grey level of the background (0..255)")
      ->capture_default_str();
  cmd->add_option("--cache-mb", a->mosaic.cache_mb, "MiB of decoded source images kept")->capture_default_str();
  cmd->add_option("--seed", a->run.seed, "random seed (same seed, same mosaic)")->capture_default_str();
  cmd->add_flag("--overwrite", a->overwrite, "replace the output of a previous pasteflow run in OUT");
  add_json_option(cmd, a->run);
  cmd->callback([a] {
    synth::MosaicConfig cfg = a->mosaic;
    cfg.seed = a->run.seed;
    cfg.compression = raster::parse_tiff_compression(a->compression, "--compression");
    cfg.validate();
    io::LoadOptions lo;
    lo.image_root = a->images;
    lo.max_pixels = 0;  // source images are decoded one at a time; the decoder checks their size
    const io::CocoDataset source = io::load_coco(a->annotations, lo);
    for (const auto& [reason, n] : source.skipped.counts()) spdlog::warn("skipped {} record(s): {}", n, reason);

    const StopOnSignal stop_on_signal;
    synth::MosaicOutputOptions oo;
    oo.overwrite = a->overwrite;
    oo.inputs = {a->annotations, a->images};
    std::unique_ptr<Progress> bar;
    oo.progress = [&bar](uint64_t done, uint64_t total) {
      if (!bar) bar = std::make_unique<Progress>("mosaic bands", total);
      bar->update(done);
      return !stop_flag()->load();
    };
    spdlog::info("{} images, {} annotations -> {} x {} mosaic ({}, tile {}, gap {})", source.images.size(),
                 source.annotations.size(), cfg.width, cfg.height, a->compression, cfg.tile, cfg.gap);
    const auto t0 = std::chrono::steady_clock::now();
    const synth::MosaicSummary sum = synth::generate_mosaic(source, a->out, cfg, oo);
    const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (bar) bar->finish();
    if (!sum.pixels.completed) {
      throw_if_interrupted("generate mosaic interrupted after " + std::to_string(sum.pixels.bands) +
                           " bands; nothing was written to " + a->out);
      throw Error("interrupted", "generate mosaic stopped early; nothing was written to " + a->out);
    }
    const double mpix = double(cfg.width) * double(cfg.height) / 1e6;
    spdlog::info("wrote {} ({} levels, {:.1f} MB) and {} ({} placements, {} annotations) in {:.1f} s "
                 "({:.1f} Mpx/s of level 0)",
                 sum.image_path, sum.pixels.levels, double(sum.file_bytes) / 1e6, sum.annotations_path,
                 sum.placements, sum.annotations, seconds, mpix / seconds);
    if (sum.skipped_images > 0) {
      spdlog::warn("{} source image(s) larger than the mosaic were left out", sum.skipped_images);
    }
    if (a->run.json) {
      JsonWriter w(2);
      w.begin_object();
      w.field("image", sum.image_path).field("annotations", sum.annotations_path);
      w.field("width", cfg.width).field("height", cfg.height).field("megapixels", mpix);
      w.field("compression", a->compression).field("tile", cfg.tile).field("levels", sum.pixels.levels);
      w.field("placements", sum.placements).field("annotation_count", sum.annotations);
      w.field("skipped_images", sum.skipped_images).field("file_bytes", sum.file_bytes);
      w.field("seconds", seconds).field("megapixels_per_s", mpix / seconds);
      w.field("sources_decoded", sum.pixels.decoded).field("cache_peak_mb", double(sum.pixels.cache_peak_bytes) / 1048576.0);
      w.end_object();
      print_stdout(w.str());
    }
  });
}

}  // namespace

void add_generate_command(CLI::App& app) {
  CLI::App* gen = app.add_subcommand("generate", "Generate synthetic data sets");
  gen->require_subcommand(1);

  auto opts = std::make_shared<io::SyntheticCocoOptions>();
  auto out = std::make_shared<std::string>();
  CLI::App* coco = gen->add_subcommand(
      "coco", "A COCO-scale synthetic instances file (default: 118,287 images, 860,001 annotations, polygons of "
              "8-40 vertices, about 490 MB) with the real file's field layout, for the parse benchmark");
  coco->add_option("out", *out, "output JSON file")->required();
  coco->add_option("--images", opts->images, "number of images")->capture_default_str();
  coco->add_option("--annotations", opts->annotations, "number of annotations")->capture_default_str();
  coco->add_option("--min-vertices", opts->min_vertices, "fewest polygon vertices")->capture_default_str();
  coco->add_option("--max-vertices", opts->max_vertices, "most polygon vertices")->capture_default_str();
  coco->add_option("--seed", opts->seed, "random seed (same seed, same file)")->capture_default_str();
  coco->add_option("--threads", [](const std::vector<std::string>&) { return true; },
                   "accepted for uniformity; generation is a single sequential stream");
  coco->callback([opts, out] {
    io::generate_synthetic_coco(*out, *opts);
    spdlog::info("wrote {}", *out);
  });

  add_generate_shapes_command(*gen);
  add_generate_mosaic_command(*gen);
}

}  // namespace pasteflow::cli
