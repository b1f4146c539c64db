// pasteflow rle: rewrite every segmentation as compressed RLE.
#include <oneapi/tbb/global_control.h>
#include <oneapi/tbb/parallel_for.h>

#include <memory>
#include <string>

#include "cli.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"

namespace pasteflow::cli {

namespace {

struct RleArgs {
  std::string annotations;
  std::string out;
  std::string policy = "strict";
  RunOptions run;
};

void run_rle(const RleArgs& a) {
  io::LoadOptions load;
  load.policy = parse_error_policy(a.policy);
  load.keep_extra_fields = true;  // every other field is written back untouched
  io::CocoDataset ds = io::load_coco(a.annotations, load);

  // Encode in parallel; the writer then takes the strings in order.
  const size_t n = ds.annotations.size();
  std::vector<io::CompressedRle> encoded(n);
  std::vector<std::unique_ptr<InputError>> errors(n);
  oneapi::tbb::global_control threads(oneapi::tbb::global_control::max_allowed_parallelism,
                                      static_cast<size_t>(resolve_threads(a.run.threads)));
  oneapi::tbb::parallel_for(size_t{0}, n, [&](size_t i) {
    const io::AnnotationRecord& ann = ds.annotations[i];
    if (ann.seg_kind == io::SegmentationKind::kNone) return;
    const io::ImageRecord& im = ds.images[ann.image_index];
    try {
      const mask::Rle rle =
          mask::annotation_rle(ds, ann, static_cast<uint32_t>(im.height), static_cast<uint32_t>(im.width));
      encoded[i] = io::CompressedRle{rle.h, rle.w, mask::to_string(rle)};
    } catch (const InputError& e) {  // annotation_rle: names the file, place and annotation
      errors[i] = std::make_unique<InputError>(e);
    }
  });
  // The first bad annotation in file order fails the run (strict), or every
  // bad one is left out of the output and counted (skip).
  size_t kept = 0;
  for (size_t i = 0; i < n; ++i) {
    if (errors[i]) {
      if (load.policy == ErrorPolicy::kStrict) throw *errors[i];
      ds.skipped.add(*errors[i]);
      continue;
    }
    if (kept != i) {
      ds.annotations[kept] = ds.annotations[i];
      encoded[kept] = std::move(encoded[i]);
    }
    ++kept;
  }
  if (kept != n) {
    ds.annotations.resize(kept);
    encoded.resize(kept);
    ds.rebuild_image_index();
  }
  for (const auto& [reason, count] : ds.skipped.counts()) {
    spdlog::warn("skipped {} record(s): {} (first: {})", count, reason, ds.skipped.first_messages().at(reason));
  }
  io::WriteOptions wo;
  wo.segmentation_override = [&encoded](const io::CocoDataset& d, size_t i, io::CompressedRle& out) {
    if (d.annotations[i].seg_kind == io::SegmentationKind::kNone) return false;
    out = encoded[i];
    return true;
  };
  io::write_coco(ds, a.out, wo);
  spdlog::info("wrote {} ({} annotations as compressed RLE{})", a.out, kept,
               ds.skipped.empty() ? "" : ", " + std::to_string(ds.skipped.total()) + " bad records skipped");
}

}  // namespace

void add_rle_command(CLI::App& app) {
  auto args = std::make_shared<RleArgs>();
  CLI::App* cmd = app.add_subcommand(
      "rle", "Rewrite every segmentation of a COCO file as compressed RLE ({\"size\":[h,w],\"counts\":\"...\"}), "
             "pycocotools-exact; all other fields untouched");
  cmd->add_option("annotations", args->annotations, "COCO instances JSON file")->required()->check(CLI::ExistingFile);
  cmd->add_option("-o,--out", args->out, "output JSON file (written atomically)")->required();
  cmd->add_option("--on-error", args->policy, "bad records: 'strict' fails, 'skip' drops and counts them")
      ->check(CLI::IsMember({"strict", "skip"}))
      ->capture_default_str();
  add_run_options(cmd, args->run);
  cmd->callback([args] { run_rle(*args); });
}

}  // namespace pasteflow::cli
