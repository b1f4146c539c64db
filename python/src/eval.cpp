// COCO evaluation (pycocotools COCOeval semantics, pasteflow/eval/coco_eval.hpp)
// as _pasteflow.coco_eval; pasteflow/evaluation.py turns paths, dicts and
// result lists into what this takes. Parsing and evaluation run with the GIL
// released.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "bindings.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"

namespace py = pybind11;

namespace pasteflow::python {

namespace {

/// One input: a file path, or JSON text with a name for messages.
struct Source {
  bool is_path = true;
  std::string text;  ///< path or JSON
};

Source source_of(const py::handle& path, const py::handle& json, const char* what) {
  if (!path.is_none()) return {true, path.cast<std::string>()};
  if (json.is_none()) throw py::value_error(std::string("coco_eval: no ") + what);
  return {false, json.cast<std::string>()};  // bytes or str
}

py::dict run_coco_eval(const py::object& gt_path, const py::object& gt_json, const py::object& results_path,
                       const py::object& results_json, const std::string& iou_type, const std::vector<int>& max_dets,
                       int threads, const std::string& on_error, const std::optional<std::vector<int64_t>>& img_ids,
                       const std::optional<std::vector<int64_t>>& cat_ids, bool use_cats) {
  const Source gt_src = source_of(gt_path, gt_json, "ground truth");
  const Source res_src = source_of(results_path, results_json, "results");
  eval::EvalParams params;
  params.iou_type = eval::parse_iou_type(iou_type);
  params.max_dets = max_dets;
  params.use_cats = use_cats;
  if (img_ids) params.img_ids = *img_ids;
  if (cat_ids) params.cat_ids = *cat_ids;
  if (threads < 0) throw py::value_error("coco_eval: threads must be >= 0 (0 = all cores)");
  eval::EvalOptions opts;
  opts.threads = threads;
  opts.policy = parse_error_policy(on_error);

  eval::EvalResult r;
  SkipReport skipped;
  {
    py::gil_scoped_release release;
    io::LoadOptions load;
    load.policy = opts.policy;
    load.max_pixels = 0;  // evaluation never decodes pixels (as `pasteflow eval`)
    const io::CocoDataset gt =
        gt_src.is_path ? io::load_coco(gt_src.text, load) : io::parse_coco(gt_src.text, "<gt dict>", load);
    skipped = gt.skipped;
    const std::vector<eval::Detection> dets =
        res_src.is_path ? eval::load_results(res_src.text, gt, opts.policy, &skipped)
                        : eval::parse_results(res_src.text, "<results list>", gt, opts.policy, &skipped);
    r = eval::evaluate(gt, dets, params, opts);
    skipped.merge(r.skipped);
  }

  static const char* const kNames[12] = {"AP",  "AP50", "AP75",  "APs", "APm", "APl",
                                         "AR1", "AR10", "AR100", "ARs", "ARm", "ARl"};
  py::dict out;
  py::list stats;
  for (size_t i = 0; i < 12; ++i) {
    out[kNames[i]] = r.stats[i];
    stats.append(r.stats[i]);
  }
  out["stats"] = stats;
  py::dict per_cat;
  for (const auto& [cat, ap] : r.per_category_ap) per_cat[py::int_(cat)] = ap;
  out["per_category_ap"] = per_cat;
  py::list md;
  for (int m : r.params.max_dets) md.append(m);
  out["max_dets"] = md;
  py::dict sk;
  for (const auto& [reason, n] : skipped.counts()) sk[py::str(reason)] = n;
  out["skipped"] = sk;
  out["summary"] = r.summary;
  return out;
}

}  // namespace

void bind_eval(py::module_& m) {
  m.def("coco_eval", &run_coco_eval, py::arg("gt_path"), py::arg("gt_json"), py::arg("results_path"),
        py::arg("results_json"), py::arg("iou_type") = "bbox", py::arg("max_dets") = std::vector<int>{1, 10, 100},
        py::arg("threads") = 0, py::arg("on_error") = "strict", py::arg("img_ids") = py::none(),
        py::arg("cat_ids") = py::none(), py::arg("use_cats") = true,
        "COCOeval(gt, loadRes(results), iou_type).evaluate/accumulate/summarize; one of gt_path / gt_json "
        "and one of results_path / results_json. Use pasteflow.coco_eval.");
}

}  // namespace pasteflow::python
