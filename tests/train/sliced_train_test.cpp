// Training and evaluation on views (issue 11, "slices are samples"): the
// tiny model of configs/mosaic/tiny.yaml trained a few iterations on a
// 1280x860 tiled TIFF mosaic of real sample images (plus one ordinary JPEG)
// cut into 512 px views, through the library and through `pasteflow train`;
// the periodic evaluation runs on the views of the validation set, against
// the views' ground truth.
#include <gtest/gtest.h>

#include <filesystem>
#include <regex>
#include <string>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/file.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/train/evaluate.hpp"
#include "pasteflow/train/trainer.hpp"
#include "pipeline/mosaic_fixture.hpp"
#include "train_test_util.hpp"

namespace pasteflow::train {
namespace {

using testing_util::TempDir;

using testing_util::kSource;
using testing_util::kSample;
const std::string kMosaicTiny = kSource + "/configs/mosaic/tiny.yaml";

/// The overrides that point configs/mosaic/tiny.yaml at the fixture: views
/// of 512 px over images above 700 px (the mosaic; the JPEG stays whole).
std::vector<std::string> overrides(const testing::Mosaic& m, const std::string& out) {
  return {"data.train_annotations=" + m.annotations,
          "data.train_images=" + m.dir,
          "data.val_annotations=" + m.annotations,
          "data.val_images=" + m.dir,
          "output_dir=" + out,
          "pipeline.slice.above=700",
          "pipeline.slice.keep_empty=1",
          "pipeline.decode.max_pixels=500000",  // the mosaic's record is larger: loaded since it is sliced
          "pipeline.loader.threads=2",
          "solver.max_iter=3",
          "solver.warmup_iters=1",
          "solver.steps=[2]",
          "checkpoint.period=100",
          "eval.period=0",
          "eval.at_end=true",
          "log_period=1"};
}

size_t count_lines_with(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

TEST(SlicedTraining, TheShippedMosaicConfigSlices) {
  const TrainConfig cfg = load_train_config(kMosaicTiny);
  EXPECT_EQ(cfg.pipeline.slice.above, 2048);
  EXPECT_EQ(cfg.pipeline.slice.size, 512);
  EXPECT_EQ(cfg.pipeline.raster.tile_cache_mb, 128);
  EXPECT_EQ(cfg.pipeline.sampler.oversample, 2.0);
  EXPECT_EQ(cfg.model.backbone.depth, 18);  // the tiny model of its base, configs/train/sample_tiny.yaml
  EXPECT_EQ(cfg.data.train_annotations, "runs/mosaic_data/annotations.json");
  // Its evaluation keeps the slice section: it evaluates on views.
  EXPECT_EQ(eval_pipeline_config(cfg.pipeline).slice.above, 2048);
}

TEST(SlicedTraining, TrainsOnViewsAndEvaluatesOnTheValidationViews) {
  TempDir dir;
  const testing::Mosaic m = testing::make_sample_mosaic(dir.str(), kSample);
  TrainConfig cfg = load_train_config(kMosaicTiny, overrides(m, dir.str("run")));
  ASSERT_EQ(cfg.pipeline.slice.above, 700);

  std::vector<std::string> log;
  TrainerHooks hooks;
  hooks.log = [&log](const std::string& s) { log.push_back(s); };
  size_t evals = 0;
  EvaluationReport at_end;
  hooks.on_eval = [&](uint64_t, const EvaluationReport& r) {
    ++evals;
    at_end = r;
  };
  Trainer trainer(cfg, hooks);
  const TrainSummary summary = trainer.train();
  EXPECT_EQ(trainer.iteration(), 3u);
  ASSERT_EQ(evals, 1u);

  // The validation set's views: what the loader of the same config makes.
  io::LoadOptions opts;
  opts.image_root = m.dir;
  opts.max_pixels = 0;
  const io::CocoDataset val = io::load_coco(m.annotations, opts);
  const auto views = pipeline::make_views(val, eval_pipeline_config(trainer.config().pipeline));
  ASSERT_NE(views, nullptr);
  EXPECT_EQ(views->views.size(), 7u);  // 6 windows of the mosaic + the whole JPEG
  EXPECT_EQ(at_end.views, views->views.size());
  EXPECT_EQ(at_end.images, views->views.size());
  // COCOeval ran on the views' ground truth: its image ids are the views'.
  EXPECT_EQ(at_end.bbox.params.img_ids.size(), views->views.size());

  size_t logged = 0;  // the training set's and the validation set's views
  for (const std::string& s : log) logged += s.find("2 images -> 7 views (6 windows, 1 whole images") != std::string::npos;
  EXPECT_EQ(logged, 2u);
  const std::string metrics = testing::read_file(trainer.metrics_path());
  EXPECT_EQ(count_lines_with(metrics, "\"type\":\"eval\""), 1u);
  EXPECT_EQ(count_lines_with(metrics, "\"type\":\"train\""), 3u);
  (void)summary;
}

struct CliRun {
  int status;
  std::string out;
  std::string err;
};

CliRun run(const TempDir& dir, const std::string& args) {
  const std::string err = dir.str("stderr.txt");
  const std::string cmd = std::string(PASTEFLOW_BIN) + " " + args + " 2>" + err;
  FILE* p = popen(cmd.c_str(), "r");
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = pclose(p);
  return {WEXITSTATUS(status), out, testing::read_file(err)};
}

TEST(SlicedTraining, PasteflowTrainRunsOnASlicedDataset) {
  TempDir dir;
  const testing::Mosaic m = testing::make_sample_mosaic(dir.str(), kSample);
  std::string args;
  for (const std::string& o : overrides(m, dir.str("run"))) args += " " + o;
  const CliRun r = run(dir, "train -c " + kMosaicTiny + args + " --json");
  const std::string& out = r.out;
  const std::string& log = r.err;
  ASSERT_EQ(r.status, 0) << log;
  EXPECT_NE(log.find("2 images -> 7 views"), std::string::npos) << log;
  EXPECT_NE(log.find("validation set sliced"), std::string::npos) << log;
  const std::string metrics = testing::read_file(dir.str("run/metrics.jsonl"));
  EXPECT_EQ(count_lines_with(metrics, "\"type\":\"eval\""), 1u);
  EXPECT_TRUE(std::regex_search(out, std::regex("\"end_iter\": *3"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("\"finished\": *true"))) << out;
  EXPECT_TRUE(std::regex_search(out, std::regex("\"views\": *7"))) << out;
  std::smatch rate;
  ASSERT_TRUE(std::regex_search(out, rate, std::regex("\"tile_cache_hit_rate\": *([0-9.eE+-]+)"))) << out;
  EXPECT_GT(std::stod(rate[1].str()), 0.0);  // overlapping views share tiles
  EXPECT_NE(log.find("slicing: 7 views"), std::string::npos) << log;
}

// preview shows views (read by windows); augment exports views as their
// windows' pixels, named and recorded after the window.
TEST(SlicedCli, PreviewAndAugmentWorkOnViews) {
  TempDir dir;
  const testing::Mosaic m = testing::make_sample_mosaic(dir.str("data"), kSample);
  const std::string data = " -a " + m.annotations + " -i " + m.dir;
  const std::string slicing = " slice.above=700 decode.max_pixels=500000";
  CliRun r = run(dir, "preview -c " + kMosaicTiny + data + " -o " + dir.str("sheet.png") + " -n 6" + slicing);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("2 images -> 7 views"), std::string::npos) << r.err;
  const cv::Mat sheet = cv::imread(dir.str("sheet.png"));
  EXPECT_FALSE(sheet.empty());

  r = run(dir, "augment -c " + kMosaicTiny + data + " -o " + dir.str("aug") + " --format png" + slicing);
  ASSERT_EQ(r.status, 0) << r.err;
  io::LoadOptions opts;
  opts.keep_extra_fields = true;
  const io::CocoDataset out = io::load_coco(dir.str("aug/annotations.json"), opts);
  size_t windows = 0, copies = 0;
  for (const io::ImageRecord& im : out.images) {
    const std::string name(out.file_name(im));
    const std::string extra(out.str(im.extra));
    std::smatch w;
    if (!std::regex_match(name, w, std::regex("mosaic_([0-9]+)_([0-9]+)_512_512(_pf[0-9]+)?\\.png"))) continue;
    EXPECT_EQ(im.width, 512);
    EXPECT_EQ(im.height, 512);
    EXPECT_NE(extra.find("\"window\":[" + w[1].str() + "," + w[2].str() + ",512,512]"), std::string::npos) << extra;
    if (w[3].matched) {
      ++copies;
      continue;
    }
    ++windows;
    EXPECT_NE(extra.find("\"source_image_id\":" + std::to_string(m.mosaic_id)), std::string::npos) << extra;
    // The original of a view: the window's pixels, losslessly.
    const cv::Mat bgr = cv::imread(dir.str("aug/images/" + name), cv::IMREAD_COLOR);
    ASSERT_FALSE(bgr.empty()) << name;
    cv::Mat rgb, diff;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    cv::absdiff(rgb, m.rgb(cv::Rect(std::stoi(w[1].str()), std::stoi(w[2].str()), 512, 512)), diff);
    EXPECT_EQ(cv::countNonZero(diff.reshape(1)), 0) << name;
  }
  EXPECT_EQ(windows, 6u);
  EXPECT_GT(copies, 0u);  // original_aug: augmented copies of the views with small objects
  EXPECT_TRUE(std::filesystem::exists(dir.str("aug/images/" + m.whole_file)));  // the whole image, copied
  EXPECT_FALSE(std::filesystem::exists(dir.str("aug/images/mosaic.tif")));    // never the huge file

  // Without slicing, the mosaic's record is above decode.max_pixels: refused when loading, named.
  r = run(dir, "preview -c " + kMosaicTiny + data + " -o " + dir.str("sheet2.png") + " slice.above=0 decode.max_pixels=500000");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("exceeds the limit of 500000"), std::string::npos) << r.err;
  // Slicing on, but the mosaic is below slice.above (2048 in the config): it
  // loads, stays whole, and its decode is refused by decode.max_pixels.
  r = run(dir, "preview -c " + kMosaicTiny + data + " -o " + dir.str("sheet3.png") + " decode.max_pixels=500000");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("2 images -> 2 views"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("above the limit of 500000 (decode.max_pixels)"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.str("sheet2.png")));
  EXPECT_FALSE(std::filesystem::exists(dir.str("sheet3.png")));
}

}  // namespace
}  // namespace pasteflow::train
