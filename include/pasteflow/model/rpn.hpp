// Region proposal network of torchvision 0.14 (models/detection/rpn.py):
// RPNHead, proposal decoding and filtering, anchor labelling and losses.
// State-dict names: head.conv.0.0, head.cls_logits, head.bbox_pred.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

#include "pasteflow/model/config.hpp"
#include "pasteflow/model/det_utils.hpp"
#include "pasteflow/model/ops.hpp"

namespace pasteflow::model {

/// RPNHead(in_channels, num_anchors, conv_depth=1): a 3x3 conv + ReLU
/// shared by all levels, then 1x1 objectness (A) and box deltas (4A).
struct RPNHeadImpl : torch::nn::Module {
  RPNHeadImpl(int64_t in_channels, int64_t num_anchors, int64_t conv_depth = 1);
  /// Per level: objectness [N, A, H, W] and deltas [N, 4A, H, W].
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> forward(const std::vector<at::Tensor>& x);

  torch::nn::Sequential conv{nullptr};
  torch::nn::Conv2d cls_logits{nullptr}, bbox_pred{nullptr};
};
TORCH_MODULE(RPNHead);

/// rpn.concat_box_prediction_layers: per-level outputs -> objectness
/// [sum(N*H*W*A), 1] and deltas [sum(N*H*W*A), 4], in anchor order.
std::pair<at::Tensor, at::Tensor> concat_box_prediction_layers(const std::vector<at::Tensor>& box_cls,
                                                               const std::vector<at::Tensor>& box_regression);

struct RpnOutput {
  std::vector<at::Tensor> boxes;   ///< per image float [P, 4] proposals in the resized frame
  std::vector<at::Tensor> scores;  ///< per image objectness probabilities [P]
  at::Tensor loss_objectness;      ///< training only (else undefined)
  at::Tensor loss_rpn_box_reg;     ///< training only
};

struct RegionProposalNetworkImpl : torch::nn::Module {
  RegionProposalNetworkImpl(const RpnConfig& config, const AnchorConfig& anchors, int64_t in_channels);

  /// features: the FPN levels (all used). targets: required in training.
  RpnOutput forward(const ImageList& images, const std::vector<at::Tensor>& features,
                    const std::vector<Target>* targets = nullptr);

  int64_t pre_nms_top_n() const;
  int64_t post_nms_top_n() const;

  /// assign_targets_to_anchors: per image float labels (1 fg, 0 bg, -1
  /// ignored) and the matched gt box of every anchor.
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> assign_targets_to_anchors(
      const std::vector<at::Tensor>& anchors, const std::vector<Target>& targets) const;

  /// filter_proposals: per-level top-n, clip, small-box and score filters,
  /// per-level NMS, post-NMS top-n.
  std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> filter_proposals(
      const at::Tensor& proposals, const at::Tensor& objectness, const std::vector<Size2>& image_shapes,
      const std::vector<int64_t>& num_anchors_per_level) const;

  /// compute_loss: (binary CE over sampled anchors, smooth L1 (beta 1/9)
  /// over sampled positives summed / number sampled).
  std::pair<at::Tensor, at::Tensor> compute_loss(const at::Tensor& objectness, const at::Tensor& pred_bbox_deltas,
                                                 const std::vector<at::Tensor>& labels,
                                                 const std::vector<at::Tensor>& regression_targets) const;

  RPNHead head{nullptr};
  AnchorGenerator anchor_generator;
  ops::BoxCoder box_coder;
  Matcher proposal_matcher;
  BalancedPositiveNegativeSampler fg_bg_sampler;
  RpnConfig config;
};
TORCH_MODULE(RegionProposalNetwork);

}  // namespace pasteflow::model
