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

#include "common/file.hpp"
#include "pasteflow/pipeline/loader.hpp"
#include "pasteflow/train/evaluate.hpp"
#include "pasteflow/train/trainer.hpp"
#include "pipeline/mosaic_fixture.hpp"
#include "train_test_util.hpp"

namespace pasteflow::train {
namespace {

using testing_util::TempDir;

const std::string kSource = PASTEFLOW_SOURCE_DIR;
const std::string kSample = PASTEFLOW_SAMPLE_DATA;
const std::string kConfig = kSource + "/configs/mosaic/tiny.yaml";

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

TEST(SlicedTraining, TrainsOnViewsAndEvaluatesOnTheValidationViews) {
  TempDir dir;
  const testing::Mosaic m = testing::make_sample_mosaic(dir.str(), kSample);
  TrainConfig cfg = load_train_config(kConfig, overrides(m, dir.str("run")));
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
  const CliRun r = run(dir, "train -c " + kConfig + args + " --json");
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

// preview shows views (read by windows); augment refuses a config that
// slices, naming the key, and writes nothing.
TEST(SlicedCli, PreviewShowsViewsAndAugmentRefusesSlicing) {
  TempDir dir;
  const testing::Mosaic m = testing::make_sample_mosaic(dir.str("data"), kSample);
  const std::string data = " -a " + m.annotations + " -i " + m.dir;
  const std::string slicing = " slice.above=700 decode.max_pixels=500000";
  CliRun r = run(dir, "preview -c " + kConfig + data + " -o " + dir.str("sheet.png") + " -n 6" + slicing);
  ASSERT_EQ(r.status, 0) << r.err;
  EXPECT_NE(r.err.find("2 images -> 7 views"), std::string::npos) << r.err;
  const cv::Mat sheet = cv::imread(dir.str("sheet.png"));
  EXPECT_FALSE(sheet.empty());

  r = run(dir, "augment -c " + kConfig + data + " -o " + dir.str("aug") + slicing);
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("slice.above"), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("pasteflow slice"), std::string::npos) << r.err;
  EXPECT_FALSE(std::filesystem::exists(dir.str("aug/annotations.json")));

  // Without slicing, the mosaic's record is above decode.max_pixels: refused when loading, named.
  r = run(dir, "preview -c " + kConfig + data + " -o " + dir.str("sheet2.png") + " decode.max_pixels=500000");
  EXPECT_NE(r.status, 0);
  EXPECT_NE(r.err.find("exceeds the limit of 500000"), std::string::npos) << r.err;
}

}  // namespace
}  // namespace pasteflow::train
