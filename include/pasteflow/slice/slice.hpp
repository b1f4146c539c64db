// Slicing: huge images cut into a SAHI-style grid of windows ("views"),
// with their annotations cut to each window exactly. Torch-free, no TBB.
//
// Grid (grid()): slices of slice_width x slice_height stepping by
// slice - floor(overlap * slice) along each axis from (0, 0); the last row
// and column are shifted back inside the image (SAHI get_slice_bboxes), so
// every window lies inside the image and has the full slice size when the
// image is at least that large (an image smaller than a slice gives one
// window of the image's size).
//
// Annotations of a window (cut()):
//  - the object's mask is the annotation's pycocotools mask (polygons
//    rasterised, RLE as stored); its clipped mask is that mask cropped to the
//    window exactly (mask::annotation_rle at the full image size, whose
//    cost follows the outline and runs, not the pixel count, then
//    mask::crop on the runs: no full-image raster is ever allocated);
//  - kept when clipped area >= min_area_ratio * full area (and > 0);
//  - the clipped annotation's area and bbox are those of the clipped mask;
//    segmentation: compressed RLE of the clipped mask, or with `polygons`
//    and a polygon source, the polygons clipped to the window
//    (Sutherland-Hodgman, clip.hpp) in window coordinates, parts of fewer
//    than 3 vertices dropped (no part left: the compressed RLE). Rasterised,
//    they equal the cropped mask within pycocotools' vertex rounding: at
//    most 0.25 px per px of clipped outline + 2 differ (clip.hpp);
//  - crowd annotations are cut alike and keep iscrowd;
//  - boxes-only annotations (no segmentation): the box clipped to the
//    window, kept when its area ratio passes; area = clipped box area.
// Views' image records: id 1..N in order (source image order, then grid
// order), file_name the source's, width/height the window's, extra the
// source image's kept members (license, coco_url, ...; any
// "source_image_id" / "window" of a source that is itself a slice dropped)
// followed by `"source_image_id":ID,"window":[x,y,w,h]`.
// Annotations: id 1..M, extras copied.
// Images above mask::kMaxPixels (2^32-1 px, e.g. 100000 x 100000), whose
// full-size mask pycocotools' 32-bit runs cannot hold: a polygon
// annotation is rasterised in a frame around its extent (1 px margin, cut
// by the image's edges) and cropped from there; it equals the full-size
// rasterisation up to the vertex rounding of clip.hpp (a vertex snapped
// relative to the frame's integer origin). RLE annotations cannot exist at
// that size ("rle_sum"); a polygon whose own extent is above the limit is
// "mask_too_large". Boxes-only annotations cut at any size.
// Empty windows (no kept annotation) are kept with probability
// keep_empty, drawn from Rng(seed, {source image id, window index}), so
// the result depends on the seed only.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/raster/tiff.hpp"

namespace pasteflow::slice {

using raster::Window;

struct SliceConfig {
  /// Slice images whose width or height exceeds `above` px (0 = slicing off).
  int64_t above = 0;
  int64_t size = 1024;      ///< slice width and height in px
  double overlap = 0.2;     ///< overlap ratio between neighbouring slices, [0, 1)
  double min_area_ratio = 0.1;  ///< keep a cut object when this share of its area is inside
  double keep_empty = 0.0;  ///< share of empty slices kept (seeded), [0, 1]
  bool polygons = false;    ///< keep clipped polygons for polygon sources (else compressed RLE)

  /// Config keys under "slice.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("above", &SliceConfig::above,
            "cut images wider or taller than this many px into slices (views) of the same graph (0 = off)")
        .min(0);
    d.field("size", &SliceConfig::size, "slice width and height in px").range(16, 1 << 20);
    d.field("overlap", &SliceConfig::overlap, "overlap ratio of neighbouring slices (SAHI)").range(0.0, 0.95);
    d.field("min_area_ratio", &SliceConfig::min_area_ratio,
            "keep an object cut by a slice edge when at least this share of its mask area is inside")
        .range(0.0, 1.0);
    d.field("keep_empty", &SliceConfig::keep_empty, "share of slices without objects kept (seeded)")
        .range(0.0, 1.0);
    d.field("polygons", &SliceConfig::polygons,
            "polygon sources keep clipped polygons (else compressed RLE of the cropped mask)");
  }
};

/// Checks a SliceConfig (ConfigError with key "slice.<field>").
void validate(const SliceConfig& config);

/// The SAHI grid of windows over a width x height image (row by row).
std::vector<Window> grid(int64_t width, int64_t height, int64_t slice_width, int64_t slice_height,
                         double overlap);

/// A dataset of views: `dataset` has one image record per view (the
/// window's size; file_name the source image's; `extra` holds
/// "source_image_id" and "window": [x, y, w, h]), the cut annotations, the
/// source's categories. views[i] belongs to dataset.images[i].
struct View {
  uint32_t source_image_index = 0;  ///< into the source dataset's images
  int64_t source_image_id = 0;
  bool sliced = false;   ///< false: the whole source image, unchanged
  Window window;         ///< in the source image's pixels (the full image when !sliced)
};
struct SlicedDataset {
  io::CocoDataset dataset;
  std::vector<View> views;
  std::vector<uint32_t> annotation_source;  ///< source annotation index of each cut annotation
  uint64_t empty_dropped = 0;  ///< empty windows left out (keep_empty)
  uint64_t objects_dropped = 0;  ///< (object, window) pairs under min_area_ratio
};

/// Views of `source`: images above config.above (or every image when
/// `slice_all`) cut into grid windows, others passed through whole. New
/// image ids are 1, 2, ... in order; annotation ids 1, 2, ... Bad
/// segmentations throw InputError naming the annotation (kStrict) or drop
/// the annotation and count it in dataset.skipped (kSkip).
SlicedDataset slice_dataset(const io::CocoDataset& source, const SliceConfig& config, uint64_t seed,
                            bool slice_all = false, ErrorPolicy policy = ErrorPolicy::kStrict);

}  // namespace pasteflow::slice
