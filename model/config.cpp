#include "pasteflow/model/config.hpp"

#include <cmath>

#include "pasteflow/core/error.hpp"

namespace pasteflow::model {

void BackboneConfig::describe(config::Describer<BackboneConfig>& d) {
  d.field("depth", &BackboneConfig::depth, "ResNet depth: 18, 34 (BasicBlock), 50, 101 (Bottleneck)").range(18, 101);
  d.field("norm", &BackboneConfig::norm, "normalisation of the ResNet body")
      .one_of({"frozen_bn", "group_norm"});
  d.field("norm_eps", &BackboneConfig::norm_eps,
          "eps of FrozenBatchNorm2d / GroupNorm (torchvision's COCO Mask R-CNN weights use 0)")
      .range(0.0, 1.0);
  d.field("group_norm_groups", &BackboneConfig::group_norm_groups, "groups of every GroupNorm (norm: group_norm)")
      .range(1, 4096);
  d.field("trainable_layers", &BackboneConfig::trainable_layers,
          "trainable stages counted from layer4 (0: all frozen, 5: conv1 and bn1 trainable too)")
      .range(0, 5);
  d.field("fpn_channels", &BackboneConfig::fpn_channels, "FPN output channels").range(1, 4096);
}

void AnchorConfig::describe(config::Describer<AnchorConfig>& d) {
  d.field("sizes", &AnchorConfig::sizes, "anchor size (sqrt of area, px) of each FPN level P2..P6")
      .range(1e-3, 1e6);
  d.field("octave_scales", &AnchorConfig::octave_scales,
          "multipliers of each level's size (torchvision default: [1])")
      .range(1e-3, 1e3);
  d.field("aspect_ratios", &AnchorConfig::aspect_ratios, "aspect ratios (height / width) on every level")
      .range(1e-3, 1e3);
}

std::vector<std::vector<double>> AnchorConfig::level_sizes() const {
  std::vector<std::vector<double>> out;
  for (double s : sizes) {
    std::vector<double> level;
    for (double k : octave_scales) level.push_back(s * k);
    out.push_back(std::move(level));
  }
  return out;
}

void RpnConfig::describe(config::Describer<RpnConfig>& d) {
  d.field("pre_nms_top_n_train", &RpnConfig::pre_nms_top_n_train, "proposals kept per level before NMS (training)")
      .range(1, 1000000);
  d.field("pre_nms_top_n_test", &RpnConfig::pre_nms_top_n_test, "proposals kept per level before NMS (evaluation)")
      .range(1, 1000000);
  d.field("post_nms_top_n_train", &RpnConfig::post_nms_top_n_train, "proposals kept per image after NMS (training)")
      .range(1, 1000000);
  d.field("post_nms_top_n_test", &RpnConfig::post_nms_top_n_test, "proposals kept per image after NMS (evaluation)")
      .range(1, 1000000);
  d.field("nms_thresh", &RpnConfig::nms_thresh, "IoU threshold of the per-level proposal NMS").range(0.0, 1.0);
  d.field("fg_iou_thresh", &RpnConfig::fg_iou_thresh, "anchors with IoU >= this are positive").range(0.0, 1.0);
  d.field("bg_iou_thresh", &RpnConfig::bg_iou_thresh, "anchors with IoU < this are negative").range(0.0, 1.0);
  d.field("batch_size_per_image", &RpnConfig::batch_size_per_image, "anchors sampled per image for the loss")
      .range(1, 1000000);
  d.field("positive_fraction", &RpnConfig::positive_fraction, "largest fraction of positives among sampled anchors")
      .range(0.0, 1.0);
  d.field("score_thresh", &RpnConfig::score_thresh, "proposals with objectness probability < this are dropped")
      .range(0.0, 1.0);
  d.field("min_size", &RpnConfig::min_size, "proposals narrower or shorter than this (px) are dropped")
      .range(0.0, 1e6);
}

void BoxHeadConfig::describe(config::Describer<BoxHeadConfig>& d) {
  d.field("roi_pool_size", &BoxHeadConfig::roi_pool_size, "MultiScaleRoIAlign output size of the box branch")
      .range(1, 256);
  d.field("sampling_ratio", &BoxHeadConfig::sampling_ratio, "RoIAlign sampling ratio (<= 0: adaptive)")
      .range(-1, 64);
  d.field("representation_size", &BoxHeadConfig::representation_size, "TwoMLPHead width").range(1, 1 << 20);
  d.field("score_thresh", &BoxHeadConfig::score_thresh, "detections with score <= this are dropped")
      .range(0.0, 1.0);
  d.field("nms_thresh", &BoxHeadConfig::nms_thresh, "IoU threshold of the per-class detection NMS").range(0.0, 1.0);
  d.field("detections_per_img", &BoxHeadConfig::detections_per_img, "detections kept per image")
      .range(1, 1000000);
  d.field("fg_iou_thresh", &BoxHeadConfig::fg_iou_thresh, "proposals with IoU >= this are foreground")
      .range(0.0, 1.0);
  d.field("bg_iou_thresh", &BoxHeadConfig::bg_iou_thresh, "proposals with IoU < this are background")
      .range(0.0, 1.0);
  d.field("batch_size_per_image", &BoxHeadConfig::batch_size_per_image, "proposals sampled per image")
      .range(1, 1000000);
  d.field("positive_fraction", &BoxHeadConfig::positive_fraction, "largest fraction of foreground samples")
      .range(0.0, 1.0);
  d.field("bbox_reg_weights", &BoxHeadConfig::bbox_reg_weights, "BoxCoder weights (wx, wy, ww, wh)")
      .range(1e-6, 1e6);
}

void MaskHeadConfig::describe(config::Describer<MaskHeadConfig>& d) {
  d.field("enabled", &MaskHeadConfig::enabled, "mask branch present (false: Faster R-CNN)");
  d.field("roi_pool_size", &MaskHeadConfig::roi_pool_size, "MultiScaleRoIAlign output size of the mask branch")
      .range(1, 256);
  d.field("sampling_ratio", &MaskHeadConfig::sampling_ratio, "RoIAlign sampling ratio (<= 0: adaptive)")
      .range(-1, 64);
  d.field("layers", &MaskHeadConfig::layers, "MaskRCNNHeads: output channels of each 3x3 conv + ReLU")
      .range(1, 65536);
  d.field("dilation", &MaskHeadConfig::dilation, "dilation of the mask head convs").range(1, 64);
  d.field("dim_reduced", &MaskHeadConfig::dim_reduced, "MaskRCNNPredictor ConvTranspose2d channels")
      .range(1, 65536);
}

void TransformConfig::describe(config::Describer<TransformConfig>& d) {
  d.field("min_size", &TransformConfig::min_size,
          "shorter side after resizing (training: one drawn per image; evaluation: the last)")
      .range(1, 100000);
  d.field("max_size", &TransformConfig::max_size, "cap of the longer side").range(1, 100000);
  d.field("size_divisible", &TransformConfig::size_divisible, "batch padding multiple").range(1, 4096);
  d.field("image_mean", &TransformConfig::image_mean, "per-channel mean of [0, 1] RGB");
  d.field("image_std", &TransformConfig::image_std, "per-channel std of [0, 1] RGB").range(1e-12, 1e12);
}

void ModelConfig::describe(config::Describer<ModelConfig>& d) {
  d.field("num_classes", &ModelConfig::num_classes, "classes including the background").range(2, 100000);
  d.field("backbone", &ModelConfig::backbone, "ResNet + FPN");
  d.field("anchors", &ModelConfig::anchors, "RPN anchor generator");
  d.field("rpn", &ModelConfig::rpn, "region proposal network");
  d.field("box", &ModelConfig::box, "box branch of the RoI heads");
  d.field("mask", &ModelConfig::mask, "mask branch of the RoI heads");
  d.field("transform", &ModelConfig::transform, "input normalisation and resizing");
  d.field("device", &ModelConfig::device, "LibTorch device: cpu, cuda, cuda:1, ...");
  d.field("weights", &ModelConfig::weights, "checkpoint to load (empty: random initialisation)");
  d.field("sampler", &ModelConfig::sampler,
          "positive/negative sampling: random (torch::randperm) or deterministic (for comparisons)")
      .one_of({"random", "deterministic"});
  d.field("channels_last", &ModelConfig::channels_last,
          "convolution weights and input batch in channels-last (NHWC) memory format");
}

namespace {

[[noreturn]] void fail(const std::string& key, const std::string& message) {
  Location where;
  where.key = key;
  throw ConfigError("out_of_range", message, where);
}

}  // namespace

void validate(const ModelConfig& c, const std::string& prefix) {
  const std::string p = prefix.empty() ? std::string() : prefix + ".";
  const int depth = c.backbone.depth;
  if (depth != 18 && depth != 34 && depth != 50 && depth != 101) {
    fail(p + "backbone.depth", "ResNet depth must be 18, 34, 50 or 101, got " + std::to_string(depth));
  }
  if (c.backbone.norm == "group_norm") {
    for (int ch : {64, 128, 256, 512}) {
      if (ch % c.backbone.group_norm_groups != 0) {
        fail(p + "backbone.group_norm_groups",
             "group_norm_groups must divide every ResNet width (64, 128, 256, 512), got " +
                 std::to_string(c.backbone.group_norm_groups));
      }
    }
  }
  if (c.anchors.sizes.size() != 5) {
    fail(p + "anchors.sizes", "one anchor size per FPN level (P2..P6): 5 values, got " +
                                  std::to_string(c.anchors.sizes.size()));
  }
  if (c.anchors.octave_scales.empty()) fail(p + "anchors.octave_scales", "needs at least one scale");
  if (c.anchors.aspect_ratios.empty()) fail(p + "anchors.aspect_ratios", "needs at least one ratio");
  if (c.rpn.bg_iou_thresh > c.rpn.fg_iou_thresh) {
    fail(p + "rpn.bg_iou_thresh", "bg_iou_thresh must not exceed fg_iou_thresh");
  }
  if (c.box.bg_iou_thresh > c.box.fg_iou_thresh) {
    fail(p + "box.bg_iou_thresh", "bg_iou_thresh must not exceed fg_iou_thresh");
  }
  if (c.mask.enabled && c.mask.layers.empty()) fail(p + "mask.layers", "the mask head needs at least one layer");
  if (c.transform.min_size.empty()) fail(p + "transform.min_size", "needs at least one size");
  if (c.transform.image_mean.size() != 3) fail(p + "transform.image_mean", "needs 3 values (RGB)");
  if (c.transform.image_std.size() != 3) fail(p + "transform.image_std", "needs 3 values (RGB)");
}

}  // namespace pasteflow::model
