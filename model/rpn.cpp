#include "pasteflow/model/rpn.hpp"

#include <algorithm>

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/precision.hpp"
#include "pasteflow/model/backbone.hpp"

namespace pasteflow::model {

using at::indexing::Slice;

// ------------------------------------------------------------ head

RPNHeadImpl::RPNHeadImpl(int64_t in_channels, int64_t num_anchors, int64_t conv_depth) {
  conv = register_module("conv", torch::nn::Sequential());
  torch::NoGradGuard guard;
  for (int64_t i = 0; i < conv_depth; ++i) {
    // Conv2dNormActivation(in, in, kernel_size=3, norm_layer=None): conv (bias) + ReLU.
    ConvActivation block(torch::nn::Conv2dOptions(in_channels, in_channels, 3).padding(1).bias(true), true);
    torch::nn::init::normal_(block->conv()->weight, 0.0, 0.01);
    torch::nn::init::constant_(block->conv()->bias, 0.0);
    conv->push_back(block);
  }
  cls_logits = register_module("cls_logits", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, num_anchors, 1)));
  bbox_pred =
      register_module("bbox_pred", torch::nn::Conv2d(torch::nn::Conv2dOptions(in_channels, num_anchors * 4, 1)));
  for (auto* c : {&cls_logits, &bbox_pred}) {
    torch::nn::init::normal_((*c)->weight, 0.0, 0.01);
    torch::nn::init::constant_((*c)->bias, 0.0);
  }
}

std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> RPNHeadImpl::forward(const std::vector<at::Tensor>& x) {
  std::vector<at::Tensor> logits, bbox_reg;
  for (const at::Tensor& feature : x) {
    const at::Tensor t = conv->forward(feature);
    logits.push_back(cls_logits(t));
    bbox_reg.push_back(bbox_pred(t));
  }
  return {logits, bbox_reg};
}

namespace {

at::Tensor permute_and_flatten(const at::Tensor& layer, int64_t n, int64_t c, int64_t h, int64_t w) {
  return layer.view({n, -1, c, h, w}).permute({0, 3, 4, 1, 2}).reshape({n, -1, c});
}

}  // namespace

std::pair<at::Tensor, at::Tensor> concat_box_prediction_layers(const std::vector<at::Tensor>& box_cls,
                                                               const std::vector<at::Tensor>& box_regression) {
  std::vector<at::Tensor> cls_flat, reg_flat;
  for (size_t i = 0; i < box_cls.size(); ++i) {
    const at::Tensor& cls = box_cls[i];
    const int64_t n = cls.size(0), axc = cls.size(1), h = cls.size(2), w = cls.size(3);
    const int64_t a = box_regression[i].size(1) / 4;
    const int64_t c = axc / a;
    cls_flat.push_back(permute_and_flatten(cls, n, c, h, w));
    reg_flat.push_back(permute_and_flatten(box_regression[i], n, 4, h, w));
  }
  at::Tensor cls = at::cat(cls_flat, 1).flatten(0, -2);
  at::Tensor reg = at::cat(reg_flat, 1).reshape({-1, 4});
  return {cls, reg};
}

// ------------------------------------------------------------ RPN

RegionProposalNetworkImpl::RegionProposalNetworkImpl(const RpnConfig& cfg, const AnchorConfig& anchors,
                                                     int64_t in_channels)
    : anchor_generator(anchors.level_sizes(),
                       std::vector<std::vector<double>>(anchors.sizes.size(), anchors.aspect_ratios)),
      box_coder({1.0, 1.0, 1.0, 1.0}),
      proposal_matcher(cfg.fg_iou_thresh, cfg.bg_iou_thresh, /*allow_low_quality_matches=*/true),
      fg_bg_sampler(cfg.batch_size_per_image, cfg.positive_fraction),
      config(cfg) {
  head = register_module("head", RPNHead(in_channels, anchors.anchors_per_location()));
}

int64_t RegionProposalNetworkImpl::pre_nms_top_n() const {
  return is_training() ? config.pre_nms_top_n_train : config.pre_nms_top_n_test;
}

int64_t RegionProposalNetworkImpl::post_nms_top_n() const {
  return is_training() ? config.post_nms_top_n_train : config.post_nms_top_n_test;
}

std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> RegionProposalNetworkImpl::assign_targets_to_anchors(
    const std::vector<at::Tensor>& anchors, const std::vector<Target>& targets) const {
  std::vector<at::Tensor> labels, matched_gt_boxes;
  for (size_t i = 0; i < anchors.size(); ++i) {
    const at::Tensor& anchors_per_image = anchors[i];
    const at::Tensor& gt_boxes = targets[i].boxes;
    at::Tensor matched, lab;
    if (gt_boxes.numel() == 0) {
      const auto opts = anchors_per_image.options().dtype(at::kFloat);
      matched = at::zeros(anchors_per_image.sizes(), opts);
      lab = at::zeros({anchors_per_image.size(0)}, opts);
    } else {
      const at::Tensor quality = ops::box_iou(gt_boxes, anchors_per_image);
      const at::Tensor matched_idxs = proposal_matcher(quality);
      matched = gt_boxes.index({matched_idxs.clamp_min(0)});
      lab = (matched_idxs >= 0).to(at::kFloat);
      lab.index_put_({matched_idxs == Matcher::kBelowLowThreshold}, 0.0);
      lab.index_put_({matched_idxs == Matcher::kBetweenThresholds}, -1.0);
    }
    labels.push_back(lab);
    matched_gt_boxes.push_back(matched);
  }
  return {labels, matched_gt_boxes};
}

std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> RegionProposalNetworkImpl::filter_proposals(
    const at::Tensor& proposals_in, const at::Tensor& objectness_in, const std::vector<Size2>& image_shapes,
    const std::vector<int64_t>& num_anchors_per_level) const {
  const int64_t num_images = proposals_in.size(0);
  const c10::Device device = proposals_in.device();
  at::Tensor objectness = objectness_in.detach().reshape({num_images, -1});

  std::vector<at::Tensor> level_ids;
  for (size_t idx = 0; idx < num_anchors_per_level.size(); ++idx) {
    level_ids.push_back(at::full({num_anchors_per_level[idx]}, static_cast<int64_t>(idx),
                                 at::TensorOptions().dtype(at::kLong).device(device)));
  }
  at::Tensor levels = at::cat(level_ids, 0).reshape({1, -1}).expand_as(objectness);

  // _get_top_n_idx: top-n per level, independently.
  std::vector<at::Tensor> r;
  int64_t offset = 0;
  for (const at::Tensor& ob : objectness.split_with_sizes(num_anchors_per_level, 1)) {
    const int64_t num_anchors = ob.size(1);
    const int64_t k = std::min(pre_nms_top_n(), num_anchors);
    const at::Tensor top_n_idx = std::get<1>(ob.topk(k, 1));
    r.push_back(top_n_idx + offset);
    offset += num_anchors;
  }
  const at::Tensor top_n_idx = at::cat(r, 1);

  const at::Tensor batch_idx = at::arange(num_images, at::TensorOptions().dtype(at::kLong).device(device)).unsqueeze(1);
  objectness = objectness.index({batch_idx, top_n_idx});
  levels = levels.index({batch_idx, top_n_idx});
  const at::Tensor proposals = proposals_in.index({batch_idx, top_n_idx});
  const at::Tensor objectness_prob = at::sigmoid(objectness);

  std::vector<at::Tensor> final_boxes, final_scores;
  for (int64_t i = 0; i < num_images; ++i) {
    const Size2& shape = image_shapes[static_cast<size_t>(i)];
    at::Tensor boxes = ops::clip_boxes_to_image(proposals[i], shape[0], shape[1]);
    at::Tensor scores = objectness_prob[i];
    at::Tensor lvl = levels[i];

    at::Tensor keep = ops::remove_small_boxes(boxes, config.min_size);
    boxes = boxes.index({keep});
    scores = scores.index({keep});
    lvl = lvl.index({keep});

    keep = at::where(scores >= config.score_thresh)[0];
    boxes = boxes.index({keep});
    scores = scores.index({keep});
    lvl = lvl.index({keep});

    keep = ops::batched_nms(boxes, scores, lvl, config.nms_thresh);
    keep = keep.index({Slice(0, post_nms_top_n())});
    final_boxes.push_back(boxes.index({keep}));
    final_scores.push_back(scores.index({keep}));
  }
  return {final_boxes, final_scores};
}

std::pair<at::Tensor, at::Tensor> RegionProposalNetworkImpl::compute_loss(
    const at::Tensor& objectness_in, const at::Tensor& pred_bbox_deltas, const std::vector<at::Tensor>& labels_in,
    const std::vector<at::Tensor>& regression_targets_in) const {
  auto sampled = fg_bg_sampler(labels_in);
  const at::Tensor sampled_pos_inds = at::where(at::cat(sampled.first, 0))[0];
  const at::Tensor sampled_neg_inds = at::where(at::cat(sampled.second, 0))[0];
  const at::Tensor sampled_inds = at::cat({sampled_pos_inds, sampled_neg_inds}, 0);

  const at::Tensor objectness = objectness_in.flatten();
  const at::Tensor labels = at::cat(labels_in, 0);
  const at::Tensor regression_targets = at::cat(regression_targets_in, 0);

  const at::Tensor box_loss =
      at::smooth_l1_loss(pred_bbox_deltas.index({sampled_pos_inds}), regression_targets.index({sampled_pos_inds}),
                         at::Reduction::Sum, 1.0 / 9) /
      sampled_inds.numel();
  const at::Tensor objectness_loss = at::binary_cross_entropy_with_logits(
      objectness.index({sampled_inds}), labels.index({sampled_inds}), {}, {}, at::Reduction::Mean);
  return {objectness_loss, box_loss};
}

RpnOutput RegionProposalNetworkImpl::forward(const ImageList& images, const std::vector<at::Tensor>& features,
                                             const std::vector<Target>* targets) {
  auto head_out = head->forward(features);
  // Under autocast the head's outputs are bf16 / fp16: proposals, their NMS
  // and the losses are computed in fp32.
  for (auto* outputs : {&head_out.first, &head_out.second}) {
    for (at::Tensor& t : *outputs) t = full_precision(t);
  }
  std::vector<at::Tensor>& objectness_levels = head_out.first;
  const std::vector<at::Tensor> anchors = anchor_generator(images, features);

  const auto num_images = static_cast<int64_t>(anchors.size());
  std::vector<int64_t> num_anchors_per_level;
  for (const at::Tensor& o : objectness_levels) num_anchors_per_level.push_back(o.size(1) * o.size(2) * o.size(3));
  auto concat = concat_box_prediction_layers(objectness_levels, head_out.second);
  const at::Tensor& objectness = concat.first;
  const at::Tensor& pred_bbox_deltas = concat.second;

  // The deltas are detached: Faster R-CNN does not backprop through proposals.
  at::Tensor proposals = box_coder.decode(pred_bbox_deltas.detach(), anchors);
  proposals = proposals.view({num_images, -1, 4});
  RpnOutput out;
  std::tie(out.boxes, out.scores) =
      filter_proposals(proposals, objectness, images.image_sizes, num_anchors_per_level);

  if (is_training()) {
    if (targets == nullptr) throw InputError("missing_targets", "the RPN needs targets in training mode");
    auto assigned = assign_targets_to_anchors(anchors, *targets);
    const std::vector<at::Tensor> regression_targets = box_coder.encode(assigned.second, anchors);
    std::tie(out.loss_objectness, out.loss_rpn_box_reg) =
        compute_loss(objectness, pred_bbox_deltas, assigned.first, regression_targets);
  }
  return out;
}

}  // namespace pasteflow::model
