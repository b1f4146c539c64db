// torchvision 0.14 detection geometry, bit-exact in float32: the
// GeneralizedRCNNTransform resize, the AnchorGenerator, box_iou and the
// Matcher (Faster R-CNN RPN labelling). Used by the Table 2 statistics and,
// later, by the model code.
//
// Arithmetic follows torchvision's tensor dtypes: anchors, boxes, IoU and the
// matcher thresholds are float32; the resize scale is double (Python float).
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "pasteflow/core/span.hpp"

namespace pasteflow::stats {

/// Axis-aligned box (x1, y1, x2, y2) in float32, as torchvision's boxes.
struct BoxF {
  float x1 = 0.0f;
  float y1 = 0.0f;
  float x2 = 0.0f;
  float y2 = 0.0f;
};

inline bool operator==(const BoxF& a, const BoxF& b) {
  return a.x1 == b.x1 && a.y1 == b.y1 && a.x2 == b.x2 && a.y2 == b.y2;
}

/// torchvision box_ops.box_area: (x2 - x1) * (y2 - y1) in float32.
inline float box_area(const BoxF& b) { return (b.x2 - b.x1) * (b.y2 - b.y1); }

/// torchvision box_ops.box_iou for one pair, float32, same operation order:
/// inter = clamp(min(x2) - max(x1), 0) * clamp(min(y2) - max(y1), 0),
/// union = (area(a) + area(b)) - inter, iou = inter / union.
inline float box_iou(const BoxF& a, const BoxF& b) {
  const float area_a = box_area(a);
  const float area_b = box_area(b);
  const float lt_x = a.x1 > b.x1 ? a.x1 : b.x1;
  const float lt_y = a.y1 > b.y1 ? a.y1 : b.y1;
  const float rb_x = a.x2 < b.x2 ? a.x2 : b.x2;
  const float rb_y = a.y2 < b.y2 ? a.y2 : b.y2;
  float w = rb_x - lt_x;
  float h = rb_y - lt_y;
  w = w > 0.0f ? w : 0.0f;
  h = h > 0.0f ? h : 0.0f;
  const float inter = w * h;
  const float uni = (area_a + area_b) - inter;
  return inter / uni;
}

/// box_iou(boxes1, boxes2): a boxes1.size() x boxes2.size() row-major matrix.
std::vector<float> box_iou_matrix(Span<const BoxF> boxes1, Span<const BoxF> boxes2);

// --------------------------------------------------------------- resize

/// How the resize scale is computed.
enum class ResizeArithmetic {
  /// s = min(min_size / min(h, w), max_size / max(h, w)) in double: the
  /// definition of the Table 2 oracle (coco_mini_train2017_anchors.json).
  kDouble,
  /// What torchvision 0.14.1 on torch 1.13 actually does: the sides are a
  /// float32 tensor and `python_float / tensor` is reciprocal-then-multiply,
  /// so s = min(f32(min_size) * f32(1 / f32(min)), f32(max_size) * f32(1 / f32(max)))
  /// in float32, then floor(h * double(s)). Checked against torchvision on
  /// 10,790 image sizes. Differs from kDouble by one pixel for many sizes
  /// (e.g. 427 x 640 -> 799 x 1199 instead of 800 x 1199).
  kTorchvisionFloat32,
};

/// GeneralizedRCNNTransform(min_size, max_size) plus ImageList batching.
struct ResizeConfig {
  double min_size = 800.0;
  double max_size = 1333.0;
  int64_t size_divisible = 32;  ///< batch padding (torchvision batch_images)
  ResizeArithmetic arithmetic = ResizeArithmetic::kDouble;
};

/// Result of resizing one image of `height` x `width`.
struct ResizeInfo {
  double scale = 1.0;     ///< min(min_size / min(h, w), max_size / max(h, w)) (see ResizeArithmetic)
  int64_t height = 0;     ///< floor(h * scale) (interpolate, recompute_scale_factor=True)
  int64_t width = 0;      ///< floor(w * scale)
  float ratio_h = 1.0f;   ///< float32(height) / float32(h) (resize_boxes)
  float ratio_w = 1.0f;   ///< float32(width) / float32(w)
  int64_t padded_height = 0;  ///< height rounded up to size_divisible (batch of one)
  int64_t padded_width = 0;
};

/// Throws ConfigError for non-positive sizes in `config`, InputError for a
/// non-positive image size.
ResizeInfo detection_resize(int64_t height, int64_t width, const ResizeConfig& config = {});

/// torchvision resize_boxes: x * ratio_w, y * ratio_h in float32.
inline BoxF resize_box(const BoxF& b, const ResizeInfo& r) {
  return BoxF{b.x1 * r.ratio_w, b.y1 * r.ratio_h, b.x2 * r.ratio_w, b.y2 * r.ratio_h};
}

/// COCO [x, y, w, h] to float32 xyxy: x2 = x + w and y2 = y + h are added
/// in double (Python floats), then all four become a float32 tensor. (Adding
/// in float32 after the conversion, like torchvision's references/ loader,
/// moves some IoUs by ~1e-6; the Table 2 oracle adds in double.)
BoxF coco_bbox_to_xyxy(const double (&xywh)[4]);
BoxF coco_bbox_to_xyxy(double x, double y, double w, double h);

/// ceil(size / divisible) * divisible.
int64_t pad_to_multiple(int64_t size, int64_t divisible);

// --------------------------------------------------------------- anchors

/// torchvision AnchorGenerator(sizes, aspect_ratios): one entry per feature
/// level; aspect ratio = height / width.
struct AnchorGeneratorConfig {
  std::vector<std::vector<double>> sizes;
  std::vector<std::vector<double>> aspect_ratios;

  /// Mask R-CNN FPN default: sizes ((32,), (64,), (128,), (256,), (512,)),
  /// ratios (0.5, 1, 2) on every level.
  static AnchorGeneratorConfig mask_rcnn_fpn();
  size_t num_levels() const noexcept { return sizes.size(); }
  /// Throws ConfigError (level count mismatch, empty level, non-positive value).
  void validate() const;
};

/// AnchorGenerator.generate_anchors: zero-centred anchors
/// round([-w, -h, w, h] / 2) with h = sqrt(ratio) * size, w = size / sqrt(ratio),
/// all in float32, round half to even; order: ratios outer, sizes inner.
std::vector<BoxF> cell_anchors(const std::vector<double>& sizes, const std::vector<double>& aspect_ratios);

/// Feature map size (grid) of one level.
struct GridSize {
  int64_t height = 0;
  int64_t width = 0;
};

/// ResNet-50-FPN feature map sizes for a (padded) input: P2..P5 have
/// reductions 4..32 (each conv / pool halves with ceil), P6 = ceil(P5 / 2)
/// (LastLevelMaxPool, max_pool2d(kernel 1, stride 2)).
std::vector<GridSize> fpn_grid_sizes(int64_t image_height, int64_t image_width);

/// One level of an AnchorGrid.
struct AnchorLevel {
  GridSize grid;
  int64_t stride_h = 0;  ///< image_height // grid.height (integer division, torchvision)
  int64_t stride_w = 0;
  std::vector<BoxF> cell;  ///< cell_anchors of the level
  size_t offset = 0;       ///< index of the level's first anchor
  size_t count() const noexcept {
    return static_cast<size_t>(grid.height * grid.width) * cell.size();
  }
};

/// All anchors of one image, kept as levels (anchors are computed on demand).
/// Order is torchvision's: level by level; within a level grid positions
/// row-major (y outer, x inner); at each position the level's cell anchors.
/// Anchor = (x*stride_w + c.x1, y*stride_h + c.y1, x*stride_w + c.x2, y*stride_h + c.y2).
class AnchorGrid {
 public:
  /// `image_height` x `image_width` is the padded batch size; `grids` one per
  /// level of `config`. Throws ConfigError on mismatches.
  AnchorGrid(const AnchorGeneratorConfig& config, int64_t image_height, int64_t image_width,
             const std::vector<GridSize>& grids);

  size_t size() const noexcept { return size_; }
  const std::vector<AnchorLevel>& levels() const noexcept { return levels_; }
  BoxF operator[](size_t index) const;
  /// Every anchor, in order (what torchvision's AnchorGenerator returns).
  std::vector<BoxF> boxes() const;

 private:
  std::vector<AnchorLevel> levels_;
  size_t size_ = 0;
};

/// Convenience: AnchorGrid(config, image_height, image_width, grids).boxes().
std::vector<BoxF> generate_anchors(const AnchorGeneratorConfig& config, int64_t image_height,
                                   int64_t image_width, const std::vector<GridSize>& grids);

// --------------------------------------------------------------- matcher

struct MatcherConfig {
  /// Compared against float32 IoU as float32 (torch casts the Python scalar).
  double high_threshold = 0.7;
  double low_threshold = 0.3;
  bool allow_low_quality_matches = true;
};

/// Result of matching ground-truth boxes to anchors.
struct AnchorMatch {
  /// Per anchor: matched gt index, Matcher::kBelowLowThreshold (-1) or
  /// Matcher::kBetweenThresholds (-2).
  std::vector<int32_t> matches;
  /// Per gt: highest IoU with any anchor (float32).
  std::vector<float> max_iou;
  /// Per gt: number of anchors whose match is this gt.
  std::vector<int64_t> matched_anchors;
};

/// torchvision models.detection._utils.Matcher.
class Matcher {
 public:
  static constexpr int32_t kBelowLowThreshold = -1;
  static constexpr int32_t kBetweenThresholds = -2;

  /// Throws ConfigError when low_threshold > high_threshold.
  explicit Matcher(MatcherConfig config = {});
  const MatcherConfig& config() const noexcept { return config_; }

  /// Reference semantics on a full quality matrix (num_gt rows x num_pred
  /// columns, row-major): per prediction the first gt of maximal quality;
  /// below low -> -1, in [low, high) -> -2; with allow_low_quality_matches,
  /// every prediction that attains some gt's maximum (ties included) gets its
  /// best gt back. With num_gt == 0 every prediction is -1 (torchvision
  /// raises during training instead).
  std::vector<int32_t> operator()(Span<const float> quality, size_t num_gt, size_t num_pred) const;

  /// Same matches as operator()(box_iou_matrix(gt, anchors.boxes())) but
  /// without the matrix: only anchors overlapping a gt box are visited.
  /// Every gt box must have x2 > x1 and y2 > y1 (InputError
  /// "degenerate_box" otherwise; torchvision refuses them in training too).
  AnchorMatch match(const AnchorGrid& anchors, Span<const BoxF> gt) const;

  /// Scratch buffers of match() (per-anchor best IoU and gt); reusing one
  /// across images avoids reallocating a few MB per call.
  struct Workspace {
    std::vector<float> best;
    std::vector<int32_t> best_gt;
    std::vector<uint32_t> ties;         ///< anchors attaining each gt's maximum
    std::vector<size_t> tie_offsets;
  };
  /// As above, writing into `out` and using `workspace` (both reused).
  void match(const AnchorGrid& anchors, Span<const BoxF> gt, AnchorMatch& out, Workspace& workspace) const;

 private:
  MatcherConfig config_;
  float high_;
  float low_;
};

}  // namespace pasteflow::stats
