// Polygon and box rasterisation: cocoapi maskApi.c rleFrPoly / rleFrBbox,
// bit for bit (5x upsampled DDA along the boundary, crossings of pixel
// columns turned into column-major run boundaries). The boundary points are
// streamed instead of stored, and only the points that can make a run
// boundary are visited (Edge, walk_edge), so the time grows with the image,
// not with how far outside it a vertex lies; the arithmetic of every point
// visited is maskApi.c's.
#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <string>

#include "pasteflow/core/short_number.hpp"
#include "pasteflow/mask/rle.hpp"
#include "rle_internal.hpp"

namespace pasteflow::mask {

namespace {

constexpr double kScale = 5;

/// (int) of a double as x86-64 does it (cvttsd2si): truncation toward zero,
/// INT_MIN for NaN and out-of-range values. maskApi.c relies on this for
/// the 0/0 slope of a repeated vertex.
inline int cvtt(double v) {
  if (!(v > -2147483649.0 && v < 2147483648.0)) return std::numeric_limits<int>::min();
  return static_cast<int>(v);
}

struct BoundaryCollector {
  // Consumes the upsampled boundary points (u, v) in order and keeps the
  // y-boundary points (second loop of rleFrPoly).
  uint32_t h, w;
  double wm1;  // w - 1 computed in `siz` (unsigned long) as the C code
  double hd;
  std::vector<uint32_t>& a;
  bool have_prev = false;
  int pu = 0, pv = 0;

  void operator()(int u, int v) {
    if (have_prev && u != pu) {
      double xd = static_cast<double>(u < pu ? u : u - 1);
      xd = (xd + .5) / kScale - .5;
      if (!(std::floor(xd) != xd || xd < 0 || xd > wm1)) {
        double yd = static_cast<double>(v < pv ? v : pv);
        yd = (yd + .5) / kScale - .5;
        if (yd < 0) {
          yd = 0;
        } else if (yd > hd) {
          yd = hd;
        }
        yd = std::ceil(yd);
        const int64_t xi = static_cast<int>(xd), yi = static_cast<int>(yd);
        a.push_back(static_cast<uint32_t>(xi * static_cast<int64_t>(h) + yi));
      }
    }
    pu = u;
    pv = v;
    have_prev = true;
  }
};

/// One edge of the boundary as rleFrPoly walks it: points d = 0..n from
/// vertex j to vertex j + 1, (u, v) computed with maskApi.c's expressions
/// (the walk runs along the longer axis, from the end with the smaller
/// coordinate on it, hence the flip). u is monotone in d: along the longer
/// axis it moves by exactly 1 a step, along the shorter one it is the
/// truncation of a monotone double expression.
struct Edge {
  int xs, ys;  // the start after the flip
  int n;       // dx or dy: the edge has n + 1 points
  bool steep, flip;
  double s;

  Edge(int x0, int y0, int x1, int y1) : xs(x0), ys(y0) {
    int xe = x1, ye = y1;
    const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    steep = dx < dy;
    flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    n = steep ? dy : dx;
    s = dx >= dy ? static_cast<double>(ye - ys) / dx : static_cast<double>(xe - xs) / dy;
  }
  int t(int d) const { return flip ? n - d : d; }
  int u(int d) const { return steep ? cvtt(xs + s * t(d) + .5) : t(d) + xs; }
  int v(int d) const { return steep ? t(d) + ys : cvtt(ys + s * t(d) + .5); }
};

/// The last d in [d0, n] with pred(d), given pred(d0) and that pred holds on
/// a prefix of [d0, n] (galloping, then bisection: O(log(last - d0))).
template <class Pred>
int last_of_run(int d0, int n, const Pred& pred) {
  int64_t lo = d0, step = 1;
  while (lo + step <= n && pred(static_cast<int>(lo + step))) {
    lo += step;
    step *= 2;
  }
  int64_t hi = std::min<int64_t>(lo + step, int64_t(n) + 1);  // pred(hi) false or hi past n
  while (hi - lo > 1) {
    const int64_t mid = lo + (hi - lo) / 2;
    (pred(static_cast<int>(mid)) ? lo : hi) = mid;
  }
  return static_cast<int>(lo);
}

/// Feeds `collect` the points of edge `e` that can matter; the result is
/// that of feeding every point. A pair of consecutive points pushes a run
/// boundary only when u changes and xd = (u < pu ? u : u - 1) is 5x+2 with
/// x in [0, w-1], i.e. in [2, 5w-3]: a pair of points both below lo = 1 or
/// both above hi = 5w-1 (the columns' range with a step of margin) pushes
/// nothing, whatever their u and v. As u is monotone along the edge, its
/// points fall into runs: points below lo, points of one u in [lo, hi],
/// points above hi. Only the first and last point of each run are fed: the
/// pairs between runs are the original pairs, the pair (first, last) inside
/// a run pushes nothing, as every pair inside it did. Consecutive edges
/// share their end points, which are always fed. Cost: O(log n) a run, and
/// at most 5w + 1 runs an edge (5w - 1 values of u in [lo, hi], two sides).
void walk_edge(const Edge& e, uint32_t w, BoundaryCollector& collect) {
  const int64_t lo = 1, hi = 5 * int64_t(w) - 1;
  const auto side = [&](int u) { return u < lo ? -1 : u > hi ? 1 : 0; };
  const int n = e.n;
  const int u0 = e.u(0), un = e.u(n);
  // Dense edges (every few steps a new u in the image's columns, as on
  // ordinary polygons) are walked step by step: cheaper than the search.
  // Edge::u / v's expressions, unswitched by hand (5 % fewer instructions
  // on COCO polygons than calling them).
  const int64_t columns = std::min<int64_t>(std::abs(int64_t(un) - u0), hi - lo) + 1;
  if (int64_t(n) <= 4 * columns + 32) {
    if (e.steep) {
      for (int d = 0; d <= n; ++d) {
        const int t = e.t(d);
        collect(cvtt(e.xs + e.s * t + .5), t + e.ys);
      }
    } else {
      for (int d = 0; d <= n; ++d) {
        const int t = e.t(d);
        collect(t + e.xs, cvtt(e.ys + e.s * t + .5));
      }
    }
    return;
  }
  int d = 0, u = u0;
  collect(u, e.v(0));
  for (;;) {
    const int sd = side(u), run_u = u;
    const int last = sd == 0 ? last_of_run(d, n, [&](int p) { return e.u(p) == run_u; })
                             : last_of_run(d, n, [&](int p) { return side(e.u(p)) == sd; });
    if (last > d) collect(e.u(last), e.v(last));
    if (last == n) break;
    d = last + 1;
    u = e.u(d);
    collect(u, e.v(d));
  }
}

Rle rasterize(const double* xy, size_t k, uint32_t h, uint32_t w) {
  // Run starts x * h + y are 32-bit, as in maskApi.c.
  detail::check_pixels(h, w, "polygon");
  Rle r;
  r.h = h;
  r.w = w;
  if (h == 0 || w == 0) {
    r.counts.push_back(0);
    return r;
  }
  thread_local std::vector<int> xs_, ys_;
  thread_local std::vector<uint32_t> a;
  xs_.resize(k + 1);
  ys_.resize(k + 1);
  for (size_t j = 0; j < k; ++j) {
    for (int c = 0; c < 2; ++c) {
      const double v = xy[j * 2 + c];
      if (!std::isfinite(v) || std::fabs(v) > kMaxPolygonCoordinate) {
        throw InputError("polygon_range", "polygon coordinate " + short_number(v) + " is not finite or beyond +-" +
                                              short_number(kMaxPolygonCoordinate));
      }
    }
    xs_[j] = static_cast<int>(kScale * xy[j * 2 + 0] + .5);
    ys_[j] = static_cast<int>(kScale * xy[j * 2 + 1] + .5);
  }
  xs_[k] = xs_[0];
  ys_[k] = ys_[0];

  a.clear();
  BoundaryCollector collect{h, w, static_cast<double>(static_cast<uint64_t>(w) - 1),
                            static_cast<double>(h), a};
  for (size_t j = 0; j < k; ++j) walk_edge(Edge(xs_[j], ys_[j], xs_[j + 1], ys_[j + 1]), w, collect);

  // Run boundaries: sort, difference, and cancel repeated boundaries.
  a.push_back(static_cast<uint32_t>(static_cast<uint64_t>(h) * w));
  std::sort(a.begin(), a.end());
  uint32_t p = 0;
  for (uint32_t& t : a) {
    const uint32_t cur = t;
    t -= p;
    p = cur;
  }
  const size_t n = a.size();
  r.counts.reserve(n);
  size_t j = 0;
  r.counts.push_back(a[j++]);
  while (j < n) {
    if (a[j] > 0) {
      r.counts.push_back(a[j++]);
    } else {
      ++j;
      if (j < n) r.counts.back() += a[j++];
    }
  }
  return r;
}

}  // namespace

Rle from_polygon(const double* xy, size_t n_values, uint32_t h, uint32_t w) {
  if (n_values < 6) {
    throw InputError("short_polygon", "polygon with " + std::to_string(n_values) +
                                          " numbers; at least 3 points (6 numbers) are needed");
  }
  if (n_values % 2 != 0) {
    throw InputError("odd_polygon",
                     "polygon with an odd number of coordinates (" + std::to_string(n_values) + ")");
  }
  return rasterize(xy, n_values / 2, h, w);
}

Rle from_polygons(const std::vector<Span<const double>>& parts, uint32_t h, uint32_t w) {
  if (parts.empty()) return empty(h, w);
  if (parts.size() == 1) return from_polygon(parts[0].data(), parts[0].size(), h, w);
  std::vector<Rle> rles;
  rles.reserve(parts.size());
  for (const auto& part : parts) rles.push_back(from_polygon(part.data(), part.size(), h, w));
  return merge(rles, false);
}

Rle from_bbox(double x, double y, double w, double h, uint32_t H, uint32_t W) {
  const double xs = x, xe = xs + w;
  const double ys = y, ye = ys + h;
  const double xy[8] = {xs, ys, xs, ye, xe, ye, xe, ys};
  return rasterize(xy, 4, H, W);
}

}  // namespace pasteflow::mask
