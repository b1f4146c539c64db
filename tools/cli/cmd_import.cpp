// pasteflow import masks: instance masks of microscopy tools -> COCO.
#include <oneapi/tbb/parallel_for.h>
#include <oneapi/tbb/task_arena.h>

#include <atomic>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <system_error>
#include <vector>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/importers/masks.hpp"
#include "pasteflow/io/coco.hpp"

namespace fs = std::filesystem;

namespace pasteflow::cli {

namespace {

struct ImportArgs {
  std::string dir;
  std::string out;
  std::string layout = "auto";
  std::string category = "nucleus";
  std::string split;
  std::string stratify_by = "none";
  std::string overlap = "keep";
  std::string value_map;
  std::string policy = "fail";
  int64_t max_pixels = 178956970;
  bool overwrite = false;
  RunOptions run;
};

/// "val=0.15" -> 0.15.
double parse_split(const std::string& text) {
  Location where;
  where.key = "split";
  const std::string prefix = "val=";
  if (text.compare(0, prefix.size(), prefix) != 0) {
    throw ConfigError("bad_value", "--split takes val=FRACTION (e.g. val=0.15), got '" + text + "'", where);
  }
  const std::string number = text.substr(prefix.size());
  size_t used = 0;
  double f = -1.0;
  try {
    f = std::stod(number, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != number.size() || !(f > 0.0 && f < 1.0)) {
    throw ConfigError("bad_value", "--split val=FRACTION needs 0 < FRACTION < 1, got '" + number + "'", where);
  }
  return f;
}

/// OUT.json -> OUT_<part>.json (the extension kept; appended when none).
std::string sibling(const std::string& out, const std::string& part) {
  const fs::path p(out);
  const std::string ext = p.extension().string();
  return (p.parent_path() / (p.stem().string() + "_" + part + (ext.empty() ? ".json" : ext))).string();
}

bool same_file(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  const bool same = fs::equivalent(a, b, ec);
  return !ec && same;
}

/// The outputs may not exist unless --overwrite, and never be an input or
/// a directory.
void check_outputs(const std::vector<std::string>& outs, const std::vector<std::string>& inputs, bool overwrite) {
  for (const std::string& out : outs) {
    std::error_code ec;
    const fs::file_status st = fs::status(out, ec);
    if (!fs::exists(st)) {
      if (!fs::is_directory(fs::path(out).parent_path().empty() ? fs::path(".") : fs::path(out).parent_path(), ec)) {
        Location loc;
        loc.file = out;
        throw Error("io_error", "the output's directory does not exist", loc);
      }
      continue;
    }
    Location loc;
    loc.file = out;
    if (!fs::is_regular_file(st)) throw Error("output_exists", "the output exists and is not a file", loc);
    for (const std::string& in : inputs) {
      if (same_file(out, in)) throw Error("output_is_input", "the output is one of the files being imported", loc);
    }
    if (!overwrite) throw Error("output_exists", "the output exists; --overwrite replaces it", loc);
  }
}

void run_import(const ImportArgs& a) {
  const ErrorPolicy policy = parse_error_policy(a.policy);
  const double val_fraction = a.split.empty() ? 0.0 : parse_split(a.split);
  if (a.stratify_by != "none" && a.split.empty()) {
    Location where;
    where.key = "stratify-by";
    throw ConfigError("bad_value", "--stratify-by needs --split", where);
  }
  if (a.category.empty()) {
    Location where;
    where.key = "category";
    throw ConfigError("bad_value", "--category must not be empty", where);
  }
  const importers::Layout layout =
      a.layout == "auto" ? importers::detect_layout(a.dir) : importers::parse_layout(a.layout);
  std::vector<std::string> outs;
  if (a.split.empty()) {
    outs = {a.out};
  } else {
    outs = {sibling(a.out, "train"), sibling(a.out, "val")};
  }

  importers::Listing listing = importers::list_images(a.dir, layout, policy);
  const std::vector<importers::ImageEntry>& entries = listing.images;
  std::vector<std::string> inputs;
  for (const auto& e : entries) {
    inputs.push_back((fs::path(a.dir) / e.image).string());
    if (!e.labels.empty()) inputs.push_back((fs::path(a.dir) / e.labels).string());
    for (const auto& m : e.masks) inputs.push_back((fs::path(a.dir) / m.path).string());
  }
  check_outputs(outs, inputs, a.overwrite);

  const int threads = resolve_threads(a.run.threads);
  spdlog::info("importing {} image(s) from {} ({}), {} thread(s)", entries.size(), a.dir, importers::to_string(layout),
               threads);
  importers::ImportOptions options;
  options.policy = policy;
  options.overlap_is_error = a.overlap == "error";
  options.max_pixels = a.max_pixels;
  if (!a.value_map.empty()) {
    if (layout != importers::Layout::kLabelImages) {
      Location where;
      where.key = "value-map";
      throw ConfigError("bad_value", "--value-map applies to label images only", where);
    }
    options.value_map = importers::parse_value_map(a.value_map);
  }

  const StopOnSignal stop_on_signal;
  std::vector<importers::ImportedImage> imported(entries.size());
  std::vector<std::unique_ptr<InputError>> errors(entries.size());
  Progress progress("import", entries.size());
  std::atomic<uint64_t> done{0};
  std::mutex mutex;
  oneapi::tbb::task_arena arena(threads);
  arena.execute([&] {
    oneapi::tbb::parallel_for(size_t(0), entries.size(), [&](size_t i) {
      if (stop_flag()->load()) return;
      try {
        imported[i] = importers::import_image(a.dir, entries[i], options);
      } catch (const InputError& e) {  // strict: the first in file order is reported below
        errors[i] = std::make_unique<InputError>(e);
      }
      std::lock_guard<std::mutex> lock(mutex);
      progress.update(++done);
    });
  });
  progress.finish();
  throw_if_interrupted("import interrupted after " + std::to_string(done.load()) + " of " +
                       std::to_string(entries.size()) + " images; nothing was written");
  for (const auto& e : errors) {
    if (e) throw *e;
  }

  SkipReport skipped = listing.skipped;
  std::vector<size_t> kept;
  uint64_t overlapping_pairs = 0, overlapping_pixels = 0, overlapping_images = 0;
  std::string first_overlap;
  for (size_t i = 0; i < entries.size(); ++i) {
    skipped.merge(imported[i].skipped);
    if (!imported[i].ok) continue;
    kept.push_back(i);
    overlapping_pairs += imported[i].overlapping_pairs;
    overlapping_pixels += imported[i].overlapping_pixels;
    if (imported[i].overlapping_pairs > 0) {
      ++overlapping_images;
      if (first_overlap.empty()) first_overlap = imported[i].first_overlap;
    }
  }
  if (kept.empty()) {
    Location loc;
    loc.file = a.dir;
    throw InputError("no_images", entries.empty() ? "no image found in " + std::string(importers::to_string(layout)) +
                                                        " layout"
                                                  : "every image was left out (see the skipped reasons)",
                     loc);
  }
  const std::vector<std::string> categories = importers::category_names(imported);

  std::vector<std::vector<size_t>> parts;
  std::vector<uint8_t> is_val;
  if (a.split.empty()) {
    parts = {kept};
  } else {
    std::vector<std::string> names, strata;
    for (size_t i : kept) {
      names.push_back(entries[i].image);
      strata.push_back(importers::stratum_of(imported[i], a.stratify_by));
    }
    is_val = importers::split_validation(names, strata, val_fraction, a.run.seed);
    parts.assign(2, {});
    for (size_t k = 0; k < kept.size(); ++k) parts[is_val[k] ? 1 : 0].push_back(kept[k]);
  }

  uint64_t annotations = 0;
  std::vector<uint64_t> part_annotations;
  for (size_t p = 0; p < parts.size(); ++p) {
    const io::CocoDataset ds = importers::to_coco(entries, imported, parts[p], categories, a.category);
    io::write_coco(ds, outs[p]);  // temporary file + rename
    part_annotations.push_back(ds.annotations.size());
    annotations += ds.annotations.size();
    spdlog::info("wrote {}: {} image(s), {} annotation(s)", outs[p], ds.images.size(), ds.annotations.size());
  }
  if (overlapping_pairs > 0) {
    spdlog::warn("{} pair(s) of masks overlap in {} image(s) ({} pixel(s)), kept as they are (first: {}); "
                 "--overlap error refuses them",
                 overlapping_pairs, overlapping_images, overlapping_pixels, first_overlap);
  }
  for (const auto& [reason, n] : skipped.counts()) {
    spdlog::warn("skipped {} record(s): {} (first: {})", n, reason, skipped.first_messages().at(reason));
  }
  if (a.run.json) {
    JsonWriter w(2);
    w.begin_object();
    w.field("dir", a.dir);
    w.field("layout", importers::to_string(layout));
    w.key("out").begin_array();
    for (const std::string& o : outs) w.value(o);
    w.end_array();
    w.field("images", static_cast<uint64_t>(kept.size()));
    w.field("annotations", annotations);
    if (!a.split.empty()) {
      w.field("train_images", static_cast<uint64_t>(parts[0].size()));
      w.field("val_images", static_cast<uint64_t>(parts[1].size()));
      w.field("train_annotations", part_annotations[0]);
      w.field("val_annotations", part_annotations[1]);
    }
    w.key("categories").begin_array();
    for (const std::string& c : categories) w.value(c.empty() ? a.category : c);
    w.end_array();
    w.field("overlapping_pairs", overlapping_pairs);
    w.field("overlapping_pixels", overlapping_pixels);
    write_skip_counts(w, skipped);
    w.end_object();
    print_stdout(w.str());
  }
}

}  // namespace

void add_import_command(CLI::App& app) {
  CLI::App* import = app.add_subcommand("import", "Import annotations of other tools as COCO");
  import->require_subcommand(1);
  auto args = std::make_shared<ImportArgs>();
  CLI::App* cmd = import->add_subcommand(
      "masks",
      "Instance masks -> COCO (compressed RLE, exact area and bbox, file_name relative to DIR). Layouts: "
      "instance-pngs (DIR/<id>/images/<image> + DIR/<id>/masks/*.png, one binary mask per instance, "
      "masks/<category>/*.png for a category per folder: Data Science Bowl 2018, BBBC) and label-images "
      "(DIR/images/NAME.ext + DIR/labels/ or masks/NAME[_masks|_cp_masks|_label|_labels].png|tif, or NAME.ext + "
      "NAME_masks.png side by side; 8/16-bit pixel values are instance ids, 0 background: Cellpose, StarDist, "
      "CellProfiler). With --split val=F writes OUT_train.json and OUT_val.json instead of OUT.json");
  cmd->add_option("dir", args->dir, "dataset directory")->required()->check(CLI::ExistingDirectory);
  cmd->add_option("-o,--out", args->out, "output COCO JSON file (written atomically)")->required();
  cmd->add_option("--layout", args->layout, "auto (detected), instance-pngs or label-images")
      ->check(CLI::IsMember({"auto", "instance-pngs", "label-images"}))
      ->capture_default_str();
  cmd->add_option("--category", args->category,
                  "name of the one category (masks directly in masks/ and label images); masks in "
                  "masks/<name>/ get the category <name>")
      ->capture_default_str();
  cmd->add_option("--value-map", args->value_map,
                  "label images: the category of label values, LO-HI=NAME,V=NAME,... (e.g. 1-999=nucleus,"
                  "1000-1999=cell); a value in no range is bad input");
  cmd->add_option("--split", args->split,
                  "val=F: a share F of the images (by image, seeded by --seed and each image's name) goes to "
                  "OUT_val.json, the rest to OUT_train.json");
  cmd->add_option("--stratify-by", args->stratify_by,
                  "split each stratum alike: none, size (width x height) or modality (fluorescence, brightfield, "
                  "colour)")
      ->check(CLI::IsMember({"none", "size", "modality"}))
      ->capture_default_str();
  cmd->add_option("--overlap", args->overlap,
                  "masks of one image sharing pixels: keep both (COCO allows it; counted and reported) or error "
                  "(bad input under --on-error)")
      ->check(CLI::IsMember({"keep", "error"}))
      ->capture_default_str();
  cmd->add_option("--on-error", args->policy,
                  "bad files: fail (strict) stops naming the file; skip leaves the image out (an empty mask alone) "
                  "and counts it")
      ->check(CLI::IsMember({"fail", "strict", "skip"}))
      ->capture_default_str();
  cmd->add_option("--max-pixels", args->max_pixels, "largest width*height decoded (0 = no limit)")
      ->check(CLI::Range(int64_t(0), int64_t(1) << 40))
      ->capture_default_str();
  cmd->add_flag("--overwrite", args->overwrite, "replace existing output file(s) (never an input)");
  add_run_options(cmd, args->run);
  add_json_option(cmd, args->run);
  cmd->callback([args] { run_import(*args); });
}

}  // namespace pasteflow::cli
