// Shared by the synthetic learning tests (tests/e2e/synthetic_learning*_test.cpp):
// the benchmark's data (`pasteflow generate shapes`, seed 1), one training
// run of configs/synth/shapes_tiny.yaml on it with evaluation on the
// held-out split, and the run's COCO numbers as a small JSON file in
// PASTEFLOW_E2E_RESULTS, where the comparison test reads them (ctest
// fixture e2e_shapes).
#pragma once

#include <gtest/gtest.h>
#include <simdjson.h>
#include <unistd.h>

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>
#include <string>

#include "common/command.hpp"
#include "common/metrics.hpp"
#include "pasteflow/core/cpu.hpp"

namespace pasteflow::testing::e2e {

namespace fs = std::filesystem;

inline const std::string kBin = PASTEFLOW_BIN;
inline const std::string kSource = PASTEFLOW_SOURCE_DIR;
inline const fs::path kResults = PASTEFLOW_E2E_RESULTS;

struct LearningRun {
  double ap50 = 0, ap = 0, segm_ap50 = 0;
  double seconds = 0;  ///< train + evaluate
  int64_t iter = 0;
};

/// A fresh scratch directory for one test (removed by the caller at the end).
inline fs::path scratch(const std::string& name) {
  const fs::path dir = fs::temp_directory_path() / ("pasteflow_e2e_" + name + "_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir);
  return dir;
}

/// The benchmark's data in dir/data: 400 training and 50 held-out images.
inline void generate_shapes(const fs::path& dir) {
  const auto gen = run_command(kBin + " generate shapes --backgrounds " + kSource + "/data/sample/images --out " +
                               (dir / "data").string() +
                               " --train 400 --val 50 --image-size 160 --min-size 10 --max-size 30 --objects 5..14 "
                               "--seed 1");
  ASSERT_EQ(gen.status, 0) << gen.output;
}

/// `pasteflow train` of shapes_tiny.yaml on dir/data into dir/run_<amp> with
/// solver.amp=<amp>; the numbers of its last evaluation.
inline LearningRun train_shapes(const fs::path& dir, const std::string& amp) {
  const std::string data = (dir / "data").string();
  const fs::path out = dir / ("run_" + amp);
  const auto start = std::chrono::steady_clock::now();
  const auto r = run_command(kBin + " train -c " + kSource + "/configs/synth/shapes_tiny.yaml --json" +
                                 " data.train_annotations=" + data + "/train/annotations.json" +
                                 " data.train_images=" + data + "/train/images" +
                                 " data.val_annotations=" + data + "/val/annotations.json" +
                                 " data.val_images=" + data + "/val/images output_dir=" + out.string() +
                                 " solver.amp=" + amp,
                             /*keep_stderr=*/false);
  EXPECT_EQ(r.status, 0) << r.output;
  LearningRun run;
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
}

/// Why the bf16 run is skipped here ("" when it runs): without native bf16
/// oneDNN emulates it, many times slower than fp32, beyond the suite's budget.
inline std::string bf16_skip_reason() {
  return pasteflow::cpu_has_native_bf16()
             ? std::string()
             : "this CPU has no native bf16 (avx512_bf16 / amx_bf16): the bf16 learning run is skipped";
}

inline fs::path results_file(const std::string& amp) { return kResults / ("shapes_" + amp + ".json"); }

/// Removes an earlier run's numbers (so that a failed run leaves none).
inline void forget_run(const std::string& amp) {
  std::error_code ec;
  fs::remove(results_file(amp), ec);
}

inline void save_run(const std::string& amp, const LearningRun& run) {
  fs::create_directories(kResults);
  std::ofstream out(results_file(amp));
  char text[256];
  std::snprintf(text, sizeof text,
                "{\"bbox_AP50\": %.17g, \"bbox_AP\": %.17g, \"segm_AP50\": %.17g, \"seconds\": %.3f, \"iter\": %lld}\n",
                run.ap50, run.ap, run.segm_ap50, run.seconds, static_cast<long long>(run.iter));
  out << text;
}

/// The numbers save_run wrote; nothing when the file is missing or malformed.
inline std::optional<LearningRun> load_run(const std::string& amp) {
  std::ifstream in(results_file(amp));
  if (!in) return std::nullopt;
  std::stringstream text;
  text << in.rdbuf();
  simdjson::dom::parser parser;
  simdjson::dom::element doc;
  if (parser.parse(text.str()).get(doc) != simdjson::SUCCESS) return std::nullopt;
  LearningRun run;
  run.ap50 = double(doc["bbox_AP50"]);
  run.ap = double(doc["bbox_AP"]);
  run.segm_ap50 = double(doc["segm_AP50"]);
  run.seconds = double(doc["seconds"]);
  run.iter = int64_t(doc["iter"]);
  return run;
}

}  // namespace pasteflow::testing::e2e
