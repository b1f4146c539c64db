// The mask of a COCO annotation, as pycocotools COCO.annToRLE builds it.
#pragma once

#include <cstdint>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pasteflow::mask {

/// - polygons: each part rasterised at img_h x img_w, then their union
///   (frPyObjects + merge);
/// - uncompressed counts: taken at the annotation's own "size" (frPyObjects),
///   checked to add up to h * w;
/// - compressed string: decoded at the annotation's own "size".
/// Throws InputError naming the dataset file, the annotation's byte offset
/// and JSON path ("annotations[i].segmentation", when it came from the
/// loaded file) and its id:
/// "no_segmentation", "empty_segmentation" (polygon list with no part),
/// "short_polygon", "odd_polygon", "polygon_range", "bad_rle", "rle_sum".
/// Uses only header-inline accessors of CocoDataset (no link to pasteflow_io).
Rle annotation_rle(const io::CocoDataset& ds, const io::AnnotationRecord& ann, uint32_t img_h,
                   uint32_t img_w);

}  // namespace pasteflow::mask
