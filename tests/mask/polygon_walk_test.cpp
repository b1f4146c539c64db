// The polygon rasteriser visits only the boundary points that can make a run
// boundary (mask/polygon.cpp walk_edge); its result must stay bit-identical
// to rleFrPoly's walk over every upsampled step. The reference here is
// maskApi.c's rleFrPoly transcribed line for line (its u/v arrays and all),
// fast enough for coordinates up to 1e5.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "pasteflow/mask/rle.hpp"

namespace pm = pasteflow::mask;

namespace {

// (int) of a double as x86-64 computes it (cvttsd2si): maskApi.c takes
// (int) of NaN for the 0/0 slope of a repeated vertex.
int x86_int(double v) {
  if (!(v > -2147483649.0 && v < 2147483648.0)) return std::numeric_limits<int>::min();
  return static_cast<int>(v);
}

unsigned umax(unsigned a, unsigned b) { return a > b ? a : b; }

// cocoapi maskApi.c rleFrPoly (commit 8c9bcc3), with malloc as vectors.
pm::Rle rle_fr_poly(const double* xy, size_t k, size_t h, size_t w) {
  size_t j, m = 0;
  double scale = 5;
  std::vector<int> x(k + 1), y(k + 1);
  for (j = 0; j < k; j++) x[j] = (int)(scale * xy[j * 2 + 0] + .5);
  x[k] = x[0];
  for (j = 0; j < k; j++) y[j] = (int)(scale * xy[j * 2 + 1] + .5);
  y[k] = y[0];
  for (j = 0; j < k; j++) m += umax(std::abs(x[j] - x[j + 1]), std::abs(y[j] - y[j + 1])) + 1;
  std::vector<int> u(m), v(m);
  m = 0;
  for (j = 0; j < k; j++) {
    int xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1], dx, dy, t, d;
    int flip;
    double s;
    dx = std::abs(xe - xs);
    dy = std::abs(ys - ye);
    flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      t = xs;
      xs = xe;
      xe = t;
      t = ys;
      ys = ye;
      ye = t;
    }
    s = dx >= dy ? (double)(ye - ys) / dx : (double)(xe - xs) / dy;
    if (dx >= dy) {
      for (d = 0; d <= dx; d++) {
        t = flip ? dx - d : d;
        u[m] = t + xs;
        v[m] = x86_int(ys + s * t + .5);
        m++;
      }
    } else {
      for (d = 0; d <= dy; d++) {
        t = flip ? dy - d : d;
        v[m] = t + ys;
        u[m] = x86_int(xs + s * t + .5);
        m++;
      }
    }
  }
  // get points along y-boundary and downsample
  k = m;
  m = 0;
  double xd, yd;
  x.assign(k, 0);
  y.assign(k, 0);
  for (j = 1; j < k; j++) {
    if (u[j] != u[j - 1]) {
      xd = (double)(u[j] < u[j - 1] ? u[j] : u[j] - 1);
      xd = (xd + .5) / scale - .5;
      if (std::floor(xd) != xd || xd < 0 || xd > w - 1) continue;
      yd = (double)(v[j] < v[j - 1] ? v[j] : v[j - 1]);
      yd = (yd + .5) / scale - .5;
      if (yd < 0) {
        yd = 0;
      } else if (yd > h) {
        yd = h;
      }
      yd = std::ceil(yd);
      x[m] = (int)xd;
      y[m] = (int)yd;
      m++;
    }
  }
  // compute rle encoding given y-boundary points
  k = m;
  std::vector<uint32_t> a(k + 1);
  for (j = 0; j < k; j++) a[j] = (uint32_t)(x[j] * (int)(h) + y[j]);
  a[k++] = (uint32_t)(h * w);
  std::sort(a.begin(), a.end());
  uint32_t p = 0;
  for (j = 0; j < k; j++) {
    uint32_t t = a[j];
    a[j] -= p;
    p = t;
  }
  std::vector<uint32_t> b(k);
  j = m = 0;
  b[m++] = a[j++];
  while (j < k) {
    if (a[j] > 0) {
      b[m++] = a[j++];
    } else {
      j++;
      if (j < k) b[m - 1] += a[j++];
    }
  }
  b.resize(m);
  return pm::Rle{static_cast<uint32_t>(h), static_cast<uint32_t>(w), b};
}

pm::Rle reference(const std::vector<double>& xy, uint32_t h, uint32_t w) {
  return rle_fr_poly(xy.data(), xy.size() / 2, h, w);
}

pm::Rle rasterize(const std::vector<double>& xy, uint32_t h, uint32_t w) {
  return pm::from_polygon(xy.data(), xy.size(), h, w);
}

std::string describe(const std::vector<double>& xy, uint32_t h, uint32_t w) {
  std::ostringstream os;
  os.precision(17);
  os << h << "x" << w << " [";
  for (size_t i = 0; i < xy.size(); ++i) os << (i ? ", " : "") << xy[i];
  os << "]";
  return os.str();
}

// Random polygons of 3..12 vertices on small images: vertices inside, near
// and far outside (up to +-1e5), on the 5x grid, on its half steps, and
// edges that are repeated vertices, vertical, horizontal or at 45 degrees.
class PolygonSource {
 public:
  explicit PolygonSource(uint64_t seed) : rng_(seed) {}

  int below(int n) { return std::uniform_int_distribution<int>(0, n - 1)(rng_); }
  double real(double lo, double hi) { return std::uniform_real_distribution<double>(lo, hi)(rng_); }

  uint32_t size() { return below(10) == 0 ? 1 + below(200) : 1 + below(40); }

  double coordinate(uint32_t extent) {
    const double e = extent;
    double c = 0;
    switch (below(10)) {
      case 0: case 1: case 2: c = real(0, e); break;                     // inside
      case 3: case 4: c = real(-2 * e, 3 * e); break;                    // near
      case 5: c = real(-1.5, 1.5) + (below(2) ? 0 : e); break;           // at an edge
      case 6: case 7: c = (below(2) ? -1 : 1) * real(e, 1e3); break;     // far
      case 8: c = (below(2) ? -1 : 1) * real(1e3, 1e4); break;           // farther
      default: c = below(8) == 0 ? (below(2) ? -1 : 1) * real(1e4, 1e5) : real(0, e);  // very far
    }
    switch (below(4)) {
      case 0: return std::round(c * 5) / 5;          // on the 5x grid
      case 1: return (std::floor(c * 5) + .5) / 5;  // half way between (rounding ties)
      default: return c;
    }
  }

  std::vector<double> polygon(uint32_t h, uint32_t w) {
    const int k = 3 + below(10);
    std::vector<double> xy;
    for (int i = 0; i < k; ++i) {
      double x = coordinate(w), y = coordinate(h);
      if (i > 0) {
        const double px = xy[xy.size() - 2], py = xy.back();
        const double d = real(-30, 30);
        switch (below(12)) {
          case 0:  // repeated vertex
            x = px;
            y = py;
            break;
          case 1:  // vertical
            x = px;
            break;
          case 2:  // horizontal
            y = py;
            break;
          case 3:  // 45 degrees
            x = px + d;
            y = py + d;
            break;
          case 4:
            x = px + d;
            y = py - d;
            break;
          case 5:
            x = std::round(px) + std::round(d);
            y = std::round(py) - std::round(d);
            break;
          default: break;
        }
      }
      xy.push_back(x);
      xy.push_back(y);
    }
    return xy;
  }

 private:
  std::mt19937_64 rng_;
};

TEST(MaskPolygonWalk, MatchesTheFullWalkOnRandomPolygons) {
  PolygonSource source(20261206);
  int failures = 0;
  for (int i = 0; i < 4000 && failures < 5; ++i) {
    const uint32_t h = source.size(), w = source.size();
    const std::vector<double> xy = source.polygon(h, w);
    const pm::Rle want = reference(xy, h, w);
    const pm::Rle got = rasterize(xy, h, w);
    if (got != want) {
      ++failures;
      ADD_FAILURE() << "polygon " << i << ": " << describe(xy, h, w) << "\n  got  " << pm::to_string(got)
                    << "\n  want " << pm::to_string(want);
    }
  }
}

TEST(MaskPolygonWalk, MatchesTheFullWalkOnBoxes) {
  // from_bbox rasterises the box's polygon the same way.
  PolygonSource source(7);
  for (int i = 0; i < 1000; ++i) {
    const uint32_t h = source.size(), w = source.size();
    const double x = source.coordinate(w), y = source.coordinate(h);
    const double bw = std::fabs(source.coordinate(w)), bh = std::fabs(source.coordinate(h));
    const std::vector<double> xy = {x, y, x, y + bh, x + bw, y + bh, x + bw, y};
    ASSERT_EQ(pm::from_bbox(x, y, bw, bh, h, w), reference(xy, h, w)) << describe(xy, h, w);
  }
}

TEST(MaskPolygonWalk, LongEdgesAlongAndAcrossTheImage) {
  // Edges far longer than the image, crossing it, along its border, ending
  // on it, on every side: the searched walk against the full one.
  const uint32_t h = 23, w = 31;
  const std::vector<std::vector<double>> cases = {
      {-5e4, 10.2, 9e4, 11.7, 12.3, 22.9},        // nearly horizontal across
      {15.5, -7e4, 16.1, 8e4, 3.4, 12.2},         // nearly vertical across
      {0, -1e5, 0, 1e5, 31, 1e5, 31, -1e5},       // along the left and right borders
      {-1e5, 0, 1e5, 0, 1e5, 23, -1e5, 23},       // along the top and bottom
      {30.9, 22.9, -1e5, -3e4, 1e5, -2e4},        // from a corner
      {-1e5, -1e5, 1e5, 1e5, -1e5, 1e5},          // the diagonal
      {7.3, 1e5, 7.31, -1e5, 7.32, 1e5},          // a thin spike
      {-99999.9, 5, 99999.9, 5.2, 99999.9, 5.4},  // a thin wedge
  };
  for (const std::vector<double>& xy : cases) {
    EXPECT_EQ(rasterize(xy, h, w), reference(xy, h, w)) << describe(xy, h, w);
  }
}

long peak_rss_kib() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  return r.ru_maxrss;
}

// fuzz/FINDINGS.md, fuzz_coco slow_polygon_coordinate_3842618.json: the walk
// went through every upsampled step of an edge, also outside the image, so a
// vertex at the accepted 1e8 cost 5e8 steps an edge (minutes for these
// polygons; the ctest timeout is the test's bound). Polygons whose edges have
// slopes exact in binary (0, 1/2, 1, 2, vertical) rasterise the same with
// the far vertex moved along its edges to 1000, where the full walk is fast.
TEST(PolygonRegression, VertexAt1e8DoesNotWalkEveryUpsampledStep) {
  const uint32_t h = 100, w = 100;
  struct Case {
    std::vector<double> far, near;
  };
  const std::vector<Case> cases = {
      {{10, 10, 1e8, 10, 1e8, 90, 10, 90}, {10, 10, 1e3, 10, 1e3, 90, 10, 90}},
      {{-1e8, 10, 90, 10, 90, 90, -1e8, 90}, {-1e3, 10, 90, 10, 90, 90, -1e3, 90}},
      {{10, -1e8, 90, -1e8, 90, 1e8, 10, 1e8}, {10, -1e3, 90, -1e3, 90, 1e3, 10, 1e3}},
      {{0, 0, 1e8, 1e8, 0, 1e8}, {0, 0, 1e3, 1e3, 0, 1e3}},
      {{100, 100, -99999900, -99999900, 100, -99999900}, {100, 100, -900, -900, 100, -900}},
      {{0, 0, 5e7, 1e8, 0, 1e8}, {0, 0, 500, 1e3, 0, 1e3}},
      {{0, 0, 1e8, 5e7, 1e8, 0}, {0, 0, 1e3, 500, 1e3, 0}},
  };
  const long rss_before = peak_rss_kib();
  for (const Case& c : cases) {
    const pm::Rle got = rasterize(c.far, h, w);
    EXPECT_EQ(got, reference(c.near, h, w)) << describe(c.far, h, w);
    EXPECT_GT(pm::area(got), 0u) << describe(c.far, h, w);
  }
  // Any slope, every vertex at the limit: a well-formed mask.
  const std::vector<double> xy = {-1e8, 37.3, 61.7, -1e8, 1e8, 99.9, 12.5, 1e8, -1e8, -1e8};
  const pm::Rle r = rasterize(xy, h, w);
  uint64_t sum = 0;
  for (uint32_t c : r.counts) sum += c;
  EXPECT_EQ(sum, uint64_t(h) * w);
  // No array of the 5e8 steps (2 GiB a coordinate of u and v) was allocated.
  EXPECT_LT(peak_rss_kib() - rss_before, 64 * 1024);
}

}  // namespace
