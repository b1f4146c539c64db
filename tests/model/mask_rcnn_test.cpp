// The whole model on a small ResNet-18 configuration: evaluation output
// structure, training losses and gradients, the batched entry point, the
// deterministic sampler, Faster R-CNN without masks, background images and
// input errors. (Equality with torchvision: mask_rcnn_parity_test.cpp.)
#include <gtest/gtest.h>

#include <cmath>
#include <map>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/mask_rcnn.hpp"
#include "pasteflow/model/weights.hpp"
#include "model/model_test_util.hpp"

namespace pasteflow::model {
namespace {

using testing::load_image;
using testing::small_config;
using testing::make_target;

class MaskRCNNSmall : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    image_a_ = load_image(std::string(PASTEFLOW_TEST_DATA) + "/images/000000070133.jpg");  // 427 x 640
    image_b_ = load_image(std::string(PASTEFLOW_TEST_DATA) + "/batch/000000215657.jpg");   // 480 x 640
  }
  at::Tensor image_a_, image_b_;
};

TEST_F(MaskRCNNSmall, EvalDetectionsInTheOriginalFrame) {
  MaskRCNN net(small_config());
  net->eval();
  torch::NoGradGuard guard;
  const MaskRCNNOutput out = net->forward({image_a_, image_b_});
  EXPECT_TRUE(out.losses.empty());
  ASSERT_EQ(out.detections.size(), 2u);
  const std::vector<std::array<int64_t, 2>> sizes{{427, 640}, {480, 640}};
  for (size_t i = 0; i < 2; ++i) {
    const Detection& d = out.detections[i];
    const int64_t n = d.boxes.size(0);
    EXPECT_GT(n, 0);
    EXPECT_LE(n, 15);
    EXPECT_EQ(d.scores.sizes(), (at::IntArrayRef{n}));
    EXPECT_EQ(d.labels.scalar_type(), at::kLong);
    EXPECT_TRUE(((d.labels >= 1) & (d.labels <= 4)).all().item<bool>());
    EXPECT_TRUE((d.scores.slice(0, 1) <= d.scores.slice(0, 0, n - 1)).all().item<bool>()) << "sorted by score";
    // Boxes were clipped in the resized frame and scaled back: inside the original image.
    EXPECT_TRUE((d.boxes >= 0).all().item<bool>());
    EXPECT_LE(d.boxes.select(1, 2).max().item<double>(), static_cast<double>(sizes[i][1]) + 1e-3);
    EXPECT_LE(d.boxes.select(1, 3).max().item<double>(), static_cast<double>(sizes[i][0]) + 1e-3);
    ASSERT_EQ(d.masks.sizes(), (at::IntArrayRef{n, 1, sizes[i][0], sizes[i][1]}));
    EXPECT_TRUE(((d.masks >= 0) & (d.masks <= 1)).all().item<bool>());
  }
}

TEST_F(MaskRCNNSmall, ForwardBatchEqualsForward) {
  MaskRCNN net(small_config());
  net->eval();
  torch::NoGradGuard guard;
  const MaskRCNNOutput whole = net->forward({image_a_, image_b_});
  const ImageList batch = net->transform({image_a_, image_b_}, nullptr);
  EXPECT_EQ(batch.tensors.sizes(), (at::IntArrayRef{2, 3, 128, 192}));
  EXPECT_EQ(batch.image_sizes, (std::vector<Size2>{stages::rcnn::resized_size(427, 640, 128, 192),
                                                   stages::rcnn::resized_size(480, 640, 128, 192)}));
  const MaskRCNNOutput parts = net->forward_batch(batch, {}, {{427, 640}, {480, 640}});
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(at::equal(whole.detections[i].boxes, parts.detections[i].boxes));
    EXPECT_TRUE(at::equal(whole.detections[i].masks, parts.detections[i].masks));
  }
  // Without original sizes detections stay in the resized frame.
  const MaskRCNNOutput resized = net->forward_batch(batch);
  EXPECT_EQ(resized.detections[1].masks.size(2), 128);
  EXPECT_LE(resized.detections[1].boxes.select(1, 2).max().item<double>(),
            static_cast<double>(batch.image_sizes[1][1]) + 1e-3);
}

TEST_F(MaskRCNNSmall, TrainingLossesAndGradients) {
  MaskRCNN net(small_config());
  net->train();
  const std::vector<Target> targets{make_target(427, 640), make_target(480, 640)};
  const MaskRCNNOutput out = net->forward({image_a_, image_b_}, targets);
  EXPECT_TRUE(out.detections.empty());
  ASSERT_EQ(out.losses.size(), 5u);
  at::Tensor total = at::zeros({});
  for (const char* k : {"loss_classifier", "loss_box_reg", "loss_mask", "loss_objectness", "loss_rpn_box_reg"}) {
    ASSERT_TRUE(out.losses.count(k)) << k;
    const double v = out.losses.at(k).item<double>();
    EXPECT_TRUE(std::isfinite(v)) << k;
    EXPECT_GT(v, 0.0) << k;
    total = total + out.losses.at(k);
  }
  total.backward();
  const auto params = net->named_parameters();
  for (const char* k : {"rpn.head.cls_logits.weight", "rpn.head.conv.0.0.weight", "roi_heads.box_head.fc6.weight",
                        "roi_heads.mask_predictor.mask_fcn_logits.weight", "roi_heads.mask_head.0.0.weight",
                        "backbone.fpn.inner_blocks.0.0.weight", "backbone.body.layer4.0.conv1.weight",
                        "backbone.body.layer2.0.conv1.weight"}) {
    const at::Tensor& g = params[k].grad();
    ASSERT_TRUE(g.defined()) << k;
    EXPECT_GT(g.abs().sum().item<double>(), 0.0) << k;
  }
  // Frozen by trainable_layers = 3.
  EXPECT_FALSE(params["backbone.body.conv1.weight"].grad().defined());
  EXPECT_FALSE(params["backbone.body.layer1.0.conv1.weight"].requires_grad());
  // The deterministic sampler gives the same losses again.
  const MaskRCNNOutput again = net->forward({image_a_, image_b_}, targets);
  for (const auto& [k, v] : out.losses) EXPECT_EQ(v.item<double>(), again.losses.at(k).item<double>()) << k;
}

TEST_F(MaskRCNNSmall, RandomSamplerFollowsTorchSeed) {
  ModelConfig c = small_config();
  c.sampler = "random";
  MaskRCNN net(c);
  net->train();
  const std::vector<Target> targets{make_target(427, 640)};
  torch::manual_seed(11);
  const double a = net->forward({image_a_}, targets).losses.at("loss_objectness").item<double>();
  torch::manual_seed(11);
  const double b = net->forward({image_a_}, targets).losses.at("loss_objectness").item<double>();
  torch::manual_seed(12);
  const double c2 = net->forward({image_a_}, targets).losses.at("loss_objectness").item<double>();
  EXPECT_EQ(a, b);
  EXPECT_NE(a, c2);
}

TEST_F(MaskRCNNSmall, BackgroundImageTrains) {
  MaskRCNN net(small_config());
  net->train();
  Target empty;
  empty.boxes = at::zeros({0, 4});
  empty.labels = at::zeros({0}, at::kLong);
  empty.masks = at::zeros({0, 427, 640}, at::kByte);
  const MaskRCNNOutput out = net->forward({image_a_, image_b_}, {empty, make_target(480, 640)});
  for (const auto& [k, v] : out.losses) EXPECT_TRUE(std::isfinite(v.item<double>())) << k;
  const MaskRCNNOutput only = net->forward({image_a_}, {empty});
  EXPECT_EQ(only.losses.at("loss_rpn_box_reg").item<double>(), 0.0);
  EXPECT_EQ(only.losses.at("loss_box_reg").item<double>(), 0.0);
  EXPECT_EQ(only.losses.at("loss_mask").item<double>(), 0.0);
  EXPECT_GT(only.losses.at("loss_objectness").item<double>(), 0.0);
}

TEST_F(MaskRCNNSmall, FasterRcnnWithoutMasks) {
  ModelConfig c = small_config();
  c.mask.enabled = false;
  MaskRCNN net(c);
  for (const auto& kv : state_dict(*net)) EXPECT_EQ(kv.first.find("mask"), std::string::npos) << kv.first;
  net->train();
  Target t = make_target(427, 640);
  t.masks = at::Tensor();
  const MaskRCNNOutput out = net->forward({image_a_}, {t});
  EXPECT_EQ(out.losses.size(), 4u);
  EXPECT_FALSE(out.losses.count("loss_mask"));
  net->eval();
  torch::NoGradGuard guard;
  const MaskRCNNOutput eval = net->forward({image_a_});
  EXPECT_GT(eval.detections[0].boxes.size(0), 0);
  EXPECT_FALSE(eval.detections[0].masks.defined());
}

template <class F>
std::string reason_of(F&& f) {
  try {
    f();
  } catch (const Error& e) {
    return e.reason();
  }
  return "no error";
}

TEST_F(MaskRCNNSmall, InputErrors) {
  MaskRCNN net(small_config());
  net->train();
  EXPECT_EQ(reason_of([&] { net->forward({image_a_}); }), "missing_targets");
  Target flat = make_target(427, 640);
  flat.boxes[1][2] = 200.0;  // x2 == x1
  EXPECT_EQ(reason_of([&] { net->forward({image_a_}, {flat}); }), "degenerate_box");
  Target no_masks = make_target(427, 640);
  no_masks.masks = at::Tensor();
  EXPECT_EQ(reason_of([&] { net->forward({image_a_}, {no_masks}); }), "missing_targets");
  Target int_labels = make_target(427, 640);
  int_labels.labels = int_labels.labels.to(at::kInt);
  EXPECT_EQ(reason_of([&] { net->forward({image_a_}, {int_labels}); }), "bad_target");
  net->eval();
  EXPECT_EQ(reason_of([&] { net->forward({image_a_.unsqueeze(0)}); }), "bad_image");
  EXPECT_EQ(reason_of([&] { net->forward({}); }), "bad_image");
  ModelConfig c = small_config();
  c.device = "gpu:7";
  EXPECT_THROW(MaskRCNN{c}, ConfigError);
  c = small_config();
  c.backbone.depth = 42;
  EXPECT_THROW(MaskRCNN{c}, ConfigError);
}

}  // namespace
}  // namespace pasteflow::model
