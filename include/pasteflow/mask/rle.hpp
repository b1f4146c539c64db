// Run-length encoded binary masks, bit-exact with pycocotools (cocoapi
// 8c9bcc3, common/maskApi.c): the same run layout, the same polygon
// rasterisation, the same compressed strings, areas, boxes and IoUs.
//
// Layout: runs over the COLUMN-major pixel order (x outer, y inner), the
// first run counts zeros (it may be 0), then ones, zeros, ... alternating.
// The counts of a well-formed Rle sum to h * w.
//
// Images are exchanged ROW-major (decode / encode), as OpenCV stores them.
//
// Errors: malformed input throws pasteflow::InputError with a reason code:
//   "bad_rle"           malformed compressed string
//   "rle_sum"           counts do not add up to h * w
//   "short_polygon"     a polygon with fewer than 6 numbers (4 numbers is a
//                       box to pycocotools, which then fails)
//   "odd_polygon"       a polygon with an odd number of coordinates
//   "polygon_range"     a coordinate that is not finite or beyond +-1e8
//   "rle_size_mismatch" merge of masks of different sizes
//   "mask_too_large"    h * w above kMaxPixels (runs are 32-bit, as
//                       pycocotools'; pixel counts are 64-bit throughout)
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/core/span.hpp"

namespace pasteflow::mask {

/// Largest mask (h * w pixels): run lengths and pycocotools' run starts
/// are 32-bit unsigned.
inline constexpr uint64_t kMaxPixels = UINT32_MAX;

/// Largest magnitude of a polygon coordinate ("polygon_range").
inline constexpr double kMaxPolygonCoordinate = 1e8;

struct Rle {
  uint32_t h = 0, w = 0;
  std::vector<uint32_t> counts;  ///< column-major runs, starting with zeros
};

inline bool operator==(const Rle& a, const Rle& b) {
  return a.h == b.h && a.w == b.w && a.counts == b.counts;
}
inline bool operator!=(const Rle& a, const Rle& b) { return !(a == b); }

// ------------------------------------------------------------------ building

/// pycocotools rleFrPoly: `xy` = x0, y0, x1, y1, ... (n_values numbers, even,
/// >= 6). Throws "short_polygon", "odd_polygon", "polygon_range".
Rle from_polygon(const double* xy, size_t n_values, uint32_t h, uint32_t w);

/// Each part rasterised with from_polygon, then their union (pycocotools
/// frPyObjects + merge, as COCO.annToRLE does). No parts: an empty mask.
Rle from_polygons(const std::vector<Span<const double>>& parts, uint32_t h, uint32_t w);

/// pycocotools rleFrBbox: the polygon (x,y) (x,y+h) (x+w,y+h) (x+w,y).
Rle from_bbox(double x, double y, double w, double h, uint32_t H, uint32_t W);

/// Checked copy of uncompressed counts; throws "rle_sum" unless they add up
/// to h * w.
Rle from_counts(Span<const uint32_t> counts, uint32_t h, uint32_t w);

/// All-zero mask of h x w.
Rle empty(uint32_t h, uint32_t w);

// --------------------------------------------------------- compressed string

/// pycocotools rleToString: LEB128-like, 5 bits per character (48..111),
/// counts from the 4th on stored as differences to the count two before.
std::string to_string(const Rle& rle);

/// pycocotools rleFrString, checked: throws InputError "bad_rle" (with the
/// byte offset) on characters outside 48..111, a truncated last value, an
/// over-long value or a count outside 0..2^32-1, and "rle_sum" when the
/// counts do not add up to h * w. Never reads past `s`.
Rle from_string(std::string_view s, uint32_t h, uint32_t w);

// ------------------------------------------------------------ pixel buffers

/// Row-major h*w mask of 0/1. Throws "rle_sum" on malformed runs.
std::vector<uint8_t> decode(const Rle& rle);

/// Writes 0/1 into h rows of w bytes; row y starts at rowmajor + y * stride.
void decode_into(const Rle& rle, uint8_t* rowmajor, size_t stride);

/// From h rows of w bytes (row y at rowmajor + y * stride); nonzero = 1.
Rle encode(const uint8_t* rowmajor, uint32_t h, uint32_t w, size_t stride);

// --------------------------------------------------------------- measuring

/// Number of ones (rleArea, but 64-bit).
uint64_t area(const Rle& rle);

/// [x, y, w, h] exactly as rleToBbox (a mask spanning more than one column
/// gets the full height from y = 0 when a run of ones wraps a column).
std::array<double, 4> bbox(const Rle& rle);

/// Union (intersect = false) or intersection of masks of one size
/// (rleMerge). No masks: a 0 x 0 Rle. Throws "rle_size_mismatch", "rle_sum".
Rle merge(const std::vector<Rle>& rles, bool intersect);

/// rleIou for one pair: |dt & gt| / |dt | gt|, or |dt & gt| / |dt| when
/// gt_is_crowd. 0 when the boxes do not overlap; -1 when the sizes differ
/// (and the boxes overlap), as pycocotools.
double iou(const Rle& dt, const Rle& gt, bool gt_is_crowd);

/// maskUtils.iou(dt, gt, iscrowd): row-major dt.size() x gt.size().
/// `iscrowd` is empty (no crowd) or has gt.size() entries.
std::vector<double> iou_matrix(const std::vector<Rle>& dt, const std::vector<Rle>& gt,
                               const std::vector<uint8_t>& iscrowd);

/// bbIou on [x, y, w, h] boxes: row-major dt.size() x gt.size(); crowd gt:
/// intersection over the dt box area.
std::vector<double> box_iou_matrix(const std::vector<std::array<double, 4>>& dt,
                                   const std::vector<std::array<double, 4>>& gt,
                                   const std::vector<uint8_t>& iscrowd);

// --------------------------------------------------------------- geometry

/// The w x h window whose top-left pixel is (x, y) of `rle`; pixels of the
/// window outside the source are 0. Works on runs: O(runs + w).
Rle crop(const Rle& rle, int x, int y, uint32_t w, uint32_t h);

/// `rle` placed with its top-left pixel at (dx, dy) of a new_w x new_h
/// canvas; what falls outside is dropped. Same as crop(rle, -dx, -dy, ...).
Rle translate(const Rle& rle, int dx, int dy, uint32_t new_h, uint32_t new_w);

}  // namespace pasteflow::mask
