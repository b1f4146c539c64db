// The end-to-end learning test on huge images (issue 11, label slow): real
// microscopy (the bundled DSB 2018 sample, data/dsb_sample/, CC0) imported
// with `pasteflow import masks` and split by image into a training and a
// held-back part, each tiled by `pasteflow generate mosaic` into a
// Deflate-tiled pyramidal BigTIFF with exact annotations in full-image
// coordinates:
//   - the training mosaic, 2048 x 2048, from the 29 training images of at
//     most 360 x 360 px (cycled to fill it): the sample's one 1024 x 1024
//     brightfield image is left out by --max-pixels, since at full size it
//     would fill a third of the training views with a handful of tiny nuclei
//     (with it, 300 iterations gave segm AP50 0.036 on the held-back views);
//   - the held-back mosaic, 1024 x 1024, from the 10 held-back images
//     (different source images; nothing of it is trained on).
// `pasteflow train -c configs/mosaic/dsb.yaml` trains the small Mask
// R-CNN of configs/dsb/baseline.yaml on the 256 px views of the training
// mosaic (slice.above 512: both mosaics are read by windows, never whole) and
// evaluates on the views of the held-back mosaic. The same run with
// solver.base_lr=0 (same seed, same initial weights, no update) is the
// untrained model. The trained model must be clearly better: segm and bbox
// AP50 at least 0.15 above the untrained one's and more than twice them. The
// figures and the wall time are printed, the time never asserted.
#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "common/command.hpp"
#include "common/metrics.hpp"

namespace {

namespace fs = std::filesystem;
using pasteflow::testing::last_eval_line;
using pasteflow::testing::run_command;

const std::string kBin = PASTEFLOW_BIN;
const std::string kSource = PASTEFLOW_SOURCE_DIR;

struct Eval {
  double bbox_ap50 = -1.0;
  double segm_ap50 = -1.0;
  long long iter = -1;
};

/// Trains with `overrides` into `run` and returns its final evaluation.
Eval train_and_evaluate(const fs::path& dir, const fs::path& run, const std::string& overrides) {
  const std::string d = dir.string();
  const auto train = run_command(kBin + " train -c " + kSource + "/configs/mosaic/dsb.yaml --json" +
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

TEST(MosaicLearning, TrainedOnViewsOfAMosaicBeatsUntrainedOnAHeldBackMosaic) {
  const fs::path dir = fs::temp_directory_path() / ("pasteflow_e2e_mosaic_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const std::string d = dir.string();
  const auto t0 = std::chrono::steady_clock::now();

  const auto imported = run_command(kBin + " import masks " + kSource + "/data/dsb_sample -o " + d +
                                    "/dsb.json --split val=0.25 --seed 1 --stratify-by modality"
                                    " --max-pixels 200000 --on-error skip");
  ASSERT_EQ(imported.status, 0) << imported.output;
  const auto mtrain = run_command(kBin + " generate mosaic --annotations " + d + "/dsb_train.json --images " + kSource +
                                  "/data/dsb_sample --out " + d +
                                  "/mtrain --width 2048 --height 2048 --compression deflate --tile 256 --seed 1");
  ASSERT_EQ(mtrain.status, 0) << mtrain.output;
  const auto mval = run_command(kBin + " generate mosaic --annotations " + d + "/dsb_val.json --images " + kSource +
                                "/data/dsb_sample --out " + d +
                                "/mval --width 1024 --height 1024 --compression deflate --tile 256 --seed 2");
  ASSERT_EQ(mval.status, 0) << mval.output;

  // The untrained model: the same run with no weight update (learning rate 0),
  // one iteration (the trainer's minimum), evaluated on the held-back views.
  const Eval untrained = train_and_evaluate(dir, dir / "untrained", "solver.base_lr=0 solver.max_iter=1");
  ASSERT_GE(untrained.segm_ap50, 0.0);
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
  RecordProperty("segm_AP50_trained", std::to_string(trained.segm_ap50));
  RecordProperty("segm_AP50_untrained", std::to_string(untrained.segm_ap50));
  EXPECT_GE(trained.segm_ap50, untrained.segm_ap50 + 0.15);
  EXPECT_GT(trained.segm_ap50, 2.0 * untrained.segm_ap50);
  EXPECT_GE(trained.bbox_ap50, untrained.bbox_ap50 + 0.15);
  EXPECT_GT(trained.bbox_ap50, 2.0 * untrained.bbox_ap50);
  if (!HasFailure()) fs::remove_all(dir);
}

}  // namespace
