// Inference with a trained Mask R-CNN (`pasteflow predict`): COCO results
// and overlay images for a list of images or a COCO dataset.
//
//   PredictOptions o;
//   o.config = "configs/train/sample_tiny.yaml";   // or empty with a trainer checkpoint
//   o.weights = "runs/sample_tiny/best.pt";
//   o.images = {"a.jpg", "b.png"};                  // or o.annotations + o.image_dir
//   o.out_dir = "predictions";
//   PredictReport r = predict(o);
//
// Inputs:
//  - weights: a model/weights.hpp file (best.pt, tools/torchvision_to_pasteflow.py
//    output) or a trainer checkpoint (train/checkpoint.hpp; its "model."
//    entries are used, and its embedded training config when `config` is empty).
//  - config: a training config (a YAML mapping with a `model`, `pipeline`,
//    `data` or `solver` key: train/config.hpp) gives the architecture and the
//    input pipeline, turned into its evaluation form as the trainer's
//    evaluation does (eval_pipeline_config: pipeline.batch.min_size, no flip,
//    no augmentation); or a model config (model/config.hpp, e.g.
//    configs/models/maskrcnn_r50_fpn.yaml) whose transform gives the batch
//    (the last transform.min_size, max_size, size_divisible, mean, std).
//    model.num_classes always follows the category map (as in the trainer).
//  - images: `images` (image_id = 1 + the image's index in the list) or
//    `annotations` + `image_dir` (the file's images and ids, in file order).
//
// Category map (model label k -> dataset category id: the k-th smallest id,
// stages::CategoryMap, exactly as the trainer builds it from the training
// set; the trainer stores no map of its own, its config names the training
// annotations): from `categories` (a COCO instances file) when given, else
// from `annotations`, else from the training config's data.train_annotations.
// Its size + 1 must equal the weights' class count (cls_score rows), else
// InputError "category_mismatch". With `annotations`, detections of
// categories that file lacks are dropped and counted (as evaluation does).
//
// Outputs, each written atomically (temporary file + rename):
//  - out_dir/results.json: COCO results (eval/results.hpp writer), one per
//    detection with score >= score_threshold: image_id, category_id (dataset
//    ids), bbox [x, y, w, h], score, segmentation (compressed RLE of the
//    pasted mask > mask_threshold, the image's size; with a mask branch).
//  - out_dir/overlays/<image_id>_<file stem>.png (when overlays is true): the
//    image at its size with each kept detection drawn: tinted mask, mask
//    outline, box, "<category name> <score>" label.
//
// Errors: a missing or corrupt image is an InputError naming the file
// (PipelineError from the loader, or the header check of a listed image);
// under on_error "skip" such images are left out and counted in
// PredictReport::skipped. Bad weights: InputError naming the file
// ("cannot_open", "bad_weights_file", "missing_weight", "weight_shape_mismatch", ...).
#pragma once

#include <cstddef>
#include <functional>
#include <string>
#include <vector>

#include "pasteflow/core/error.hpp"

namespace pasteflow::train {

struct PredictOptions {
  std::string config;                  ///< training or model config; "" = the checkpoint's
  std::vector<std::string> overrides;  ///< key=value on top of the config
  std::string weights;                 ///< weights file or trainer checkpoint (required)
  std::string out_dir;                 ///< results.json and overlays/ (required)
  std::vector<std::string> images;     ///< image files (or annotations + image_dir)
  std::string annotations;             ///< COCO instances file whose images are predicted
  std::string image_dir;               ///< root of its file names
  std::string categories;              ///< COCO file giving the category map ("" = see above)
  double score_threshold = 0.0;        ///< detections below are not written nor drawn
  double mask_threshold = 0.5;         ///< pasted mask probabilities > this are the object
  int batch_size = 0;                  ///< 0: eval.batch_size of a training config, else the loader's
  std::string device;                  ///< "" = the config's
  int threads = 0;                     ///< > 0: LibTorch intra-op and loader threads
  std::string on_error;                ///< strict | skip ("" = the config's pipeline.loader.on_error)
  bool overlays = true;
};

struct PredictReport {
  std::string results_path;
  std::string overlay_dir;        ///< "" without overlays
  std::string config_source;      ///< the file the config came from
  std::string categories_source;  ///< the file the category map came from
  size_t images = 0;              ///< images predicted
  size_t detections = 0;          ///< results written
  size_t below_threshold = 0;     ///< detections under score_threshold
  size_t dropped = 0;             ///< detections of categories absent from `annotations`
  SkipReport skipped;             ///< images left out (on_error skip)
  double inference_s = 0.0;
  double overlay_s = 0.0;
  double wall_s = 0.0;
};

/// Runs the prediction. `log` (optional) gets human-readable notes. Throws
/// ConfigError for bad options or configs, InputError for bad inputs.
PredictReport predict(const PredictOptions& options, const std::function<void(const std::string&)>& log = {});

}  // namespace pasteflow::train
