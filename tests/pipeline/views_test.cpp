// Slices as samples (issue 11, section 2): the loader cuts images above
// slice.above into views and samples those through the same graph. On a
// 1280x860 tiled TIFF made in the test from four real images of the sample
// (mosaic_fixture.hpp) plus one ordinary JPEG that stays whole:
//  - a sliced sample's pixels are the full image's crop at the view's
//    window, its instances the annotations' full masks cropped to the window
//    (kept by min_area_ratio), computed here independently of the slicer;
//  - oversampling counts per view; copy-paste stays inside its view;
//  - the stream is identical at 1 and 2 threads; the tile cache is shared
//    (hits where windows overlap) and a window decodes only its tiles;
//  - with slice.above 0 the loader is the one it was.
#include <gtest/gtest.h>
#include <torch/torch.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>

#include "mosaic_fixture.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/pipeline/loader.hpp"

namespace pasteflow::pipeline {
namespace {

namespace fs = std::filesystem;
const std::string kSample = PASTEFLOW_SAMPLE_DATA;

/// The mosaic dataset, built once for the whole test program.
class MosaicTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    std::string tmpl = (fs::path(::testing::TempDir()) / "pasteflow_views_XXXXXX").string();
    ASSERT_NE(mkdtemp(tmpl.data()), nullptr);
    mosaic_ = new testing::Mosaic(testing::make_sample_mosaic(tmpl, kSample));
  }
  static void TearDownTestSuite() {
    std::error_code ec;
    fs::remove_all(mosaic_->dir, ec);
    delete mosaic_;
    mosaic_ = nullptr;
  }

  static io::CocoDataset load(int64_t max_pixels = 0) {
    io::LoadOptions opts;
    opts.image_root = mosaic_->dir;
    opts.max_pixels = max_pixels;
    return io::load_coco(mosaic_->annotations, opts);
  }

  /// Views of 512 px overlapping by 0.2 over images above 700 px: the
  /// mosaic is cut into a 3 x 2 grid, the 640x480 JPEG stays whole.
  static PipelineConfig sliced_config(int threads) {
    PipelineConfig c;
    c.seed = 11;
    c.slice.above = 700;
    c.slice.size = 512;
    c.slice.overlap = 0.2;
    c.slice.min_area_ratio = 0.1;
    c.slice.keep_empty = 1.0;
    c.sampler.shuffle = false;
    c.batch.min_size = 256;
    c.batch.max_size = 400;
    c.loader.threads = threads;
    c.loader.batch_size = 2;
    c.loader.prefetch = 2;
    c.loader.inflight = 3;
    c.loader.max_epochs = 1;
    return c;
  }

  static cv::Mat window_of(const slice::View& v) {
    return mosaic_->rgb(cv::Rect(static_cast<int>(v.window.x), static_cast<int>(v.window.y),
                                 static_cast<int>(v.window.width), static_cast<int>(v.window.height)));
  }

  static bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
    if (a.size() != b.size() || a.type() != b.type()) return false;
    cv::Mat diff;
    cv::absdiff(a, b, diff);
    return cv::countNonZero(diff.reshape(1)) == 0;
  }

  static testing::Mosaic* mosaic_;
};
testing::Mosaic* MosaicTest::mosaic_ = nullptr;

std::vector<stages::Sample> all_samples(Loader& loader) {
  std::vector<stages::Sample> out;
  while (auto s = loader.next_sample()) out.push_back(std::move(*s));
  return out;
}

TEST_F(MosaicTest, SlicedSamplesAreTheWindowCropWithTheCutAnnotations) {
  const io::CocoDataset ds = load();
  PipelineConfig cfg = sliced_config(2);
  Loader loader(ds, cfg, Output::kSamples);
  ASSERT_NE(loader.views(), nullptr);
  const slice::SlicedDataset& views = *loader.views();
  EXPECT_EQ(&loader.dataset(), &views.dataset);
  EXPECT_EQ(&loader.source(), &ds);
  // The mosaic: x windows 0, 410, 768; y windows 0, 348 (the last shifted back inside).
  size_t sliced = 0, whole = 0;
  for (const slice::View& v : views.views) (v.sliced ? sliced : whole) += 1;
  EXPECT_EQ(sliced, 6u);
  EXPECT_EQ(whole, 1u);

  const std::vector<stages::Sample> samples = all_samples(loader);
  ASSERT_EQ(samples.size(), views.views.size());  // keep_empty 1, no oversampling
  const int64_t mosaic_index = ds.image_index(mosaic_->mosaic_id);
  size_t checked_instances = 0;
  for (const stages::Sample& s : samples) {
    const slice::View& v = views.views[s.image_index];
    SCOPED_TRACE("view " + std::to_string(s.image_index));
    EXPECT_EQ(s.image_id, views.dataset.images[s.image_index].id);
    if (!v.sliced) {
      EXPECT_EQ(v.source_image_id, mosaic_->whole_id);
      cv::Mat bgr = cv::imread(mosaic_->dir + "/" + mosaic_->whole_file, cv::IMREAD_COLOR), rgb;
      cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
      EXPECT_TRUE(same_pixels(s.image, rgb));
      EXPECT_EQ(s.instances.size(), ds.annotations_of(static_cast<size_t>(ds.image_index(mosaic_->whole_id))).size());
      continue;
    }
    EXPECT_EQ(v.source_image_id, mosaic_->mosaic_id);
    EXPECT_EQ(s.image.cols, 512);
    EXPECT_EQ(s.image.rows, 512);
    EXPECT_TRUE(same_pixels(s.image, window_of(v)));

    // Expected instances, from the source annotations: full mask cropped to
    // the window, kept when >= min_area_ratio of the area is inside.
    std::map<int64_t, mask::Rle> expected;  // source annotation id -> cropped mask
    for (const uint32_t a : ds.annotations_of(static_cast<size_t>(mosaic_index))) {
      const io::AnnotationRecord& ann = ds.annotations[a];
      const mask::Rle full = mask::annotation_rle(ds, ann, static_cast<uint32_t>(testing::kMosaicHeight),
                                                     static_cast<uint32_t>(testing::kMosaicWidth));
      const mask::Rle cut = mask::crop(full, static_cast<int>(v.window.x), static_cast<int>(v.window.y), 512, 512);
      const double inside = static_cast<double>(mask::area(cut));
      if (inside > 0 && inside >= cfg.slice.min_area_ratio * static_cast<double>(mask::area(full))) {
        expected.emplace(ann.id, cut);
      }
    }
    ASSERT_EQ(s.instances.size(), expected.size());
    for (const stages::Instance& inst : s.instances) {
      // The instance's annotation in the views dataset -> its source annotation.
      const auto it = std::find_if(views.dataset.annotations.begin(), views.dataset.annotations.end(),
                                   [&](const io::AnnotationRecord& r) { return r.id == inst.id; });
      ASSERT_NE(it, views.dataset.annotations.end());
      const uint32_t src = views.annotation_source[static_cast<size_t>(it - views.dataset.annotations.begin())];
      const auto e = expected.find(ds.annotations[src].id);
      ASSERT_NE(e, expected.end()) << "annotation " << inst.id;
      EXPECT_TRUE(inst.mask == e->second) << "annotation " << inst.id;
      EXPECT_EQ(inst.category_id, ds.annotations[src].category_id);
      ++checked_instances;
    }
  }
  EXPECT_GT(checked_instances, 60u);
}

TEST_F(MosaicTest, OversamplingCountsPerView) {
  const io::CocoDataset ds = load();
  PipelineConfig cfg = sliced_config(2);
  cfg.sampler.oversample = 3;
  Loader loader(ds, cfg, Output::kSamples);
  const io::CocoDataset& vds = loader.dataset();
  std::map<uint32_t, int> drawn;
  for (const stages::Sample& s : all_samples(loader)) ++drawn[s.image_index];
  int with_small = 0, without = 0, sliced_with = 0, sliced_without = 0;
  for (size_t i = 0; i < vds.images.size(); ++i) {
    bool small = false;  // a non-crowd cut object below 32^2 (its area is the cut mask's)
    for (const uint32_t a : vds.annotations_of(i)) {
      small = small || (!vds.annotations[a].iscrowd && vds.annotations[a].area < 1024.0);
    }
    EXPECT_EQ(drawn[static_cast<uint32_t>(i)], small ? 3 : 1) << "view " << i;
    (small ? with_small : without) += 1;
    if (loader.views()->views[i].sliced) (small ? sliced_with : sliced_without) += 1;
  }
  // Views of the same image are drawn differently: the oversampling is per view.
  EXPECT_GT(sliced_with, 0);
  EXPECT_GT(sliced_without, 0);
}

TEST_F(MosaicTest, CopyPasteStaysInsideTheView) {
  const io::CocoDataset ds = load();
  PipelineConfig cfg = sliced_config(2);
  cfg.sampler.aug_mode = "replace";
  cfg.augment.strategy = "all";
  cfg.augment.copies = 2;
  Loader loader(ds, cfg, Output::kSamples);
  const slice::SlicedDataset& views = *loader.views();
  size_t pasted = 0;
  for (const stages::Sample& s : all_samples(loader)) {
    const slice::View& v = views.views[s.image_index];
    std::set<int64_t> own_ids;
    for (const uint32_t a : views.dataset.annotations_of(s.image_index)) own_ids.insert(views.dataset.annotations[a].id);
    cv::Mat pasted_area = cv::Mat::zeros(s.image.rows, s.image.cols, CV_8U);
    for (const stages::Instance& inst : s.instances) {
      ASSERT_EQ(inst.mask.w, static_cast<uint32_t>(s.image.cols));
      ASSERT_EQ(inst.mask.h, static_cast<uint32_t>(s.image.rows));
      if (!inst.pasted) continue;
      ++pasted;
      EXPECT_EQ(own_ids.count(inst.source_id), 1u) << "pasted from another view: " << inst.source_id;
      cv::Mat m(s.image.rows, s.image.cols, CV_8U);
      mask::decode_into(inst.mask, m.data, m.step);
      pasted_area |= m;
    }
    if (!v.sliced) continue;
    // Outside the pasted masks (hard paste, blur 0) the pixels are the window's.
    cv::Mat diff;
    cv::absdiff(s.image, window_of(v), diff);
    cv::Mat changed;
    cv::cvtColor(diff, changed, cv::COLOR_RGB2GRAY);
    changed.setTo(0, pasted_area);
    EXPECT_EQ(cv::countNonZero(changed), 0) << "view " << s.image_index;
  }
  EXPECT_GT(pasted, 20u);
}

TEST_F(MosaicTest, StreamIsIdenticalAtOneAndTwoThreads) {
  const io::CocoDataset ds = load();
  auto run = [&](int threads) {
    PipelineConfig cfg = sliced_config(threads);
    cfg.sampler.shuffle = true;
    cfg.sampler.oversample = 2;
    cfg.sampler.aug_mode = "original_aug";
    cfg.batch.hflip = true;
    Loader loader(ds, cfg);
    std::vector<stages::Batch> out;
    for (auto& b : loader) out.push_back(std::move(b));
    return out;
  };
  const auto a = run(1), b = run(2);
  ASSERT_EQ(a.size(), b.size());
  ASSERT_GT(a.size(), 4u);
  for (size_t i = 0; i < a.size(); ++i) {
    ASSERT_TRUE(torch::equal(a[i].images, b[i].images)) << "batch " << i;
    ASSERT_EQ(a[i].targets.size(), b[i].targets.size());
    for (size_t j = 0; j < a[i].targets.size(); ++j) {
      EXPECT_EQ(a[i].targets[j].image_id, b[i].targets[j].image_id);
      EXPECT_TRUE(torch::equal(a[i].targets[j].boxes, b[i].targets[j].boxes));
      EXPECT_TRUE(torch::equal(a[i].targets[j].masks, b[i].targets[j].masks));
    }
    EXPECT_EQ(a[i].seqs, b[i].seqs);
  }
}

TEST_F(MosaicTest, ScaleOneBatchesEqualPrepareByHandAndPooledBatchesAreNeverOverwrittenWhileHeld) {
  // min_size = max_size = the view size: the 512 x 512 views are batched at
  // scale 1 (normalised straight into the pooled batch tensor, no
  // interpolation), the whole 640 x 480 JPEG at 0.8 (interpolated).
  const io::CocoDataset ds = load();
  PipelineConfig cfg = sliced_config(2);
  cfg.batch.min_size = 512;
  cfg.batch.max_size = 512;
  cfg.batch.hflip = true;
  cfg.sampler.oversample = 3;
  cfg.sampler.aug_mode = "original_aug";

  Loader samples_loader(ds, cfg, Output::kSamples);
  std::map<uint64_t, stages::Sample> by_seq;
  while (auto s = samples_loader.next_sample()) by_seq.emplace(s->seq, std::move(*s));

  // Every batch held until the end: pooled memory must not be handed out
  // again while a batch lives on it.
  Loader held_loader(ds, cfg);
  std::vector<stages::Batch> held;
  for (auto& b : held_loader) held.push_back(std::move(b));
  ASSERT_GT(held.size(), 4u);
  size_t scale_one = 0, scaled = 0;
  for (const stages::Batch& batch : held) {
    std::vector<stages::PreparedImage> by_hand;
    for (uint64_t seq : batch.seqs) {
      const auto it = by_seq.find(seq);
      ASSERT_NE(it, by_seq.end()) << seq;
      (it->second.image.cols == 512 && it->second.image.rows == 512 ? scale_one : scaled) += 1;
      by_hand.push_back(stages::prepare(it->second, cfg.batch, held_loader.categories(),
                                        stages::batch_rng(cfg.seed, it->second)));
    }
    const stages::Batch want = stages::collate(std::move(by_hand), cfg.batch, batch.index);
    ASSERT_EQ(batch.images.sizes(), want.images.sizes());
    EXPECT_TRUE(torch::equal(batch.images.view(torch::kInt), want.images.view(torch::kInt))) << "batch " << batch.index;
    for (size_t j = 0; j < want.targets.size(); ++j) {
      EXPECT_TRUE(torch::equal(batch.targets[j].boxes, want.targets[j].boxes));
      EXPECT_TRUE(torch::equal(batch.targets[j].masks, want.targets[j].masks));
    }
  }
  EXPECT_GT(scale_one, 0u);
  EXPECT_GT(scaled, 0u);
  EXPECT_EQ(held_loader.times().batch_tensors_reused, 0u);

  // Batches dropped as soon as they are taken: the pool reuses their memory,
  // and the stream is the same.
  cfg.loader.prefetch = 1;
  Loader dropping(ds, cfg);
  size_t i = 0;
  for (auto& b : dropping) {
    ASSERT_LT(i, held.size());
    EXPECT_TRUE(torch::equal(b.images.view(torch::kInt), held[i].images.view(torch::kInt))) << "batch " << i;
    ++i;
  }
  EXPECT_EQ(i, held.size());
  const StageTimes t = dropping.times();
  EXPECT_GT(t.batch_tensors_reused, 0u);
  EXPECT_LE(t.batch_tensors_allocated, 3u);  // loader.prefetch + 2
}

TEST_F(MosaicTest, TileCacheIsSharedAndAWindowDecodesOnlyItsTiles) {
  const io::CocoDataset ds = load();
  {
    // One view, the top-left window: 512 / 128 = 4 x 4 tiles of the 10 x 7.
    PipelineConfig cfg = sliced_config(2);
    const auto views = make_views(ds, cfg);
    uint32_t first = 0;
    while (!(views->views[first].sliced && views->views[first].window.x == 0 && views->views[first].window.y == 0)) ++first;
    Loader loader(ds, views, cfg, Output::kSamples, [first](uint64_t e) {
      std::vector<stages::SampleTicket> t(e == 0 ? 1 : 0);
      if (!t.empty()) t[0].image_index = first;
      return t;
    });
    ASSERT_EQ(all_samples(loader).size(), 1u);
    const raster::TileCache::Stats st = loader.tile_cache();
    EXPECT_EQ(st.misses, 16u);
    EXPECT_EQ(st.hits, 0u);
    EXPECT_EQ(loader.times().windows_read, 1u);
  }
  // Every view with an object twice (oversample 2), one thread so that the
  // counts are exact: overlapping windows and repeated views hit the shared
  // cache, and no tile is decoded twice.
  PipelineConfig cfg = sliced_config(1);
  cfg.sampler.oversample = 2;
  cfg.sampler.oversample_classes = {"small", "medium", "large"};
  Loader loader(ds, cfg, Output::kSamples);
  const size_t n = all_samples(loader).size();
  const StageTimes t = loader.times();
  size_t sliced_samples = 0;
  for (const auto& v : loader.views()->views) sliced_samples += v.sliced ? 1 : 0;
  EXPECT_GE(n, loader.views()->views.size());
  EXPECT_GE(t.windows_read, sliced_samples);
  EXPECT_EQ(t.tile_cache.misses, 70u);  // 10 x 7 tiles, each decoded once
  EXPECT_GT(t.tile_cache.hits, 70u);
  EXPECT_GT(t.tile_cache.hit_rate(), 0.5);
  EXPECT_GT(t.tile_cache.peak_bytes, 0u);
  EXPECT_EQ(t.tile_cache.hits, loader.tile_cache().hits);
}

TEST_F(MosaicTest, SliceAboveZeroChangesNothing) {
  // The sample of the other loader tests, with the new sections at other
  // values but slicing off: the loader samples the dataset itself and the
  // stream equals a loader that was given no views.
  io::LoadOptions opts;
  opts.image_root = kSample + "/images";
  const io::CocoDataset ds = io::load_coco(kSample + "/annotations.json", opts);
  PipelineConfig cfg = sliced_config(2);
  cfg.slice.above = 0;
  cfg.sampler.shuffle = true;
  cfg.sampler.aug_mode = "original_aug";
  cfg.raster.tile_cache_mb = 1;
  Loader off(ds, cfg);
  EXPECT_EQ(off.views(), nullptr);
  EXPECT_EQ(&off.dataset(), &ds);
  PipelineConfig on = cfg;
  on.slice.above = 300;  // every sample image is above 300 px ...
  Loader given_none(ds, nullptr, on);  // ... but no views given: nothing is cut
  EXPECT_EQ(given_none.views(), nullptr);
  size_t batches = 0;
  while (true) {
    auto a = off.next_batch();
    auto b = given_none.next_batch();
    ASSERT_EQ(a.has_value(), b.has_value());
    if (!a) break;
    ++batches;
    ASSERT_TRUE(torch::equal(a->images, b->images));
    EXPECT_EQ(a->seqs, b->seqs);
  }
  EXPECT_EQ(batches, off.batches_per_epoch(0));
  EXPECT_EQ(off.times().windows_read, 0u);
  EXPECT_EQ(off.tile_cache().misses, 0u);
}

TEST_F(MosaicTest, HugeRecordsLoadWhenSlicedAndEveryWindowIsChecked) {
  PipelineConfig cfg = sliced_config(2);
  cfg.decode.max_pixels = 500000;  // below the mosaic's 1.1 Mpx, above the JPEG's and a window's
  EXPECT_EQ(load_max_pixels(cfg), 0);
  cfg.slice.above = 0;
  EXPECT_EQ(load_max_pixels(cfg), 500000);
  try {
    load(load_max_pixels(cfg));
    FAIL() << "the mosaic's record passed the whole-image limit";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "pixel_limit");
  }
  cfg.slice.above = 700;
  const io::CocoDataset ds = load(load_max_pixels(cfg));
  {
    Loader loader(ds, cfg, Output::kSamples);
    EXPECT_EQ(all_samples(loader).size(), 7u);  // 6 windows + the whole JPEG, nothing refused
  }
  // A window above raster.max_window_pixels is refused by the reader, named.
  cfg.raster.max_window_pixels = 512 * 512 - 1;
  Loader loader(ds, cfg, Output::kSamples);
  try {
    all_samples(loader);
    FAIL() << "a window above raster.max_window_pixels was read";
  } catch (const PipelineError& e) {
    EXPECT_EQ(e.reason(), "pixel_limit");
    EXPECT_EQ(e.stage(), "load");
    EXPECT_NE(e.where().record.find("window ["), std::string::npos) << e.what();
    EXPECT_NE(e.where().file.find("mosaic.tif"), std::string::npos) << e.what();
  }
}

TEST_F(MosaicTest, AMissingSourceNamesTheViewAndItsWindow) {
  io::CocoDataset ds = load();
  ds.images[static_cast<size_t>(ds.image_index(mosaic_->mosaic_id))].file_name = ds.add_string("gone.tif");
  PipelineConfig cfg = sliced_config(2);
  {
    Loader loader(ds, cfg, Output::kSamples);
    try {
      all_samples(loader);
      FAIL() << "expected PipelineError";
    } catch (const PipelineError& e) {
      EXPECT_EQ(e.reason(), "missing_image");
      EXPECT_NE(e.where().record.find("source image id 1, window [0, 0, 512, 512]"), std::string::npos) << e.what();
      EXPECT_NE(e.where().file.find("gone.tif"), std::string::npos);
    }
  }
  cfg.loader.on_error = "skip";
  Loader loader(ds, cfg, Output::kSamples);
  EXPECT_EQ(all_samples(loader).size(), 1u);  // the whole JPEG
  EXPECT_EQ(loader.skipped().count("missing_image"), 6u);
}

TEST(PipelineConfigSlice, SectionsAreValidatedWithTheirKeys) {
  PipelineConfig c;
  c.slice.size = 8;
  try {
    validate_pipeline_config(c, "x.yaml");
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "slice.size");
    EXPECT_EQ(e.where().file, "x.yaml");
  }
  c = PipelineConfig{};
  c.raster.to_8bit = "gamma";
  try {
    validate_pipeline_config(c);
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "raster.to_8bit");
  }
}

}  // namespace
}  // namespace pasteflow::pipeline
