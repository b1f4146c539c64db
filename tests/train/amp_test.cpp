// Mixed precision in training (issue 14): the dynamic loss scaler
// (train/grad_scaler.hpp) with injected inf / NaN gradients, the trainer's
// fp16 path exercised on the CPU (solver.scaler.enabled: on; fp16 autocast
// itself needs CUDA), bit-exact resume of a bf16 + channels-last run with
// the scaler's state, and the config's checks.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/weights.hpp"
#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/config.hpp"
#include "pasteflow/train/grad_scaler.hpp"
#include "pasteflow/train/trainer.hpp"
#include "train/train_test_util.hpp"

namespace pasteflow::train {
namespace {

using testing_util::TempDir;
using testing_util::tiny_config;

at::Tensor param_with_grad(std::vector<float> grad) {
  at::Tensor p = at::zeros({static_cast<int64_t>(grad.size())}).requires_grad_(true);
  p.mutable_grad() = at::tensor(grad);
  return p;
}

// ------------------------------------------------------------ GradScaler

TEST(GradScaler, ScalesTheLossAndUnscalesTheGradientsInPlace) {
  GradScalerConfig c;
  c.init_scale = 1024.0;
  GradScaler s(c);
  EXPECT_EQ(s.scale(at::tensor(0.5f)).item<float>(), 512.0f);
  at::Tensor p = param_with_grad({1024.0f, -2048.0f});
  at::Tensor none = at::zeros({2}).requires_grad_(true);  // no gradient: skipped
  const at::Tensor before = p.grad();
  EXPECT_TRUE(s.unscale({p, none}));
  EXPECT_TRUE(p.grad().is_same(before)) << "in place (reducer bucket views stay views)";
  EXPECT_EQ(p.grad()[0].item<float>(), 1.0f);
  EXPECT_EQ(p.grad()[1].item<float>(), -2.0f);
}

TEST(GradScaler, InjectedInfOrNanSkipsAndBacksOff) {
  for (const float bad : {std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                          std::numeric_limits<float>::quiet_NaN()}) {
    GradScalerConfig c;
    c.init_scale = 256.0;
    GradScaler s(c);
    at::Tensor ok = param_with_grad({1.0f, 2.0f});
    at::Tensor hit = param_with_grad({3.0f, bad});
    EXPECT_FALSE(s.unscale({ok, hit})) << bad;
    s.update(false);
    EXPECT_EQ(s.current_scale(), 128.0);
    EXPECT_EQ(s.state().growth_tracker, 0);
    EXPECT_EQ(s.skipped(), 1);
    // The finite gradients were still unscaled (the step is skipped anyway).
    EXPECT_EQ(ok.grad()[1].item<float>(), 2.0f / 256.0f);
  }
}

TEST(GradScaler, GrowsAfterGrowthIntervalFiniteStepsInARow) {
  GradScalerConfig c;
  c.init_scale = 8.0;
  c.growth_interval = 3;
  c.growth_factor = 2.0;
  c.backoff_factor = 0.25;
  GradScaler s(c);
  s.update(true);
  s.update(true);
  EXPECT_EQ(s.current_scale(), 8.0);
  s.update(false);  // resets the run of finite steps
  EXPECT_EQ(s.current_scale(), 2.0);
  s.update(true);
  s.update(true);
  EXPECT_EQ(s.current_scale(), 2.0);
  s.update(true);
  EXPECT_EQ(s.current_scale(), 4.0);
  EXPECT_EQ(s.state().growth_tracker, 0);
  EXPECT_EQ(s.skipped(), 1);
}

TEST(GradScaler, DisabledPassesThroughButStillChecks) {
  GradScaler s(GradScalerConfig{}, /*enabled=*/false);
  const at::Tensor loss = at::tensor(3.0f);
  EXPECT_TRUE(s.scale(loss).is_same(loss));
  at::Tensor p = param_with_grad({5.0f, std::numeric_limits<float>::infinity()});
  EXPECT_FALSE(s.unscale({p}));
  EXPECT_EQ(p.grad()[0].item<float>(), 5.0f) << "not divided";
  s.update(false);
  EXPECT_EQ(s.current_scale(), 65536.0);
}

TEST(GradScaler, StateRoundTripsAndBadStatesAreRefused) {
  GradScaler s;
  s.load_state({1.5, 7});
  EXPECT_EQ(s.state().scale, 1.5);
  EXPECT_EQ(s.state().growth_tracker, 7);
  EXPECT_THROW(s.load_state({0.0, 0}), InputError);
  EXPECT_THROW(s.load_state({std::numeric_limits<double>::infinity(), 0}), InputError);
  EXPECT_THROW(s.load_state({2.0, -1}), InputError);
  EXPECT_EQ(s.state().scale, 1.5) << "a refused state changes nothing";
}

// ------------------------------------------------------------ trainer

TEST(TrainerAmp, Fp16OnTheCpuIsAConfigErrorNamingTheKey) {
  TempDir dir;
  try {
    tiny_config(dir.str(), {"solver.amp=fp16"});
    FAIL() << "expected ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "solver.amp");
    EXPECT_NE(std::string(e.what()).find("bf16"), std::string::npos) << e.what();
  }
  EXPECT_THROW(tiny_config(dir.str(), {"solver.amp=half"}), ConfigError);
  EXPECT_THROW(tiny_config(dir.str(), {"solver.scaler.enabled=yes"}), ConfigError);
  EXPECT_THROW(tiny_config(dir.str(), {"solver.scaler.backoff_factor=2"}), ConfigError);
}

// The fp16 path's update logic, on the CPU: loss scaling on, an inf injected
// into one gradient of iteration 3 (a tensor hook, as an fp16 overflow would
// produce it). That step must be skipped (no parameter changes), the scale
// halved, and training go on.
TEST(TrainerAmp, InjectedInfGradientSkipsTheStepAndHalvesTheScale) {
  TempDir dir;
  const std::vector<std::string> o = {"solver.max_iter=5",        "solver.warmup_iters=0", "eval.period=0",
                                      "eval.at_end=false",        "log_period=1",          "torch_threads=1",
                                      "solver.scaler.enabled=on", "solver.scaler.init_scale=1024",
                                      "solver.scaler.growth_interval=1000", "checkpoint.period=100"};
  TrainerHooks h;
  std::map<uint64_t, IterationRecord> recs;
  std::map<uint64_t, std::map<std::string, at::Tensor>> weights;
  bool inject = false;
  Trainer* self = nullptr;
  h.on_iteration = [&](const IterationRecord& r) {
    recs[r.iteration] = r;
    for (const auto& [k, v] : model::state_dict(*self->model())) weights[r.iteration][k] = v.detach().clone();
    inject = r.iteration == 2;  // the next iteration (3) gets an inf
  };
  Trainer t(tiny_config(dir.str(), o), h);
  self = &t;
  at::Tensor target = t.model()->named_parameters()["roi_heads.box_head.fc6.weight"];
  target.register_hook([&](const at::Tensor& g) {
    if (!inject) return g;
    at::Tensor bad = g.clone();
    bad.view({-1})[0] = std::numeric_limits<float>::infinity();
    return bad;
  });
  const TrainSummary s = t.train();
  ASSERT_TRUE(s.finished);
  ASSERT_EQ(recs.size(), 5u);
  EXPECT_EQ(recs[1].loss_scale, 1024.0);
  EXPECT_FALSE(recs[2].skipped_step);
  EXPECT_TRUE(recs[3].skipped_step);
  EXPECT_EQ(recs[3].loss_scale, 1024.0) << "the scale the skipped backward used";
  EXPECT_EQ(recs[4].loss_scale, 512.0) << "backed off after the overflow";
  EXPECT_FALSE(recs[4].skipped_step);
  // Iteration 3 changed no weight; iterations 2 and 4 did.
  auto same = [&](uint64_t a, uint64_t b) {
    for (const auto& [k, v] : weights[a]) {
      if (!at::equal(v, weights[b].at(k))) return false;
    }
    return true;
  };
  EXPECT_TRUE(same(2, 3));
  EXPECT_FALSE(same(1, 2));
  EXPECT_FALSE(same(3, 4));
  for (const auto& [k, v] : weights[5]) ASSERT_TRUE(at::isfinite(v).all().item<bool>()) << k;
  // metrics.jsonl reports the scale and the skipped step.
  const std::string metrics = pasteflow::testing::read_file(dir.str("metrics.jsonl"));
  EXPECT_NE(metrics.find("\"iter\":3,"), std::string::npos);
  EXPECT_NE(metrics.find("\"loss_scale\":512"), std::string::npos) << metrics;
  EXPECT_NE(metrics.find("\"skipped_steps\":1"), std::string::npos) << metrics;
  // The checkpoint of the last iteration carries the scaler.
  const auto ckpt = model::read_checkpoint(latest_checkpoint(dir.str("checkpoints")));
  ASSERT_TRUE(ckpt.count("trainer.grad_scaler"));
  EXPECT_EQ(ckpt.at("trainer.grad_scaler")[0].item<double>(), 512.0);
}

// bf16 autocast + channels-last + loss scaling whose scale grows every 2
// steps: a run stopped after iteration 6 and resumed from its checkpoint
// at 4 equals the uninterrupted run bit for bit, loss scale included.
TEST(TrainerAmp, Bf16ChannelsLastResumeIsBitExactWithTheScalerState) {
  const std::vector<std::string> o = {
      "solver.max_iter=8",          "solver.warmup_iters=2",         "checkpoint.period=4",
      "checkpoint.keep_last=0",     "eval.period=0",                 "eval.at_end=false",
      "log_period=1",               "torch_threads=1",               "model.sampler=random",
      "solver.amp=bf16",            "model.channels_last=true",      "solver.scaler.enabled=on",
      "solver.scaler.init_scale=4", "solver.scaler.growth_interval=2"};
  TempDir a_dir, b_dir;
  std::map<uint64_t, double> a_loss, b_loss, a_scale, b_scale;
  std::map<std::string, at::Tensor> a_state;
  {
    TrainerHooks h;
    h.on_iteration = [&](const IterationRecord& r) {
      a_loss[r.iteration] = r.loss;
      a_scale[r.iteration] = r.loss_scale;
    };
    Trainer a(tiny_config(a_dir.str(), o), h);
    EXPECT_TRUE(a.model()->channels_last());
    EXPECT_EQ(a.model()->amp(), model::Amp::kBf16);
    ASSERT_TRUE(a.train().finished);
    a_state = model::state_dict(*a.model());
  }
  EXPECT_EQ(a_scale[1], 4.0);
  EXPECT_EQ(a_scale[8], 32.0) << "grown after iterations 2, 4 and 6";
  {
    Trainer b(tiny_config(b_dir.str(), o), {});
    EXPECT_FALSE(b.train(6).finished);
  }
  {
    TrainerHooks h;
    h.on_iteration = [&](const IterationRecord& r) {
      b_loss[r.iteration] = r.loss;
      b_scale[r.iteration] = r.loss_scale;
    };
    Trainer c(tiny_config(b_dir.str(), o), h);
    c.resume();
    EXPECT_EQ(c.iteration(), 4u);
    ASSERT_TRUE(c.train().finished);
    for (const auto& [k, v] : model::state_dict(*c.model())) {
      EXPECT_TRUE(at::equal(v, a_state.at(k))) << k;
    }
  }
  for (uint64_t i = 5; i <= 8; ++i) {
    EXPECT_EQ(b_loss.at(i), a_loss.at(i)) << "iteration " << i;
    EXPECT_EQ(b_scale.at(i), a_scale.at(i)) << "iteration " << i;
  }
}

}  // namespace
}  // namespace pasteflow::train
