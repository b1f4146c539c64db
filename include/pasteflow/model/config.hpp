// Hyper-parameters of the LibTorch Mask R-CNN (model/mask_rcnn.hpp). The
// defaults are torchvision 0.14's maskrcnn_resnet50_fpn (models/detection/
// mask_rcnn.py and faster_rcnn.py); configs/models/maskrcnn_r50_fpn.yaml
// spells them out.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/config/describe.hpp"

namespace pasteflow::model {

/// ResNet body + FPN (torchvision resnet_fpn_backbone / _resnet_fpn_extractor).
struct BackboneConfig {
  int depth = 50;                    ///< 18, 34 (BasicBlock), 50, 101 (Bottleneck)
  std::string norm = "frozen_bn";    ///< frozen_bn (FrozenBatchNorm2d) | group_norm
  double norm_eps = 1e-5;            ///< FrozenBatchNorm2d / GroupNorm eps (torchvision's COCO weights use 0)
  int group_norm_groups = 32;        ///< groups of every GroupNorm (norm = group_norm)
  int trainable_layers = 3;          ///< 0..5: layer4, layer3, layer2, layer1, conv1 (+bn1) stay trainable
  int fpn_channels = 256;            ///< FPN out_channels

  static void describe(config::Describer<BackboneConfig>& d);
};

/// AnchorGenerator: level i gets sizes[i] * s for s in octave_scales, each
/// with every aspect ratio (height / width).
struct AnchorConfig {
  std::vector<double> sizes{32, 64, 128, 256, 512};  ///< one per FPN level (P2..P6)
  std::vector<double> octave_scales{1.0};            ///< multipliers of each level's size
  std::vector<double> aspect_ratios{0.5, 1.0, 2.0};

  static void describe(config::Describer<AnchorConfig>& d);
  /// Per level: the sizes torchvision's AnchorGenerator gets.
  std::vector<std::vector<double>> level_sizes() const;
  int64_t anchors_per_location() const {
    return static_cast<int64_t>(octave_scales.size() * aspect_ratios.size());
  }
};

struct RpnConfig {
  int pre_nms_top_n_train = 2000;
  int pre_nms_top_n_test = 1000;
  int post_nms_top_n_train = 2000;
  int post_nms_top_n_test = 1000;
  double nms_thresh = 0.7;
  double fg_iou_thresh = 0.7;
  double bg_iou_thresh = 0.3;
  int batch_size_per_image = 256;
  double positive_fraction = 0.5;
  double score_thresh = 0.0;
  double min_size = 1e-3;  ///< proposals smaller than this (either side) are removed

  static void describe(config::Describer<RpnConfig>& d);
};

struct BoxHeadConfig {
  int roi_pool_size = 7;
  int sampling_ratio = 2;
  int representation_size = 1024;  ///< TwoMLPHead width
  double score_thresh = 0.05;
  double nms_thresh = 0.5;
  int detections_per_img = 100;
  double fg_iou_thresh = 0.5;
  double bg_iou_thresh = 0.5;
  int batch_size_per_image = 512;
  double positive_fraction = 0.25;
  std::array<double, 4> bbox_reg_weights{10.0, 10.0, 5.0, 5.0};

  static void describe(config::Describer<BoxHeadConfig>& d);
};

struct MaskHeadConfig {
  bool enabled = true;  ///< false: Faster R-CNN (no mask branch)
  int roi_pool_size = 14;
  int sampling_ratio = 2;
  std::vector<int> layers{256, 256, 256, 256};  ///< MaskRCNNHeads conv widths
  int dilation = 1;
  int dim_reduced = 256;  ///< MaskRCNNPredictor ConvTranspose2d width

  static void describe(config::Describer<MaskHeadConfig>& d);
};

/// GeneralizedRCNNTransform (stages/rcnn_transform.hpp).
struct TransformConfig {
  std::vector<int> min_size{800};  ///< training draws one per image; evaluation uses the last
  int max_size = 1333;
  int size_divisible = 32;
  std::vector<double> image_mean{0.485, 0.456, 0.406};
  std::vector<double> image_std{0.229, 0.224, 0.225};

  static void describe(config::Describer<TransformConfig>& d);
};

struct ModelConfig {
  int num_classes = 91;  ///< including the background (label 0)
  BackboneConfig backbone;
  AnchorConfig anchors;
  RpnConfig rpn;
  BoxHeadConfig box;
  MaskHeadConfig mask;
  TransformConfig transform;
  std::string device = "cpu";
  std::string weights;  ///< checkpoint to load (tools/torchvision_to_pasteflow.py); empty: random init
  /// How the balanced positive/negative samplers pick: random (torch::randperm,
  /// as torchvision) or deterministic (hash_permutation, for comparisons).
  std::string sampler = "random";
  /// Convolution weights, their gradients and the input batch in
  /// channels-last (NHWC) memory format (oneDNN's native layout on CPU).
  bool channels_last = false;

  static void describe(config::Describer<ModelConfig>& d);
};

/// Cross-field checks the schema cannot express (depth in {18, 34, 50, 101},
/// sizes / ratios per level, fg >= bg thresholds, ...). Throws ConfigError
/// with the key path ("model.<field>" under `prefix`).
void validate(const ModelConfig& config, const std::string& prefix = "model");

}  // namespace pasteflow::model
