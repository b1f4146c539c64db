// Trainer tests on the bundled sample with the tiny model
// (configs/train/sample_tiny.yaml: ResNet-18 FPN, GroupNorm, 128 px).
#include <gtest/gtest.h>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <map>
#include <opencv2/imgcodecs.hpp>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/model/weights.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/train/checkpoint.hpp"
#include "pasteflow/train/plot.hpp"
#include "pasteflow/train/trainer.hpp"
#include "train_test_util.hpp"

namespace pasteflow::train {
namespace {

namespace fs = std::filesystem;
using testing_util::TempDir;
using testing_util::tiny_config;

/// Every parameter and buffer, and every momentum buffer, by name.
std::map<std::string, at::Tensor> full_state(Trainer& t) {
  std::map<std::string, at::Tensor> out;
  for (const auto& [k, v] : model::state_dict(*t.model())) out["model." + k] = v.detach().clone();
  const std::string tmp = (fs::path(t.config().output_dir) / "state_probe.pt").string();
  TrainState s;
  save_checkpoint(tmp, *t.model(), t.optimizer(), s);
  for (const auto& [k, v] : model::read_checkpoint(tmp)) {
    if (k.rfind("optimizer.", 0) == 0) out[k] = v;
  }
  fs::remove(tmp);
  return out;
}

// The learning check of the default suite: over-fitting one fixed batch,
// the loss must fall to at most half of its first value within 30 steps
// (measured: 6.78 -> 2.50, mean of the last three).
TEST(TrainerLearning, OverfitsOneFixedBatch) {
  TempDir dir;
  // The deterministic sampler picks the same RPN / RoI training examples for
  // the same proposals, so the loss follows the fit rather than the draws.
  TrainConfig cfg = tiny_config(dir.str(), {"solver.warmup_iters=0", "solver.steps=[]", "solver.base_lr=0.01",
                                            "model.sampler=deterministic", "pipeline.sampler.aug_mode=none",
                                            "pipeline.batch.hflip=false"});
  Trainer trainer(cfg);
  io::LoadOptions load;
  load.image_root = cfg.data.train_images;
  const io::CocoDataset ds = io::load_coco(cfg.data.train_annotations, load);
  pipeline::Loader loader(ds, trainer.config().pipeline);
  const auto batch = loader.next_batch();
  ASSERT_TRUE(batch.has_value());

  std::vector<double> losses;
  for (int i = 0; i < 30; ++i) {
    const IterationRecord r = trainer.step(*batch);
    EXPECT_EQ(r.iteration, static_cast<uint64_t>(i + 1));
    EXPECT_DOUBLE_EQ(r.lr, 0.01);
    EXPECT_EQ(r.losses.size(), 5u);
    losses.push_back(r.loss);
  }
  const double last3 = (losses[27] + losses[28] + losses[29]) / 3.0;
  EXPECT_LE(last3, 0.5 * losses[0]) << "first loss " << losses[0] << ", mean of the last three " << last3;
}

// A run killed after iteration 6 and resumed from its checkpoint at
// iteration 4 reproduces the uninterrupted run bit for bit: every loss of
// iterations 1..10, every weight and momentum buffer at the end. The run
// crosses a learning-rate step (6), the end of warm-up (3) and an epoch
// boundary (8 batches of 2 of the 16 images), pastes objects
// (aug_mode replace) and samples RPN/RoI training examples with
// torch::randperm (model.sampler random).
TEST(TrainerResume, ResumedRunEqualsUninterruptedRun) {
  at::set_num_threads(1);
  const std::vector<std::string> o = {
      "solver.max_iter=10", "solver.steps=[6]", "solver.warmup_iters=3", "checkpoint.period=4",
      "checkpoint.keep_last=0", "eval.period=0", "eval.at_end=false", "log_period=1",
      "pipeline.sampler.aug_mode=replace", "torch_threads=1", "model.sampler=random"};
  TempDir a_dir, b_dir;

  std::map<uint64_t, double> a_loss, b_loss;
  std::map<uint64_t, std::map<std::string, double>> a_parts, b_parts;
  std::map<uint64_t, uint64_t> a_epoch;
  std::map<std::string, at::Tensor> a_state;
  {
    TrainerHooks h;
    h.on_iteration = [&](const IterationRecord& r) {
      a_loss[r.iteration] = r.loss;
      a_parts[r.iteration] = r.losses;
      a_epoch[r.iteration] = r.epoch;
    };
    Trainer a(tiny_config(a_dir.str(), o), h);
    const TrainSummary s = a.train();
    EXPECT_TRUE(s.finished);
    EXPECT_EQ(s.end_iteration, 10u);
    a_state = full_state(a);
  }
  ASSERT_EQ(a_loss.size(), 10u);
  EXPECT_EQ(a_epoch[8], 0u);
  EXPECT_EQ(a_epoch[9], 1u);  // the epoch boundary is crossed after the resume point

  {
    TrainerHooks h;
    h.on_iteration = [&](const IterationRecord& r) {
      b_loss[r.iteration] = r.loss;
      b_parts[r.iteration] = r.losses;
    };
    Trainer b(tiny_config(b_dir.str(), o), h);
    const TrainSummary s = b.train(6);  // "killed" after iteration 6: newest checkpoint is 4
    EXPECT_FALSE(s.finished);
    EXPECT_EQ(s.end_iteration, 6u);
  }
  const auto listed = list_checkpoints(b_dir.str("checkpoints"));
  ASSERT_EQ(listed.size(), 1u);
  EXPECT_EQ(listed[0].first, 4u);
  // The kill cut the last metrics line short (regression: a truncated line
  // without "iter" was kept on resume and broke readers of the file).
  std::ofstream(b_dir.str("metrics.jsonl"), std::ios::app) << "{\"type\":\"tra";
  {
    TrainerHooks h;
    std::vector<std::string> notes;
    h.log = [&](const std::string& s) { notes.push_back(s); };
    h.on_iteration = [&](const IterationRecord& r) {
      b_loss[r.iteration] = r.loss;  // iterations 5 and 6 are run again
      b_parts[r.iteration] = r.losses;
    };
    Trainer c(tiny_config(b_dir.str(), o), h);
    EXPECT_EQ(c.resume(), listed[0].second);
    EXPECT_EQ(c.iteration(), 4u);
    const TrainSummary s = c.train();
    EXPECT_TRUE(s.finished);
    EXPECT_EQ(s.start_iteration, 4u);
    const std::map<std::string, at::Tensor> c_state = full_state(c);
    ASSERT_EQ(c_state.size(), a_state.size());
    size_t momentum = 0;
    for (const auto& [k, v] : a_state) {
      ASSERT_TRUE(c_state.count(k)) << k;
      EXPECT_TRUE(at::equal(v, c_state.at(k))) << k << " differs after the resume";
      momentum += k.rfind("optimizer.", 0) == 0;
    }
    EXPECT_GT(momentum, 10u);
  }
  for (uint64_t i = 1; i <= 10; ++i) {
    EXPECT_EQ(a_loss[i], b_loss[i]) << "iteration " << i;  // exact: bit-identical doubles
    EXPECT_EQ(a_parts[i], b_parts[i]) << "iteration " << i;
  }
  // metrics.jsonl of the resumed run: the "killed" lines 5, 6 were dropped
  // and rewritten; the train lines equal the uninterrupted run's losses.
  const MetricsLog la = read_metrics(a_dir.str("metrics.jsonl"));
  const MetricsLog lb = read_metrics(b_dir.str("metrics.jsonl"));
  ASSERT_EQ(la.train.size(), 10u);
  ASSERT_EQ(lb.train.size(), 10u);
  for (size_t i = 0; i < 10; ++i) {
    EXPECT_EQ(lb.train[i].iteration, i + 1);
    EXPECT_EQ(la.train[i].loss, lb.train[i].loss);
    EXPECT_EQ(la.train[i].lr, lb.train[i].lr);
  }
  {
    std::ifstream in(b_dir.str("metrics.jsonl"));
    for (std::string line; std::getline(in, line);) EXPECT_EQ(line.back(), '}') << line;
  }
  // The resolved config is in the run directory and the checkpoint.
  EXPECT_TRUE(fs::exists(b_dir.str("config.yaml")));
}

// data.train_fraction (the low-data regime): 0.25 of the 16 sample images
// are 4, so an epoch of batches of 2 (no oversampling) is 2 iterations.
TEST(TrainerData, TrainFractionTrainsOnThatShareOfTheImages) {
  TempDir dir;
  std::vector<std::string> notes;
  std::map<uint64_t, uint64_t> epoch_of;
  TrainerHooks h;
  h.log = [&](const std::string& s) { notes.push_back(s); };
  h.on_iteration = [&](const IterationRecord& r) { epoch_of[r.iteration] = r.epoch; };
  Trainer t(tiny_config(dir.str(), {"data.train_fraction=0.25", "data.train_fraction_seed=3",
                                    "pipeline.sampler.aug_mode=none", "solver.max_iter=3", "eval.at_end=false",
                                    "data.val_annotations="}),
            h);
  t.train();
  EXPECT_EQ(epoch_of.at(2), 0u);
  EXPECT_EQ(epoch_of.at(3), 1u);
  bool said = false;
  for (const std::string& n : notes) said = said || n.find("training set: 4 of 16 images") != std::string::npos;
  EXPECT_TRUE(said);
}

TEST(TrainerResume, StopFlagWritesACheckpointAndResumes) {
  TempDir dir;
  const std::vector<std::string> o = {"solver.max_iter=10", "checkpoint.period=100", "eval.period=0",
                                      "eval.at_end=false"};
  std::atomic<bool> stop{false};
  {
    TrainerHooks h;
    h.stop = &stop;
    h.on_iteration = [&](const IterationRecord& r) {
      if (r.iteration == 2) stop = true;
    };
    Trainer t(tiny_config(dir.str(), o), h);
    const TrainSummary s = t.train();
    EXPECT_TRUE(s.interrupted);
    EXPECT_EQ(s.end_iteration, 2u);
    EXPECT_EQ(s.last_checkpoint, dir.str("checkpoints/model_0000002.pt"));
  }
  Trainer t(tiny_config(dir.str(), o));
  t.resume();
  EXPECT_EQ(t.iteration(), 2u);
  EXPECT_THROW(t.resume(dir.str("checkpoints/none.pt")), InputError);
}

TEST(TrainerResume, FreshRunRefusesCheckpointsOfAnEarlierRun) {
  TempDir dir;
  fs::create_directories(dir.path() / "checkpoints");
  std::ofstream(dir.path() / "checkpoints" / checkpoint_file_name(40)) << "x";
  Trainer t(tiny_config(dir.str()));
  try {
    t.train();
    FAIL() << "expected Error";
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), "stale_checkpoints");
  }
}

TEST(TrainerResume, NoCheckpointIsAnError) {
  TempDir dir;
  Trainer t(tiny_config(dir.str()));
  try {
    t.resume();
    FAIL() << "expected InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "no_checkpoint");
  }
}

// Periodic evaluation: COCO results from the model's detections, both iou
// types, best.pt loadable as model weights, eval lines in metrics.jsonl.
TEST(TrainerEval, EvaluatesAndKeepsBestWeights) {
  TempDir dir;
  // score_thresh 0 so that the untrained model reports detections.
  const std::vector<std::string> o = {"solver.max_iter=1", "eval.max_images=3", "eval.at_end=true",
                                      "model.box.score_thresh=0.0", "model.box.detections_per_img=20"};
  std::vector<EvaluationReport> reports;
  TrainerHooks h;
  h.on_eval = [&](uint64_t it, const EvaluationReport& r) {
    EXPECT_EQ(it, 1u);
    reports.push_back(r);
  };
  Trainer t(tiny_config(dir.str(), o), h);
  t.train();
  ASSERT_EQ(reports.size(), 1u);
  const EvaluationReport& r = reports[0];
  EXPECT_EQ(r.images, 3u);
  EXPECT_EQ(r.detections + r.dropped, 60u);  // 20 per image
  ASSERT_TRUE(r.segm.has_value());
  EXPECT_EQ(r.bbox.params.img_ids.size(), 3u);
  for (double v : r.bbox.stats) EXPECT_TRUE(v == -1.0 || (v >= 0.0 && v <= 1.0));
  EXPECT_EQ(r.metrics().size(), 24u);

  ASSERT_TRUE(fs::exists(dir.str("best.pt")));
  ASSERT_TRUE(fs::exists(dir.str("best.json")));
  model::MaskRCNN fresh(t.config().model);
  model::load_weights(*fresh, dir.str("best.pt"));
  for (const auto& [k, v] : model::state_dict(*t.model())) {
    EXPECT_TRUE(at::equal(v, model::state_dict(*fresh).at(k))) << k;
  }
  const MetricsLog log = read_metrics(dir.str("metrics.jsonl"));
  ASSERT_EQ(log.eval.size(), 1u);
  EXPECT_EQ(log.eval[0].metric, "segm_AP_small");
  EXPECT_EQ(log.eval[0].value, r.segm->stats[3]);
  EXPECT_EQ(log.eval[0].metrics.at("bbox_AP"), r.bbox.stats[0]);
}

TEST(TrainerConfig, DerivedModelKeys) {
  TempDir dir;
  Trainer t(tiny_config(dir.str()));
  // 80 categories in the sample's annotations + background.
  EXPECT_EQ(t.config().model.num_classes, 81);
  EXPECT_EQ(t.config().model.transform.min_size, std::vector<int>{128});
  EXPECT_EQ(t.config().model.transform.max_size, 224);
  // The learning rate of iteration 0 is the warm-up's start.
  EXPECT_DOUBLE_EQ(t.learning_rate(), 0.02 * 0.1);
}

}  // namespace
}  // namespace pasteflow::train
