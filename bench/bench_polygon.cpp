// bench_polygon: the polygon rasteriser (mask::from_polygon) on real COCO
// polygons, plus polygons with a vertex far outside the image. Not a test:
// prints figures only.
//
//   bench_polygon COCO.json... [--repeat R] [--no-far]
//
// Every polygon part of every annotation is rasterised at its image's size;
// the figure is the best of R passes (default 20), in ns per polygon. Then
// the same with the first vertex moved to x = 1e4, 1e6, 1e8 (not with
// --no-far).
// e.g. build/bench_polygon tests/data/coco_mini/instances_*2017.json
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"

using namespace pasteflow;

namespace {

struct Polygon {
  std::vector<double> xy;
  uint32_t h, w;
};

// Best wall time of `repeat` passes over `polygons`, in ns per polygon; `sum`
// keeps the results alive.
double best_ns(const std::vector<Polygon>& polygons, int repeat, uint64_t& sum) {
  double best = 1e30;
  for (int i = 0; i < repeat; ++i) {
    const auto t0 = std::chrono::steady_clock::now();
    for (const Polygon& p : polygons) sum += mask::from_polygon(p.xy.data(), p.xy.size(), p.h, p.w).counts.size();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s < best) best = s;
  }
  return best * 1e9 / static_cast<double>(polygons.size());
}

}  // namespace

int main(int argc, char** argv) {
  int repeat = 20;
  bool far_too = true;
  std::vector<std::string> files;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--repeat" && i + 1 < argc) {
      repeat = std::atoi(argv[++i]);
    } else if (a == "--no-far") {
      far_too = false;
    } else {
      files.push_back(a);
    }
  }
  if (files.empty() || repeat < 1) {
    std::fprintf(stderr, "usage: bench_polygon COCO.json... [--repeat R] [--no-far]\n");
    return 2;
  }
  std::vector<Polygon> polygons;
  for (const std::string& f : files) {
    const io::CocoDataset ds = io::load_coco(f);
    for (const io::AnnotationRecord& a : ds.annotations) {
      const io::ImageRecord& im = ds.images[a.image_index];
      for (size_t k = 0; k < ds.num_parts(a); ++k) {
        const Span<const double> xy = ds.polygon(a, k);
        if (xy.size() < 6) continue;
        polygons.push_back({std::vector<double>(xy.begin(), xy.end()), uint32_t(im.height), uint32_t(im.width)});
      }
    }
  }
  uint64_t sum = 0;
  std::printf("real polygons: %zu, %.0f ns per polygon (best of %d)\n", polygons.size(),
              best_ns(polygons, repeat, sum), repeat);
  // The same polygons with their first vertex moved far outside the image
  // (the first 20 only beyond 1e5: the walk over every step took seconds).
  for (const double far : {1e4, 1e6, 1e8}) {
    if (!far_too) break;
    std::vector<Polygon> moved = polygons;
    if (far > 1e5 && moved.size() > 20) moved.resize(20);
    for (Polygon& p : moved) p.xy[0] = far;
    const int r = far > 1e5 ? 1 : repeat;
    std::printf("first vertex at x = %g: %.0f ns per polygon (best of %d)\n", far, best_ns(moved, r, sum), r);
  }
  std::printf("(checksum %llu)\n", static_cast<unsigned long long>(sum));
  return 0;
}
