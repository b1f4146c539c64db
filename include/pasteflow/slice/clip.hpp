// Polygon clipping to a slice window (Sutherland-Hodgman), used by the
// slicer for `polygons` output; exposed for tests and the fuzzer.
#pragma once

#include <vector>

#include "pasteflow/core/span.hpp"
#include "pasteflow/raster/tiff.hpp"

namespace pasteflow::slice {

/// The polygon `xy` (x0, y0, x1, y1, ..., in image pixels, closed
/// implicitly) clipped to the rectangle [window.x, window.x + window.width]
/// x [window.y, window.y + window.height] by Sutherland-Hodgman (against the
/// four edges in turn), returned in window coordinates (window.x, window.y
/// subtracted). Consecutive repeated vertices are dropped. A result with
/// fewer than 3 vertices (the part lies outside, or degenerates to a segment
/// or point) is returned empty. An odd trailing number is ignored.
///
/// Rasterised, the clipped polygon equals the rasterised polygon cropped to
/// the window up to pycocotools' rounding: rleFrPoly snaps each vertex to a
/// 1/5-px grid with (int)(5 * x + .5), so a vertex translated into window
/// coordinates can snap to the neighbouring 1/5 px (when 5x + .5 is within
/// rounding of an integer), and the vertices created on the window border
/// snap differently than the original edge's crossing. Bound (measured on
/// coco_mini, asserted in tests/slice/clip_test.cpp): differing pixels
/// <= 0.25 x the clipped outline's length in px + 2 (measured worst: 0.124
/// per px + 2; 0.04% of the mask pixels overall). The slicer's area, bbox
/// and RLE never depend on this: they come from the exact crop.
std::vector<double> clip_polygon(Span<const double> xy, const raster::Window& window);

}  // namespace pasteflow::slice
