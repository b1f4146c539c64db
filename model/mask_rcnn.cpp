#include "pasteflow/model/mask_rcnn.hpp"

#include <sstream>

#include <ATen/ATen.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/precision.hpp"
#include "pasteflow/model/weights.hpp"
#include "pasteflow/stages/rcnn_transform.hpp"

namespace pasteflow::model {

namespace rcnn = stages::rcnn;

namespace {

c10::Device parse_device(const std::string& text) {
  try {
    return c10::Device(text);
  } catch (const std::exception&) {
    Location where;
    where.key = "model.device";
    throw ConfigError("bad_device", "LibTorch cannot parse the device '" + text + "'", where);
  }
}

}  // namespace

MaskRCNNImpl::MaskRCNNImpl(const ModelConfig& config) : config_(config), device_(parse_device(config.device)) {
  validate(config_);
  backbone = register_module("backbone", BackboneWithFPN(config_.backbone));
  rpn = register_module("rpn", RegionProposalNetwork(config_.rpn, config_.anchors, backbone->out_channels()));
  roi_heads = register_module("roi_heads", RoIHeads(config_, backbone->out_channels()));
  set_permutation(permutation_by_name(config_.sampler));
  to(device_);
  if (config_.channels_last) set_channels_last(true);
}

void MaskRCNNImpl::set_amp(Amp amp) {
  require_amp_supported(amp, device_.type(), "solver.amp");
  amp_ = amp;
}

void MaskRCNNImpl::set_channels_last(bool on) {
  const at::MemoryFormat format = on ? at::MemoryFormat::ChannelsLast : at::MemoryFormat::Contiguous;
  torch::NoGradGuard no_grad;
  auto convert = [&](at::Tensor& t) {
    if (t.defined() && t.dim() == 4 && !t.is_contiguous(format)) t.set_data(t.contiguous(format));
  };
  for (auto& p : parameters(/*recurse=*/true)) convert(p);
  for (auto& b : buffers(/*recurse=*/true)) convert(b);
  channels_last_ = on;
}

MaskRCNN load_model(const ModelConfig& config) {
  MaskRCNN net(config);
  if (!config.weights.empty()) load_weights(*net, config.weights);
  return net;
}

void MaskRCNNImpl::set_permutation(const PermutationFn& permutation) {
  rpn->fg_bg_sampler.set_permutation(permutation);
  roi_heads->fg_bg_sampler.set_permutation(permutation);
}

ImageList MaskRCNNImpl::transform(const std::vector<at::Tensor>& images, std::vector<Target>* targets) {
  if (images.empty()) throw InputError("bad_image", "no images");
  if (targets != nullptr && targets->size() != images.size()) {
    throw InputError("missing_targets", "one target per image is needed (" + std::to_string(images.size()) +
                                            " images, " + std::to_string(targets->size()) + " targets)");
  }
  const TransformConfig& t = config_.transform;
  std::vector<at::Tensor> resized;
  ImageList out;
  for (size_t i = 0; i < images.size(); ++i) {
    const at::Tensor image = images[i].to(device_);
    if (image.dim() != 3) {
      throw InputError("bad_image", "images are expected to be 3d tensors [C, H, W]");
    }
    const at::Tensor normalized = rcnn::normalize(image, t.image_mean, t.image_std);
    const int size = rcnn::choose_min_size(t.min_size, is_training(), rng_);
    at::Tensor masks;
    if (targets != nullptr) {
      Target& target = (*targets)[i];
      for (at::Tensor* t : {&target.boxes, &target.labels, &target.masks}) {
        if (t->defined()) *t = t->to(device_);
      }
      masks = target.masks;
    }
    rcnn::Resized r = rcnn::resize_image_and_masks(normalized, static_cast<double>(size),
                                                   static_cast<double>(t.max_size), masks);
    const Size2 original{image.size(-2), image.size(-1)};
    const Size2 now{r.image.size(-2), r.image.size(-1)};
    if (targets != nullptr) {
      Target& target = (*targets)[i];
      if (target.boxes.defined()) target.boxes = rcnn::resize_boxes(target.boxes, original, now);
      if (masks.defined()) target.masks = r.masks;
    }
    out.image_sizes.push_back(now);
    resized.push_back(r.image);
  }
  out.tensors = rcnn::batch_images(resized, t.size_divisible);
  return out;
}

void MaskRCNNImpl::postprocess(std::vector<Detection>& detections, const std::vector<Size2>& image_sizes,
                               const std::vector<Size2>& original_sizes) const {
  for (size_t i = 0; i < detections.size(); ++i) {
    Detection& d = detections[i];
    d.boxes = rcnn::postprocess_boxes(d.boxes, image_sizes[i], original_sizes[i]);
    if (d.masks.defined()) {
      d.masks = ops::paste_masks_in_image(d.masks, d.boxes, original_sizes[i][0], original_sizes[i][1]);
    }
  }
}

namespace {

void check_targets(const std::vector<Target>& targets) {
  for (size_t i = 0; i < targets.size(); ++i) {
    const at::Tensor& boxes = targets[i].boxes;
    if (!boxes.defined() || boxes.dim() != 2 || boxes.size(-1) != 4) {
      throw InputError("bad_target", "target " + std::to_string(i) + ": boxes must be a tensor of shape [N, 4]");
    }
    // GeneralizedRCNN: every box needs positive height and width.
    const at::Tensor degenerate = (boxes.index({at::indexing::Slice(), at::indexing::Slice(2)}) <=
                                   boxes.index({at::indexing::Slice(), at::indexing::Slice(at::indexing::None, 2)}))
                                      .any(1);
    if (degenerate.any().item<bool>()) {
      const int64_t b = at::where(degenerate)[0][0].item<int64_t>();
      const at::Tensor box = boxes[b].to(at::kDouble).cpu().contiguous();
      const double* v = box.data_ptr<double>();
      std::ostringstream msg;
      msg << "all bounding boxes should have positive height and width; found invalid box [" << v[0] << ", "
          << v[1] << ", " << v[2] << ", " << v[3] << "] for target at index " << i;
      throw InputError("degenerate_box", msg.str());
    }
  }
}

}  // namespace

MaskRCNNOutput MaskRCNNImpl::forward(const std::vector<at::Tensor>& images, const std::vector<Target>& targets) {
  const bool training = is_training();
  if (training && targets.size() != images.size()) {
    throw InputError("missing_targets", "targets should not be empty in training mode");
  }
  std::vector<Size2> original_sizes;
  for (const at::Tensor& img : images) {
    if (img.dim() < 2) throw InputError("bad_image", "images need at least two dimensions (H, W)");
    original_sizes.push_back({img.size(-2), img.size(-1)});
  }
  std::vector<Target> resized_targets = targets;
  const ImageList batch = transform(images, targets.empty() ? nullptr : &resized_targets);
  return forward_batch(batch, resized_targets, original_sizes);
}

MaskRCNNOutput MaskRCNNImpl::forward_batch(const ImageList& images, const std::vector<Target>& targets,
                                           const std::vector<Size2>& original_sizes) {
  const bool training = is_training();
  const std::vector<Target>* t = nullptr;
  if (training) {
    if (targets.size() != images.image_sizes.size()) {
      throw InputError("missing_targets", "one target per image is needed in training mode");
    }
    check_targets(targets);
    t = &targets;
  }
  RpnOutput proposals;
  RoIHeadsOutput heads;
  {
    // Mixed precision covers the network; its outputs leave the RPN and the
    // RoI heads in fp32 (model/precision.hpp).
    const AutocastGuard autocast(device_.type(), amp_);
    std::vector<at::Tensor> features;
    if (channels_last_ && images.tensors.dim() == 4) {
      features = backbone->forward(images.tensors.contiguous(at::MemoryFormat::ChannelsLast));
    } else {
      features = backbone->forward(images.tensors);
    }
    proposals = rpn->forward(images, features, t);
    heads = roi_heads->forward(features, proposals.boxes, images.image_sizes, t);
  }

  MaskRCNNOutput out;
  if (training) {
    out.losses = std::move(heads.losses);
    out.losses["loss_objectness"] = proposals.loss_objectness;
    out.losses["loss_rpn_box_reg"] = proposals.loss_rpn_box_reg;
  } else {
    out.detections = std::move(heads.detections);
    postprocess(out.detections, images.image_sizes, original_sizes.empty() ? images.image_sizes : original_sizes);
  }
  return out;
}

}  // namespace pasteflow::model
