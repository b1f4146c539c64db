// The end-to-end learning test (label slow): the synthetic small-object
// benchmark made by `pasteflow generate shapes` (textured shapes of 10-30 px
// over crops of the bundled real photos, exact masks), a small Mask R-CNN
// trained from scratch by `pasteflow train` with configs/synth/shapes_tiny.yaml
// on the prefetching loader, evaluated on the held-out split. It must learn:
// bbox AP50 >= 0.5 on the validation images. Wall time is printed (target:
// under 10 minutes on 2 CPU cores), never asserted.
#include <gtest/gtest.h>
#include <simdjson.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "common/command.hpp"
#include "common/metrics.hpp"

namespace {

namespace fs = std::filesystem;
using pasteflow::testing::last_eval_line;
using pasteflow::testing::run_command;

const std::string kBin = PASTEFLOW_BIN;
const std::string kSource = PASTEFLOW_SOURCE_DIR;

TEST(SyntheticLearning, SmallMaskRcnnReachesAp50OfHalfOnShapes) {
  const fs::path dir = fs::temp_directory_path() / ("pasteflow_e2e_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  const auto t0 = std::chrono::steady_clock::now();

  const auto gen = run_command(kBin + " generate shapes --backgrounds " + kSource + "/data/sample/images --out " +
                               (dir / "data").string() +
                               " --train 400 --val 50 --image-size 160 --min-size 10 --max-size 30 --objects 5..14 "
                               "--seed 1");
  ASSERT_EQ(gen.status, 0) << gen.output;

  const std::string data = (dir / "data").string();
  const auto train = run_command(kBin + " train -c " + kSource + "/configs/synth/shapes_tiny.yaml --json" +
                                 " data.train_annotations=" + data + "/train/annotations.json" +
                                 " data.train_images=" + data + "/train/images" +
                                 " data.val_annotations=" + data + "/val/annotations.json" +
                                 " data.val_images=" + data + "/val/images output_dir=" + (dir / "run").string(),
                                 /*keep_stderr=*/false);
  ASSERT_EQ(train.status, 0) << train.output;
  const double minutes = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() / 60.0;

  const std::string eval = last_eval_line(dir / "run" / "metrics.jsonl");
  ASSERT_FALSE(eval.empty()) << "no evaluation in metrics.jsonl";
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  ASSERT_EQ(parser.parse(eval).get(doc), simdjson::SUCCESS) << eval;
  const double ap50 = double(doc["bbox_AP50"]);
  const double segm_ap50 = double(doc["segm_AP50"]);
  std::printf("synthetic shapes: bbox AP50 %.3f, bbox AP %.3f, segm AP50 %.3f after %lld iterations; %.1f min "
              "(generate + train + evaluate)\n",
              ap50, double(doc["bbox_AP"]), segm_ap50, static_cast<long long>(int64_t(doc["iter"])), minutes);
  EXPECT_GE(ap50, 0.5);
  // The mask branch learns too (a looser bar: masks of 10-30 px objects).
  EXPECT_GE(segm_ap50, 0.3);
  fs::remove_all(dir);
}

}  // namespace
