// The end-to-end learning test (label slow): the synthetic small-object
// benchmark made by `pasteflow generate shapes` (textured shapes of 10-30 px
// over crops of the bundled real photos, exact masks), a small Mask R-CNN
// trained from scratch by `pasteflow train` with configs/synth/shapes_tiny.yaml
// on the prefetching loader, evaluated on the held-out split. It must learn:
// bbox AP50 >= 0.5 on the validation images. Then the same run (same data,
// seed and iterations) with `solver.amp: bf16` (issue 14): its bbox AP50
// must not fall more than 0.03 below the fp32 run's; and the fp32-trained
// model predicted under bf16 must give the fp32 AP50 within 0.01. Wall
// times are printed, never asserted.
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

TEST(SyntheticLearning, SmallMaskRcnnReachesAp50OfHalfOnShapesAndBf16LearnsAsFp32) {
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
  const double gen_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  struct Run {
    double ap50 = 0, ap = 0, segm_ap50 = 0, seconds = 0;
    int64_t iter = 0;
  };
  auto train = [&](const std::string& amp) -> Run {
    const auto start = std::chrono::steady_clock::now();
    const fs::path out = dir / ("run_" + amp);
    const auto r = run_command(kBin + " train -c " + kSource + "/configs/synth/shapes_tiny.yaml --json" +
                                   " data.train_annotations=" + data + "/train/annotations.json" +
                                   " data.train_images=" + data + "/train/images" +
                                   " data.val_annotations=" + data + "/val/annotations.json" +
                                   " data.val_images=" + data + "/val/images output_dir=" + out.string() +
                                   " solver.amp=" + amp,
                               /*keep_stderr=*/false);
    EXPECT_EQ(r.status, 0) << r.output;
    Run run;
    run.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    const std::string eval = last_eval_line(out / "metrics.jsonl");
    EXPECT_FALSE(eval.empty()) << "no evaluation in " << (out / "metrics.jsonl");
    if (eval.empty()) return run;
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    EXPECT_EQ(parser.parse(eval).get(doc), simdjson::SUCCESS) << eval;
    run.ap50 = double(doc["bbox_AP50"]);
    run.ap = double(doc["bbox_AP"]);
    run.segm_ap50 = double(doc["segm_AP50"]);
    run.iter = int64_t(doc["iter"]);
    return run;
  };

  const Run fp32 = train("off");
  std::printf("synthetic shapes, fp32: bbox AP50 %.3f, bbox AP %.3f, segm AP50 %.3f after %lld iterations; "
              "generate %.1f min, train + evaluate %.1f min\n",
              fp32.ap50, fp32.ap, fp32.segm_ap50, static_cast<long long>(fp32.iter), gen_s / 60.0,
              fp32.seconds / 60.0);
  EXPECT_GE(fp32.ap50, 0.5);
  // The mask branch learns too (a looser bar: masks of 10-30 px objects).
  EXPECT_GE(fp32.segm_ap50, 0.3);

  // bf16 inference of the fp32-trained model (predict --amp) against fp32
  // inference, on the held-out split: the same COCO numbers within 0.01.
  auto predict_ap50 = [&](const std::string& amp) -> double {
    const fs::path out = dir / ("predict_" + amp);
    const auto p = run_command(kBin + " predict -c " + (dir / "run_off" / "config.yaml").string() + " -w " +
                                   (dir / "run_off" / "best.pt").string() + " -o " + out.string() +
                                   " --annotations " + data + "/val/annotations.json --images " + data +
                                   "/val/images --no-overlays --amp " + amp,
                               /*keep_stderr=*/false);
    EXPECT_EQ(p.status, 0) << p.output;
    const auto e = run_command(kBin + " eval --gt " + data + "/val/annotations.json --results " +
                                   (out / "results.json").string() + " --type bbox --json",
                               /*keep_stderr=*/false);
    EXPECT_EQ(e.status, 0) << e.output;
    simdjson::dom::parser parser;
    simdjson::dom::element doc;
    if (parser.parse(e.output).get(doc) != simdjson::SUCCESS) {
      ADD_FAILURE() << e.output;
      return -1;
    }
    return double(doc["stats"].at(1));
  };
  const double infer_fp32 = predict_ap50("off"), infer_bf16 = predict_ap50("bf16");
  std::printf("fp32-trained model, predict on the held-out split: bbox AP50 %.4f (fp32), %.4f (bf16), "
              "difference %+.4f\n",
              infer_fp32, infer_bf16, infer_bf16 - infer_fp32);
  EXPECT_NEAR(infer_bf16, infer_fp32, 0.01);

  const Run bf16 = train("bf16");
  std::printf("synthetic shapes, bf16: bbox AP50 %.3f (fp32 %.3f, difference %+.3f), bbox AP %.3f, segm AP50 "
              "%.3f after %lld iterations; train + evaluate %.1f min (%.2fx the fp32 run's time)\n",
              bf16.ap50, fp32.ap50, bf16.ap50 - fp32.ap50, bf16.ap, bf16.segm_ap50,
              static_cast<long long>(bf16.iter), bf16.seconds / 60.0,
              fp32.seconds > 0 ? bf16.seconds / fp32.seconds : 0.0);
  EXPECT_EQ(bf16.iter, fp32.iter);
  // bf16 must learn as fp32 does: not more than 0.03 below it, and over the
  // learning bar itself. One-sided: another rounding is another training
  // trajectory, and the trajectories of fp32 itself differ by 0.03 in bbox
  // AP50 between pipeline seeds 0 and 1 (README, "Mixed precision"); bf16
  // came out 0.048 above fp32 with this seed.
  EXPECT_GE(bf16.ap50, fp32.ap50 - 0.03) << "bf16 autocast learns worse than fp32";
  EXPECT_GE(bf16.ap50, 0.5);
  fs::remove_all(dir);
}

}  // namespace
