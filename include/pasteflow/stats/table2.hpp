// The paper's Table 2 (Kisantal et al., section 3): per size class, the share
// of objects, of images, of annotated area and of positively matched RPN
// anchors, and the average number of matched anchors and average max IoU per
// object, for Mask R-CNN's torchvision anchors and Matcher.
//
// Definitions (reproduce tests/data/golden/coco_mini_train2017_anchors.json):
//   objects: every non-crowd annotation (crowd excluded, like the RPN's
//     targets); boxes from "bbox" (float32 xyxy), resized with the image.
//   object_count             = objects of the class / all objects
//   images                   = images with >= 1 object of the class / all images
//                              of the dataset
//   total_object_area        = sum of the class's object areas / sum of all
//                              object areas (areas by SizeClassConfig::source,
//                              the "area" field by default)
//   matched_anchors          = anchors matched to an object of the class /
//                              all matched anchors (match index >= 0 after the
//                              low-quality step, summed over images)
//   average_matching_anchors = anchors matched to objects of the class /
//                              objects of the class
//   average_max_iou          = mean over the class's objects of the highest
//                              IoU with any anchor (float32, summed in double)
// Shares and averages of an empty class (or empty dataset) are 0.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/stats/anchors.hpp"
#include "pasteflow/stats/size_class.hpp"

namespace pasteflow::stats {

struct Table2Options {
  SizeClassConfig size;  ///< class boundaries and area source (the "area" field)
  ResizeConfig resize;   ///< 800 / 1333, padding to 32
  AnchorGeneratorConfig anchors = AnchorGeneratorConfig::mask_rcnn_fpn();
  MatcherConfig matcher;  ///< 0.7 / 0.3, allow_low_quality_matches
  bool exclude_crowd = true;
  /// An object whose area cannot be determined (a segmentation that does
  /// not rasterise, a missing field): kStrict throws, kSkip leaves it out
  /// and counts it in Table2::skipped.
  ErrorPolicy policy = ErrorPolicy::kStrict;
};

/// One object (a non-crowd annotation with a usable box).
struct ObjectAnchorStats {
  int64_t ann_id = 0;
  uint32_t annotation_index = 0;  ///< into CocoDataset::annotations
  SizeClass size = SizeClass::kSmall;
  double area = 0.0;            ///< by Table2Options::size.source
  BoxF box;                     ///< resized float32 xyxy box that was matched
  int64_t matched_anchors = 0;  ///< anchors whose match is this object
  float max_iou = 0.0f;         ///< highest IoU with any anchor
};

/// One image; its objects are Table2::objects[object_begin, +object_count).
struct ImageAnchorStats {
  int64_t image_id = 0;
  uint32_t image_index = 0;
  ResizeInfo resize;
  size_t num_anchors = 0;
  uint32_t object_begin = 0;
  uint32_t object_count = 0;
};

/// The columns of the paper's Table 2 for one size class.
struct Table2Row {
  double object_count = 0.0;
  double images = 0.0;
  double total_object_area = 0.0;
  double matched_anchors = 0.0;
  double average_matching_anchors = 0.0;
  double average_max_iou = 0.0;
};

/// The raw sums behind one row.
struct Table2Counts {
  int64_t objects = 0;
  int64_t images = 0;  ///< images with at least one object of the class
  double area = 0.0;
  int64_t matched_anchors = 0;
  double max_iou_sum = 0.0;
};

struct Table2 {
  std::array<Table2Row, kNumSizeClasses> rows{};      ///< indexed by SizeClass
  std::array<Table2Counts, kNumSizeClasses> counts{};  ///< indexed by SizeClass
  int64_t total_images = 0;
  int64_t total_objects = 0;
  double total_area = 0.0;
  int64_t total_matched_anchors = 0;
  int64_t crowd_excluded = 0;
  /// Non-crowd annotations left out because they have no bbox or a box with
  /// no positive width/height after resizing (torchvision cannot train on them).
  int64_t degenerate_excluded = 0;
  /// Objects left out under ErrorPolicy::kSkip, by reason (the stats
  /// command merges the loader's skipped records in before printing).
  SkipReport skipped;
  std::vector<ImageAnchorStats> images;  ///< dataset image order
  std::vector<ObjectAnchorStats> objects;  ///< grouped by image, file order within

  const Table2Row& row(SizeClass c) const { return rows[static_cast<size_t>(c)]; }
  const Table2Counts& count(SizeClass c) const { return counts[static_cast<size_t>(c)]; }
};

/// Computes Table 2 over every image of `dataset`. Throws InputError when an
/// object's area cannot be determined (see object_area) under kStrict (under
/// kSkip the object is left out and counted), ConfigError for bad options.
Table2 compute_table2(const io::CocoDataset& dataset, const Table2Options& options = {});

/// JSON: {"definition": {...}, "table": {"small": {<Table2Row fields>}, ...},
/// "counts": {...}, "excluded": {...}, "skipped": {reason: count}} plus, with `details`, "per_image" in the
/// oracle's layout (image_id, scale, resized, num_anchors, objects with
/// ann_id, size, matched_anchors, max_iou). `indent` 0 is compact.
std::string table2_to_json(const Table2& table, const Table2Options& options, bool details, int indent = 2);

/// The table as Markdown, shares in percent, like the paper.
std::string table2_to_markdown(const Table2& table);

}  // namespace pasteflow::stats
