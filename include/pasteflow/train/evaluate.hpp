// Evaluation of a Mask R-CNN on a COCO validation set: the model runs in
// eval mode over the images (through a Loader in evaluation configuration:
// no augmentation, no flip, the batch min_size), its detections become
// COCO results (category ids mapped back with the training CategoryMap,
// bbox [x, y, w, h] in the original frame, segm = RLE of the pasted mask
// thresholded at mask_threshold) and COCOeval (eval/coco_eval.hpp) scores
// them for bbox and, with a mask branch, segm.
//
// Slicing (issue 11): when the pipeline slices (slice.above > 0, which
// eval_pipeline_config keeps), evaluate_model evaluates on the views of the
// dataset: the model sees each view as an image, and the ground truth is
// the views dataset (pipeline::make_views: annotations cut to each view,
// views' image ids), as training sees its set.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/model/mask_rcnn.hpp"
#include "pasteflow/pipeline/config.hpp"
#include "pasteflow/slice/slice.hpp"
#include "pasteflow/stages/batch.hpp"

namespace pasteflow::train {

/// The training pipeline turned into an evaluation one: one pass in image
/// order (no shuffling, oversampling or augmentation), no flip, the single
/// size batch.min_size, no ground-truth masks in the targets, batches of
/// `batch_size` (0: unchanged), batches on the CPU.
pipeline::PipelineConfig eval_pipeline_config(const pipeline::PipelineConfig& train, int batch_size = 0);

/// One image's detections as COCO results. `detection` is MaskRCNN's
/// output in the original frame (boxes xyxy, masks [n, 1, H, W]
/// probabilities); labels map to dataset ids with `categories`. With masks,
/// segmentation = RLE of (mask > mask_threshold). Labels outside the map
/// throw InputError "unknown_label".
std::vector<eval::Detection> to_coco_results(const model::Detection& detection, int64_t image_id,
                                             const stages::CategoryMap& categories, double mask_threshold = 0.5);

/// What run_inference hands over per image: its target (image_id,
/// original_size) and the model's detections in the original frame.
using ImageDetectionsFn = std::function<void(const stages::Target& image, const model::Detection& detection)>;

struct InferenceReport {
  size_t images = 0;     ///< images the model saw
  double seconds = 0.0;  ///< loading + inference
  SkipReport skipped;    ///< images the loader dropped (pipeline.loader.on_error skip)
};

/// Runs `net` (in eval mode for the call, no gradients) over the first
/// `max_images` images of `dataset` (0 = all), in order, through a Loader
/// built with `pipeline` (see eval_pipeline_config; used as is, one epoch,
/// but never slicing: every image whole, whatever pipeline.slice says),
/// each batch moved to `device`, and calls `on_image` for every image.
/// Throws what the loader (PipelineError under "strict") and the model throw.
InferenceReport run_inference(model::MaskRCNN& net, const io::CocoDataset& dataset,
                              const pipeline::PipelineConfig& pipeline, size_t max_images, const std::string& device,
                              const ImageDetectionsFn& on_image);
/// The same over the views of `dataset` (pipeline::make_views(dataset,
/// pipeline)): the first `max_images` views in order, each read by its
/// window; on_image gets the views' image ids (views->dataset). Null
/// `views`: as the overload above.
InferenceReport run_inference(model::MaskRCNN& net, const io::CocoDataset& dataset,
                              std::shared_ptr<const slice::SlicedDataset> views,
                              const pipeline::PipelineConfig& pipeline, size_t max_images, const std::string& device,
                              const ImageDetectionsFn& on_image);
/// The same over the images (views) at `indices`, in that order (batches
/// formed from consecutive entries).
InferenceReport run_inference(model::MaskRCNN& net, const io::CocoDataset& dataset,
                              std::shared_ptr<const slice::SlicedDataset> views,
                              const pipeline::PipelineConfig& pipeline, const std::vector<uint32_t>& indices,
                              const std::string& device, const ImageDetectionsFn& on_image);

struct EvaluateOptions {
  size_t max_images = 0;       ///< the first N images of `dataset` (0 = all)
  int batch_size = 0;          ///< 0: the pipeline's
  double mask_threshold = 0.5;
  int eval_threads = 0;        ///< COCOeval workers (0 = all cores)
  std::string device = "cpu";  ///< the model's device
  /// The views of the dataset to evaluate on, made beforehand with
  /// pipeline::make_views(dataset, pipeline) (the trainer cuts its
  /// validation set once); null: made by evaluate_model when the pipeline
  /// slices. max_images then counts views.
  std::shared_ptr<const slice::SlicedDataset> views;
  /// Sharded evaluation (distributed training): the batches the single
  /// process would form are dealt round-robin, batch b to rank b % world_size,
  /// each rank runs the model on its own, and `all_gather` (every rank's
  /// bytes, by rank: dist::ProcessGroup::all_gather_bytes) brings the
  /// detections to rank 0, which restores the single-process order and runs
  /// the one COCO evaluation: bit for bit the single-process result. Other
  /// ranks return a report with evaluated = false.
  int rank = 0;
  int world_size = 1;
  std::function<std::vector<std::vector<uint8_t>>(const std::vector<uint8_t>&)> all_gather;
};

struct EvaluationReport {
  bool evaluated = true;                  ///< false on ranks > 0 of a sharded evaluation (no COCO numbers)
  eval::EvalResult bbox;
  std::optional<eval::EvalResult> segm;  ///< with a mask branch
  size_t images = 0;                      ///< images (views, when sliced) the model saw
  size_t views = 0;                       ///< sliced: views of the ground truth (0: not sliced)
  size_t detections = 0;
  size_t dropped = 0;                     ///< detections of categories absent from the ground truth
  double inference_s = 0.0;
  double eval_s = 0.0;
  /// "bbox_AP", ..., "segm_AR_large" (metric_names()).
  std::map<std::string, double> metrics() const;
};

/// Runs `net` over `dataset` (run_inference) and evaluates; when
/// `pipeline` slices, over its views against the views' ground truth
/// (options.views, or pipeline::make_views). `categories` maps the
/// model's labels (the training set's map). The images are read through a
/// Loader built with `pipeline` (see eval_pipeline_config; the config given
/// is used as is). Detections whose category the ground truth lacks are
/// dropped (counted). Throws what the loader, the model and COCOeval throw.
EvaluationReport evaluate_model(model::MaskRCNN& net, const io::CocoDataset& dataset,
                                const pipeline::PipelineConfig& pipeline, const stages::CategoryMap& categories,
                                const EvaluateOptions& options = {});

}  // namespace pasteflow::train
