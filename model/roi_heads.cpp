#include "pasteflow/model/roi_heads.hpp"

#include <algorithm>
#include <cmath>

#include <ATen/ATen.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/precision.hpp"
#include "pasteflow/model/backbone.hpp"

namespace pasteflow::model {

using at::indexing::Slice;

// ------------------------------------------------------------ pooling

LevelMapper::LevelMapper(int64_t k_min, int64_t k_max, int64_t canonical_scale, int64_t canonical_level, double eps)
    : k_min_(k_min), k_max_(k_max), s0_(canonical_scale), lvl0_(canonical_level), eps_(eps) {}

at::Tensor LevelMapper::operator()(const std::vector<at::Tensor>& boxlists) const {
  std::vector<at::Tensor> areas;
  for (const at::Tensor& b : boxlists) areas.push_back(ops::box_area(b));
  const at::Tensor s = at::sqrt(at::cat(areas));
  // Eqn. (1) of the FPN paper, in s's dtype like torchvision.
  const at::Tensor eps = at::scalar_tensor(eps_, s.options());
  at::Tensor target = at::floor(lvl0_ + at::log2(s / s0_) + eps);
  target = at::clamp(target, static_cast<double>(k_min_), static_cast<double>(k_max_));
  return target.to(at::kLong) - k_min_;
}

double infer_scale(const at::Tensor& feature, const Size2& original_size) {
  const double approx = static_cast<double>(feature.size(-2)) / static_cast<double>(original_size[0]);
  // 2 ** float(torch.tensor(approx_scale).log2().round()): a float32 tensor.
  const float e = at::scalar_tensor(approx, at::kFloat).log2().round().item<float>();
  return std::pow(2.0, static_cast<double>(e));
}

MultiScaleRoIAlign::MultiScaleRoIAlign(int64_t num_levels, int64_t output_size, int64_t sampling_ratio,
                                       int64_t canonical_scale, int64_t canonical_level)
    : num_levels_(num_levels),
      output_size_(output_size),
      sampling_ratio_(sampling_ratio),
      canonical_scale_(canonical_scale),
      canonical_level_(canonical_level) {}

at::Tensor MultiScaleRoIAlign::operator()(const std::vector<at::Tensor>& features,
                                          const std::vector<at::Tensor>& boxes,
                                          const std::vector<Size2>& image_shapes) const {
  if (image_shapes.empty()) throw InputError("empty_batch", "MultiScaleRoIAlign: images list should not be empty");
  if (static_cast<int64_t>(features.size()) < num_levels_) {
    throw Error("bad_tensor_argument", "MultiScaleRoIAlign: fewer feature maps than pooled levels");
  }
  // _setup_scales
  Size2 original{0, 0};
  for (const Size2& s : image_shapes) {
    original[0] = std::max(original[0], s[0]);
    original[1] = std::max(original[1], s[1]);
  }
  std::vector<double> scales;
  for (int64_t i = 0; i < num_levels_; ++i) scales.push_back(infer_scale(features[static_cast<size_t>(i)], original));
  const float lvl_min = -at::scalar_tensor(scales.front(), at::kFloat).log2().item<float>();
  const float lvl_max = -at::scalar_tensor(scales.back(), at::kFloat).log2().item<float>();
  const LevelMapper mapper(static_cast<int64_t>(lvl_min), static_cast<int64_t>(lvl_max), canonical_scale_,
                           canonical_level_);

  // _multiscale_roi_align
  const at::Tensor rois = ops::convert_boxes_to_roi_format(boxes);
  if (num_levels_ == 1) {
    return ops::roi_align(features[0], rois, output_size_, output_size_, scales[0], sampling_ratio_, false);
  }
  const at::Tensor levels = mapper(boxes);
  const int64_t num_rois = rois.size(0);
  const int64_t num_channels = features[0].size(1);
  at::Tensor result = at::zeros({num_rois, num_channels, output_size_, output_size_}, features[0].options());
  for (int64_t level = 0; level < num_levels_; ++level) {
    const at::Tensor idx_in_level = at::where(levels == level)[0];
    const at::Tensor rois_per_level = rois.index({idx_in_level});
    const at::Tensor pooled = ops::roi_align(features[static_cast<size_t>(level)], rois_per_level, output_size_,
                                             output_size_, scales[static_cast<size_t>(level)], sampling_ratio_, false);
    result.index_put_({idx_in_level}, pooled.to(result.scalar_type()));
  }
  return result;
}

// ------------------------------------------------------------ box head

TwoMLPHeadImpl::TwoMLPHeadImpl(int64_t in_channels, int64_t representation_size) {
  fc6 = register_module("fc6", torch::nn::Linear(in_channels, representation_size));
  fc7 = register_module("fc7", torch::nn::Linear(representation_size, representation_size));
}

at::Tensor TwoMLPHeadImpl::forward(const at::Tensor& x_in) {
  at::Tensor x = x_in.flatten(1);
  x = at::relu(fc6(x));
  x = at::relu(fc7(x));
  return x;
}

FastRCNNPredictorImpl::FastRCNNPredictorImpl(int64_t in_channels, int64_t num_classes) {
  cls_score = register_module("cls_score", torch::nn::Linear(in_channels, num_classes));
  bbox_pred = register_module("bbox_pred", torch::nn::Linear(in_channels, num_classes * 4));
}

std::pair<at::Tensor, at::Tensor> FastRCNNPredictorImpl::forward(const at::Tensor& x_in) {
  at::Tensor x = x_in;
  if (x.dim() == 4) {
    if (x.size(2) != 1 || x.size(3) != 1) {
      throw Error("bad_tensor_argument", "FastRCNNPredictor: x has the wrong shape, expecting the last two "
                                         "dimensions to be [1, 1]");
    }
  }
  x = x.flatten(1);
  return {cls_score(x), bbox_pred(x)};
}

// ------------------------------------------------------------ mask head

torch::nn::Sequential make_mask_head(int64_t in_channels, const std::vector<int>& layers, int64_t dilation) {
  torch::nn::Sequential seq;
  int64_t next = in_channels;
  torch::NoGradGuard guard;
  for (int features : layers) {
    ConvActivation block(
        torch::nn::Conv2dOptions(next, features, 3).stride(1).padding(dilation).dilation(dilation).bias(true), true);
    torch::nn::init::kaiming_normal_(block->conv()->weight, 0.0, torch::kFanOut, torch::kReLU);
    torch::nn::init::zeros_(block->conv()->bias);
    seq->push_back(block);
    next = features;
  }
  return seq;
}

MaskRCNNPredictorImpl::MaskRCNNPredictorImpl(int64_t in_channels, int64_t dim_reduced, int64_t num_classes) {
  conv5_mask = register_module(
      "conv5_mask", torch::nn::ConvTranspose2d(torch::nn::ConvTranspose2dOptions(in_channels, dim_reduced, 2).stride(2)));
  mask_fcn_logits = register_module("mask_fcn_logits",
                                    torch::nn::Conv2d(torch::nn::Conv2dOptions(dim_reduced, num_classes, 1)));
  torch::NoGradGuard guard;
  torch::nn::init::kaiming_normal_(conv5_mask->weight, 0.0, torch::kFanOut, torch::kReLU);
  torch::nn::init::kaiming_normal_(mask_fcn_logits->weight, 0.0, torch::kFanOut, torch::kReLU);
}

namespace {

/// ConvTranspose2d with kernel 2, stride 2 and no padding as one matrix
/// product: the 2x2 output blocks do not overlap, so every output pixel is a
/// sum over the input channels alone, the sum slow_conv_transpose2d's GEMM
/// forms. LibTorch 1.13 has no oneDNN path for transposed convolutions on the
/// CPU (slow_conv_transpose2d: im2col + GEMM, col2im in backward, fp32 and
/// bf16 alike); a matmul gets oneDNN / BLAS and autocast's bf16. The result
/// keeps the input's memory format.
at::Tensor conv_transpose_2x2(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias) {
  const int64_t n = x.size(0), ci = x.size(1), h = x.size(2), w = x.size(3), co = weight.size(1);
  const at::Tensor y = at::matmul(x.permute({0, 2, 3, 1}), weight.reshape({ci, co * 4}));  // [N, H, W, Co*2*2]
  at::Tensor out;
  if (x.is_contiguous(at::MemoryFormat::ChannelsLast) && !x.is_contiguous()) {
    // [N, H, 2, W, 2, Co] -> NHWC storage, NCHW view
    out = y.view({n, h, w, co, 2, 2}).permute({0, 1, 4, 2, 5, 3}).reshape({n, 2 * h, 2 * w, co}).permute({0, 3, 1, 2});
  } else {
    out = y.view({n, h, w, co, 2, 2}).permute({0, 3, 1, 4, 2, 5}).reshape({n, co, 2 * h, 2 * w});
  }
  return bias.defined() ? out + bias.view({1, -1, 1, 1}).to(out.scalar_type()) : out;
}

}  // namespace

at::Tensor MaskRCNNPredictorImpl::forward(const at::Tensor& x) {
  // conv5_mask is built above with kernel 2, stride 2, no padding, one group.
  at::Tensor y = x.dim() == 4 ? conv_transpose_2x2(x, conv5_mask->weight, conv5_mask->bias) : conv5_mask(x);
  return mask_fcn_logits(at::relu_(y));
}

// ------------------------------------------------------------ losses

std::pair<at::Tensor, at::Tensor> fastrcnn_loss(const at::Tensor& class_logits, const at::Tensor& box_regression_in,
                                                const std::vector<at::Tensor>& labels_in,
                                                const std::vector<at::Tensor>& regression_targets_in) {
  const at::Tensor labels = at::cat(labels_in, 0);
  const at::Tensor regression_targets = at::cat(regression_targets_in, 0);
  const at::Tensor classification_loss =
      at::cross_entropy_loss(class_logits, labels, {}, at::Reduction::Mean, -100, 0.0);

  const at::Tensor pos = at::where(labels > 0)[0];
  const at::Tensor labels_pos = labels.index({pos});
  const int64_t n = class_logits.size(0);
  const at::Tensor box_regression = box_regression_in.reshape({n, box_regression_in.size(-1) / 4, 4});
  at::Tensor box_loss = at::smooth_l1_loss(box_regression.index({pos, labels_pos}), regression_targets.index({pos}),
                                           at::Reduction::Sum, 1.0 / 9);
  box_loss = box_loss / labels.numel();
  return {classification_loss, box_loss};
}

at::Tensor project_masks_on_boxes(const at::Tensor& gt_masks, const at::Tensor& boxes, const at::Tensor& matched_idxs,
                                  int64_t m) {
  const at::Tensor idx = matched_idxs.to(boxes.options());
  const at::Tensor rois = at::cat({idx.unsqueeze(1), boxes}, 1);
  const at::Tensor masks = gt_masks.unsqueeze(1).to(rois.options());
  return ops::roi_align(masks, rois, m, m, 1.0, -1, false).select(1, 0);
}

at::Tensor maskrcnn_loss(const at::Tensor& mask_logits, const std::vector<at::Tensor>& proposals,
                         const std::vector<at::Tensor>& gt_masks, const std::vector<at::Tensor>& gt_labels,
                         const std::vector<at::Tensor>& mask_matched_idxs) {
  const int64_t discretization_size = mask_logits.size(-1);
  std::vector<at::Tensor> labels, mask_targets;
  for (size_t i = 0; i < proposals.size(); ++i) {
    labels.push_back(gt_labels[i].index({mask_matched_idxs[i]}));
    mask_targets.push_back(project_masks_on_boxes(gt_masks[i], proposals[i], mask_matched_idxs[i], discretization_size));
  }
  const at::Tensor label = at::cat(labels, 0);
  const at::Tensor targets = at::cat(mask_targets, 0);
  if (targets.numel() == 0) return mask_logits.sum() * 0;
  const at::Tensor index = at::arange(label.size(0), label.options());
  return at::binary_cross_entropy_with_logits(mask_logits.index({index, label}), targets, {}, {},
                                              at::Reduction::Mean);
}

std::vector<at::Tensor> maskrcnn_inference(const at::Tensor& x, const std::vector<at::Tensor>& labels_in) {
  const at::Tensor mask_prob = x.sigmoid();
  const int64_t num_masks = x.size(0);
  std::vector<int64_t> boxes_per_image;
  for (const at::Tensor& l : labels_in) boxes_per_image.push_back(l.size(0));
  const at::Tensor labels = at::cat(labels_in);
  const at::Tensor index = at::arange(num_masks, labels.options());
  const at::Tensor selected = mask_prob.index({index, labels}).unsqueeze(1);
  return selected.split_with_sizes(boxes_per_image, 0);
}

// ------------------------------------------------------------ RoIHeads

RoIHeadsImpl::RoIHeadsImpl(const ModelConfig& cfg, int64_t in_channels)
    : box_roi_pool(4, cfg.box.roi_pool_size, cfg.box.sampling_ratio),
      mask_roi_pool(4, cfg.mask.roi_pool_size, cfg.mask.sampling_ratio),
      proposal_matcher(cfg.box.fg_iou_thresh, cfg.box.bg_iou_thresh, /*allow_low_quality_matches=*/false),
      fg_bg_sampler(cfg.box.batch_size_per_image, cfg.box.positive_fraction),
      box_coder(cfg.box.bbox_reg_weights),
      config(cfg.box) {
  const int64_t resolution = cfg.box.roi_pool_size;
  box_head = register_module("box_head",
                             TwoMLPHead(in_channels * resolution * resolution, cfg.box.representation_size));
  box_predictor = register_module("box_predictor", FastRCNNPredictor(cfg.box.representation_size, cfg.num_classes));
  if (cfg.mask.enabled) {
    mask_head = register_module("mask_head", make_mask_head(in_channels, cfg.mask.layers, cfg.mask.dilation));
    mask_predictor = register_module(
        "mask_predictor", MaskRCNNPredictor(cfg.mask.layers.back(), cfg.mask.dim_reduced, cfg.num_classes));
  }
}

std::pair<std::vector<at::Tensor>, std::vector<at::Tensor>> RoIHeadsImpl::assign_targets_to_proposals(
    const std::vector<at::Tensor>& proposals, const std::vector<at::Tensor>& gt_boxes,
    const std::vector<at::Tensor>& gt_labels) const {
  std::vector<at::Tensor> matched_idxs, labels;
  for (size_t i = 0; i < proposals.size(); ++i) {
    at::Tensor clamped, lab;
    if (gt_boxes[i].numel() == 0) {
      const auto opts = at::TensorOptions().dtype(at::kLong).device(proposals[i].device());
      clamped = at::zeros({proposals[i].size(0)}, opts);
      lab = at::zeros({proposals[i].size(0)}, opts);
    } else {
      const at::Tensor quality = ops::box_iou(gt_boxes[i], proposals[i]);
      const at::Tensor m = proposal_matcher(quality);
      clamped = m.clamp_min(0);
      lab = gt_labels[i].index({clamped}).to(at::kLong);
      lab.index_put_({m == Matcher::kBelowLowThreshold}, 0);
      lab.index_put_({m == Matcher::kBetweenThresholds}, -1);
    }
    matched_idxs.push_back(clamped);
    labels.push_back(lab);
  }
  return {matched_idxs, labels};
}

std::vector<at::Tensor> RoIHeadsImpl::subsample(const std::vector<at::Tensor>& labels) const {
  auto sampled = fg_bg_sampler(labels);
  std::vector<at::Tensor> out;
  for (size_t i = 0; i < labels.size(); ++i) out.push_back(at::where(sampled.first[i] | sampled.second[i])[0]);
  return out;
}

TrainingSamples RoIHeadsImpl::select_training_samples(std::vector<at::Tensor> proposals,
                                                      const std::vector<Target>& targets) const {
  if (targets.size() != proposals.size()) {
    throw InputError("missing_targets", "RoIHeads: one target per image is needed in training mode");
  }
  const auto dtype = proposals.at(0).scalar_type();
  std::vector<at::Tensor> gt_boxes, gt_labels;
  for (const Target& t : targets) {
    if (!t.boxes.defined() || !t.labels.defined()) {
      throw InputError("missing_targets", "every target needs boxes and labels");
    }
    gt_boxes.push_back(t.boxes.to(dtype));
    gt_labels.push_back(t.labels);
  }
  // add_gt_proposals
  for (size_t i = 0; i < proposals.size(); ++i) proposals[i] = at::cat({proposals[i], gt_boxes[i]});

  TrainingSamples s;
  std::tie(s.matched_idxs, s.labels) = assign_targets_to_proposals(proposals, gt_boxes, gt_labels);
  const std::vector<at::Tensor> sampled_inds = subsample(s.labels);
  std::vector<at::Tensor> matched_gt_boxes;
  for (size_t i = 0; i < proposals.size(); ++i) {
    const at::Tensor& inds = sampled_inds[i];
    proposals[i] = proposals[i].index({inds});
    s.labels[i] = s.labels[i].index({inds});
    s.matched_idxs[i] = s.matched_idxs[i].index({inds});
    at::Tensor gt = gt_boxes[i];
    if (gt.numel() == 0) gt = at::zeros({1, 4}, proposals[i].options());
    matched_gt_boxes.push_back(gt.index({s.matched_idxs[i]}));
  }
  s.regression_targets = box_coder.encode(matched_gt_boxes, proposals);
  s.proposals = std::move(proposals);
  return s;
}

std::vector<Detection> RoIHeadsImpl::postprocess_detections(const at::Tensor& class_logits,
                                                            const at::Tensor& box_regression,
                                                            const std::vector<at::Tensor>& proposals,
                                                            const std::vector<Size2>& image_shapes) const {
  const int64_t num_classes = class_logits.size(-1);
  std::vector<int64_t> boxes_per_image;
  for (const at::Tensor& p : proposals) boxes_per_image.push_back(p.size(0));
  const at::Tensor pred_boxes = box_coder.decode(box_regression, proposals);
  const at::Tensor pred_scores = at::softmax(class_logits, -1);
  const std::vector<at::Tensor> boxes_list = pred_boxes.split_with_sizes(boxes_per_image, 0);
  const std::vector<at::Tensor> scores_list = pred_scores.split_with_sizes(boxes_per_image, 0);

  std::vector<Detection> out;
  for (size_t i = 0; i < proposals.size(); ++i) {
    const Size2& shape = image_shapes[i];
    at::Tensor boxes = ops::clip_boxes_to_image(boxes_list[i], shape[0], shape[1]);
    at::Tensor scores = scores_list[i];
    at::Tensor labels = at::arange(num_classes, at::TensorOptions().dtype(at::kLong).device(class_logits.device()));
    labels = labels.view({1, -1}).expand_as(scores);

    // Drop the background column, then every class prediction is an instance.
    boxes = boxes.index({Slice(), Slice(1)}).reshape({-1, 4});
    scores = scores.index({Slice(), Slice(1)}).reshape(-1);
    labels = labels.index({Slice(), Slice(1)}).reshape(-1);

    at::Tensor inds = at::where(scores > config.score_thresh)[0];
    boxes = boxes.index({inds});
    scores = scores.index({inds});
    labels = labels.index({inds});

    at::Tensor keep = ops::remove_small_boxes(boxes, 1e-2);
    boxes = boxes.index({keep});
    scores = scores.index({keep});
    labels = labels.index({keep});

    keep = ops::batched_nms(boxes, scores, labels, config.nms_thresh);
    keep = keep.index({Slice(0, config.detections_per_img)});
    Detection d;
    d.boxes = boxes.index({keep});
    d.scores = scores.index({keep});
    d.labels = labels.index({keep});
    out.push_back(std::move(d));
  }
  return out;
}

RoIHeadsOutput RoIHeadsImpl::forward(const std::vector<at::Tensor>& features_in,
                                     const std::vector<at::Tensor>& proposals_in,
                                     const std::vector<Size2>& image_shapes, const std::vector<Target>* targets) {
  // RoIAlign computes in fp32 on NCHW maps (ops::roi_align's autocast rule;
  // its kernels read contiguous input): bf16 / fp16 or channels-last feature
  // maps are converted once here for both poolers, and their gradients
  // summed in fp32 before the one conversion back. fp32 NCHW maps pass as is.
  std::vector<at::Tensor> features = features_in;
  for (at::Tensor& f : features) f = full_precision(f).contiguous();
  if (targets != nullptr) {
    for (const Target& t : *targets) {
      if (!t.boxes.defined() || !at::isFloatingType(t.boxes.scalar_type())) {
        throw InputError("bad_target", "target boxes must be of float type");
      }
      if (!t.labels.defined() || t.labels.scalar_type() != at::kLong) {
        throw InputError("bad_target", "target labels must be of int64 type");
      }
    }
  }
  std::vector<at::Tensor> proposals = proposals_in;
  TrainingSamples samples;
  const bool training = is_training();
  if (training) {
    if (targets == nullptr) throw InputError("missing_targets", "RoIHeads needs targets in training mode");
    if (has_mask()) {
      for (const Target& t : *targets) {
        if (!t.masks.defined()) throw InputError("missing_targets", "every target needs masks (mask branch)");
      }
    }
    samples = select_training_samples(proposals, *targets);
    proposals = samples.proposals;
  }

  at::Tensor box_features = box_roi_pool(features, proposals, image_shapes);
  box_features = box_head->forward(box_features);
  auto predicted = box_predictor->forward(box_features);
  // Autocast: the predictions leave the heads in fp32 (losses, decoding, NMS).
  const at::Tensor class_logits = full_precision(predicted.first);
  const at::Tensor box_regression = full_precision(predicted.second);

  RoIHeadsOutput out;
  if (training) {
    auto losses = fastrcnn_loss(class_logits, box_regression, samples.labels, samples.regression_targets);
    out.losses["loss_classifier"] = losses.first;
    out.losses["loss_box_reg"] = losses.second;
  } else {
    out.detections = postprocess_detections(class_logits, box_regression, proposals, image_shapes);
  }

  if (has_mask()) {
    std::vector<at::Tensor> mask_proposals, pos_matched_idxs;
    if (training) {
      for (size_t i = 0; i < proposals.size(); ++i) {
        const at::Tensor pos = at::where(samples.labels[i] > 0)[0];
        mask_proposals.push_back(proposals[i].index({pos}));
        pos_matched_idxs.push_back(samples.matched_idxs[i].index({pos}));
      }
    } else {
      for (const Detection& d : out.detections) mask_proposals.push_back(d.boxes);
    }
    at::Tensor mask_features = mask_roi_pool(features, mask_proposals, image_shapes);
    mask_features = mask_head->forward(mask_features);
    const at::Tensor mask_logits = full_precision(mask_predictor->forward(mask_features));
    if (training) {
      std::vector<at::Tensor> gt_masks, gt_labels;
      for (const Target& t : *targets) {
        gt_masks.push_back(t.masks);
        gt_labels.push_back(t.labels);
      }
      out.losses["loss_mask"] = maskrcnn_loss(mask_logits, mask_proposals, gt_masks, gt_labels, pos_matched_idxs);
    } else {
      std::vector<at::Tensor> labels;
      for (const Detection& d : out.detections) labels.push_back(d.labels);
      const std::vector<at::Tensor> probs = maskrcnn_inference(mask_logits, labels);
      for (size_t i = 0; i < probs.size(); ++i) out.detections[i].masks = probs[i];
    }
  }
  return out;
}

}  // namespace pasteflow::model
