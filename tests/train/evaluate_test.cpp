// Detections -> COCO results (category ids, xywh boxes, thresholded RLE
// masks) and the evaluation pipeline config.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <variant>

#include "pasteflow/core/error.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/train/evaluate.hpp"

namespace pasteflow::train {
namespace {

TEST(EvaluateResults, DetectionsBecomeCocoResults) {
  model::Detection d;
  d.boxes = at::tensor({10.5f, 20.25f, 30.0f, 60.0f, 0.0f, 0.0f, 4.0f, 3.0f}).view({2, 4});
  d.scores = at::tensor({0.9f, 0.25f});
  d.labels = at::tensor({1L, 2L});
  // Two 4x5 probability maps; exactly 0.5 is not part of the mask.
  d.masks = at::zeros({2, 1, 4, 5});
  d.masks[0][0][1][2] = 0.75f;
  d.masks[0][0][3][4] = 0.5f;
  d.masks[0][0][0][0] = 0.51f;
  d.masks[1][0] = 1.0f;
  const stages::CategoryMap categories({7, 3});  // label 1 = id 3, label 2 = id 7

  const std::vector<eval::Detection> r = to_coco_results(d, 42, categories, 0.5);
  ASSERT_EQ(r.size(), 2u);
  EXPECT_EQ(r[0].image_id, 42);
  EXPECT_EQ(r[0].category_id, 3);
  EXPECT_EQ(r[1].category_id, 7);
  EXPECT_EQ(r[0].score, static_cast<double>(0.9f));
  ASSERT_TRUE(r[0].bbox.has_value());
  EXPECT_EQ((*r[0].bbox)[0], 10.5);
  EXPECT_EQ((*r[0].bbox)[1], 20.25);
  EXPECT_EQ((*r[0].bbox)[2], 19.5);
  EXPECT_EQ((*r[0].bbox)[3], 39.75);
  const auto* rle = std::get_if<mask::Rle>(&r[0].segmentation);
  ASSERT_NE(rle, nullptr);
  EXPECT_EQ(rle->h, 4u);
  EXPECT_EQ(rle->w, 5u);
  const std::vector<uint8_t> pixels = mask::decode(*rle);  // row-major
  std::vector<uint8_t> want(20, 0);
  want[1 * 5 + 2] = 1;
  want[0] = 1;
  EXPECT_EQ(pixels, want);
  EXPECT_EQ(mask::area(std::get<mask::Rle>(r[1].segmentation)), 20u);

  // No masks (Faster R-CNN): no segmentation.
  d.masks = at::Tensor();
  const auto boxes_only = to_coco_results(d, 1, categories);
  EXPECT_TRUE(std::holds_alternative<std::monostate>(boxes_only[0].segmentation));
  // No detections.
  model::Detection empty;
  empty.boxes = at::zeros({0, 4});
  EXPECT_TRUE(to_coco_results(empty, 1, categories).empty());
  // A label the map does not know.
  d.labels = at::tensor({1L, 3L});
  EXPECT_THROW(to_coco_results(d, 1, categories), InputError);
}

TEST(EvaluateResults, EvalPipelineConfig) {
  pipeline::PipelineConfig train;
  train.sampler.oversample = 3;
  train.sampler.aug_mode = "original_aug";
  train.sampler.shuffle = true;
  train.batch.hflip = true;
  train.batch.train_min_sizes = {640, 800};
  train.batch.min_size = 700;
  train.batch.device = "cuda";
  train.loader.drop_last = true;
  train.loader.batch_size = 8;
  const pipeline::PipelineConfig e = eval_pipeline_config(train, 2);
  EXPECT_EQ(e.sampler.oversample, 1.0);
  EXPECT_EQ(e.sampler.aug_mode, "none");
  EXPECT_FALSE(e.sampler.shuffle);
  EXPECT_FALSE(e.batch.hflip);
  EXPECT_TRUE(e.batch.train_min_sizes.empty());
  EXPECT_EQ(e.batch.min_size, 700);
  EXPECT_FALSE(e.batch.keep_masks);
  EXPECT_EQ(e.batch.device, "cpu");
  EXPECT_FALSE(e.loader.drop_last);
  EXPECT_EQ(e.loader.max_epochs, 1u);
  EXPECT_EQ(e.loader.batch_size, 2);
  EXPECT_EQ(eval_pipeline_config(train).loader.batch_size, 8);
}

}  // namespace
}  // namespace pasteflow::train
