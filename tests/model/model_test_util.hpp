// Shared by the model unit tests (one unity executable, test_model): the
// bundled real photos as float CHW tensors, and two drawn instances.
#pragma once

#include <cstdint>
#include <string>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/torch.h>

#include "pasteflow/model/config.hpp"
#include "pasteflow/model/det_utils.hpp"

namespace pasteflow::model::testing {

/// An RGB image as float [3, H, W] in [0, 1].
inline at::Tensor load_image(const std::string& path) {
  const cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return torch::from_blob(rgb.data, {rgb.rows, rgb.cols, 3}, torch::kUInt8).permute({2, 0, 1}).to(torch::kFloat) /
         255;
}

/// A small ResNet-18 Mask R-CNN (128-192 px, 5 classes, deterministic
/// samplers, every detection kept): frozen BN with 3 trainable layers, or
/// GroupNorm (16 groups) with all layers trainable.
inline ModelConfig small_config(const std::string& norm = "frozen_bn") {
  ModelConfig c;
  c.backbone.depth = 18;
  c.backbone.norm = norm;
  if (norm == "group_norm") {
    c.backbone.group_norm_groups = 16;
    c.backbone.trainable_layers = 5;
  }
  c.backbone.fpn_channels = 32;
  c.box.representation_size = 64;
  c.mask.layers = {32, 32};
  c.mask.dim_reduced = 32;
  c.num_classes = 5;
  c.transform.min_size = {128};
  c.transform.max_size = 192;
  c.rpn.pre_nms_top_n_test = 300;
  c.rpn.post_nms_top_n_test = 100;
  c.rpn.pre_nms_top_n_train = 300;
  c.rpn.post_nms_top_n_train = 100;
  c.box.score_thresh = 0.0;  // random weights: class scores near 1 / num_classes
  c.box.detections_per_img = 15;
  c.box.batch_size_per_image = 64;
  c.sampler = "deterministic";
  return c;
}

/// Two instances drawn on an h x w image: a rectangle (label 1) and a disc (label 3).
inline Target make_target(int64_t h, int64_t w) {
  Target t;
  t.boxes = torch::tensor({{20.f, 30.f, 120.f, 110.f}, {200.f, 150.f, 300.f, 260.f}});
  t.labels = torch::tensor({1, 3}, torch::kLong);
  t.masks = at::zeros({2, h, w}, at::kByte);
  t.masks.index_put_({0, at::indexing::Slice(30, 110), at::indexing::Slice(20, 120)}, 1);
  cv::Mat disc(static_cast<int>(h), static_cast<int>(w), CV_8UC1, cv::Scalar(0));
  cv::circle(disc, cv::Point(250, 205), 50, cv::Scalar(1), -1);
  t.masks[1].copy_(torch::from_blob(disc.data, {h, w}, torch::kUInt8));
  return t;
}

}  // namespace pasteflow::model::testing
