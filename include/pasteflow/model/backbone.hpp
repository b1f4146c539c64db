// ResNet-18/34/50/101 body + FPN, as torchvision 0.14's detection backbone
// (torchvision/models/resnet.py, models/detection/backbone_utils.py
// _resnet_fpn_extractor, ops/feature_pyramid_network.py). Module names are
// torchvision's state_dict names: body.conv1, body.bn1, body.layer1.0.conv1,
// body.layer1.0.downsample.0/1, fpn.inner_blocks.0.0, fpn.layer_blocks.0.0.
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/any.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/container/sequential.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "pasteflow/model/config.hpp"

namespace pasteflow::model {

/// torchvision.ops.Conv2dNormActivation with norm_layer=None: a Sequential
/// of a biased conv ("0") and, optionally, an in-place ReLU ("1"). A
/// SequentialImpl with a non-templated forward so that it nests in other
/// Sequentials (state_dict names "<block>.0.weight" like torchvision's).
struct ConvActivationImpl : torch::nn::SequentialImpl {
  ConvActivationImpl(const torch::nn::Conv2dOptions& conv, bool relu);
  at::Tensor forward(at::Tensor x) { return torch::nn::SequentialImpl::forward(std::move(x)); }
  /// The conv ("0").
  torch::nn::Conv2d conv() const { return torch::nn::Conv2d(ptr<torch::nn::Conv2dImpl>(0)); }
};
TORCH_MODULE(ConvActivation);

/// torchvision.ops.FrozenBatchNorm2d: buffers weight, bias, running_mean,
/// running_var (no parameters); forward x * scale + (b - rm * scale) with
/// scale = w * rsqrt(rv + eps).
struct FrozenBatchNorm2dImpl : torch::nn::Module {
  FrozenBatchNorm2dImpl(int64_t num_features, double eps);
  at::Tensor forward(const at::Tensor& x);

  at::Tensor weight, bias, running_mean, running_var;
  double eps;
};
TORCH_MODULE(FrozenBatchNorm2d);

/// torch::nn::GroupNorm that runs under autocast: bf16 / fp16 activations
/// are normalised in fp32 and returned in their own dtype (torch.autocast's
/// fp32 rule for group_norm on CUDA; LibTorch 1.13's CPU autocast has no rule
/// and group_norm rejects bf16 input with fp32 weights). Same parameters,
/// same state_dict keys, identical in fp32.
struct GroupNorm2dImpl : torch::nn::GroupNormImpl {
  using torch::nn::GroupNormImpl::GroupNormImpl;
  at::Tensor forward(const at::Tensor& x);
};
TORCH_MODULE(GroupNorm2d);

/// The norm layer of the body, chosen by BackboneConfig::norm:
/// FrozenBatchNorm2d or GroupNorm2d(groups, channels, eps).
torch::nn::AnyModule make_norm(const BackboneConfig& config, int64_t channels);

/// torchvision BasicBlock (expansion 1): conv1 3x3 (stride), bn1, relu,
/// conv2 3x3, bn2, + identity / downsample, relu.
struct BasicBlockImpl : torch::nn::Module {
  BasicBlockImpl(const BackboneConfig& config, int64_t inplanes, int64_t planes, int64_t stride,
                 bool downsample);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::AnyModule bn1, bn2;
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(BasicBlock);

/// torchvision Bottleneck (ResNet v1.5, expansion 4, stride on conv2):
/// conv1 1x1, bn1, relu, conv2 3x3 (stride), bn2, relu, conv3 1x1, bn3,
/// + identity / downsample, relu.
struct BottleneckImpl : torch::nn::Module {
  BottleneckImpl(const BackboneConfig& config, int64_t inplanes, int64_t planes, int64_t stride,
                 bool downsample);
  at::Tensor forward(const at::Tensor& x);

  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr}, conv3{nullptr};
  torch::nn::AnyModule bn1, bn2, bn3;
  torch::nn::Sequential downsample{nullptr};
};
TORCH_MODULE(Bottleneck);

/// The ResNet body with IntermediateLayerGetter semantics: forward returns
/// the outputs of layer1..layer4 (torchvision's feature names "0".."3");
/// avgpool and fc are not built.
struct ResNetBodyImpl : torch::nn::Module {
  explicit ResNetBodyImpl(const BackboneConfig& config);
  std::vector<at::Tensor> forward(const at::Tensor& x);

  /// Channels of layer1..layer4 outputs (64..512 x expansion).
  std::vector<int64_t> out_channels() const { return out_channels_; }

  torch::nn::Conv2d conv1{nullptr};
  torch::nn::AnyModule bn1;
  torch::nn::Sequential layer1{nullptr}, layer2{nullptr}, layer3{nullptr}, layer4{nullptr};

 private:
  std::vector<int64_t> out_channels_;
};
TORCH_MODULE(ResNetBody);

/// torchvision FeaturePyramidNetwork with LastLevelMaxPool: inner_blocks
/// (1x1), layer_blocks (3x3), top-down nearest upsampling to each lateral's
/// size; P6 = max_pool2d(P5, kernel 1, stride 2). Returns P2..P6
/// (torchvision's "0", "1", "2", "3", "pool").
struct FeaturePyramidNetworkImpl : torch::nn::Module {
  FeaturePyramidNetworkImpl(const std::vector<int64_t>& in_channels, int64_t out_channels);
  std::vector<at::Tensor> forward(const std::vector<at::Tensor>& x);

  torch::nn::ModuleList inner_blocks{nullptr}, layer_blocks{nullptr};
};
TORCH_MODULE(FeaturePyramidNetwork);

/// BackboneWithFPN: body + fpn; parameters outside the trainable layers are
/// frozen (requires_grad false) as in _resnet_fpn_extractor.
struct BackboneWithFPNImpl : torch::nn::Module {
  explicit BackboneWithFPNImpl(const BackboneConfig& config);
  /// images [N, 3, H, W] -> 5 feature maps of fpn_channels channels.
  std::vector<at::Tensor> forward(const at::Tensor& images);
  int64_t out_channels() const { return out_channels_; }

  ResNetBody body{nullptr};
  FeaturePyramidNetwork fpn{nullptr};

 private:
  int64_t out_channels_;
};
TORCH_MODULE(BackboneWithFPN);

/// Names (relative to the body) of the body stages _resnet_fpn_extractor
/// keeps trainable: ["layer4", "layer3", "layer2", "layer1", "conv1"][:n]
/// plus "bn1" when n == 5.
std::vector<std::string> trainable_body_layers(int trainable_layers);

}  // namespace pasteflow::model
