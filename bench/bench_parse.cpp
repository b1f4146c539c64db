// bench_parse: COCO loading variants side by side on a generated (or given)
// file. Not a test: prints figures only.
//
//   bench_parse [--file PATH] [--scale F | --images N --annotations N]
//               [--repeat R] [--block-mb M ...] [--batch-kb K ...] [--keep-extra] [--dir DIR]
//
// Without --file, a synthetic COCO file is generated in --dir (default /tmp)
// at --scale of COCO train2017 (default 0.125, ~60 MB) and reused if present.
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <simdjson.h>
#include <string>
#include <sys/stat.h>
#include <vector>

#include "pasteflow/io/bench.hpp"
#include "pasteflow/io/coco.hpp"

using namespace pasteflow::io;
namespace od = simdjson::ondemand;

namespace {

struct Figures {
  double best_s = 1e30;
  double peak_mb = 0;
  std::string note;
};

Figures measure(int repeat, const std::function<std::string()>& run) {
  Figures f;
  for (int i = 0; i < repeat; ++i) {
    reset_peak_rss();
    const auto t0 = std::chrono::steady_clock::now();
    std::string note = run();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const double peak = peak_rss_mb();
    if (s < f.best_s) f.best_s = s;
    if (peak > f.peak_mb) f.peak_mb = peak;
    f.note = note;
  }
  return f;
}

double visit(od::value v) {
  od::json_type t;
  if (v.type().get(t)) return 0;
  double sum = 0;
  switch (t) {
    case od::json_type::array:
      for (auto x : v.get_array()) sum += visit(x.value());
      break;
    case od::json_type::object:
      for (auto field : v.get_object()) sum += visit(field.value());
      break;
    case od::json_type::number: {
      double d = 0;
      if (!v.get_double().get(d)) sum += d;
      break;
    }
    default: break;
  }
  return sum;
}

bool file_exists(const std::string& p) {
  struct stat st {};
  return ::stat(p.c_str(), &st) == 0;
}

}  // namespace

int main(int argc, char** argv) {
  std::string file, dir = "/tmp";
  double scale = 0.125;
  long images = -1, annotations = -1;
  int repeat = 3;
  bool keep_extra = false;
  std::vector<size_t> blocks_mb, batches_kb;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    auto next = [&]() -> std::string {
      if (i + 1 >= argc) {
        std::fprintf(stderr, "missing value after %s\n", a.c_str());
        std::exit(2);
      }
      return argv[++i];
    };
    if (a == "--file") file = next();
    else if (a == "--dir") dir = next();
    else if (a == "--scale") scale = std::stod(next());
    else if (a == "--images") images = std::stol(next());
    else if (a == "--annotations") annotations = std::stol(next());
    else if (a == "--repeat") repeat = std::stoi(next());
    else if (a == "--block-mb") blocks_mb.push_back(std::stoul(next()));
    else if (a == "--batch-kb") batches_kb.push_back(std::stoul(next()));
    else if (a == "--keep-extra") keep_extra = true;
    else {
      std::fprintf(stderr,
                   "usage: bench_parse [--file PATH] [--scale F | --images N --annotations N] [--repeat R]\n"
                   "                   [--block-mb M ...] [--batch-kb K ...] [--keep-extra] [--dir DIR]\n");
      return a == "--help" ? 0 : 2;
    }
  }
  if (blocks_mb.empty()) blocks_mb = {8, 32};
  if (batches_kb.empty()) batches_kb = {512, 4096};

  if (file.empty()) {
    SyntheticCocoOptions opt;
    opt.images = images > 0 ? static_cast<size_t>(images) : static_cast<size_t>(118287 * scale + 0.5);
    opt.annotations = annotations > 0 ? static_cast<size_t>(annotations) : static_cast<size_t>(860001 * scale + 0.5);
    file = dir + "/pasteflow_synthetic_" + std::to_string(opt.images) + "_" + std::to_string(opt.annotations) + ".json";
    if (!file_exists(file)) {
      std::printf("generating %s (%zu images, %zu annotations)...\n", file.c_str(), opt.images, opt.annotations);
      const auto t0 = std::chrono::steady_clock::now();
      generate_synthetic_coco(file, opt);
      std::printf("  generated in %.2f s\n",
                  std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
    }
  }

  try {
    const ParseBenchResult r = bench_parse(file);
    std::printf("file %s: %.1f MiB, %zu images, %zu annotations\n", file.c_str(), r.file_mb, r.images, r.annotations);
    std::printf("bench_parse(): load %.3f s, bare %.3f s, ratio %.2f, load peak RSS %.0f MiB (%.2f x file), "
                "bare peak %.0f MiB%s\n\n",
                r.load_s, r.bare_parse_s, r.ratio, r.peak_rss_mb, r.peak_rss_mb / r.file_mb, r.bare_peak_rss_mb,
                r.peak_reset ? "" : " (VmHWM not resettable: peaks include earlier use)");
    const double mb = r.file_mb;

    std::printf("%-34s %9s %9s %11s %8s  %s\n", "variant (best of repeats)", "time s", "MiB/s", "peak MiB", "vs DOM",
                "check");
    std::vector<std::pair<std::string, Figures>> rows;
    rows.emplace_back("read only (padded_string::load)", measure(repeat, [&] {
                        simdjson::padded_string s = simdjson::padded_string::load(file).value();
                        return std::to_string(s.size()) + " bytes";
                      }));
    rows.emplace_back("bare DOM (load + dom::parse)", measure(repeat, [&] {
                        simdjson::padded_string s = simdjson::padded_string::load(file).value();
                        simdjson::dom::parser p;
                        simdjson::dom::element root = p.parse(s).value();
                        return std::to_string(simdjson::dom::array(root["annotations"]).size()) + " annotations";
                      }));
    rows.emplace_back("whole-doc On-Demand, all numbers", measure(repeat, [&] {
                        simdjson::padded_string s = simdjson::padded_string::load(file).value();
                        od::parser p;
                        od::document doc = p.iterate(s).value();
                        double sum = 0;
                        for (auto field : doc.get_object()) sum += visit(field.value());
                        char b[64];
                        std::snprintf(b, sizeof b, "sum %.6g", sum);
                        return std::string(b);
                      }));
    for (size_t block : blocks_mb) {
      for (size_t batch : batches_kb) {
        LoadOptions lo;
        lo.block_size = block << 20;
        lo.batch_size = batch << 10;
        lo.keep_extra_fields = keep_extra;
        rows.emplace_back("load_coco block " + std::to_string(block) + "M batch " + std::to_string(batch) + "K",
                          measure(repeat, [&] {
                            CocoDataset ds = load_coco(file, lo);
                            return std::to_string(ds.annotations.size()) + " annotations, " +
                                   std::to_string(ds.coords.size()) + " coords";
                          }));
      }
    }
    const double dom_s = rows[1].second.best_s;
    for (const auto& [name, f] : rows) {
      std::printf("%-34s %9.3f %9.0f %11.0f %8.2f  %s\n", name.c_str(), f.best_s, mb / f.best_s, f.peak_mb,
                  f.best_s / dom_s, f.note.c_str());
    }
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
