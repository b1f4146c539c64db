// ResNet-FPN backbone: FrozenBatchNorm2d arithmetic, feature shapes and
// channels for every depth, torchvision's state_dict names, the frozen
// layers of trainable_layers, GroupNorm. (Numerical equality with torchvision
// is the golden test's job: mask_rcnn_parity_test.cpp.)
#include <gtest/gtest.h>

#include <map>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/backbone.hpp"
#include "pasteflow/model/weights.hpp"

namespace pasteflow::model {
namespace {

TEST(FrozenBatchNorm2d, AffineWithFrozenStatistics) {
  torch::manual_seed(0);
  FrozenBatchNorm2d bn(4, 1e-5);
  bn->weight.uniform_(0.5, 1.5);
  bn->bias.normal_();
  bn->running_mean.normal_();
  bn->running_var.uniform_(0.5, 2.0);
  const at::Tensor x = torch::randn({2, 4, 3, 5});
  const auto r = [](const at::Tensor& t) { return t.reshape({1, -1, 1, 1}); };
  const at::Tensor expected =
      (x - r(bn->running_mean)) / torch::sqrt(r(bn->running_var) + 1e-5) * r(bn->weight) + r(bn->bias);
  EXPECT_LT((bn->forward(x) - expected).abs().max().item<double>(), 1e-5);
  // Buffers only: nothing to train.
  EXPECT_TRUE(bn->parameters().empty());
  EXPECT_EQ(bn->buffers().size(), 4u);
  // Training mode changes nothing (frozen statistics).
  bn->train();
  EXPECT_TRUE(at::equal(bn->forward(x), bn->forward(x)));
}

TEST(Backbone, ShapesForEveryDepth) {
  torch::NoGradGuard guard;
  const std::map<int, std::vector<int64_t>> channels{
      {18, {64, 128, 256, 512}}, {34, {64, 128, 256, 512}}, {50, {256, 512, 1024, 2048}}, {101, {256, 512, 1024, 2048}}};
  for (const auto& [depth, expected] : channels) {
    BackboneConfig c;
    c.depth = depth;
    c.fpn_channels = 32;
    BackboneWithFPN net(c);
    net->eval();
    EXPECT_EQ(net->body->out_channels(), expected) << depth;
    const at::Tensor x = torch::randn({2, 3, 96, 160});
    const std::vector<at::Tensor> body = net->body->forward(x);
    ASSERT_EQ(body.size(), 4u);
    for (size_t i = 0; i < 4; ++i) {
      const int64_t stride = int64_t{4} << i;
      EXPECT_EQ(body[i].sizes(), (at::IntArrayRef{2, expected[i], 96 / stride, 160 / stride})) << depth << " " << i;
    }
    const std::vector<at::Tensor> fpn = net->forward(x);
    ASSERT_EQ(fpn.size(), 5u);
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(fpn[i].sizes(), (at::IntArrayRef{2, 32, body[i].size(2), body[i].size(3)}));
    // P6 = max_pool2d(P5, kernel 1, stride 2): every other pixel of P5.
    EXPECT_EQ(fpn[4].sizes(), (at::IntArrayRef{2, 32, 2, 3}));
    EXPECT_TRUE(at::equal(fpn[4], fpn[3].index({at::indexing::Slice(), at::indexing::Slice(),
                                                at::indexing::Slice(at::indexing::None, at::indexing::None, 2),
                                                at::indexing::Slice(at::indexing::None, at::indexing::None, 2)})));
  }
}

TEST(Backbone, OddSizesRoundUp) {
  torch::NoGradGuard guard;
  BackboneConfig c;
  c.depth = 18;
  c.fpn_channels = 8;
  BackboneWithFPN net(c);
  const std::vector<at::Tensor> fpn = net->forward(torch::randn({1, 3, 75, 101}));
  // conv1/maxpool/strided convs: ceil halving; the top-down path upsamples to each lateral's size.
  EXPECT_EQ(fpn[0].sizes(), (at::IntArrayRef{1, 8, 19, 26}));
  EXPECT_EQ(fpn[1].sizes(), (at::IntArrayRef{1, 8, 10, 13}));
  EXPECT_EQ(fpn[2].sizes(), (at::IntArrayRef{1, 8, 5, 7}));
  EXPECT_EQ(fpn[3].sizes(), (at::IntArrayRef{1, 8, 3, 4}));
  EXPECT_EQ(fpn[4].sizes(), (at::IntArrayRef{1, 8, 2, 2}));
}

TEST(Backbone, TorchvisionStateDictNames) {
  BackboneConfig c;
  c.depth = 101;
  BackboneWithFPN net(c);
  const std::map<std::string, at::Tensor> sd = state_dict(*net);
  for (const char* k :
       {"body.conv1.weight", "body.bn1.weight", "body.bn1.bias", "body.bn1.running_mean", "body.bn1.running_var",
        "body.layer1.0.conv1.weight", "body.layer1.0.conv3.weight", "body.layer1.0.downsample.0.weight",
        "body.layer1.0.downsample.1.running_var", "body.layer3.22.conv3.weight", "body.layer4.2.bn3.bias",
        "fpn.inner_blocks.0.0.weight", "fpn.inner_blocks.3.0.bias", "fpn.layer_blocks.0.0.weight",
        "fpn.layer_blocks.3.0.bias"}) {
    EXPECT_TRUE(sd.count(k)) << k;
  }
  EXPECT_FALSE(sd.count("body.layer3.23.conv1.weight"));
  EXPECT_FALSE(sd.count("body.layer1.1.downsample.0.weight"));
  EXPECT_FALSE(sd.count("body.fc.weight"));
  EXPECT_EQ(sd.at("body.layer3.0.downsample.0.weight").sizes(), (at::IntArrayRef{1024, 512, 1, 1}));
  EXPECT_EQ(sd.at("fpn.inner_blocks.3.0.weight").sizes(), (at::IntArrayRef{256, 2048, 1, 1}));
  EXPECT_EQ(sd.at("fpn.layer_blocks.1.0.weight").sizes(), (at::IntArrayRef{256, 256, 3, 3}));

  BackboneConfig basic;
  basic.depth = 34;
  const std::map<std::string, at::Tensor> sd34 = state_dict(*BackboneWithFPN(basic));
  EXPECT_TRUE(sd34.count("body.layer3.5.conv2.weight"));
  EXPECT_FALSE(sd34.count("body.layer1.0.conv3.weight"));
  EXPECT_FALSE(sd34.count("body.layer1.0.downsample.0.weight"));  // 64 -> 64, stride 1
  EXPECT_TRUE(sd34.count("body.layer2.0.downsample.1.weight"));
}

TEST(Backbone, TrainableLayers) {
  const std::map<int, std::set<std::string>> trainable{
      {0, {}},
      {1, {"layer4"}},
      {3, {"layer4", "layer3", "layer2"}},
      {5, {"layer4", "layer3", "layer2", "layer1", "conv1", "bn1"}}};
  for (const auto& [n, stages] : trainable) {
    BackboneConfig c;
    c.depth = 18;
    c.norm = "group_norm";  // GroupNorm has parameters, so bn1 counts too
    c.trainable_layers = n;
    BackboneWithFPN net(c);
    for (const auto& item : net->named_parameters()) {
      const std::string& name = item.key();
      bool expect = name.rfind("fpn.", 0) == 0;  // the FPN always trains
      for (const std::string& s : stages) expect = expect || name.rfind("body." + s + ".", 0) == 0;
      EXPECT_EQ(item.value().requires_grad(), expect) << n << " " << name;
    }
  }
  EXPECT_EQ(trainable_body_layers(5), (std::vector<std::string>{"layer4", "layer3", "layer2", "layer1", "conv1", "bn1"}));
  EXPECT_THROW(trainable_body_layers(6), ConfigError);
}

TEST(Backbone, GroupNorm) {
  BackboneConfig c;
  c.depth = 50;
  c.norm = "group_norm";
  c.group_norm_groups = 16;
  BackboneWithFPN net(c);
  const std::map<std::string, at::Tensor> sd = state_dict(*net);
  EXPECT_TRUE(sd.count("body.bn1.weight"));
  EXPECT_FALSE(sd.count("body.bn1.running_mean"));  // GroupNorm keeps no statistics
  const auto* gn = net->body->bn1.ptr()->as<torch::nn::GroupNormImpl>();
  ASSERT_NE(gn, nullptr);
  EXPECT_EQ(gn->options.num_groups(), 16);
  torch::NoGradGuard guard;
  EXPECT_EQ(net->forward(torch::randn({1, 3, 64, 64})).size(), 5u);
  c.norm = "instance_norm";
  EXPECT_THROW(BackboneWithFPN{c}, ConfigError);
  c.norm = "frozen_bn";
  c.depth = 152;
  EXPECT_THROW(BackboneWithFPN{c}, ConfigError);
}

}  // namespace
}  // namespace pasteflow::model
