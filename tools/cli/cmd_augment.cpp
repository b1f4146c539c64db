// pasteflow augment: the paper's offline mode. Every image's copies (the
// sampler's materialised list, repeated --copies times) are run through the
// pipeline once and written out as a new COCO dataset, OUT/images/ and
// OUT/annotations.json, by dataset::AugmentExporter (its header documents
// the output scheme: originals keep their id and file name, other copies get
// new ids and <stem>_pf<k> names, pasted objects are compressed RLE).
//
// Files: dataset::DatasetWriter stages everything in
// OUT/.pasteflow-staging-<pid>-<n>/ and publishes images/ and
// annotations.json by rename at the end (OUT/.pasteflow-manifest.json lists
// them). A failed or interrupted run (SIGINT/SIGTERM: exit 130/143) leaves
// no trace; --overwrite replaces only what a previous run published.
//
// A config that slices (slice.above > 0): the sampler's list is over the
// views (pipeline::make_views), each read by its window; a sliced view is
// exported as <stem>_<x>_<y>_<w>_<h>.png with "source_image_id" and
// "window" in its record (dataset/augment_export.hpp).
#include <filesystem>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/dataset/augment_export.hpp"
#include "pasteflow/dataset/writer.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pipeline_args.hpp"

namespace pasteflow::cli {

namespace fs = std::filesystem;

namespace {

struct AugmentArgs {
  PipelineArgs pipe;
  std::string out;
  int copies = 1;
  std::string format = "jpg";
  int quality = 95;
  bool overwrite = false;
};

void run_augment(const AugmentArgs& a) {
  tune_allocator_for_pipeline();
  pipeline::PipelineConfig cfg = load_pipeline_args(a.pipe);
  cfg.loader.max_epochs = 1;
  const io::CocoDataset source = load_dataset_args(a.pipe, cfg);
  // With slicing on (slice.above > 0) the samples are views: each sliced
  // view is exported as its window's pixels (<stem>_<x>_<y>_<w>_<h>.png,
  // records with source_image_id and window), never the huge file.
  const auto views = pipeline::make_views(source, cfg);
  const io::CocoDataset& ds = views ? views->dataset : source;
  if (views) spdlog::info("{} images -> {} views (slice.above {})", source.images.size(), ds.images.size(), cfg.slice.above);

  // The paper's offline copies: the sampler's materialised list (exactly
  // r(i) copies of image i for integral factors), repeated --copies times;
  // seq = position in the whole list, so every sample draws its own pastes.
  pipeline::PipelineConfig derived = cfg;
  derived.derive();
  const stages::Sampler sampler(derived.sampler, pipeline::image_infos(ds, derived.size));
  const std::vector<stages::SampleTicket> once = sampler.materialise_tickets(derived.seed);
  std::vector<stages::SampleTicket> tickets;
  tickets.reserve(once.size() * static_cast<size_t>(a.copies));
  for (int r = 0; r < a.copies; ++r) {
    for (stages::SampleTicket t : once) {
      t.seq = t.position = tickets.size();
      t.epoch = 0;
      tickets.push_back(t);
    }
  }
  dataset::check_augment_ids(ds, tickets, cfg.augment.composite.ids_per_sample);

  const StopOnSignal stop_on_signal;
  dataset::WriterOptions options;
  options.overwrite = a.overwrite;
  options.command = "augment";
  options.inputs = {a.pipe.annotations, a.pipe.images};
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
  spdlog::info("{} {} -> {} samples ({} per repetition x {}), {} threads", ds.images.size(), views ? "views" : "images",
               tickets.size(),
               once.size(), a.copies, resolve_threads(cfg.loader.threads));

  dataset::AugmentExportConfig export_cfg;
  export_cfg.format = a.format;
  export_cfg.quality = a.quality;
  export_cfg.size = cfg.size;
  export_cfg.instances = cfg.instances;
  export_cfg.allow_overlap = cfg.augment.placement.allow_overlap;
  export_cfg.ids_per_sample = cfg.augment.composite.ids_per_sample;
  if (views) {
    export_cfg.windows.resize(views->views.size());
    for (size_t i = 0; i < views->views.size(); ++i) {
      const slice::View& v = views->views[i];
      if (v.sliced) export_cfg.windows[i] = {v.window.x, v.window.y, v.window.width, v.window.height};
    }
  }
  dataset::AugmentExporter exporter(writer, ds, export_cfg, tickets);
  SkipReport skipped;
  {
    pipeline::Loader loader(source, views, cfg, pipeline::Output::kSamples,
                            [&tickets](uint64_t epoch) {
                              return epoch == 0 ? tickets : std::vector<stages::SampleTicket>{};
                            });
    Progress progress("augment", tickets.size());
    uint64_t done = 0;
    while (!stop_flag()->load()) {
      const auto s = loader.next_sample();
      if (!s) break;
      exporter.add(*s);
      progress.update(++done);
    }
    progress.finish();
    skipped = loader.skipped();
    if (stop_flag()->load()) {
      writer.abort();
      throw_if_interrupted("augment interrupted after " + std::to_string(done) + " of " +
                           std::to_string(tickets.size()) + " samples; nothing was written to " + a.out);
    }
  }
  exporter.finish();

  const io::CocoDataset& out = exporter.dataset();
  const stages::PasteCounters& c = exporter.counters();
  spdlog::info("wrote {} images ({} original, {} augmented, {} extra copies) and {} annotations ({} pasted) to {}",
               out.images.size(), exporter.originals(), exporter.augmented(), exporter.extra(),
               out.annotations.size(), exporter.pasted(), a.out);
  spdlog::info("pastes: {} requested, {} placed, {} failed ({} placement tries); {} objects trimmed, {} dropped as occluded",
               c.requested, c.placed, c.failed, c.tries, exporter.trimmed(), c.dropped_occluded);
  for (const auto& [reason, n] : skipped.counts()) {
    spdlog::warn("skipped {} sample(s): {} (first: {})", n, reason, skipped.first_messages().at(reason));
  }
  if (a.pipe.run.json) {
    JsonWriter w(2);
    w.begin_object();
    w.field("out", fs::path(a.out).string()).field("images", static_cast<uint64_t>(out.images.size()));
    w.field("original_images", exporter.originals()).field("augmented_images", exporter.augmented());
    w.field("extra_images", exporter.extra());
    w.field("annotations", static_cast<uint64_t>(out.annotations.size())).field("pasted", exporter.pasted());
    w.field("paste_requested", static_cast<uint64_t>(c.requested)).field("paste_placed", static_cast<uint64_t>(c.placed));
    w.field("paste_failed", static_cast<uint64_t>(c.failed)).field("trimmed", exporter.trimmed());
    w.field("dropped_occluded", static_cast<uint64_t>(c.dropped_occluded));
    write_skip_counts(w, skipped, "skipped_samples", "skipped");
    w.end_object();
    print_stdout(w.str());
  }
}

}  // namespace

void add_augment_command(CLI::App& app) {
  auto args = std::make_shared<AugmentArgs>();
  CLI::App* cmd = app.add_subcommand(
      "augment",
      "Offline copy-paste augmentation (the paper's mode): runs every image's copies through the pipeline once and "
      "writes OUT/images/ and OUT/annotations.json (COCO; pasted objects as compressed RLE with pasted: true and "
      "source_id). Originals keep their id and file name (made relative below OUT/images); other copies get new ids "
      "and <stem>_pf<k> names. With slicing (slice.above > 0) the samples are views: a sliced view's original is "
      "its window as <stem>_<x>_<y>_<w>_<h>.png with source_image_id and window in its record. The output is staged "
      "in OUT and appears only when the run completes");
  add_pipeline_options(cmd, args->pipe);
  cmd->add_option("--out,-o", args->out, "output directory (images/ and annotations.json)")->required();
  cmd->add_option("--copies", args->copies, "repeat the materialised list this many times (each with new pastes)")
      ->check(CLI::Range(1, 1000))
      ->capture_default_str();
  cmd->add_option("--format", args->format, "encoding of changed images: jpg or lossless png")
      ->check(CLI::IsMember({"jpg", "png"}))
      ->capture_default_str();
  cmd->add_option("--quality", args->quality, "JPEG quality")->check(CLI::Range(1, 100))->capture_default_str();
  cmd->add_flag("--overwrite", args->overwrite,
                "replace the output a previous pasteflow run published in OUT (never files pasteflow did not write)");
  add_json_option(cmd, args->pipe.run);
  cmd->callback([args] { run_augment(*args); });
}

}  // namespace pasteflow::cli
