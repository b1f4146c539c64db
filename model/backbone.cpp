#include "pasteflow/model/backbone.hpp"

#include <torch/nn/functional/activation.h>
#include <torch/nn/functional/pooling.h>
#include <torch/nn/functional/upsampling.h>
#include <torch/nn/init.h>
#include <torch/nn/modules/activation.h>
#include <torch/nn/modules/normalization.h>

#include <ATen/ATen.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/precision.hpp"

namespace pasteflow::model {

namespace F = torch::nn::functional;

ConvActivationImpl::ConvActivationImpl(const torch::nn::Conv2dOptions& conv, bool relu) {
  push_back(torch::nn::Conv2d(conv));
  if (relu) push_back(torch::nn::ReLU(torch::nn::ReLUOptions(true)));
}

// ------------------------------------------------------------ FrozenBatchNorm2d

FrozenBatchNorm2dImpl::FrozenBatchNorm2dImpl(int64_t num_features, double eps_) : eps(eps_) {
  weight = register_buffer("weight", torch::ones({num_features}));
  bias = register_buffer("bias", torch::zeros({num_features}));
  running_mean = register_buffer("running_mean", torch::zeros({num_features}));
  running_var = register_buffer("running_var", torch::ones({num_features}));
}

at::Tensor FrozenBatchNorm2dImpl::forward(const at::Tensor& x) {
  // torchvision.ops.misc.FrozenBatchNorm2d.forward, op for op.
  const at::Tensor w = weight.reshape({1, -1, 1, 1});
  const at::Tensor b = bias.reshape({1, -1, 1, 1});
  const at::Tensor rv = running_var.reshape({1, -1, 1, 1});
  const at::Tensor rm = running_mean.reshape({1, -1, 1, 1});
  const at::Tensor scale = w * (rv + eps).rsqrt();
  const at::Tensor shift = b - rm * scale;
  if (is_reduced_precision(x.scalar_type())) {
    // Autocast: the affine map in the activations' precision (fp32 buffers
    // would promote every bf16 activation back to fp32 between convolutions).
    return x * scale.to(x.scalar_type()) + shift.to(x.scalar_type());
  }
  return x * scale + shift;
}

at::Tensor GroupNorm2dImpl::forward(const at::Tensor& x) {
  if (!is_reduced_precision(x.scalar_type())) return torch::nn::GroupNormImpl::forward(x);
  return torch::nn::GroupNormImpl::forward(x.to(at::kFloat)).to(x.scalar_type());
}

torch::nn::AnyModule make_norm(const BackboneConfig& config, int64_t channels) {
  if (config.norm == "frozen_bn") return torch::nn::AnyModule(FrozenBatchNorm2d(channels, config.norm_eps));
  if (config.norm == "group_norm") {
    return torch::nn::AnyModule(GroupNorm2d(
        torch::nn::GroupNormOptions(config.group_norm_groups, channels).eps(config.norm_eps)));
  }
  Location where;
  where.key = "model.backbone.norm";
  throw ConfigError("bad_choice", "unknown norm '" + config.norm + "' (frozen_bn | group_norm)", where);
}

namespace {

torch::nn::Conv2d conv(int64_t in, int64_t out, int64_t kernel, int64_t stride, int64_t padding, bool bias,
                       int64_t dilation = 1) {
  return torch::nn::Conv2d(
      torch::nn::Conv2dOptions(in, out, kernel).stride(stride).padding(padding).dilation(dilation).bias(bias));
}

/// torchvision ResNet.__init__: kaiming_normal_(fan_out, relu) on convs.
void init_conv(torch::nn::Conv2d& c) {
  torch::NoGradGuard guard;
  torch::nn::init::kaiming_normal_(c->weight, 0.0, torch::kFanOut, torch::kReLU);
}

torch::nn::Sequential make_downsample(const BackboneConfig& config, int64_t inplanes, int64_t outplanes,
                                      int64_t stride) {
  torch::nn::Sequential seq;
  auto c = conv(inplanes, outplanes, 1, stride, 0, false);
  init_conv(c);
  seq->push_back(c);
  seq->push_back(make_norm(config, outplanes));
  return seq;
}

}  // namespace

// ------------------------------------------------------------ blocks

BasicBlockImpl::BasicBlockImpl(const BackboneConfig& config, int64_t inplanes, int64_t planes, int64_t stride,
                               bool with_downsample) {
  conv1 = register_module("conv1", conv(inplanes, planes, 3, stride, 1, false));
  bn1 = make_norm(config, planes);
  register_module("bn1", bn1.ptr());
  conv2 = register_module("conv2", conv(planes, planes, 3, 1, 1, false));
  bn2 = make_norm(config, planes);
  register_module("bn2", bn2.ptr());
  init_conv(conv1);
  init_conv(conv2);
  if (with_downsample) downsample = register_module("downsample", make_downsample(config, inplanes, planes, stride));
}

at::Tensor BasicBlockImpl::forward(const at::Tensor& x) {
  at::Tensor out = conv1(x);
  out = bn1.forward<at::Tensor>(out);
  out = at::relu_(out);
  out = conv2(out);
  out = bn2.forward<at::Tensor>(out);
  const at::Tensor identity = downsample ? downsample->forward(x) : x;
  out += identity;
  return at::relu_(out);
}

BottleneckImpl::BottleneckImpl(const BackboneConfig& config, int64_t inplanes, int64_t planes, int64_t stride,
                               bool with_downsample) {
  const int64_t width = planes;  // groups 1, base width 64
  conv1 = register_module("conv1", conv(inplanes, width, 1, 1, 0, false));
  bn1 = make_norm(config, width);
  register_module("bn1", bn1.ptr());
  conv2 = register_module("conv2", conv(width, width, 3, stride, 1, false));
  bn2 = make_norm(config, width);
  register_module("bn2", bn2.ptr());
  conv3 = register_module("conv3", conv(width, planes * 4, 1, 1, 0, false));
  bn3 = make_norm(config, planes * 4);
  register_module("bn3", bn3.ptr());
  init_conv(conv1);
  init_conv(conv2);
  init_conv(conv3);
  if (with_downsample) {
    downsample = register_module("downsample", make_downsample(config, inplanes, planes * 4, stride));
  }
}

at::Tensor BottleneckImpl::forward(const at::Tensor& x) {
  at::Tensor out = conv1(x);
  out = bn1.forward<at::Tensor>(out);
  out = at::relu_(out);
  out = conv2(out);
  out = bn2.forward<at::Tensor>(out);
  out = at::relu_(out);
  out = conv3(out);
  out = bn3.forward<at::Tensor>(out);
  const at::Tensor identity = downsample ? downsample->forward(x) : x;
  out += identity;
  return at::relu_(out);
}

// ------------------------------------------------------------ ResNet body

ResNetBodyImpl::ResNetBodyImpl(const BackboneConfig& config) {
  std::vector<int64_t> blocks;
  bool bottleneck = true;
  switch (config.depth) {
    case 18: blocks = {2, 2, 2, 2}; bottleneck = false; break;
    case 34: blocks = {3, 4, 6, 3}; bottleneck = false; break;
    case 50: blocks = {3, 4, 6, 3}; break;
    case 101: blocks = {3, 4, 23, 3}; break;
    default: {
      Location where;
      where.key = "model.backbone.depth";
      throw ConfigError("out_of_range", "ResNet depth must be 18, 34, 50 or 101", where);
    }
  }
  const int64_t expansion = bottleneck ? 4 : 1;
  conv1 = register_module("conv1", conv(3, 64, 7, 2, 3, false));
  init_conv(conv1);
  bn1 = make_norm(config, 64);
  register_module("bn1", bn1.ptr());

  int64_t inplanes = 64;
  const int64_t planes_of[4] = {64, 128, 256, 512};
  torch::nn::Sequential* layers[4] = {&layer1, &layer2, &layer3, &layer4};
  for (int i = 0; i < 4; ++i) {
    const int64_t planes = planes_of[i];
    const int64_t stride = i == 0 ? 1 : 2;
    torch::nn::Sequential layer;
    for (int64_t b = 0; b < blocks[static_cast<size_t>(i)]; ++b) {
      const int64_t s = b == 0 ? stride : 1;
      const bool ds = b == 0 && (stride != 1 || inplanes != planes * expansion);
      if (bottleneck) {
        layer->push_back(Bottleneck(config, inplanes, planes, s, ds));
      } else {
        layer->push_back(BasicBlock(config, inplanes, planes, s, ds));
      }
      inplanes = planes * expansion;
    }
    *layers[i] = register_module("layer" + std::to_string(i + 1), layer);
    out_channels_.push_back(planes * expansion);
  }
}

std::vector<at::Tensor> ResNetBodyImpl::forward(const at::Tensor& x) {
  at::Tensor y = conv1(x);
  y = bn1.forward<at::Tensor>(y);
  y = at::relu_(y);
  y = at::max_pool2d(y, {3, 3}, {2, 2}, {1, 1});
  std::vector<at::Tensor> out;
  y = layer1->forward(y);
  out.push_back(y);
  y = layer2->forward(y);
  out.push_back(y);
  y = layer3->forward(y);
  out.push_back(y);
  y = layer4->forward(y);
  out.push_back(y);
  return out;
}

// ------------------------------------------------------------ FPN

FeaturePyramidNetworkImpl::FeaturePyramidNetworkImpl(const std::vector<int64_t>& in_channels,
                                                     int64_t out_channels) {
  inner_blocks = register_module("inner_blocks", torch::nn::ModuleList());
  layer_blocks = register_module("layer_blocks", torch::nn::ModuleList());
  torch::NoGradGuard guard;
  for (int64_t in : in_channels) {
    // Conv2dNormActivation(norm_layer=None, activation_layer=None): a
    // Sequential holding one biased conv (state_dict "inner_blocks.i.0").
    ConvActivation inner(torch::nn::Conv2dOptions(in, out_channels, 1).bias(true), false);
    ConvActivation outer(torch::nn::Conv2dOptions(out_channels, out_channels, 3).padding(1).bias(true), false);
    for (const auto& block : {inner, outer}) {
      torch::nn::init::kaiming_uniform_(block->conv()->weight, 1.0);
      torch::nn::init::constant_(block->conv()->bias, 0.0);
    }
    inner_blocks->push_back(inner);
    layer_blocks->push_back(outer);
  }
}

std::vector<at::Tensor> FeaturePyramidNetworkImpl::forward(const std::vector<at::Tensor>& x) {
  const auto n = static_cast<int64_t>(x.size());
  auto inner = [&](int64_t i, const at::Tensor& t) {
    return inner_blocks->ptr<ConvActivationImpl>(static_cast<size_t>(i))->forward(t);
  };
  auto outer = [&](int64_t i, const at::Tensor& t) {
    return layer_blocks->ptr<ConvActivationImpl>(static_cast<size_t>(i))->forward(t);
  };
  std::vector<at::Tensor> results(static_cast<size_t>(n));
  at::Tensor last_inner = inner(n - 1, x.back());
  results[static_cast<size_t>(n - 1)] = outer(n - 1, last_inner);
  for (int64_t idx = n - 2; idx >= 0; --idx) {
    const at::Tensor lateral = inner(idx, x[static_cast<size_t>(idx)]);
    const at::Tensor top_down = F::interpolate(
        last_inner, F::InterpolateFuncOptions()
                        .size(std::vector<int64_t>{lateral.size(-2), lateral.size(-1)})
                        .mode(torch::kNearest));
    last_inner = lateral + top_down;
    results[static_cast<size_t>(idx)] = outer(idx, last_inner);
  }
  // LastLevelMaxPool: F.max_pool2d(x[-1], 1, 2, 0).
  results.push_back(at::max_pool2d(results.back(), {1, 1}, {2, 2}, {0, 0}));
  return results;
}

// ------------------------------------------------------------ BackboneWithFPN

std::vector<std::string> trainable_body_layers(int trainable_layers) {
  const std::vector<std::string> all{"layer4", "layer3", "layer2", "layer1", "conv1"};
  if (trainable_layers < 0 || trainable_layers > 5) {
    Location where;
    where.key = "model.backbone.trainable_layers";
    throw ConfigError("out_of_range", "trainable_layers must be in [0, 5]", where);
  }
  std::vector<std::string> out(all.begin(), all.begin() + trainable_layers);
  if (trainable_layers == 5) out.push_back("bn1");
  return out;
}

BackboneWithFPNImpl::BackboneWithFPNImpl(const BackboneConfig& config) : out_channels_(config.fpn_channels) {
  body = register_module("body", ResNetBody(config));
  fpn = register_module("fpn", FeaturePyramidNetwork(body->out_channels(), config.fpn_channels));
  const std::vector<std::string> train = trainable_body_layers(config.trainable_layers);
  for (auto& item : body->named_parameters(/*recurse=*/true)) {
    bool keep = false;
    for (const std::string& prefix : train) keep = keep || item.key().rfind(prefix, 0) == 0;
    if (!keep) item.value().requires_grad_(false);
  }
}

std::vector<at::Tensor> BackboneWithFPNImpl::forward(const at::Tensor& images) {
  return fpn->forward(body->forward(images));
}

}  // namespace pasteflow::model
