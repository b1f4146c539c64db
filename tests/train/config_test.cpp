// TrainConfig: schema defaults (the paper's schedule), the learning-rate
// schedule, cross-field validation, shipped configs.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <string>
#include <vector>

#include "pasteflow/config/config.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/train/config.hpp"

#include "train_test_util.hpp"

namespace pasteflow::train {
namespace {

using testing_util::kSource;

TrainConfig from_overrides(const std::vector<std::string>& overrides) {
  std::vector<std::string> o = {"data.train_annotations=a.json"};
  o.insert(o.end(), overrides.begin(), overrides.end());
  return parse_train_config("", "<test>", o);
}

std::string error_key(const std::vector<std::string>& overrides, std::string* reason = nullptr) {
  try {
    from_overrides(overrides);
  } catch (const ConfigError& e) {
    if (reason != nullptr) *reason = e.reason();
    return e.where().key;
  }
  return "<no error>";
}

TEST(TrainConfig, DefaultsAreThePapersSchedule) {
  const TrainConfig c{};
  EXPECT_EQ(c.solver.base_lr, 0.01);
  EXPECT_EQ(c.solver.reference_batch, 8);
  EXPECT_EQ(c.solver.momentum, 0.9);
  EXPECT_EQ(c.solver.weight_decay, 1e-4);
  EXPECT_EQ(c.solver.steps, (std::vector<uint64_t>{24000, 32000}));
  EXPECT_EQ(c.solver.gamma, 0.1);
  EXPECT_EQ(c.solver.max_iter, 36000u);
  EXPECT_EQ(c.solver.clip_grad_norm, 0.0);
  EXPECT_EQ(c.eval.metric, "segm_AP_small");
  EXPECT_EQ(c.device, "cpu");
}

// Hand-computed values of detectron2's WarmupMultiStepLR ("linear"):
// factor = warmup_factor * (1 - i / W) + i / W below W, then gamma^k with
// k = bisect_right(steps, i).
TEST(TrainConfig, LearningRateSchedule) {
  SolverConfig s;  // 0.01 at 8, warm-up 1000 iterations from 0.001, steps 24k and 32k
  EXPECT_DOUBLE_EQ(learning_rate(s, 8, 0), 0.01 * 0.001);
  EXPECT_DOUBLE_EQ(learning_rate(s, 8, 500), 0.01 * (0.001 * 0.5 + 0.5));
  EXPECT_DOUBLE_EQ(learning_rate(s, 8, 999), 0.01 * (0.001 * 0.001 + 0.999));
  EXPECT_DOUBLE_EQ(learning_rate(s, 8, 1000), 0.01);
  EXPECT_DOUBLE_EQ(learning_rate(s, 8, 23999), 0.01);
  EXPECT_DOUBLE_EQ(learning_rate(s, 8, 24000), 0.01 * 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, 8, 31999), 0.01 * 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, 8, 32000), 0.01 * 0.1 * 0.1);
  EXPECT_DOUBLE_EQ(learning_rate(s, 8, 35999), 0.01 * 0.1 * 0.1);
  // Linear scaling rule: 2 images per iteration -> a quarter of the rate.
  EXPECT_DOUBLE_EQ(scaled_base_lr(s, 2), 0.0025);
  EXPECT_DOUBLE_EQ(learning_rate(s, 2, 5000), 0.0025);
  EXPECT_DOUBLE_EQ(scaled_base_lr(s, 16), 0.02);
  s.scale_lr = false;
  EXPECT_DOUBLE_EQ(learning_rate(s, 2, 5000), 0.01);
  s.warmup_method = "constant";
  EXPECT_DOUBLE_EQ(learning_rate(s, 2, 999), 0.01 * 0.001);
  EXPECT_DOUBLE_EQ(learning_rate(s, 2, 1000), 0.01);
  s.warmup_iters = 0;
  EXPECT_DOUBLE_EQ(learning_rate(s, 2, 0), 0.01);
}

TEST(TrainConfig, MetricNames) {
  EXPECT_EQ(metric_names().size(), 24u);
  EXPECT_EQ(parse_metric("bbox_AP").index, 0u);
  EXPECT_FALSE(parse_metric("bbox_AP").segm);
  const MetricId m = parse_metric("segm_AP_small");
  EXPECT_TRUE(m.segm);
  EXPECT_EQ(m.index, 3u);
  EXPECT_EQ(parse_metric("segm_AR_large").index, 11u);
  for (const char* bad : {"AP", "segm_", "segm_ap", "keypoints_AP", "bbox_AP_tiny"}) {
    EXPECT_THROW(parse_metric(bad), ConfigError) << bad;
  }
}

TEST(TrainConfig, CrossFieldErrorsNameTheKey) {
  std::string reason;
  EXPECT_EQ(error_key({"solver.steps=[100, 100]"}), "solver.steps");
  EXPECT_EQ(error_key({"solver.steps=[200, 100]"}), "solver.steps");
  EXPECT_EQ(error_key({"eval.metric=segm_AP_tiny"}), "eval.metric");
  EXPECT_EQ(error_key({"eval.metric=segm_AP", "model.mask.enabled=false"}), "eval.metric");
  EXPECT_EQ(error_key({"device=gpu0"}), "device");
  EXPECT_EQ(error_key({"device=cuda", "model.device=cuda:1"}, &reason), "model.device");
  EXPECT_EQ(reason, "conflicting_device");
  EXPECT_EQ(error_key({"solver.nesterov=true", "solver.momentum=0"}), "solver.nesterov");
  EXPECT_EQ(error_key({"solver.warmup_method=cosine"}), "solver.warmup_method");
  EXPECT_EQ(error_key({"solver.max_iter=0"}), "solver.max_iter");
  // The pipeline's and the model's own checks, with the section prefix.
  EXPECT_EQ(error_key({"pipeline.batch.mean=[0.5]"}), "pipeline.batch.mean");
  EXPECT_EQ(error_key({"model.backbone.depth=42"}), "model.backbone.depth");
  EXPECT_EQ(error_key({"pipeline.nope=1"}, &reason), "pipeline.nope");
  EXPECT_EQ(reason, "unknown_key");
  // The trainer's model takes the padded batch, not torchvision's image list.
  EXPECT_EQ(error_key({"pipeline.batch.output=torchvision"}, &reason), "pipeline.batch.output");
  EXPECT_EQ(reason, "bad_choice");
  // The training set is required.
  try {
    parse_train_config("", "<test>");
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "data.train_annotations");
    EXPECT_EQ(e.reason(), "missing_key");
  }
  // A model device equal to `device` is fine.
  EXPECT_NO_THROW(from_overrides({"device=cuda:1", "model.device=cuda:1"}));
}

TEST(TrainConfig, TrainFractionIsInZeroToOne) {
  EXPECT_EQ(TrainConfig{}.data.train_fraction, 1.0);
  EXPECT_EQ(error_key({"data.train_fraction=0"}), "data.train_fraction");
  EXPECT_EQ(error_key({"data.train_fraction=1.5"}), "data.train_fraction");
  EXPECT_EQ(error_key({"data.train_fraction=-0.1"}), "data.train_fraction");
  const TrainConfig c = from_overrides({"data.train_fraction=0.15", "data.train_fraction_seed=4"});
  EXPECT_EQ(c.data.train_fraction, 0.15);
  EXPECT_EQ(c.data.train_fraction_seed, 4u);
}

TEST(TrainConfig, DumpReloadsEqual) {
  const TrainConfig c = from_overrides({"solver.max_iter=90", "pipeline.loader.batch_size=4", "eval.metric=bbox_AP"});
  const std::string yaml = config::dump_config(c);
  const TrainConfig back = parse_train_config(yaml, "<dump>");
  EXPECT_TRUE(config::config_diff(c, back).empty());
  EXPECT_NE(yaml.find("max_iter: 90"), std::string::npos);
}

TEST(TrainConfig, EveryKeyIsDescribed) {
  const auto keys = config::schema_keys<TrainConfig>();
  std::vector<std::string> want = {"data.train_annotations", "solver.base_lr", "solver.reference_batch",
                                   "solver.warmup_iters", "solver.steps", "solver.clip_grad_norm",
                                   "checkpoint.keep_last", "eval.metric", "output_dir", "device", "log_period",
                                   "pipeline.loader.batch_size", "model.backbone.depth"};
  for (const std::string& k : want) {
    bool found = false;
    for (const auto& info : keys) {
      if (info.path == k) {
        found = true;
        EXPECT_FALSE(info.doc.empty()) << k;
      }
    }
    EXPECT_TRUE(found) << k;
  }
}

TEST(TrainConfig, ShippedConfigsLoad) {
  const TrainConfig paper = load_train_config(kSource + "/configs/train/paper_baseline.yaml");
  EXPECT_EQ(paper.solver.max_iter, 36000u);
  EXPECT_EQ(paper.solver.steps, (std::vector<uint64_t>{24000, 32000}));
  EXPECT_EQ(paper.pipeline.loader.batch_size, 8);
  EXPECT_DOUBLE_EQ(learning_rate(paper.solver, paper.pipeline.loader.batch_size, 30000), 0.001);
  EXPECT_EQ(paper.model.backbone.depth, 50);
  EXPECT_EQ(paper.device, "cuda");
  EXPECT_EQ(paper.solver.amp, "off") << "YAML 1.1 reads a bare off as false; the key keeps the word";
  EXPECT_TRUE(paper.model.channels_last);

  const TrainConfig tiny = load_train_config(kSource + "/configs/train/sample_tiny.yaml");
  EXPECT_EQ(tiny.model.backbone.depth, 18);
  EXPECT_EQ(tiny.pipeline.batch.min_size, 128);
  EXPECT_EQ(tiny.data.train_annotations, "data/sample/annotations.json");
  EXPECT_TRUE(std::filesystem::exists(kSource + "/" + tiny.data.train_annotations));
}

}  // namespace
}  // namespace pasteflow::train
