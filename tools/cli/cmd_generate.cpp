// pasteflow generate ...: synthetic data sets.
#include <memory>
#include <string>

#include "cli.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/io/bench.hpp"
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
}

}  // namespace pasteflow::cli
