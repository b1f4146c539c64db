// Unit tests of the batching stage and the torchvision-exact transform.
// Expected sizes marked "oracle: torchvision" were printed by
// GeneralizedRCNNTransform(800, 1333, ...) of Debian python3-torchvision
// 0.14.1 in eval mode; the full comparison lives in batch_parity_test.cpp.
#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <map>
#include <set>
#include <vector>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <torch/nn/functional/upsampling.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/stages/batch.hpp"
#include "pasteflow/stages/rcnn_transform.hpp"

namespace pasteflow::stages {
namespace {

namespace F = torch::nn::functional;

mask::Rle rect_mask(int h, int w, int x, int y, int rw, int rh) {
  cv::Mat m(h, w, CV_8UC1, cv::Scalar(0));
  m(cv::Rect(x, y, rw, rh)).setTo(1);
  return mask::encode(m.data, static_cast<uint32_t>(h), static_cast<uint32_t>(w), m.step[0]);
}

Instance rect_instance(int h, int w, int x, int y, int rw, int rh, int64_t cat, int64_t id) {
  Instance inst;
  inst.id = id;
  inst.category_id = cat;
  inst.has_mask = true;
  inst.mask = rect_mask(h, w, x, y, rw, rh);
  inst.bbox = {double(x), double(y), double(rw), double(rh)};
  inst.area = double(rw) * rh;
  return inst;
}

/// An RGB image, dark except a bright rectangle where the object is.
Sample rect_sample(int h, int w, cv::Rect object, uint64_t seq = 0) {
  Sample s;
  s.seq = seq;
  s.image_id = 42;
  s.image = cv::Mat(h, w, CV_8UC3, cv::Scalar(10, 20, 30));
  s.image(object).setTo(cv::Scalar(250, 240, 230));
  s.instances.push_back(rect_instance(h, w, object.x, object.y, object.width, object.height, 7, 1));
  return s;
}

// ------------------------------------------------------------------ sizes

TEST(RcnnTransform, ResizedSizesMatchTorchvision) {
  // oracle: torchvision 0.14.1 GeneralizedRCNNTransform(800, 1333), eval mode.
  // 480 -> 800 only because scale = reciprocal(480.f) * 800 (Tensor.__rtruediv__),
  // 1.66666675f; 800.f / 480.f = 1.66666663f would give 799.
  EXPECT_EQ(rcnn::resized_size(480, 640, 800, 1333), (rcnn::Size2{800, 1066}));
  EXPECT_EQ(rcnn::resized_size(640, 480, 800, 1333), (rcnn::Size2{1066, 800}));
  EXPECT_EQ(rcnn::resized_size(427, 640, 800, 1333), (rcnn::Size2{799, 1199}));
  EXPECT_EQ(rcnn::resized_size(375, 500, 800, 1333), (rcnn::Size2{799, 1066}));
  EXPECT_EQ(rcnn::resized_size(333, 500, 800, 1333), (rcnn::Size2{799, 1201}));
  EXPECT_EQ(rcnn::resized_size(300, 1000, 800, 1333), (rcnn::Size2{399, 1333}));  // longer side capped
  EXPECT_EQ(rcnn::resized_size(800, 1333, 800, 1333), (rcnn::Size2{800, 1333}));
  EXPECT_FLOAT_EQ(static_cast<float>(rcnn::resize_scale(480, 640, 800, 1333)), 1.0f / 480.0f * 800.0f);
}

TEST(RcnnTransform, ResizeImageGivesThoseSizes) {
  const at::Tensor img = at::rand({3, 480, 640});
  const rcnn::Resized r = rcnn::resize_image_and_masks(img, 800, 1333);
  EXPECT_EQ(r.image.sizes(), (std::vector<int64_t>{3, 800, 1066}));
  EXPECT_FALSE(r.masks.defined());
}

TEST(RcnnTransform, PaddedSizeIsNextMultipleOf32) {
  EXPECT_EQ(rcnn::padded_size(800, 1066), (rcnn::Size2{800, 1088}));
  EXPECT_EQ(rcnn::padded_size(799, 1199), (rcnn::Size2{800, 1216}));
  EXPECT_EQ(rcnn::padded_size(1, 33), (rcnn::Size2{32, 64}));
  EXPECT_EQ(rcnn::padded_size(64, 64), (rcnn::Size2{64, 64}));
  EXPECT_EQ(rcnn::padded_size(65, 10, 16), (rcnn::Size2{80, 16}));
}

TEST(RcnnTransform, BatchImagesPadsWithZerosTopLeft) {
  const at::Tensor a = at::full({3, 40, 50}, 1.5f);
  const at::Tensor b = at::full({3, 70, 20}, -2.0f);
  const at::Tensor batch = rcnn::batch_images({a, b}, 32);
  ASSERT_EQ(batch.sizes(), (std::vector<int64_t>{2, 3, 96, 64}));
  EXPECT_TRUE(at::equal(batch[0].narrow(1, 0, 40).narrow(2, 0, 50), a));
  EXPECT_TRUE(at::equal(batch[1].narrow(1, 0, 70).narrow(2, 0, 20), b));
  // Everything else is zero: total sum = contents only.
  EXPECT_FLOAT_EQ(batch.sum().item<float>(), 1.5f * 3 * 40 * 50 - 2.0f * 3 * 70 * 20);
  EXPECT_EQ(batch[0].narrow(1, 40, 56).abs().sum().item<float>(), 0.0f);
  EXPECT_EQ(batch[1].narrow(2, 20, 44).abs().sum().item<float>(), 0.0f);
  EXPECT_THROW(rcnn::batch_images({}, 32), InputError);
  // Only the padding is zeroed (the buffer starts uninitialised): equal to
  // new_full(0) + copy for random sizes, after freeing NaN-filled memory of
  // the same size so that stale values would show.
  at::manual_seed(11);
  for (int trial = 0; trial < 20; ++trial) {
    std::vector<at::Tensor> imgs;
    const int64_t k = at::randint(1, 4, {1}).item<int64_t>();
    for (int64_t i = 0; i < k; ++i) {
      imgs.push_back(at::randn({3, at::randint(1, 90, {1}).item<int64_t>(), at::randint(1, 90, {1}).item<int64_t>()}));
    }
    const at::Tensor probe = rcnn::batch_images(imgs, 32);
    { at::Tensor garbage = at::full(probe.sizes(), std::nanf("")); }
    const at::Tensor got = rcnn::batch_images(imgs, 32);
    at::Tensor ref = at::zeros(probe.sizes());
    for (int64_t i = 0; i < k; ++i) {
      const at::Tensor& im = imgs[static_cast<size_t>(i)];
      ref[i].narrow(1, 0, im.size(1)).narrow(2, 0, im.size(2)).copy_(im);
    }
    EXPECT_TRUE(at::equal(got, ref)) << "trial " << trial;
  }
}

TEST(RcnnTransform, ResizeBoxesScalesEachAxisByFloatRatio) {
  const at::Tensor boxes = at::tensor(std::vector<float>{10.f, 20.f, 110.f, 220.f, 0.5f, 0.25f, 640.f, 480.f})
                               .view({2, 4});
  const at::Tensor r = rcnn::resize_boxes(boxes, {480, 640}, {800, 1066});
  const float rw = 1066.0f / 640.0f;
  const float rh = 800.0f / 480.0f;
  const float* p = r.data_ptr<float>();
  const float expected[8] = {10.f * rw, 20.f * rh, 110.f * rw, 220.f * rh, 0.5f * rw, 0.25f * rh, 640.f * rw, 480.f * rh};
  for (int i = 0; i < 8; ++i) EXPECT_EQ(p[i], expected[i]) << i;
  EXPECT_EQ(p[6], 1066.0f);
  EXPECT_EQ(p[7], 800.0f);
  // postprocess maps back (exactly for these dyadic-free values up to float rounding).
  const at::Tensor back = rcnn::postprocess_boxes(r, {800, 1066}, {480, 640});
  EXPECT_TRUE(at::allclose(back, boxes, 1e-5, 1e-4));
}

TEST(RcnnTransform, NormalizeUsesPerChannelMeanStd) {
  const at::Tensor img = at::full({3, 2, 2}, 0.5f);
  const at::Tensor n = rcnn::normalize(img, rcnn::imagenet_mean(), rcnn::imagenet_std());
  EXPECT_EQ(n[0][0][0].item<float>(), (0.5f - 0.485f) / 0.229f);
  EXPECT_EQ(n[1][1][1].item<float>(), (0.5f - 0.456f) / 0.224f);
  EXPECT_EQ(n[2][0][1].item<float>(), (0.5f - 0.406f) / 0.225f);
  EXPECT_THROW(rcnn::normalize(img, {0.5, 0.5}, {1, 1, 1}), ConfigError);
  EXPECT_THROW(rcnn::normalize(img, {0.5, 0.5, 0.5}, {1, 0, 1}), ConfigError);
  EXPECT_THROW(rcnn::normalize(at::zeros({3, 2, 2}, at::kByte), {0, 0, 0}, {1, 1, 1}), InputError);
}

TEST(RcnnTransform, Uint8MaskPathEqualsTorchvisionFloatPath) {
  // torchvision: interpolate(mask[:, None].float(), scale, nearest)[:, 0].byte()
  at::manual_seed(3);
  for (const auto& hw : std::vector<std::array<int64_t, 2>>{{480, 640}, {338, 500}, {150, 640}, {1000, 17}}) {
    const at::Tensor masks = at::randint(0, 2, {4, hw[0], hw[1]}, at::kByte);
    const at::Tensor img = at::zeros({3, hw[0], hw[1]});
    const rcnn::Resized r = rcnn::resize_image_and_masks(img, 800, 1333, masks);
    const double s = rcnn::resize_scale(hw[0], hw[1], 800, 1333);
    const at::Tensor ref = F::interpolate(masks.unsqueeze(1).to(at::kFloat), F::InterpolateFuncOptions()
                                                                                .scale_factor(std::vector<double>{s, s})
                                                                                .mode(torch::kNearest)
                                                                                .recompute_scale_factor(true))
                               .select(1, 0)
                               .to(at::kByte);
    ASSERT_EQ(r.masks.sizes(), ref.sizes());
    EXPECT_TRUE(at::equal(r.masks, ref)) << hw[0] << "x" << hw[1];
    EXPECT_EQ(r.masks.size(1), r.image.size(1));
    EXPECT_EQ(r.masks.size(2), r.image.size(2));
  }
  const rcnn::Resized none = rcnn::resize_image_and_masks(at::zeros({3, 480, 640}), 800, 1333,
                                                          at::zeros({0, 480, 640}, at::kByte));
  EXPECT_EQ(none.masks.sizes(), (std::vector<int64_t>{0, 800, 1066}));
  EXPECT_THROW(rcnn::resize_image_and_masks(at::zeros({3, 48, 64}), 800, 1333, at::zeros({1, 48, 63}, at::kByte)),
               InputError);
}

TEST(RcnnTransform, ResizeMasksNearestEqualsInterpolateForAnySizeAndFlip) {
  // Reference: torchvision's literal path, interpolate(mask[:, None].float(),
  // size, "nearest")[:, 0].byte(), after masks.flip(-1) when flipped.
  at::manual_seed(5);
  const std::vector<std::array<int64_t, 4>> cases{
      {480, 640, 800, 1066}, {333, 500, 800, 1201}, {7, 9, 7, 9}, {7, 9, 14, 18}, {40, 30, 17, 11}, {1, 5, 3, 2}};
  for (const auto& c : cases) {
    const at::Tensor masks = at::randint(0, 2, {3, c[0], c[1]}, at::kByte);
    for (bool flip : {false, true}) {
      const at::Tensor src = flip ? masks.flip({2}) : masks;
      const at::Tensor ref = F::interpolate(src.unsqueeze(1).to(at::kFloat),
                                            F::InterpolateFuncOptions().size(std::vector<int64_t>{c[2], c[3]}).mode(torch::kNearest))
                                 .select(1, 0)
                                 .to(at::kByte);
      const at::Tensor got = rcnn::resize_masks_nearest(masks, {c[2], c[3]}, flip);
      EXPECT_TRUE(at::equal(got, ref)) << c[0] << "x" << c[1] << " -> " << c[2] << "x" << c[3] << " flip " << flip;
    }
  }
  EXPECT_EQ(rcnn::resize_masks_nearest(at::zeros({0, 4, 4}, at::kByte), {8, 8}).sizes(), (std::vector<int64_t>{0, 8, 8}));
  EXPECT_THROW(rcnn::resize_masks_nearest(at::zeros({1, 4, 4}), {8, 8}), InputError);
  EXPECT_THROW(rcnn::resize_masks_nearest(at::zeros({4, 4}, at::kByte), {8, 8}), InputError);
}

TEST(RcnnTransform, ImageToTensorScalesAndExpands) {
  cv::Mat rgb(2, 3, CV_8UC3, cv::Scalar(0, 51, 255));
  rgb.at<cv::Vec3b>(1, 2) = cv::Vec3b(1, 2, 3);
  const at::Tensor t = rcnn::image_to_tensor(rgb);
  ASSERT_EQ(t.sizes(), (std::vector<int64_t>{3, 2, 3}));
  EXPECT_TRUE(t.is_contiguous());
  EXPECT_EQ(t[0][0][0].item<float>(), 0.0f);
  EXPECT_EQ(t[1][0][0].item<float>(), 51.0f / 255.0f);
  EXPECT_EQ(t[2][0][0].item<float>(), 1.0f);
  EXPECT_EQ(t[0][1][2].item<float>(), 1.0f / 255.0f);
  EXPECT_EQ(t[2][1][2].item<float>(), 3.0f / 255.0f);

  cv::Mat grey(2, 2, CV_16UC1, cv::Scalar(65535));
  grey.at<uint16_t>(0, 1) = 1000;
  const at::Tensor g = rcnn::image_to_tensor(grey);
  ASSERT_EQ(g.sizes(), (std::vector<int64_t>{3, 2, 2}));
  for (int c = 0; c < 3; ++c) {
    EXPECT_EQ(g[c][0][0].item<float>(), 1.0f);
    EXPECT_EQ(g[c][0][1].item<float>(), 1000.0f / 65535.0f);
  }
  // A view with a row step larger than the width.
  cv::Mat big(4, 8, CV_8UC3, cv::Scalar(9, 9, 9));
  big(cv::Rect(2, 1, 3, 2)).setTo(cv::Scalar(200, 100, 50));
  const at::Tensor v = rcnn::image_to_tensor(big(cv::Rect(2, 1, 3, 2)));
  EXPECT_TRUE(at::equal(v[0], at::full({2, 3}, 200.0f / 255.0f)));
  EXPECT_THROW(rcnn::image_to_tensor(cv::Mat()), InputError);
  EXPECT_THROW(rcnn::image_to_tensor(cv::Mat(2, 2, CV_32FC3)), InputError);
  EXPECT_THROW(rcnn::image_to_tensor(cv::Mat(2, 2, CV_8UC4)), InputError);
}

TEST(RcnnTransform, NormalizedImageTensorEqualsThreeStepForm) {
  // The one-pass lookup must be bit-identical to image_to_tensor -> flip ->
  // normalize, for every 8-bit value of every channel, grey and colour, row
  // views, and odd normalisations; 16-bit images take the reference path.
  cv::RNG rng(7);
  const std::vector<std::vector<double>> means{rcnn::imagenet_mean(), {0.0, 0.5, 1.0}};
  const std::vector<std::vector<double>> stds{rcnn::imagenet_std(), {1.0, 0.3, 1e-3}};
  cv::Mat colour(17, 256, CV_8UC3);
  rng.fill(colour, cv::RNG::UNIFORM, 0, 256);
  for (int v = 0; v < 256; ++v) colour.at<cv::Vec3b>(0, v) = cv::Vec3b(v, 255 - v, v);
  cv::Mat grey(9, 300, CV_8UC1);
  rng.fill(grey, cv::RNG::UNIFORM, 0, 256);
  cv::Mat wide(5, 40, CV_16UC3);
  rng.fill(wide, cv::RNG::UNIFORM, 0, 65536);
  const std::vector<cv::Mat> images{colour, grey, colour(cv::Rect(3, 2, 100, 9)), wide};
  for (size_t k = 0; k < means.size(); ++k) {
    for (const cv::Mat& img : images) {
      for (bool flip : {false, true}) {
        at::Tensor ref = rcnn::image_to_tensor(img);
        if (flip) ref = ref.flip({2});
        ref = rcnn::normalize(ref, means[k], stds[k]);
        const at::Tensor got = rcnn::normalized_image_tensor(img, means[k], stds[k], flip);
        EXPECT_TRUE(at::equal(got, ref)) << img.cols << "x" << img.rows << " c" << img.channels() << " flip " << flip;
        EXPECT_TRUE(got.is_contiguous());
      }
    }
  }
  EXPECT_THROW(rcnn::normalized_image_tensor(cv::Mat(), rcnn::imagenet_mean(), rcnn::imagenet_std()), InputError);
  EXPECT_THROW(rcnn::normalized_image_tensor(colour, {0.5, 0.5}, {1, 1, 1}), ConfigError);
}

TEST(RcnnTransform, ChooseMinSize) {
  Rng rng(5);
  EXPECT_EQ(rcnn::choose_min_size({480, 800}, false, rng), 800);
  std::set<int> seen;
  for (int i = 0; i < 200; ++i) seen.insert(rcnn::choose_min_size({480, 640, 800}, true, rng));
  EXPECT_EQ(seen, (std::set<int>{480, 640, 800}));
  EXPECT_THROW(rcnn::choose_min_size({}, true, rng), ConfigError);
  EXPECT_THROW(rcnn::choose_min_size({0}, true, rng), ConfigError);
}

// ------------------------------------------------------------ CategoryMap

TEST(CategoryMap, ContiguousBySortedId) {
  const CategoryMap map({90, 1, 5});
  EXPECT_EQ(map.size(), 3u);
  EXPECT_EQ(map.num_classes(), 4);
  EXPECT_EQ(map.to_contiguous(1), 1);
  EXPECT_EQ(map.to_contiguous(5), 2);
  EXPECT_EQ(map.to_contiguous(90), 3);
  EXPECT_EQ(map.to_dataset(3), 90);
  EXPECT_EQ(map.to_dataset(1), 1);
  EXPECT_THROW(map.to_contiguous(2), InputError);
  EXPECT_THROW(map.to_dataset(0), InputError);
  EXPECT_THROW(map.to_dataset(4), InputError);
  EXPECT_THROW(CategoryMap({3, 1, 3}), ConfigError);
}

// ----------------------------------------------------------------- prepare

TEST(Prepare, SizesBoxesAndTargetsOf640x480) {
  Sample s = rect_sample(480, 640, cv::Rect(100, 50, 200, 100));
  s.instances[0].area = 1234.5;
  const CategoryMap map({3, 7});
  const PreparedImage p = prepare(s, BatchConfig{}, map, Rng(1));
  EXPECT_EQ(p.image.sizes(), (std::vector<int64_t>{3, 800, 1066}));
  EXPECT_EQ(p.target.image_size, (rcnn::Size2{800, 1066}));
  EXPECT_EQ(p.target.original_size, (rcnn::Size2{480, 640}));
  EXPECT_EQ(p.target.image_id, 42);
  EXPECT_EQ(p.min_size, 800);
  EXPECT_FALSE(p.flipped);
  ASSERT_EQ(p.target.boxes.sizes(), (std::vector<int64_t>{1, 4}));
  const float rw = 1066.0f / 640.0f;
  const float rh = 800.0f / 480.0f;
  const float* b = p.target.boxes.data_ptr<float>();
  EXPECT_EQ(b[0], 100.0f * rw);
  EXPECT_EQ(b[1], 50.0f * rh);
  EXPECT_EQ(b[2], 300.0f * rw);
  EXPECT_EQ(b[3], 150.0f * rh);
  EXPECT_EQ(p.target.labels.scalar_type(), at::kLong);
  EXPECT_EQ(p.target.labels[0].item<int64_t>(), 2);  // category 7 -> label 2
  EXPECT_EQ(p.target.area[0].item<float>(), 1234.5f);
  EXPECT_EQ(p.target.annotation_ids[0].item<int64_t>(), 1);
  EXPECT_EQ(p.target.iscrowd[0].item<uint8_t>(), 0);
  ASSERT_EQ(p.target.masks.sizes(), (std::vector<int64_t>{1, 800, 1066}));
  EXPECT_EQ(p.target.masks.scalar_type(), at::kByte);
  // Nearest resize of a 200x100 rectangle: rows/cols whose source index falls inside.
  const at::Tensor rows = p.target.masks[0].sum(1).nonzero();
  const at::Tensor cols = p.target.masks[0].sum(0).nonzero();
  const double sy = 480.0 / 800.0;
  const double sx = 640.0 / 1066.0;
  EXPECT_NEAR(static_cast<double>(rows.min().item<int64_t>()), 50 / sy, 1.0);
  EXPECT_NEAR(static_cast<double>(rows.max().item<int64_t>()), 150 / sy, 1.0);
  EXPECT_NEAR(static_cast<double>(cols.min().item<int64_t>()), 100 / sx, 1.0);
  EXPECT_NEAR(static_cast<double>(cols.max().item<int64_t>()), 300 / sx, 1.0);
  // Normalised pixels: the dark background is (10/255 - mean) / std.
  EXPECT_FLOAT_EQ(p.image[0][0][0].item<float>(), (10.0f / 255.0f - 0.485f) / 0.229f);
}

TEST(Prepare, FlipMirrorsPixelsBoxesAndMasksConsistently) {
  const cv::Rect object(30, 20, 40, 25);  // left part of a 160 x 120 image
  BatchConfig cfg;
  cfg.hflip = true;
  cfg.min_size = 120;  // no resize: scale 1
  cfg.max_size = 1000;
  const CategoryMap map({7});
  int flipped = 0, kept = 0;
  for (uint64_t seq = 0; seq < 64; ++seq) {
    Sample s = rect_sample(120, 160, object, seq);
    const PreparedImage p = prepare(s, cfg, map, batch_rng(99, s));
    ASSERT_EQ(p.image.sizes(), (std::vector<int64_t>{3, 120, 160}));
    const float* b = p.target.boxes.data_ptr<float>();
    const at::Tensor bright = p.image[0] > 0.0f;  // object pixels are bright after normalisation
    const at::Tensor mask = p.target.masks[0].to(at::kBool);
    EXPECT_TRUE(at::equal(bright, mask)) << "seq " << seq;
    const at::Tensor cols = mask.sum(0).nonzero();
    const at::Tensor rows = mask.sum(1).nonzero();
    // The box is the tight box of the mask (pixel edges), flipped or not.
    EXPECT_EQ(b[0], static_cast<float>(cols.min().item<int64_t>()));
    EXPECT_EQ(b[2], static_cast<float>(cols.max().item<int64_t>() + 1));
    EXPECT_EQ(b[1], static_cast<float>(rows.min().item<int64_t>()));
    EXPECT_EQ(b[3], static_cast<float>(rows.max().item<int64_t>() + 1));
    if (p.flipped) {
      ++flipped;
      EXPECT_EQ(b[0], 160.0f - 70.0f);
      EXPECT_EQ(b[2], 160.0f - 30.0f);
    } else {
      ++kept;
      EXPECT_EQ(b[0], 30.0f);
    }
    // Same seed and sample: the same decision.
    EXPECT_EQ(prepare(s, cfg, map, batch_rng(99, s)).flipped, p.flipped);
  }
  EXPECT_GT(flipped, 16);
  EXPECT_GT(kept, 16);
}

TEST(Prepare, TorchvisionOutputKeepsTheAugmentedSizeInUnitRangeWithTheSameDraws) {
  // output "torchvision": steps 1-3 only (no normalisation, no resize); the
  // flip decision is the same draw as for the model's batch.
  const cv::Rect object(30, 20, 40, 25);
  BatchConfig model_cfg;
  model_cfg.hflip = true;
  BatchConfig tv_cfg = model_cfg;
  tv_cfg.output = "torchvision";
  const CategoryMap map({7});
  int flipped = 0;
  for (uint64_t seq = 0; seq < 16; ++seq) {
    Sample s = rect_sample(120, 160, object, seq);
    const PreparedImage p = prepare(s, tv_cfg, map, batch_rng(5, s));
    const PreparedImage m = prepare(s, model_cfg, map, batch_rng(5, s));
    EXPECT_EQ(p.flipped, m.flipped);
    flipped += p.flipped ? 1 : 0;
    ASSERT_EQ(p.image.sizes(), (std::vector<int64_t>{3, 120, 160}));
    EXPECT_EQ(p.target.image_size, (rcnn::Size2{120, 160}));
    // Pixels are x / 255 of the (mirrored) sample: green 20 outside, 240 inside the object.
    const at::Tensor expected_mask = p.target.masks[0].to(at::kBool);
    EXPECT_TRUE(at::equal((p.image[1] - 240.0f / 255.0f).abs() < 1e-6f, expected_mask)) << "seq " << seq;
    EXPECT_TRUE(at::equal((p.image[1] - 20.0f / 255.0f).abs() < 1e-6f, expected_mask.logical_not())) << "seq " << seq;
    const float* b = p.target.boxes.data_ptr<float>();
    EXPECT_EQ(b[0], p.flipped ? 160.0f - 70.0f : 30.0f);
    EXPECT_EQ(b[1], 20.0f);
    EXPECT_EQ(b[3], 45.0f);
  }
  EXPECT_GT(flipped, 0);
  EXPECT_LT(flipped, 16);

  // collate: a list of the images at their own sizes, no padding, no batch tensor.
  std::vector<PreparedImage> images;
  images.push_back(prepare(rect_sample(120, 160, object, 0), tv_cfg, map, Rng(1)));
  images.push_back(prepare(rect_sample(90, 70, cv::Rect(5, 5, 20, 20), 1), tv_cfg, map, Rng(2)));
  const Batch batch = collate(std::move(images), tv_cfg, 3);
  EXPECT_FALSE(batch.images.defined());
  ASSERT_EQ(batch.image_list.size(), 2u);
  EXPECT_EQ(batch.image_list[1].sizes(), (std::vector<int64_t>{3, 90, 70}));
  EXPECT_EQ(batch.image_sizes[1], (rcnn::Size2{90, 70}));
  EXPECT_EQ(batch.index, 3u);
}

TEST(Prepare, MultiScalePicksFromListDeterministically) {
  BatchConfig cfg;
  cfg.train_min_sizes = {480, 640, 800};
  const CategoryMap map({7});
  std::map<int, int> counts;
  for (uint64_t seq = 0; seq < 60; ++seq) {
    Sample s = rect_sample(60, 80, cv::Rect(5, 5, 10, 10), seq);
    const PreparedImage p = prepare(s, cfg, map, batch_rng(7, s));
    ++counts[p.min_size];
    EXPECT_EQ(p.target.image_size, rcnn::resized_size(60, 80, p.min_size, 1333));
    EXPECT_EQ(prepare(s, cfg, map, batch_rng(7, s)).min_size, p.min_size);
  }
  EXPECT_EQ(counts.size(), 3u);
  for (const auto& kv : counts) EXPECT_GT(kv.second, 5) << kv.first;
}

TEST(Prepare, CrowdDegenerateAndOutOfImageBoxes) {
  Sample s = rect_sample(100, 100, cv::Rect(10, 10, 20, 20));
  Instance crowd = rect_instance(100, 100, 50, 50, 10, 10, 7, 2);
  crowd.iscrowd = 1;
  Instance flat = rect_instance(100, 100, 60, 5, 1, 1, 7, 3);
  flat.bbox = {60.0, 5.0, 0.0, 4.0};  // zero width: dropped
  Instance outside = rect_instance(100, 100, 90, 80, 10, 20, 7, 4);
  outside.bbox = {90.0, 80.0, 25.0, 30.0};  // clamped to 100
  Instance gone = rect_instance(100, 100, 0, 0, 1, 1, 7, 5);
  gone.bbox = {120.0, 10.0, 5.0, 5.0};  // entirely right of the image: empty after clamping
  s.instances.push_back(crowd);
  s.instances.push_back(flat);
  s.instances.push_back(outside);
  s.instances.push_back(gone);
  BatchConfig cfg;
  cfg.min_size = 100;
  const CategoryMap map({7});

  const PreparedImage dropped = prepare(s, cfg, map, Rng(0));
  ASSERT_EQ(dropped.target.annotation_ids.size(0), 2);
  EXPECT_EQ(dropped.target.annotation_ids[0].item<int64_t>(), 1);
  EXPECT_EQ(dropped.target.annotation_ids[1].item<int64_t>(), 4);
  EXPECT_EQ(dropped.target.boxes[1][2].item<float>(), 100.0f);
  EXPECT_EQ(dropped.target.boxes[1][3].item<float>(), 100.0f);
  EXPECT_EQ(dropped.target.masks.size(0), 2);

  cfg.drop_crowd = false;
  const PreparedImage with_crowd = prepare(s, cfg, map, Rng(0));
  ASSERT_EQ(with_crowd.target.annotation_ids.size(0), 3);
  EXPECT_EQ(with_crowd.target.annotation_ids[1].item<int64_t>(), 2);
  EXPECT_EQ(with_crowd.target.iscrowd[1].item<uint8_t>(), 1);
  EXPECT_EQ(with_crowd.target.iscrowd[0].item<uint8_t>(), 0);
}

TEST(Prepare, BoxesOnlyAndMaskErrors) {
  Sample s = rect_sample(50, 60, cv::Rect(10, 10, 20, 20));
  s.instances[0].has_mask = false;
  s.instances[0].mask = mask::Rle{};
  const CategoryMap map({7});
  BatchConfig cfg;
  try {
    prepare(s, cfg, map, Rng(0));
    FAIL() << "missing mask accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "missing_mask");
    EXPECT_NE(e.where().record.find("annotation id 1"), std::string::npos);
  }
  cfg.keep_masks = false;
  const PreparedImage p = prepare(s, cfg, map, Rng(0));
  EXPECT_FALSE(p.target.masks.defined());
  EXPECT_EQ(p.target.boxes.size(0), 1);

  Sample wrong = rect_sample(50, 60, cv::Rect(10, 10, 20, 20));
  wrong.instances[0].mask = rect_mask(50, 61, 10, 10, 20, 20);
  try {
    prepare(wrong, BatchConfig{}, map, Rng(0));
    FAIL() << "mask of another size accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "mask_size_mismatch");
  }
  Sample unknown = rect_sample(50, 60, cv::Rect(10, 10, 20, 20));
  unknown.instances[0].category_id = 8;
  try {
    prepare(unknown, BatchConfig{}, map, Rng(0));
    FAIL() << "unknown category accepted";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "unknown_category");
    EXPECT_NE(e.where().record.find("image id 42"), std::string::npos);
  }
  EXPECT_THROW(prepare(Sample{}, BatchConfig{}, map, Rng(0)), InputError);
}

TEST(Prepare, ImageWithoutInstances) {
  Sample s;
  s.image = cv::Mat(48, 64, CV_8UC1, cv::Scalar(128));
  const PreparedImage p = prepare(s, BatchConfig{}, CategoryMap({1}), Rng(0));
  EXPECT_EQ(p.target.boxes.sizes(), (std::vector<int64_t>{0, 4}));
  EXPECT_EQ(p.target.labels.sizes(), (std::vector<int64_t>{0}));
  EXPECT_EQ(p.target.masks.sizes(), (std::vector<int64_t>{0, 800, 1066}));
}

// ----------------------------------------------------------------- collate

TEST(Collate, PadsStacksAndKeepsOrder) {
  const CategoryMap map({7});
  std::vector<PreparedImage> prepared;
  prepared.push_back(prepare(rect_sample(480, 640, cv::Rect(1, 1, 5, 5), 10), BatchConfig{}, map, Rng(0)));
  prepared.push_back(prepare(rect_sample(640, 427, cv::Rect(1, 1, 5, 5), 11), BatchConfig{}, map, Rng(0)));
  prepared.back().epoch = 3;
  prepared.front().epoch = 3;
  const Batch batch = collate(std::move(prepared), BatchConfig{}, 5);
  // 640x480 -> 800x1066; 427x640 (w x h) -> 1199x799; padded to 1216 x 1088.
  EXPECT_EQ(batch.images.sizes(), (std::vector<int64_t>{2, 3, 1216, 1088}));
  EXPECT_EQ(batch.images.size(2) % 32, 0);
  EXPECT_EQ(batch.images.size(3) % 32, 0);
  ASSERT_EQ(batch.image_sizes.size(), 2u);
  EXPECT_EQ(batch.image_sizes[0], (rcnn::Size2{800, 1066}));
  EXPECT_EQ(batch.image_sizes[1], (rcnn::Size2{1199, 799}));
  EXPECT_EQ(batch.seqs, (std::vector<uint64_t>{10, 11}));
  EXPECT_EQ(batch.index, 5u);
  EXPECT_EQ(batch.epoch, 3u);
  EXPECT_EQ(batch.targets[1].masks.size(1), 1199);
  // Padding is zero (after normalisation).
  EXPECT_EQ(batch.images[0].narrow(1, 800, 416).abs().sum().item<float>(), 0.0f);
  EXPECT_NE(batch.images[0].narrow(1, 0, 800).abs().sum().item<float>(), 0.0f);
  EXPECT_THROW(collate({}, BatchConfig{}), InputError);
}

// ------------------------------------------------- batch slots (no-copy collate)

/// A real COCO train image (tests/data/batch/README.md), RGB.
cv::Mat coco_image() {
  cv::Mat bgr = cv::imread(std::string(PASTEFLOW_TEST_DATA) + "/batch/000000215657.jpg", cv::IMREAD_COLOR);
  cv::Mat rgb;
  if (!bgr.empty()) cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

TEST(RcnnTransform, ResizeBilinearIntoAStridedViewEqualsInterpolate) {
  const cv::Mat rgb = coco_image();
  ASSERT_EQ(rgb.size(), cv::Size(640, 480));
  const at::Tensor image = rcnn::normalized_image_tensor(rgb, rcnn::imagenet_mean(), rcnn::imagenet_std());
  // Up, down, and odd sizes; the view sits in a larger tensor whose other
  // values must stay as they were.
  for (const auto& [min_size, max_size] : std::vector<std::pair<double, double>>{{800, 1333}, {333, 1333}, {600, 700}, {479, 1000}}) {
    const rcnn::Size2 size = rcnn::resized_size(480, 640, min_size, max_size);
    const at::Tensor expected = rcnn::resize_image_and_masks(image, min_size, max_size).image;
    ASSERT_EQ(expected.sizes(), (std::vector<int64_t>{3, size[0], size[1]}));
    at::Tensor big = at::full({2, 3, size[0] + 37, size[1] + 45}, 7.0f);
    at::Tensor view = big[1].narrow(1, 0, size[0]).narrow(2, 0, size[1]);
    rcnn::resize_bilinear_into(image, view);
    EXPECT_TRUE(at::equal(view, expected)) << min_size << " / " << max_size;
    EXPECT_EQ(at::count_nonzero(big[0] != 7.0f).item<int64_t>(), 0);
    EXPECT_EQ(at::count_nonzero(big[1].narrow(1, size[0], 37) != 7.0f).item<int64_t>(), 0);
    EXPECT_EQ(at::count_nonzero(big[1].narrow(2, size[1], 45) != 7.0f).item<int64_t>(), 0);
  }
  EXPECT_THROW(rcnn::resize_bilinear_into(image, at::empty({1, 10, 10})), InputError);
  EXPECT_THROW(rcnn::resize_bilinear_into(image, at::empty({3, 10, 10}, at::kDouble)), InputError);
  EXPECT_THROW(rcnn::resize_bilinear_into(image.to(at::kDouble), at::empty({3, 10, 10})), InputError);
}

/// Two real-image samples of different shapes, for the slot tests.
std::vector<Sample> two_samples() {
  const cv::Mat rgb = coco_image();
  std::vector<Sample> samples(2);
  samples[0] = rect_sample(480, 640, cv::Rect(100, 50, 200, 100), 20);
  rgb.copyTo(samples[0].image);
  samples[1] = rect_sample(427, 300, cv::Rect(10, 10, 50, 60), 21);
  rgb(cv::Rect(100, 20, 300, 427)).copyTo(samples[1].image);
  return samples;
}

TEST(Collate, SlotsOfAPlannedBatchAreTheBatchWithoutCopy) {
  const CategoryMap map({7});
  BatchConfig cfg;
  cfg.hflip = true;
  cfg.train_min_sizes = {480, 512, 608, 800};
  const std::vector<Sample> samples = two_samples();
  // Reference: images prepared on their own, copied by collate.
  std::vector<PreparedImage> own;
  for (const Sample& s : samples) own.push_back(prepare(s, cfg, map, batch_rng(9, s)));
  const Batch reference = collate(std::move(own), cfg);

  std::vector<rcnn::Size2> sizes;
  for (const Sample& s : samples) {
    sizes.push_back(planned_size(s.image.rows, s.image.cols, cfg, batch_rng(9, s.epoch, s.seq)));
  }
  const at::Tensor buffer = allocate_batch(sizes, cfg);
  std::vector<PreparedImage> slotted;
  for (size_t i = 0; i < samples.size(); ++i) {
    slotted.push_back(prepare(samples[i], cfg, map, batch_rng(9, samples[i]), BatchSlot{buffer, static_cast<int64_t>(i)}));
    EXPECT_EQ(slotted.back().target.image_size, sizes[i]);
    EXPECT_TRUE(slotted.back().slot.defined());
  }
  const Batch batch = collate(std::move(slotted), cfg);
  EXPECT_EQ(batch.images.data_ptr(), buffer.data_ptr());  // handed over, not copied
  EXPECT_TRUE(at::equal(batch.images, reference.images));
  EXPECT_EQ(batch.image_sizes, reference.image_sizes);
  for (size_t i = 0; i < 2; ++i) {
    EXPECT_TRUE(at::equal(batch.targets[i].boxes, reference.targets[i].boxes));
    EXPECT_TRUE(at::equal(batch.targets[i].masks, reference.targets[i].masks));
  }
}

TEST(Collate, IncompleteOrMismatchedSlotsFallBackToACopy) {
  const CategoryMap map({7});
  const BatchConfig cfg;
  const std::vector<Sample> samples = two_samples();
  std::vector<rcnn::Size2> sizes;
  for (const Sample& s : samples) sizes.push_back(planned_size(s.image.rows, s.image.cols, cfg, batch_rng(3, s)));

  // A group whose first sample was skipped: the buffer is sized for both,
  // the batch holds the second only and is padded for it alone.
  {
    const at::Tensor buffer = allocate_batch(sizes, cfg);
    std::vector<PreparedImage> one;
    one.push_back(prepare(samples[1], cfg, map, batch_rng(3, samples[1]), BatchSlot{buffer, 1}));
    std::vector<PreparedImage> alone;
    alone.push_back(prepare(samples[1], cfg, map, batch_rng(3, samples[1])));
    const Batch got = collate(std::move(one), cfg);
    const Batch want = collate(std::move(alone), cfg);
    EXPECT_NE(got.images.data_ptr(), buffer.data_ptr());
    EXPECT_TRUE(at::equal(got.images, want.images));
  }
  // A slot too small for the image (the annotation file gave another size):
  // the image gets a tensor of its own; the batch is still right.
  {
    const at::Tensor small = allocate_batch({{32, 32}, sizes[1]}, cfg);
    std::vector<PreparedImage> got_images;
    std::vector<PreparedImage> want_images;
    for (size_t i = 0; i < 2; ++i) {
      got_images.push_back(prepare(samples[i], cfg, map, batch_rng(3, samples[i]), BatchSlot{small, static_cast<int64_t>(i)}));
      want_images.push_back(prepare(samples[i], cfg, map, batch_rng(3, samples[i])));
    }
    EXPECT_FALSE(got_images[0].slot.defined());
    const Batch got = collate(std::move(got_images), cfg);
    const Batch want = collate(std::move(want_images), cfg);
    EXPECT_NE(got.images.data_ptr(), small.data_ptr());
    EXPECT_TRUE(at::equal(got.images, want.images));
  }
  EXPECT_THROW(allocate_batch({}, cfg), InputError);
  EXPECT_THROW(allocate_batch({{0, 5}}, cfg), InputError);
}

// ------------------------------------------- scale 1: no interpolation at all

/// Bit-for-bit equality (at::equal has -0 == +0).
bool same_bits(const at::Tensor& a, const at::Tensor& b) {
  return a.sizes() == b.sizes() && at::equal(a.contiguous().view(at::kInt), b.contiguous().view(at::kInt));
}

/// torchvision's own sequence on one image: to float, normalise, flip,
/// interpolate (F::interpolate, through resize_image_and_masks).
at::Tensor reference_image(const cv::Mat& image, const BatchConfig& cfg, bool flip) {
  at::Tensor t = rcnn::normalize(rcnn::image_to_tensor(image), cfg.mean, cfg.std);
  if (flip) t = t.flip({2});
  return rcnn::resize_image_and_masks(t, cfg.min_size, cfg.max_size).image;
}

TEST(Prepare, ScaleOneIntoASlotEqualsInterpolationBitForBit) {
  const cv::Mat rgb = coco_image();
  ASSERT_EQ(rgb.size(), cv::Size(640, 480));
  cv::Mat grey;
  cv::cvtColor(rgb, grey, cv::COLOR_RGB2GRAY);
  const CategoryMap map({7});
  EXPECT_TRUE(rcnn::identity_resize_is_exact(rcnn::imagenet_mean(), rcnn::imagenet_std()));
  // 480 x 640 (no padding) and smaller crops padded in the slot; scale 1 is
  // min_size / h computed in float32 as torchvision does, which is 1 for
  // some sizes only (1/470 * 470 is not): those sizes are used.
  size_t padded = 0;
  for (const cv::Size size : {cv::Size(640, 480), cv::Size(630, 470), cv::Size(618, 466), cv::Size(611, 457),
                              cv::Size(600, 450), cv::Size(625, 461)}) {
    if (rcnn::resized_size(size.height, size.width, size.height, size.width) != rcnn::Size2{size.height, size.width}) {
      continue;
    }
    padded += size.height % 32 != 0 || size.width % 32 != 0 ? 1 : 0;
    for (const cv::Mat& pixels : {rgb, grey}) {
      BatchConfig cfg;
      cfg.hflip = true;
      cfg.min_size = size.height;
      cfg.max_size = size.width;
      std::set<bool> flips;
      for (uint64_t seq = 0; seq < 8 && flips.size() < 2; ++seq) {
        Sample s = rect_sample(size.height, size.width, cv::Rect(100, 50, 200, 100), seq);
        pixels(cv::Rect(0, 0, size.width, size.height)).copyTo(s.image);
        const at::Tensor buffer = allocate_batch({{size.height, size.width}, {size.height, size.width}}, cfg);
        buffer.fill_(std::nanf(""));  // whatever the pooled memory held before
        const PreparedImage p = prepare(s, cfg, map, batch_rng(5, s), BatchSlot{buffer, 1});
        ASSERT_TRUE(p.slot.defined());
        flips.insert(p.flipped);
        const at::Tensor want = reference_image(s.image, cfg, p.flipped);
        EXPECT_TRUE(same_bits(p.image, want)) << pixels.channels() << " channel(s), flip " << p.flipped;
        // The masks: torchvision's literal nearest interpolation of the (flipped) decoded mask.
        at::Tensor decoded = at::empty({1, size.height, size.width}, at::kByte);
        mask::decode_into(s.instances[0].mask, decoded.data_ptr<uint8_t>(), static_cast<size_t>(size.width));
        if (p.flipped) decoded = decoded.flip({2});
        const at::Tensor want_masks =
            F::interpolate(decoded.unsqueeze(1).to(at::kFloat),
                           F::InterpolateFuncOptions().size(std::vector<int64_t>{size.height, size.width}).mode(torch::kNearest))
                .select(1, 0)
                .to(at::kByte);
        EXPECT_TRUE(at::equal(p.target.masks, want_masks));
        EXPECT_EQ(at::count_nonzero(p.target.masks).item<int64_t>(), 200 * 100);
        // The slot's padding is zero, the other slot untouched.
        const at::Tensor place = buffer[1];
        EXPECT_EQ(at::count_nonzero(place).item<int64_t>(), at::count_nonzero(want).item<int64_t>());
        EXPECT_TRUE(at::isnan(buffer[0]).all().item<bool>());
      }
      EXPECT_EQ(flips.size(), 2u);
    }
  }
  EXPECT_GE(padded, 1u);
}

TEST(Prepare, ScaleOneWithANormalisationGivingInfinitiesStillInterpolates) {
  // std 1e-39: dark and bright values normalise to -inf / +inf, and ATen's
  // bilinear kernel at scale 1 computes v * 1 + v * 0, NaN for them: a copy
  // would give inf where torchvision gives NaN, so such a normalisation
  // takes the interpolation.
  BatchConfig cfg;
  cfg.mean = {0.5, 0.5, 0.5};
  cfg.std = {1e-39, 1e-39, 1e-39};
  EXPECT_FALSE(rcnn::identity_resize_is_exact(cfg.mean, cfg.std));
  EXPECT_FALSE(rcnn::identity_resize_is_exact({1.0, 1.0, 1.0}, {-1.0, -1.0, -1.0}));  // 255 gives -0
  const cv::Mat rgb = coco_image();
  ASSERT_FALSE(rgb.empty());
  Sample s = rect_sample(480, 640, cv::Rect(100, 50, 200, 100), 3);
  rgb.copyTo(s.image);
  cfg.min_size = 480;
  cfg.max_size = 640;
  const CategoryMap map({7});
  const at::Tensor buffer = allocate_batch({{480, 640}}, cfg);
  const PreparedImage p = prepare(s, cfg, map, batch_rng(5, s), BatchSlot{buffer, 0});
  const at::Tensor want = reference_image(s.image, cfg, p.flipped);
  EXPECT_TRUE(same_bits(p.image, want));
  EXPECT_GT(at::isnan(want).sum().item<int64_t>(), 0);
  // What a copy would give differs: the check is needed.
  const at::Tensor copy = rcnn::normalized_image_tensor(s.image, cfg.mean, cfg.std, p.flipped);
  EXPECT_GT(at::isinf(copy).sum().item<int64_t>(), 0);
  EXPECT_FALSE(same_bits(copy, want));
}

TEST(RcnnTransform, NormalizedImageIntoAStridedViewEqualsTheTensorForm) {
  const cv::Mat rgb = coco_image();
  ASSERT_FALSE(rgb.empty());
  cv::Mat grey, grey16;
  cv::cvtColor(rgb, grey, cv::COLOR_RGB2GRAY);
  grey.convertTo(grey16, CV_16U, 257.0);
  // An odd-sized, unaligned crop (a row step wider than the row).
  for (const cv::Mat& image : {rgb(cv::Rect(3, 5, 301, 207)), grey(cv::Rect(1, 0, 333, 17)), grey16}) {
    for (int k = 0; k < 4; ++k) {
      const bool flip = (k & 1) != 0, streaming = (k & 2) != 0;
      const at::Tensor want = rcnn::normalized_image_tensor(image, rcnn::imagenet_mean(), rcnn::imagenet_std(), flip);
      at::Tensor big = at::full({2, 3, image.rows + 3, image.cols + 5}, 7.0f);
      at::Tensor view = big[1].narrow(1, 1, image.rows).narrow(2, 3, image.cols);
      rcnn::normalized_image_into(image, rcnn::imagenet_mean(), rcnn::imagenet_std(), flip, view, streaming);
      EXPECT_TRUE(same_bits(view, want)) << image.channels() << " " << image.depth() << " " << flip << " " << streaming;
      EXPECT_EQ(at::count_nonzero(big[0] != 7.0f).item<int64_t>(), 0);
      EXPECT_EQ(at::count_nonzero(big[1] != 7.0f).item<int64_t>(), 3 * image.rows * image.cols);
    }
  }
  EXPECT_THROW(rcnn::normalized_image_into(rgb, rcnn::imagenet_mean(), rcnn::imagenet_std(), false,
                                           at::empty({3, 10, 10})),
               InputError);
}

TEST(BatchConfigValidate, RejectsBadValues) {
  EXPECT_NO_THROW(validate(BatchConfig{}));
  BatchConfig c;
  c.device = "gpu7";
  try {
    validate(c);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.reason(), "bad_device");
    EXPECT_EQ(e.where().key, "batch.device");
  }
  c = BatchConfig{};
  c.train_min_sizes = {640, 0};
  EXPECT_THROW(validate(c), ConfigError);
  c = BatchConfig{};
  c.std = {1.0, 0.0, 1.0};
  EXPECT_THROW(validate(c), ConfigError);
  c = BatchConfig{};
  c.mean = {0.5};
  EXPECT_THROW(validate(c), ConfigError);
  c = BatchConfig{};
  c.size_divisible = 0;
  EXPECT_THROW(validate(c), ConfigError);
  c = BatchConfig{};
  c.output = "detectron2";
  try {
    validate(c);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "batch.output");
  }
  c = BatchConfig{};
  c.device = "cuda:1";  // parses even without a GPU
  EXPECT_NO_THROW(validate(c));
}

}  // namespace
}  // namespace pasteflow::stages
