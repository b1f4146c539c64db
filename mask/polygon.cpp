// Polygon and box rasterisation: cocoapi maskApi.c rleFrPoly / rleFrBbox,
// step for step (5x upsampled DDA along the boundary, crossings of pixel
// columns turned into column-major run boundaries). The boundary points are
// streamed instead of stored; the arithmetic and its order are unchanged.
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
  for (size_t j = 0; j < k; ++j) {
    int xs = xs_[j], xe = xs_[j + 1], ys = ys_[j], ye = ys_[j + 1];
    const int dx = std::abs(xe - xs), dy = std::abs(ys - ye);
    const bool flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) {
      std::swap(xs, xe);
      std::swap(ys, ye);
    }
    const double s = dx >= dy ? static_cast<double>(ye - ys) / dx : static_cast<double>(xe - xs) / dy;
    if (dx >= dy) {
      for (int d = 0; d <= dx; ++d) {
        const int t = flip ? dx - d : d;
        collect(t + xs, cvtt(ys + s * t + .5));
      }
    } else {
      for (int d = 0; d <= dy; ++d) {
        const int t = flip ? dy - d : d;
        collect(cvtt(xs + s * t + .5), t + ys);
      }
    }
  }

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
