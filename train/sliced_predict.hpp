// Internal to train/: what predict.cpp (the unsliced path) and
// sliced_predict.cpp (huge images, slice by slice) share, and the sliced
// path itself. See include/pasteflow/train/predict.hpp for the behaviour.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "pasteflow/stages/draw.hpp"

#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/model/mask_rcnn.hpp"
#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/slice/merge.hpp"
#include "pasteflow/stages/batch.hpp"
#include "pasteflow/stages/decode.hpp"

namespace pasteflow::train::detail {

/// The one postprocess of both paths: a model output -> COCO results
/// (to_coco_results), those under the score threshold or of categories the
/// dataset lacks left out and counted.
struct ResultFilter {
  const stages::CategoryMap* categories = nullptr;
  const io::CocoDataset* dataset = nullptr;  ///< its categories decide "dropped"
  double score_threshold = 0.0;
  double mask_threshold = 0.5;
  size_t below_threshold = 0;
  size_t dropped = 0;
  std::vector<eval::Detection> operator()(const model::Detection& detection, int64_t image_id);
};

struct SliceRun {
  int64_t size = 1024;
  double overlap = 0.2;
  slice::MergeMethod method = slice::MergeMethod::kNms;
  slice::MergeMetric metric = slice::MergeMetric::kIou;
  double threshold = 0.5;
  int batch_size = 1;    ///< windows per forward pass
  std::string device = "cpu";
};

struct SlicedImage {
  std::vector<slice::SliceDetection> detections;  ///< full-image coordinates, by decreasing score
  size_t slices = 0;
  slice::MergeCounts merge;
};

/// One image predicted window by window: the grid, decode_window, the
/// evaluation batch transform (`batch`, stages::prepare + collate), the model,
/// `filter`, slice::from_window, and slice::merge when there is more than one
/// window. Throws what the decoder and the model throw.
SlicedImage predict_sliced(model::MaskRCNN& net, const stages::Decoder& decoder, const std::string& path,
                           int64_t image_id, int64_t width, int64_t height, const stages::BatchConfig& batch,
                           uint64_t seed, const stages::CategoryMap& categories, const SliceRun& run,
                           ResultFilter& filter,
                           const std::function<void(size_t done, size_t total)>& progress = {});

/// A sliced detection as a COCO result of the width x height image: bbox,
/// and segmentation = its mask translated into the full canvas, or none
/// (mask_omitted set) when the image is above 2^32 pixels.
eval::Detection to_full_result(const slice::SliceDetection& det, int64_t image_id, int64_t height, int64_t width,
                               bool& mask_omitted);

/// One detection to draw: a 0/1 CV_8U mask whose top-left pixel is at
/// `origin` of the overlay (empty: none), and a box in overlay pixels.
struct OverlayItem {
  int64_t category_id = 0;
  double score = 0.0;
  std::optional<std::array<double, 4>> bbox;
  cv::Mat mask;
  cv::Point origin;
};

/// Items of full-size COCO results (masks of the image's size).
std::vector<OverlayItem> overlay_items(const std::vector<eval::Detection>& dets, int rows, int cols);
/// Items of sliced detections drawn on an overlay `scale` times smaller.
std::vector<OverlayItem> overlay_items_scaled(const std::vector<slice::SliceDetection>& dets, double scale, int rows,
                                              int cols);
/// The image (RGB or grey, 8 or 16 bit) with the items drawn in `style`
/// (stages/draw.hpp): outline: 1-px outlines just outside each mask (a box
/// for mask-less items), interior pixels untouched; fill: masks tinted,
/// outlines and 1-px boxes; masks-only: tinted masks and outlines, nothing
/// else. Except in masks-only, "category score" labels where they fit
/// (stages::draw_label: no wider than the box, not on another label; best
/// scores placed first).
cv::Mat draw_overlay(cv::Mat rgb, const std::vector<OverlayItem>& items, const io::CocoDataset& names,
                     stages::OverlayStyle style = stages::OverlayStyle::kOutline);

/// The downsample factor that brings the longer side to at most max_side (>= 1).
double overview_downsample(int64_t width, int64_t height, int max_side);
/// The whole image down-scaled by `downsample` (ceil(width / downsample) x
/// ceil(height / downsample)), RGB 8 bit: a TIFF through
/// TiffFile::read_region band by band (from a pyramid level when it has
/// one, so a 36000 x 18000 COG reads its 2250 x 1125 overview; a file
/// without a pyramid is read at level 0 in bands of ~16 M pixels), another
/// format decoded and resized.
/// `band_pixels`: the most level pixels one read may hold.
cv::Mat read_overview(const std::string& path, int64_t width, int64_t height, double downsample,
                      raster::TiffPool& pool, const stages::Decoder& decoder, double band_pixels = 16e6);

/// True when the file starts with a TIFF or BigTIFF signature (reads 16 bytes).
bool file_is_tiff(const std::string& path);

}  // namespace pasteflow::train::detail
