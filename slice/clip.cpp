// Sutherland-Hodgman clipping of a polygon against an axis-aligned rectangle.
#include "pasteflow/slice/clip.hpp"

#include <algorithm>
#include <cmath>
#include <cstddef>

namespace pasteflow::slice {

namespace {

struct P {
  double x, y;
};

/// One pass: keep the side where inside(p) holds; `cross` gives the point
/// of the edge a-b on the clip line.
template <class Inside, class Cross>
void clip_edge(const std::vector<P>& in, std::vector<P>& out, Inside inside, Cross cross) {
  out.clear();
  const size_t n = in.size();
  if (n == 0) return;
  for (size_t i = 0; i < n; ++i) {
    const P& cur = in[i];
    const P& prev = in[(i + n - 1) % n];
    const bool ci = inside(cur), pi = inside(prev);
    if (ci) {
      if (!pi) out.push_back(cross(prev, cur));
      out.push_back(cur);
    } else if (pi) {
      out.push_back(cross(prev, cur));
    }
  }
}

/// Point of segment a-b at coordinate x = c (a.x != b.x when called).
P at_x(const P& a, const P& b, double c) {
  const double t = (c - a.x) / (b.x - a.x);
  return P{c, a.y + t * (b.y - a.y)};
}
P at_y(const P& a, const P& b, double c) {
  const double t = (c - a.y) / (b.y - a.y);
  return P{a.x + t * (b.x - a.x), c};
}

}  // namespace

std::vector<double> clip_polygon(Span<const double> xy, const raster::Window& window) {
  const size_t n = xy.size() / 2;
  std::vector<P> a, b;
  a.reserve(n + 4);
  b.reserve(n + 4);
  const double ox = static_cast<double>(window.x), oy = static_cast<double>(window.y);
  const double w = static_cast<double>(window.width), h = static_cast<double>(window.height);
  for (size_t i = 0; i < n; ++i) {
    const double x = xy[2 * i], y = xy[2 * i + 1];
    if (!std::isfinite(x) || !std::isfinite(y)) return {};
    a.push_back(P{x - ox, y - oy});
  }
  // Each crossing is computed only for an edge whose ends are on opposite
  // sides of the line, so the denominators are nonzero.
  clip_edge(a, b, [](const P& p) { return p.x >= 0; }, [](const P& p, const P& q) { return at_x(p, q, 0); });
  clip_edge(b, a, [w](const P& p) { return p.x <= w; }, [w](const P& p, const P& q) { return at_x(p, q, w); });
  clip_edge(a, b, [](const P& p) { return p.y >= 0; }, [](const P& p, const P& q) { return at_y(p, q, 0); });
  clip_edge(b, a, [h](const P& p) { return p.y <= h; }, [h](const P& p, const P& q) { return at_y(p, q, h); });

  std::vector<double> out;
  out.reserve(a.size() * 2);
  for (size_t i = 0; i < a.size(); ++i) {
    // Interpolated coordinates can stray by an ulp: clamped into the window.
    const P p{std::clamp(a[i].x, 0.0, w), std::clamp(a[i].y, 0.0, h)};
    if (!out.empty() && out[out.size() - 2] == p.x && out.back() == p.y) continue;
    out.push_back(p.x);
    out.push_back(p.y);
  }
  // The closing vertex equal to the first one.
  while (out.size() >= 4 && out[0] == out[out.size() - 2] && out[1] == out.back()) out.resize(out.size() - 2);
  if (out.size() < 6) out.clear();
  return out;
}

}  // namespace pasteflow::slice
