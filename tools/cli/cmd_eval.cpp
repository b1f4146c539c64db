// pasteflow eval: COCO detection evaluation (pycocotools COCOeval semantics).
#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "cli.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"

namespace pasteflow::cli {

namespace {

struct EvalArgs {
  std::string gt;
  std::string results;
  std::string type = "bbox";
  bool per_category = false;
  std::string policy = "strict";
  std::vector<int> max_dets{1, 10, 100};
  RunOptions run;
};

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run_eval(const EvalArgs& a) {
  eval::EvalParams params;
  params.iou_type = eval::parse_iou_type(a.type);
  params.max_dets = a.max_dets;
  auto t0 = std::chrono::steady_clock::now();
  io::LoadOptions load;
  load.policy = parse_error_policy(a.policy);
  // Evaluation never decodes pixels: a ground truth of huge images (issue 11:
  // a 36000 x 18000 orthomosaic, a 100k-pixel slide) loads whatever its size.
  load.max_pixels = 0;
  const io::CocoDataset gt = io::load_coco(a.gt, load);
  SkipReport skipped = gt.skipped;  // ground truth, results, evaluation: one report
  const std::vector<eval::Detection> dets = eval::load_results(a.results, gt, load.policy, &skipped);
  spdlog::info("loaded {} images, {} annotations and {} results in {:.2f}s", gt.images.size(), gt.annotations.size(),
               dets.size(), seconds_since(t0));
  eval::EvalOptions opts;
  opts.threads = a.run.threads;
  opts.policy = load.policy;
  t0 = std::chrono::steady_clock::now();
  const eval::EvalResult r = eval::evaluate(gt, dets, params, opts);
  spdlog::info("evaluated ({}) in {:.2f}s", a.type, seconds_since(t0));
  skipped.merge(r.skipped);
  for (const auto& [reason, n] : skipped.counts()) {
    spdlog::warn("skipped {} record(s): {} (first: {})", n, reason, skipped.first_messages().at(reason));
  }

  if (a.run.json) {
    JsonWriter w(2);
    w.begin_object();
    w.key("stats").begin_array();
    for (double s : r.stats) w.value(s);
    w.end_array();
    w.key("max_dets").begin_array();
    for (int m : r.params.max_dets) w.value(static_cast<int64_t>(m));
    w.end_array();
    w.key("per_category_ap").begin_object();
    for (const auto& [cat, ap] : r.per_category_ap) w.field(std::to_string(cat), ap);
    w.end_object();
    w.key("skipped").begin_object();
    for (const auto& [reason, n] : skipped.counts()) w.field(reason, n);
    w.end_object();
    w.end_object();
    print_stdout(w.str());
    return;
  }
  std::string text = r.summary;
  if (a.per_category) {
    text += "\nper-category AP (IoU=0.50:0.95, area=all, maxDets=" + std::to_string(r.params.max_dets.back()) + ")\n";
    for (size_t k = 0; k < r.per_category_ap.size(); ++k) {
      const int64_t id = r.per_category_ap[k].first;
      const int64_t ci = gt.category_index(id);
      const std::string name = ci >= 0 ? std::string(gt.str(gt.categories[ci].name)) : "";
      char line[160];
      std::snprintf(line, sizeof line, "  %6lld %-24s %7.3f\n", static_cast<long long>(id), name.c_str(),
                    r.per_category_ap[k].second);
      text += line;
    }
  }
  if (!skipped.empty()) {
    text += "\nskipped " + std::to_string(skipped.total()) + " bad record(s) (--on-error skip):";
    for (const auto& [reason, n] : skipped.counts()) text += " " + reason + " " + std::to_string(n);
    text += "\n";
  }
  if (!text.empty() && text.back() == '\n') text.pop_back();
  print_stdout(text);
}

}  // namespace

void add_eval_command(CLI::App& app) {
  auto args = std::make_shared<EvalArgs>();
  CLI::App* cmd = app.add_subcommand(
      "eval",
      "COCO detection evaluation with pycocotools' COCOeval semantics (bbox or segm): prints the 12-line summary, "
      "or with --json {\"stats\": [12 numbers], \"per_category_ap\": {\"<category id>\": AP, ...}, \"skipped\": "
      "{\"<reason>\": count, ...}}. Images of any size: eval never decodes pixels, so the ground truth is loaded "
      "with no whole-image pixel limit (masks are limited to 2^32 pixels, as pycocotools' RLE)");
  cmd->add_option("--gt", args->gt, "ground-truth COCO instances JSON")->required()->check(CLI::ExistingFile);
  cmd->add_option("--results", args->results, "COCO results JSON (array of {image_id, category_id, score, bbox "
                                              "and/or segmentation})")
      ->required()
      ->check(CLI::ExistingFile);
  cmd->add_option("--type", args->type, "IoU type")->check(CLI::IsMember({"bbox", "segm"}))->capture_default_str();
  cmd->add_option("--threads", args->run.threads, "worker threads (0 = all cores); results never depend on it")
      ->check(CLI::Range(0, 1024));
  cmd->add_option("--max-dets", args->max_dets,
                  "COCOeval's params.maxDets, three detection limits per image (default 1,10,100). A huge image "
                  "holds more objects than 100: e.g. 1,100,1000 (as pycocotools, AP over all IoUs stays at the "
                  "literal 100 of summarize(); AP50, AP75, the area rows and AR use the third value)")
      ->delimiter(',')
      ->expected(3)
      ->check(CLI::Range(1, 1 << 30));
  cmd->add_flag("--per-category", args->per_category, "also print each category's AP (without --json)");
  cmd->add_option("--on-error", args->policy,
                  "bad ground-truth records and results: 'strict' fails, 'skip' drops and counts them")
      ->check(CLI::IsMember({"strict", "skip"}))
      ->capture_default_str();
  add_json_option(cmd, args->run);
  cmd->callback([args] { run_eval(*args); });
}

}  // namespace pasteflow::cli
