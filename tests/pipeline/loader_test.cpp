// Whole-graph tests of the loader on the bundled real sample (data/sample):
// determinism across thread counts, the memory bounds, error propagation,
// the skip policy, shutdown mid-epoch.
#include "pasteflow/pipeline/loader.hpp"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <chrono>
#include <filesystem>
#include <map>
#include <thread>

#include "pasteflow/io/coco.hpp"

namespace pasteflow::pipeline {
namespace {

const std::string kSample = PASTEFLOW_SAMPLE_DATA;

io::CocoDataset sample_dataset() {
  io::LoadOptions opts;
  opts.image_root = kSample + "/images";
  return io::load_coco(kSample + "/annotations.json", opts);
}

PipelineConfig small_config(int threads) {
  PipelineConfig c;
  c.seed = 7;
  c.sampler.oversample = 2;
  c.sampler.aug_mode = "original_aug";
  c.augment.strategy = "all";
  c.augment.copies = 2;
  c.batch.min_size = 256;
  c.batch.max_size = 400;
  c.loader.threads = threads;
  c.loader.batch_size = 2;
  c.loader.prefetch = 2;
  c.loader.inflight = 3;
  return c;
}

std::vector<stages::Batch> one_epoch(Loader& loader) {
  std::vector<stages::Batch> out;
  for (auto& b : loader) out.push_back(std::move(b));
  return out;
}

void expect_same(const stages::Batch& a, const stages::Batch& b) {
  ASSERT_TRUE(torch::equal(a.images, b.images));
  ASSERT_EQ(a.targets.size(), b.targets.size());
  for (size_t i = 0; i < a.targets.size(); ++i) {
    EXPECT_EQ(a.targets[i].image_id, b.targets[i].image_id);
    EXPECT_TRUE(torch::equal(a.targets[i].boxes, b.targets[i].boxes));
    EXPECT_TRUE(torch::equal(a.targets[i].labels, b.targets[i].labels));
    EXPECT_TRUE(torch::equal(a.targets[i].masks, b.targets[i].masks));
  }
  EXPECT_EQ(a.seqs, b.seqs);
  EXPECT_EQ(a.index, b.index);
  EXPECT_EQ(a.epoch, b.epoch);
}

TEST(Loader, StreamIsBitIdenticalAtOneAndTwoThreads) {
  const auto ds = sample_dataset();
  Loader one(ds, small_config(1));
  Loader two(ds, small_config(2));
  const auto a = one_epoch(one);
  const auto b = one_epoch(two);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_EQ(a.size(), one.batches_per_epoch(0));
  for (size_t i = 0; i < a.size(); ++i) expect_same(a[i], b[i]);
  // The augmentation really ran: some targets carry more objects than the source image.
  size_t samples = 0;
  for (const auto& batch : a) samples += batch.targets.size();
  EXPECT_EQ(samples, one.epoch_size(0));
}

TEST(Loader, OversampleByCountIsBitIdenticalAtOneAndTwoThreads) {
  const auto ds = sample_dataset();
  PipelineConfig c1 = small_config(1), c2 = small_config(2);
  c1.sampler.oversample_by = c2.sampler.oversample_by = "count";
  Loader one(ds, c1);
  Loader two(ds, c2);
  const auto a = one_epoch(one);
  const auto b = one_epoch(two);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) expect_same(a[i], b[i]);
  // The loader's per-image counts are the ones the sampler weighs: the
  // image with the most small objects gets the largest repeat factor.
  const std::vector<stages::ImageInfo> infos = image_infos(ds, c1.size);
  size_t most = 0, eligible = 0;
  double sum = 0;
  for (size_t i = 0; i < infos.size(); ++i) {
    if (infos[i].num_small > infos[most].num_small) most = i;
    EXPECT_EQ(infos[i].has_small, infos[i].num_small > 0);
    if (infos[i].num_small > 0) {
      ++eligible;
      sum += infos[i].num_small;
    }
  }
  ASSERT_GT(eligible, 0u);
  const stages::Sampler sampler(c1.sampler, infos);
  EXPECT_DOUBLE_EQ(sampler.repeat_factor(most), 1.0 + infos[most].num_small / (sum / eligible));
}

TEST(Loader, SecondEpochDiffersFromTheFirst) {
  const auto ds = sample_dataset();
  Loader loader(ds, small_config(2));
  const auto e0 = one_epoch(loader);
  const auto e1 = one_epoch(loader);
  ASSERT_FALSE(e0.empty());
  ASSERT_FALSE(e1.empty());
  EXPECT_EQ(e0.front().epoch, 0u);
  EXPECT_EQ(e1.front().epoch, 1u);
  bool differ = e0.size() != e1.size();
  for (size_t i = 0; !differ && i < e0.size(); ++i) differ = e0[i].seqs != e1[i].seqs || !torch::equal(e0[i].images, e1[i].images);
  EXPECT_TRUE(differ);
}

TEST(Loader, BoundsInFlightSamplesAndReadyBatches) {
  const auto ds = sample_dataset();
  auto cfg = small_config(2);
  cfg.loader.inflight = 2;
  cfg.loader.prefetch = 3;
  Loader loader(ds, cfg);
  size_t n = 0;
  for (auto& b : loader) {
    (void)b;
    if (n++ == 0) {
      // A slow trainer: the graph goes on without the consumer and the
      // groups still issued (prefetch - 1 after this take) pile up as ready
      // batches (polled, so a loaded machine only makes this slower).
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
      while (loader.times().max_ready < 2 && std::chrono::steady_clock::now() < deadline) {
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
  }
  const StageTimes t = loader.times();
  EXPECT_GT(n, 3u);
  EXPECT_LE(t.max_inflight, 2u);
  EXPECT_GE(t.max_inflight, 1u);
  EXPECT_LE(t.max_ready, 3u);
  EXPECT_GE(t.max_ready, 2u);
}

io::CocoDataset dataset_with_missing_image() {
  auto ds = sample_dataset();
  // Point one image at a file that does not exist.
  ds.images[3].file_name = ds.add_string("does_not_exist.jpg");
  return ds;
}

TEST(Loader, StrictPolicyRaisesWithTheImageId) {
  const auto ds = dataset_with_missing_image();
  auto cfg = small_config(2);
  cfg.sampler.shuffle = false;
  cfg.sampler.oversample = 1;
  cfg.sampler.aug_mode = "none";
  Loader loader(ds, cfg);
  try {
    for (auto& b : loader) (void)b;
    FAIL() << "expected PipelineError";
  } catch (const PipelineError& e) {
    EXPECT_EQ(e.image_id(), ds.images[3].id);
    EXPECT_EQ(e.stage(), "load");
    EXPECT_EQ(e.reason(), "missing_image");
    EXPECT_NE(std::string(e.what()).find("does_not_exist.jpg"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("image id " + std::to_string(ds.images[3].id)), std::string::npos);
  }
  // The loader stays failed: the error is raised again, never a hang.
  EXPECT_THROW(loader.next_batch(), PipelineError);
}

TEST(Loader, SkipPolicyDropsAndCounts) {
  const auto ds = dataset_with_missing_image();
  auto cfg = small_config(2);
  cfg.sampler.oversample = 1;
  cfg.sampler.aug_mode = "none";
  cfg.loader.on_error = "skip";
  Loader loader(ds, cfg);
  size_t samples = 0;
  for (auto& b : loader) samples += b.targets.size();
  EXPECT_EQ(samples, ds.images.size() - 1);
  EXPECT_EQ(loader.skipped().count("missing_image"), 1u);
}

// The loader allocates each batch before its images are prepared and the
// images are resized into it (stages::BatchSlot); the batches must be exactly
// what prepare() and collate() give when run by hand on the same samples,
// also for groups that fall back to a copy: one with a skipped sample, one
// with an image whose size the annotation file does not give.
TEST(Loader, BatchesEqualPrepareAndCollateRunByHand) {
  auto ds = dataset_with_missing_image();
  ds.images[5].width = 0;  // size unknown: that group is not planned
  auto cfg = small_config(2);
  cfg.loader.on_error = "skip";
  cfg.loader.max_epochs = 1;
  cfg.batch.hflip = true;
  cfg.batch.train_min_sizes = {224, 256, 288};

  Loader samples_loader(ds, cfg, Output::kSamples);
  std::map<uint64_t, stages::Sample> by_seq;
  while (auto s = samples_loader.next_sample()) by_seq.emplace(s->seq, std::move(*s));

  Loader loader(ds, cfg);
  size_t batches = 0, short_batches = 0;
  for (auto& batch : loader) {
    ++batches;
    std::vector<stages::PreparedImage> by_hand;
    for (uint64_t seq : batch.seqs) {
      const auto it = by_seq.find(seq);
      ASSERT_NE(it, by_seq.end()) << seq;
      by_hand.push_back(stages::prepare(it->second, cfg.batch, loader.categories(),
                                        stages::batch_rng(cfg.seed, it->second)));
    }
    short_batches += batch.seqs.size() < 2 ? 1 : 0;
    expect_same(batch, stages::collate(std::move(by_hand), cfg.batch, batch.index));
  }
  EXPECT_EQ(batches, loader.batches_per_epoch(0));
  EXPECT_GE(short_batches, 1u);  // the group that lost its missing image
  // Copied: the groups of the missing image and of the unsized one (each
  // image appears twice: oversample 2 with original_aug); the others were
  // prepared in place.
  const uint64_t copied = loader.times().batches_copied;
  EXPECT_GE(copied, 2u);
  EXPECT_LE(copied, 4u);
  EXPECT_LT(copied, batches / 2);
  EXPECT_EQ(loader.skipped().count("missing_image"), 1u);
}

TEST(Loader, ShutdownMidEpochIsClean) {
  const auto ds = sample_dataset();
  for (int threads : {1, 2}) {
    Loader loader(ds, small_config(threads));
    auto b = loader.next_batch();
    ASSERT_TRUE(b.has_value());
  }  // destroyed with work in flight
  SUCCEED();
}

TEST(Loader, SampleOutputCarriesPastedInstances) {
  const auto ds = sample_dataset();
  auto cfg = small_config(2);
  cfg.sampler.aug_mode = "replace";
  cfg.sampler.oversample = 1;
  cfg.loader.max_epochs = 1;
  Loader loader(ds, cfg, Output::kSamples);
  size_t pasted = 0, n = 0;
  while (auto s = loader.next_sample()) {
    ++n;
    EXPECT_FALSE(s->image.empty());
    for (const auto& inst : s->instances) pasted += inst.pasted ? 1 : 0;
  }
  EXPECT_EQ(n, ds.images.size());
  EXPECT_GT(pasted, 10u);
  EXPECT_FALSE(loader.next_sample().has_value());  // max_epochs = 1: the stream ended
}

}  // namespace
}  // namespace pasteflow::pipeline

namespace pasteflow::pipeline {
namespace {

TEST(Loader, SeekResumesTheSameStream) {
  const auto ds = sample_dataset();
  const auto cfg = small_config(2);
  Loader full(ds, cfg);
  std::vector<stages::Batch> reference = one_epoch(full);
  const auto epoch1 = one_epoch(full);
  reference.insert(reference.end(), epoch1.begin(), epoch1.end());
  const size_t per_epoch = full.batches_per_epoch(0);
  ASSERT_GT(per_epoch, 3u);
  // Batch::index is the batch's position in its epoch (regression: it was
  // always 0 from the loader).
  for (size_t i = 0; i < reference.size(); ++i) EXPECT_EQ(reference[i].index, i % per_epoch) << i;

  // Resume in the middle of epoch 0: the rest of epoch 0, then epoch 1.
  Loader resumed(ds, cfg);
  resumed.seek(0, 3);
  std::vector<stages::Batch> got = one_epoch(resumed);
  const auto got1 = one_epoch(resumed);
  got.insert(got.end(), got1.begin(), got1.end());
  ASSERT_EQ(got.size(), reference.size() - 3);
  for (size_t i = 0; i < got.size(); ++i) expect_same(got[i], reference[i + 3]);
  EXPECT_EQ(got1.front().epoch, 1u);

  // Resume exactly at an epoch boundary.
  Loader boundary(ds, cfg);
  boundary.seek(0, per_epoch);
  EXPECT_FALSE(boundary.next_batch().has_value());
  const auto next = boundary.next_batch();
  ASSERT_TRUE(next.has_value());
  expect_same(*next, reference[per_epoch]);
  EXPECT_THROW(boundary.seek(0, 0), Error);
}

}  // namespace
}  // namespace pasteflow::pipeline
