// Mask R-CNN (ResNet-FPN) in LibTorch with torchvision 0.14 semantics
// (models/detection/generalized_rcnn.py + mask_rcnn.py). Module names equal
// torchvision's state_dict keys, so maskrcnn_resnet50_fpn weights load with
// no renaming (model/weights.hpp):
//
//   backbone.body.conv1.weight, backbone.body.layer1.0.conv1.weight,
//   backbone.fpn.inner_blocks.0.0.weight, rpn.head.conv.0.0.weight,
//   roi_heads.box_head.fc6.weight, roi_heads.mask_head.0.0.weight,
//   roi_heads.mask_predictor.conv5_mask.weight, ...
//
//   pasteflow::model::MaskRCNN net(config);      // ModelConfig
//   pasteflow::model::load_weights(*net, "maskrcnn.pt");
//   net->eval();
//   auto out = net->forward({image});            // float [3, H, W] in [0, 1]
//   out.detections[0].boxes / scores / labels / masks
//
// Training: net->train(); out = net->forward(images, targets) gives
// out.losses {loss_classifier, loss_box_reg, loss_mask, loss_objectness,
// loss_rpn_box_reg}. set_permutation(hash_permutation) (or config.sampler
// "deterministic") makes the RPN and RoI samplers reproducible.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/pimpl.h>

#include "pasteflow/core/random.hpp"
#include "pasteflow/model/backbone.hpp"
#include "pasteflow/model/config.hpp"
#include "pasteflow/model/det_utils.hpp"
#include "pasteflow/model/precision.hpp"
#include "pasteflow/model/roi_heads.hpp"
#include "pasteflow/model/rpn.hpp"

namespace pasteflow::model {

struct MaskRCNNOutput {
  /// Training: the five losses (and only them). Evaluation: empty.
  std::map<std::string, at::Tensor> losses;
  /// Evaluation: per image, boxes in the original image frame and masks
  /// [n, 1, H, W] (probabilities pasted at full resolution). Training: empty.
  std::vector<Detection> detections;
};

struct MaskRCNNImpl : torch::nn::Module {
  /// Builds every module (random init as torchvision) on config.device;
  /// throws ConfigError (validate(), or a device LibTorch cannot parse).
  /// Does not load config.weights (see load_model / load_weights).
  explicit MaskRCNNImpl(const ModelConfig& config);

  /// GeneralizedRCNN.forward: `images` float [3, H_i, W_i] in [0, 1] of any
  /// sizes; `targets` (training: required, one per image, in the images'
  /// frame; masks uint8 [n, H_i, W_i]) are resized with the images. Inputs
  /// are moved to the model's device.
  /// Throws InputError: "missing_targets", "degenerate_box", "bad_image".
  MaskRCNNOutput forward(const std::vector<at::Tensor>& images, const std::vector<Target>& targets = {});

  /// The same after the transform: `images` is a normalised, resized,
  /// padded batch (stages::collate's Batch), targets in the resized frame.
  /// original_sizes (evaluation) are the frames detections are mapped back
  /// to; empty = the resized sizes (no rescaling).
  MaskRCNNOutput forward_batch(const ImageList& images, const std::vector<Target>& targets = {},
                               const std::vector<Size2>& original_sizes = {});

  /// GeneralizedRCNNTransform.forward: normalize, resize (training draws the
  /// min size from config.transform.min_size with `rng()`), batch_images.
  /// Targets (may be null) are replaced by their resized copies.
  ImageList transform(const std::vector<at::Tensor>& images, std::vector<Target>* targets);

  /// GeneralizedRCNNTransform.postprocess: boxes to the original frame,
  /// masks pasted into it (ops::paste_masks_in_image).
  void postprocess(std::vector<Detection>& detections, const std::vector<Size2>& image_sizes,
                   const std::vector<Size2>& original_sizes) const;

  /// Mixed precision of forward / forward_batch (solver.amp): the backbone
  /// and heads run under an AutocastGuard on the model's device; outputs,
  /// losses and detections stay fp32. Throws ConfigError "unsupported" when
  /// the device cannot autocast to `amp` (fp16 on CPU). Default: off.
  void set_amp(Amp amp);
  Amp amp() const { return amp_; }
  /// Every 4-D parameter and buffer to channels-last (true) or contiguous
  /// (false) memory format in place (Tensor::set_data, so optimizers and
  /// hooks keep their references); forward_batch then gives the backbone a
  /// channels-last batch. The constructor applies config.channels_last.
  void set_channels_last(bool on);
  bool channels_last() const { return channels_last_; }

  /// Permutation used by both samplers (RPN anchors, RoI proposals).
  void set_permutation(const PermutationFn& permutation);
  /// The generator of the training min-size choice.
  Rng& rng() { return rng_; }
  const ModelConfig& config() const { return config_; }
  const c10::Device& device() const { return device_; }

  BackboneWithFPN backbone{nullptr};
  RegionProposalNetwork rpn{nullptr};
  RoIHeads roi_heads{nullptr};

 private:
  ModelConfig config_;
  c10::Device device_{c10::kCPU};
  Rng rng_{0};
  Amp amp_ = Amp::kOff;
  bool channels_last_ = false;
};
TORCH_MODULE(MaskRCNN);

/// MaskRCNN(config) with config.weights loaded when it is not empty
/// (load_weights: InputError naming the file and the tensor on a mismatch).
MaskRCNN load_model(const ModelConfig& config);

}  // namespace pasteflow::model
