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
//    image at its size with each kept detection drawn in `overlay_style`:
//    "outline" (default) a 1-px outline just outside its mask, the object's
//    pixels untouched (a box for a detection without a mask); "fill" the
//    mask tinted, its outline and a 1-px box; "masks-only" the tinted mask
//    and outline alone. Except masks-only, a "<category name> <score>"
//    label where it fits: no wider than the box, on no other label (higher
//    scores placed first); small objects get none.
//
// Sliced prediction (issue 11; train/sliced_predict.cpp): an image wider or
// taller than `slice_above` px (by default the config's pipeline.slice.above,
// 0 = off) is never decoded whole. It is cut into the SAHI grid of
// slice::grid(width, height, slice_size, slice_size, slice_overlap) (size
// and overlap default to pipeline.slice.size and .overlap); each window is
// read with stages::Decoder::decode_window (a TIFF: only the tiles or strips
// it touches, through one raster::TiffPool made from pipeline.raster: one
// tile cache), and the windows go through the same evaluation batch
// transform (stages::prepare + collate with the evaluation BatchConfig
// above) and model, `batch_size` windows at a time. Each window's
// detections pass the same score / category filter as the unsliced path
// (to_coco_results), move to full-image coordinates and keep their mask as
// a local run-length mask of its bounding box (slice::from_window), so
// memory follows the detections, never the image size. With more than one
// window they are merged (slice/merge.hpp: class-wise NMS, or SAHI's greedy
// NMM with union boxes and masks); an image that is a single window is not
// merged (the model's own NMS already ran), so it gives exactly the
// unsliced results. results.json gets the merged detections with
// segmentation = the local mask placed in the full canvas (slice::full_mask,
// equal to mask::translate; compressed RLE at the full size; images above
// 2^32 pixels, which no COCO RLE can describe, get bbox-only results,
// counted in masks_omitted). The overlay of a sliced image is down-scaled so
// that its longer side is at most `overlay_max_side`, read with
// raster::TiffFile::read_region band by band (a pyramid level when the file
// has one) or, for JPEG/PNG, decoded and resized; detections are drawn
// scaled. A list of image files gets its TIFFs' sizes from their tags (the
// file is not read whole).
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
  std::string amp;                     ///< off | bf16 | fp16 ("" = a training config's solver.amp, else off)
  int threads = 0;                     ///< > 0: LibTorch intra-op and loader threads
  std::string on_error;                ///< strict | skip ("" = the config's pipeline.loader.on_error)
  bool overlays = true;
  std::string overlay_style = "outline";  ///< outline | fill | masks-only (stages/draw.hpp OverlayStyle)

  // Sliced prediction (see above).
  int64_t slice_above = -1;     ///< slice images wider or taller than this; 0 = off; -1 = pipeline.slice.above
  int64_t slice_size = 0;       ///< slice width and height; 0 = pipeline.slice.size (default 1024)
  double slice_overlap = -1.0;  ///< overlap ratio of neighbouring slices; < 0 = pipeline.slice.overlap (0.2)
  std::string merge = "nms";    ///< nms | greedy_nmm (slice/merge.hpp)
  double merge_threshold = 0.5; ///< box overlap at which two detections are one object
  std::string merge_metric;     ///< iou | ios | "" (nms: iou; greedy_nmm: ios)
  int overlay_max_side = 2048;  ///< longer side of a sliced image's overlay
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
  // Sliced prediction.
  size_t sliced_images = 0;       ///< images predicted slice by slice
  size_t slices = 0;              ///< windows run through the model
  uint64_t merge_input = 0;       ///< detections of sliced images before merging
  uint64_t merge_suppressed = 0;  ///< removed by NMS
  uint64_t merge_merged = 0;      ///< absorbed by greedy NMM
  uint64_t merge_rejected = 0;    ///< greedy NMM matches dropped by SAHI's re-check
  size_t masks_omitted = 0;       ///< results of images above 2^32 pixels written without segmentation
  int64_t slice_above = 0;        ///< the threshold used (0 = slicing off)
  double inference_s = 0.0;
  double overlay_s = 0.0;
  double wall_s = 0.0;
};

/// Runs the prediction. `log` (optional) gets human-readable notes. Throws
/// ConfigError for bad options or configs, InputError for bad inputs.
PredictReport predict(const PredictOptions& options, const std::function<void(const std::string&)>& log = {});

}  // namespace pasteflow::train
