// RoI heads of torchvision 0.14's Mask R-CNN (models/detection/roi_heads.py,
// faster_rcnn.py TwoMLPHead / FastRCNNPredictor, mask_rcnn.py MaskRCNNHeads /
// MaskRCNNPredictor, ops/poolers.py MultiScaleRoIAlign). State-dict names:
// box_head.fc6/fc7, box_predictor.cls_score/bbox_pred, mask_head.<i>.0,
// mask_predictor.conv5_mask/mask_fcn_logits.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "pasteflow/model/config.hpp"
#include "pasteflow/model/det_utils.hpp"
#include "pasteflow/model/ops.hpp"

namespace pasteflow::model {

/// poolers.LevelMapper: FPN level (0-based from k_min) of each box,
/// floor(lvl0 + log2(sqrt(area) / s0) + eps) clamped to [k_min, k_max].
class LevelMapper {
 public:
  LevelMapper(int64_t k_min, int64_t k_max, int64_t canonical_scale = 224, int64_t canonical_level = 4,
              double eps = 1e-6);
  at::Tensor operator()(const std::vector<at::Tensor>& boxlists) const;
  int64_t k_min() const { return k_min_; }
  int64_t k_max() const { return k_max_; }

 private:
  int64_t k_min_, k_max_, s0_, lvl0_;
  double eps_;
};

/// poolers._infer_scale: 2 ** round(log2(feature_h / original_h)) (the
/// log2 evaluated on a float32 tensor, as torchvision).
double infer_scale(const at::Tensor& feature, const Size2& original_size);

/// MultiScaleRoIAlign over feature levels 0..num_levels-1 (torchvision's
/// featmap_names "0".."3"), scales inferred from the first call's image
/// sizes like torchvision (which caches them; here they are recomputed per
/// call, which gives the same values for the same padded batch geometry).
class MultiScaleRoIAlign {
 public:
  MultiScaleRoIAlign(int64_t num_levels, int64_t output_size, int64_t sampling_ratio,
                     int64_t canonical_scale = 224, int64_t canonical_level = 4);
  /// features: at least num_levels maps; boxes: per image [L_i, 4] in the
  /// resized frame. Returns [sum L_i, C, output_size, output_size].
  at::Tensor operator()(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& boxes,
                        const std::vector<Size2>& image_shapes) const;
  int64_t output_size() const { return output_size_; }
  int64_t sampling_ratio() const { return sampling_ratio_; }
  int64_t num_levels() const { return num_levels_; }

 private:
  int64_t num_levels_, output_size_, sampling_ratio_, canonical_scale_, canonical_level_;
};

/// faster_rcnn.TwoMLPHead: flatten, relu(fc6), relu(fc7).
struct TwoMLPHeadImpl : torch::nn::Module {
  TwoMLPHeadImpl(int64_t in_channels, int64_t representation_size);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::Linear fc6{nullptr}, fc7{nullptr};
};
TORCH_MODULE(TwoMLPHead);

/// faster_rcnn.FastRCNNPredictor: class logits [N, K] and deltas [N, 4K].
struct FastRCNNPredictorImpl : torch::nn::Module {
  FastRCNNPredictorImpl(int64_t in_channels, int64_t num_classes);
  std::pair<at::Tensor, at::Tensor> forward(const at::Tensor& x);
  torch::nn::Linear cls_score{nullptr}, bbox_pred{nullptr};
};
TORCH_MODULE(FastRCNNPredictor);

/// mask_rcnn.MaskRCNNHeads: Sequential of (3x3 conv + ReLU) blocks.
torch::nn::Sequential make_mask_head(int64_t in_channels, const std::vector<int>& layers, int64_t dilation);

/// mask_rcnn.MaskRCNNPredictor: ConvTranspose2d 2x2 stride 2 + ReLU + 1x1 conv.
struct MaskRCNNPredictorImpl : torch::nn::Module {
  MaskRCNNPredictorImpl(int64_t in_channels, int64_t dim_reduced, int64_t num_classes);
  at::Tensor forward(const at::Tensor& x);
  torch::nn::ConvTranspose2d conv5_mask{nullptr};
  torch::nn::Conv2d mask_fcn_logits{nullptr};
};
TORCH_MODULE(MaskRCNNPredictor);

/// One image's detections. In RoIHeads output: boxes in the resized frame,
/// masks [n, 1, M, M] probabilities; after MaskRCNN postprocessing: boxes in
/// the original frame, masks [n, 1, H, W] probabilities pasted into the image.
struct Detection {
  at::Tensor boxes;   ///< float [n, 4]
  at::Tensor scores;  ///< float [n]
  at::Tensor labels;  ///< int64 [n]
  at::Tensor masks;   ///< float [n, 1, ., .]; undefined without a mask branch
};

/// torchvision.models.detection.roi_heads.fastrcnn_loss.
std::pair<at::Tensor, at::Tensor> fastrcnn_loss(const at::Tensor& class_logits, const at::Tensor& box_regression,
                                                const std::vector<at::Tensor>& labels,
                                                const std::vector<at::Tensor>& regression_targets);
/// roi_heads.project_masks_on_boxes: gt masks [n, H, W] cropped to `boxes`
/// with roi_align (M x M, scale 1, sampling_ratio -1, aligned false).
at::Tensor project_masks_on_boxes(const at::Tensor& gt_masks, const at::Tensor& boxes, const at::Tensor& matched_idxs,
                                  int64_t m);
/// roi_heads.maskrcnn_loss: BCE with logits on each proposal's gt-label channel.
at::Tensor maskrcnn_loss(const at::Tensor& mask_logits, const std::vector<at::Tensor>& proposals,
                         const std::vector<at::Tensor>& gt_masks, const std::vector<at::Tensor>& gt_labels,
                         const std::vector<at::Tensor>& mask_matched_idxs);
/// roi_heads.maskrcnn_inference: sigmoid of the label's channel, [n, 1, M, M] per image.
std::vector<at::Tensor> maskrcnn_inference(const at::Tensor& mask_logits, const std::vector<at::Tensor>& labels);

struct RoIHeadsOutput {
  std::vector<Detection> detections;           ///< evaluation only
  std::map<std::string, at::Tensor> losses;    ///< training: loss_classifier, loss_box_reg, loss_mask
};

/// What select_training_samples produced (exposed for tests).
struct TrainingSamples {
  std::vector<at::Tensor> proposals;
  std::vector<at::Tensor> matched_idxs;
  std::vector<at::Tensor> labels;
  std::vector<at::Tensor> regression_targets;
};

struct RoIHeadsImpl : torch::nn::Module {
  RoIHeadsImpl(const ModelConfig& config, int64_t in_channels);

  /// features: the FPN levels (the first four are pooled); proposals per
  /// image in the resized frame; targets required in training.
  RoIHeadsOutput forward(const std::vector<at::Tensor>& features, const std::vector<at::Tensor>& proposals,
                         const std::vector<Size2>& image_shapes, const std::vector<Target>* targets = nullptr);

  TrainingSamples select_training_samples(std::vector<at::Tensor> proposals, const std::vector<Target>& targets) const;
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> assign_targets_to_proposals(
      const std::vector<at::Tensor>& proposals, const std::vector<at::Tensor>& gt_boxes,
      const std::vector<at::Tensor>& gt_labels) const;
  std::vector<at::Tensor> subsample(const std::vector<at::Tensor>& labels) const;
  /// postprocess_detections: boxes, scores, labels per image.
  std::vector<Detection> postprocess_detections(const at::Tensor& class_logits, const at::Tensor& box_regression,
                                                const std::vector<at::Tensor>& proposals,
                                                const std::vector<Size2>& image_shapes) const;
  bool has_mask() const { return !mask_head.is_empty(); }

  MultiScaleRoIAlign box_roi_pool;
  TwoMLPHead box_head{nullptr};
  FastRCNNPredictor box_predictor{nullptr};
  MultiScaleRoIAlign mask_roi_pool;
  torch::nn::Sequential mask_head{nullptr};
  MaskRCNNPredictor mask_predictor{nullptr};

  Matcher proposal_matcher;
  BalancedPositiveNegativeSampler fg_bg_sampler;
  ops::BoxCoder box_coder;
  BoxHeadConfig config;
};
TORCH_MODULE(RoIHeads);

}  // namespace pasteflow::model
