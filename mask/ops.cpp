// Operations on runs: merge (rleMerge), IoU (rleIou, bbIou) and windows.
// Merge and IoU follow cocoapi maskApi.c; inputs are checked first (counts
// that do not add up to h * w make the C loops run forever).
#include <algorithm>
#include <cmath>
#include <string>

#include "pasteflow/mask/rle.hpp"
#include "rle_internal.hpp"

namespace pasteflow::mask {

namespace {

inline uint32_t first_count(const Rle& r) { return r.counts.empty() ? 0u : r.counts[0]; }

// One step of rleMerge: out = A op B (both of the same size, sums checked).
void merge_pair(const std::vector<uint32_t>& A, const std::vector<uint32_t>& B, bool intersect,
                std::vector<uint32_t>& out) {
  out.clear();
  out.reserve(A.size() + B.size());
  const size_t am = A.size(), bm = B.size();
  uint32_t ca = am ? A[0] : 0, cb = bm ? B[0] : 0;
  uint64_t cc = 0;  // <= h * w <= kMaxPixels (sums checked)
  bool v = false, va = false, vb = false;
  size_t a = 1, b = 1;
  uint64_t ct = 1;
  while (ct > 0) {
    const uint32_t c = std::min(ca, cb);
    cc += c;
    ct = 0;
    ca -= c;
    if (!ca && a < am) {
      ca = A[a++];
      va = !va;
    }
    ct += ca;
    cb -= c;
    if (!cb && b < bm) {
      cb = B[b++];
      vb = !vb;
    }
    ct += cb;
    const bool vp = v;
    v = intersect ? (va && vb) : (va || vb);
    if (v != vp || ct == 0) {
      out.push_back(static_cast<uint32_t>(cc));
      cc = 0;
    }
  }
}

// Intersection and union of two same-size masks (the loop of rleIou).
void inter_union(const Rle& dt, const Rle& gt, uint64_t& inter, uint64_t& uni) {
  const size_t ka = dt.counts.size(), kb = gt.counts.size();
  uint32_t ca = first_count(dt), cb = first_count(gt);
  bool va = false, vb = false;
  size_t a = 1, b = 1;
  uint64_t i = 0, u = 0, ct = 1;
  while (ct > 0) {
    const uint32_t c = std::min(ca, cb);
    if (va || vb) {
      u += c;
      if (va && vb) i += c;
    }
    ct = 0;
    ca -= c;
    if (!ca && a < ka) {
      ca = dt.counts[a++];
      va = !va;
    }
    ct += ca;
    cb -= c;
    if (!cb && b < kb) {
      cb = gt.counts[b++];
      vb = !vb;
    }
    ct += cb;
  }
  inter = i;
  uni = u;
}

// bbIou for one pair (o = 0 when the boxes do not overlap).
inline double box_iou(const std::array<double, 4>& D, const std::array<double, 4>& G, bool crowd) {
  const double ga = G[2] * G[3], da = D[2] * D[3];
  const double w = std::fmin(D[2] + D[0], G[2] + G[0]) - std::fmax(D[0], G[0]);
  if (w <= 0) return 0;
  const double h = std::fmin(D[3] + D[1], G[3] + G[1]) - std::fmax(D[1], G[1]);
  if (h <= 0) return 0;
  const double i = w * h;
  const double u = crowd ? da : da + ga - i;
  return i / u;
}

// rleIou for one pair given the boxes of both masks.
double rle_iou(const Rle& dt, const std::array<double, 4>& db, const Rle& gt,
               const std::array<double, 4>& gb, bool crowd) {
  const double box = box_iou(db, gb, crowd);
  if (!(box > 0)) return box;
  if (dt.h != gt.h || dt.w != gt.w) return -1;
  uint64_t i = 0, u = 0;
  inter_union(dt, gt, i, u);
  if (i == 0) {
    u = 1;
  } else if (crowd) {
    u = area(dt);
  }
  return static_cast<double>(i) / static_cast<double>(u);
}

void check_crowd(const std::vector<uint8_t>& iscrowd, size_t n) {
  if (!iscrowd.empty() && iscrowd.size() != n) {
    throw Error("iscrowd_size", "iscrowd has " + std::to_string(iscrowd.size()) +
                                    " entries for " + std::to_string(n) + " ground-truth objects");
  }
}

}  // namespace

Rle merge(const std::vector<Rle>& rles, bool intersect) {
  if (rles.empty()) return Rle{};
  const Rle& first = rles[0];
  if (rles.size() == 1) return first;
  for (const Rle& r : rles) {
    if (r.h != first.h || r.w != first.w) {
      throw InputError("rle_size_mismatch", "merge of masks of different sizes (" +
                                                std::to_string(first.h) + "x" + std::to_string(first.w) +
                                                " and " + std::to_string(r.h) + "x" +
                                                std::to_string(r.w) + ")");
    }
    detail::check_sum(r, "merge");
  }
  Rle out;
  out.h = first.h;
  out.w = first.w;
  thread_local std::vector<uint32_t> acc;
  acc = first.counts;
  for (size_t i = 1; i < rles.size(); ++i) {
    merge_pair(acc, rles[i].counts, intersect, out.counts);
    if (i + 1 < rles.size()) acc.swap(out.counts);
  }
  return out;
}

double iou(const Rle& dt, const Rle& gt, bool gt_is_crowd) {
  detail::check_sum(dt, "iou");
  detail::check_sum(gt, "iou");
  return rle_iou(dt, bbox(dt), gt, bbox(gt), gt_is_crowd);
}

std::vector<double> iou_matrix(const std::vector<Rle>& dt, const std::vector<Rle>& gt,
                               const std::vector<uint8_t>& iscrowd) {
  check_crowd(iscrowd, gt.size());
  std::vector<std::array<double, 4>> db(dt.size()), gb(gt.size());
  for (size_t d = 0; d < dt.size(); ++d) {
    detail::check_sum(dt[d], "iou");
    db[d] = bbox(dt[d]);
  }
  for (size_t g = 0; g < gt.size(); ++g) {
    detail::check_sum(gt[g], "iou");
    gb[g] = bbox(gt[g]);
  }
  std::vector<double> out(dt.size() * gt.size());
  for (size_t d = 0; d < dt.size(); ++d) {
    for (size_t g = 0; g < gt.size(); ++g) {
      const bool crowd = !iscrowd.empty() && iscrowd[g];
      out[d * gt.size() + g] = rle_iou(dt[d], db[d], gt[g], gb[g], crowd);
    }
  }
  return out;
}

std::vector<double> box_iou_matrix(const std::vector<std::array<double, 4>>& dt,
                                   const std::vector<std::array<double, 4>>& gt,
                                   const std::vector<uint8_t>& iscrowd) {
  check_crowd(iscrowd, gt.size());
  std::vector<double> out(dt.size() * gt.size());
  for (size_t d = 0; d < dt.size(); ++d) {
    for (size_t g = 0; g < gt.size(); ++g) {
      out[d * gt.size() + g] = box_iou(dt[d], gt[g], !iscrowd.empty() && iscrowd[g]);
    }
  }
  return out;
}

// ------------------------------------------------------------------ windows

namespace {

Rle window(const Rle& rle, int64_t x, int64_t y, uint32_t w, uint32_t h) {
  detail::check_sum(rle, "crop");
  detail::check_pixels(h, w, "crop");
  Rle out;
  out.h = h;
  out.w = w;
  const int64_t H = rle.h, W = rle.w;
  // Rows of the window that exist in the source: [r0, r1) in source rows.
  const int64_t r0 = std::max<int64_t>(y, 0);
  const int64_t r1 = std::min<int64_t>(y + h, H);
  const uint64_t above = static_cast<uint64_t>(std::clamp<int64_t>(r0 - y, 0, h));
  const uint64_t inside = r1 > r0 ? static_cast<uint64_t>(r1 - r0) : 0;
  const uint64_t below = h - above - inside;

  // Cursor over the source runs: run `k` covers [run_start, run_end).
  const std::vector<uint32_t>& c = rle.counts;
  size_t k = 0;
  uint64_t run_start = 0, run_end = c.empty() ? 0 : c[0];
  auto seek = [&](uint64_t pos) {
    while (run_end <= pos && k + 1 < c.size()) {
      ++k;
      run_start = run_end;
      run_end += c[k];
    }
  };

  detail::RunBuilder b(out.counts);
  for (uint32_t cx = 0; cx < w; ++cx) {
    const int64_t sx = x + cx;
    if (sx < 0 || sx >= W || inside == 0) {
      b.push(false, h);
      continue;
    }
    b.push(false, above);
    uint64_t pos = static_cast<uint64_t>(sx) * H + static_cast<uint64_t>(r0);
    const uint64_t end = pos + inside;
    while (pos < end) {
      seek(pos);
      const uint64_t take = std::min(run_end, end) - pos;
      b.push(k % 2 == 1, take);
      pos += take;
    }
    b.push(false, below);
  }
  b.finish();
  return out;
}

}  // namespace

Rle crop(const Rle& rle, int x, int y, uint32_t w, uint32_t h) { return window(rle, x, y, w, h); }

Rle translate(const Rle& rle, int dx, int dy, uint32_t new_h, uint32_t new_w) {
  return window(rle, -static_cast<int64_t>(dx), -static_cast<int64_t>(dy), new_w, new_h);
}

}  // namespace pasteflow::mask
