// pasteflow stats: dataset statistics, the paper's Table 2.
#include <cstdio>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/stats/plot.hpp"
#include "pasteflow/stats/table2.hpp"

namespace pasteflow::cli {

namespace {

/// One anchor size per FPN level of torchvision's Mask R-CNN (the stats
/// library's default anchor generator).
std::vector<double> default_anchor_sizes() {
  std::vector<double> sizes;
  for (const auto& level : stats::AnchorGeneratorConfig::mask_rcnn_fpn().sizes) sizes.push_back(level.front());
  return sizes;
}

struct StatsArgs {
  std::string annotations;
  std::string plot;
  std::string area_source = "area";
  double small_max = 32.0 * 32.0;
  double medium_max = 96.0 * 96.0;
  // The model the anchor columns are for (torchvision's Mask R-CNN by default,
  // the paper's setting): its resize and one anchor size per FPN level.
  double min_size = stats::ResizeConfig().min_size;
  double max_size = stats::ResizeConfig().max_size;
  std::vector<double> anchor_sizes = default_anchor_sizes();
  std::string policy = "strict";
  bool details = false;
  RunOptions run;
};

/// "8,16,32" (sizes as the user wrote them: %g).
std::string join_sizes(const std::vector<double>& sizes) {
  std::string out;
  for (double s : sizes) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", s);
    out += (out.empty() ? "" : ",") + std::string(buf);
  }
  return out;
}

void run_stats(const StatsArgs& a) {
  io::LoadOptions load;
  load.policy = parse_error_policy(a.policy);
  const io::CocoDataset ds = io::load_coco(a.annotations, load);
  stats::Table2Options opts;
  opts.policy = load.policy;
  opts.size.small_max_area = a.small_max;
  opts.size.medium_max_area = a.medium_max;
  opts.size.source = stats::parse_area_source(a.area_source);
  opts.size.validate();
  opts.resize.min_size = a.min_size;
  opts.resize.max_size = a.max_size;
  opts.anchors.sizes.clear();
  for (double s : a.anchor_sizes) opts.anchors.sizes.push_back({s});
  opts.anchors.aspect_ratios.assign(opts.anchors.sizes.size(),
                                    stats::AnchorGeneratorConfig::mask_rcnn_fpn().aspect_ratios.front());
  opts.anchors.validate();
  stats::Table2 table = stats::compute_table2(ds, opts);
  table.skipped.merge(ds.skipped);
  for (const auto& [reason, n] : table.skipped.counts()) {
    spdlog::warn("skipped {} record(s): {} (first: {})", n, reason, table.skipped.first_messages().at(reason));
  }

  if (!a.plot.empty()) {
    std::vector<double> areas;
    areas.reserve(table.objects.size());
    for (const auto& o : table.objects) areas.push_back(o.area);
    stats::plot_size_histogram(areas, {a.small_max, a.medium_max}, a.plot);
    spdlog::info("wrote {}", a.plot);
  }
  if (a.run.json) {
    print_stdout(stats::table2_to_json(table, opts, a.details, 2));
    return;
  }
  print_stdout(a.annotations + ": " + std::to_string(ds.images.size()) + " images, " +
               std::to_string(ds.annotations.size()) + " annotations, " + std::to_string(ds.categories.size()) +
               " categories; size by " + a.area_source + " (small < " + std::to_string(static_cast<long>(a.small_max)) +
               " <= medium < " + std::to_string(static_cast<long>(a.medium_max)) + " <= large)" +
               (a.min_size == stats::ResizeConfig().min_size && a.max_size == stats::ResizeConfig().max_size &&
                        a.anchor_sizes == default_anchor_sizes()
                    ? std::string()
                    : "; anchors " + join_sizes(a.anchor_sizes) + " after resizing to min_size " +
                          join_sizes({a.min_size}) + " / max_size " + join_sizes({a.max_size})) +
               (table.skipped.empty() ? std::string()
                                      : "; " + std::to_string(table.skipped.total()) + " bad record(s) skipped") +
               "\n");
  print_stdout(stats::table2_to_markdown(table));
}

}  // namespace

void add_stats_command(CLI::App& app) {
  auto args = std::make_shared<StatsArgs>();
  CLI::App* cmd = app.add_subcommand(
      "stats",
      "Dataset statistics per size class: the paper's Table 2 (share of objects, of images containing one, of "
      "annotated area, of positively matched RPN anchors, matched anchors per object, mean max IoU)");
  cmd->add_option("annotations", args->annotations, "COCO instances JSON file")->required()->check(CLI::ExistingFile);
  cmd->add_option("--plot", args->plot, "write a histogram of object sizes (sqrt(area)) with the class thresholds to this PNG");
  cmd->add_option("--area-source", args->area_source,
                  "what decides an object's size class: the annotation's 'area' field (as COCOeval), the "
                  "rasterised 'mask' area, or the 'bbox' area (the paper's Table 1)")
      ->check(CLI::IsMember({"area", "mask", "bbox"}))
      ->capture_default_str();
  cmd->add_option("--small-max", args->small_max, "area below which an object is small")->capture_default_str();
  cmd->add_option("--medium-max", args->medium_max, "area below which an object is medium")->capture_default_str();
  cmd->add_option("--min-size", args->min_size,
                  "the model's resize: shorter side after resizing (torchvision GeneralizedRCNNTransform min_size; "
                  "the anchor columns are for this model)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--max-size", args->max_size, "the model's resize: longest side at most (max_size)")
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--anchor-sizes", args->anchor_sizes,
                  "anchor size per FPN level P2..P6, comma-separated (5 values; aspect ratios 0.5, 1, 2), e.g. "
                  "8,16,32,64,128 for configs/dsb/baseline.yaml")
      ->delimiter(',')
      ->expected(5)
      ->check(CLI::PositiveNumber)
      ->capture_default_str();
  cmd->add_option("--on-error", args->policy, "bad records: 'strict' fails, 'skip' drops and counts them")
      ->check(CLI::IsMember({"strict", "skip"}))
      ->capture_default_str();
  cmd->add_flag("--details", args->details, "with --json: per-image and per-object anchor statistics");
  add_json_option(cmd, args->run);
  cmd->callback([args] { run_stats(*args); });
}

}  // namespace pasteflow::cli
