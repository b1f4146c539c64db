// bench_eval GT.json [N=100000] [bbox|segm|both] [threads=0] [seed=1]
// Generates N random detections on the ground truth (half of them jittered
// GT boxes, 4-decimal scores; with masks for segm), writes them as a results
// file, then times load_results and evaluate.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

#include <unistd.h>

#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void run(const pasteflow::io::CocoDataset& gt, size_t n, pasteflow::eval::IouType type, int threads, uint64_t seed) {
  using namespace pasteflow::eval;
  const bool masks = type == IouType::kSegm;
  auto t0 = std::chrono::steady_clock::now();
  const auto generated = random_detections(gt, n, seed, masks);
  const double gen_s = seconds_since(t0);
  const std::string path =
      (std::filesystem::temp_directory_path() / ("pasteflow_bench_eval_" + std::to_string(::getpid()) + ".json")).string();
  {
    std::ofstream f(path, std::ios::binary);
    f << results_to_json(generated);
  }
  const double mb = static_cast<double>(std::filesystem::file_size(path)) / (1 << 20);
  t0 = std::chrono::steady_clock::now();
  const auto dets = load_results(path, gt);
  const double load_s = seconds_since(t0);
  std::filesystem::remove(path);
  EvalParams params;
  params.iou_type = type;
  EvalOptions opts;
  opts.threads = threads;
  t0 = std::chrono::steady_clock::now();
  const EvalResult r = evaluate(gt, dets, params, opts);
  const double eval_s = seconds_since(t0);
  std::printf("%s: %zu detections on %zu images / %zu GT annotations, threads %d\n", to_string(type), dets.size(),
              gt.images.size(), gt.annotations.size(), threads);
  std::printf("  generate %.3f s, results file %.1f MiB, load_results %.3f s, evaluate %.3f s (AP %.4f)\n", gen_s, mb,
              load_s, eval_s, r.stats[0]);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s GT.json [N=100000] [bbox|segm|both] [threads=0] [seed=1]\n", argv[0]);
    return 2;
  }
  try {
    const auto gt = pasteflow::io::load_coco(argv[1]);
    const size_t n = argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 100000;
    const std::string type = argc > 3 ? argv[3] : "both";
    const int threads = argc > 4 ? std::atoi(argv[4]) : 0;
    const uint64_t seed = argc > 5 ? std::strtoull(argv[5], nullptr, 10) : 1;
    if (type == "bbox" || type == "both") run(gt, n, pasteflow::eval::IouType::kBbox, threads, seed);
    if (type == "segm" || type == "both") run(gt, n, pasteflow::eval::IouType::kSegm, threads, seed);
  } catch (const std::exception& e) {
    std::fprintf(stderr, "bench_eval: %s\n", e.what());
    return 1;
  }
  return 0;
}
