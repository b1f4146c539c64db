// COCO.annToRLE: polygons -> frPyObjects + merge, counts -> frPyObjects,
// string -> as is.
#include "pasteflow/mask/coco_mask.hpp"

#include <string>
#include <vector>

namespace pasteflow::mask {

static_assert(io::kMaxCoordinate == kMaxPolygonCoordinate,
              "the loader accepts exactly the coordinates the rasteriser does");

namespace {

[[noreturn]] void rethrow_with_context(const Error& e, const io::CocoDataset& ds,
                                       const io::AnnotationRecord& ann) {
  // The annotation's place in the file (byte offset, JSON path); an offset
  // inside a compressed string (from_string) goes into the message.
  Location loc = ds.annotation_location(ann, ".segmentation");
  std::string detail = e.detail();
  if (e.where().byte_offset >= 0) detail += " (at character " + std::to_string(e.where().byte_offset) + ")";
  throw InputError(e.reason(), detail, loc);
}

Rle build(const io::CocoDataset& ds, const io::AnnotationRecord& ann, uint32_t img_h, uint32_t img_w) {
  switch (ann.seg_kind) {
    case io::SegmentationKind::kPolygons: {
      const size_t n = ds.num_parts(ann);
      if (n == 0) throw InputError("empty_segmentation", "segmentation is an empty polygon list");
      std::vector<Span<const double>> parts;
      parts.reserve(n);
      for (size_t k = 0; k < n; ++k) parts.push_back(ds.polygon(ann, k));
      return from_polygons(parts, img_h, img_w);
    }
    case io::SegmentationKind::kRleCounts:
      return from_counts(ds.counts(ann), ann.rle_height, ann.rle_width);
    case io::SegmentationKind::kRleString:
      return from_string(ds.rle_string(ann), ann.rle_height, ann.rle_width);
    case io::SegmentationKind::kNone:
      break;
  }
  throw InputError("no_segmentation", "annotation has no segmentation");
}

}  // namespace

Rle annotation_rle(const io::CocoDataset& ds, const io::AnnotationRecord& ann, uint32_t img_h,
                   uint32_t img_w) {
  try {
    return build(ds, ann, img_h, img_w);
  } catch (const Error& e) {
    rethrow_with_context(e, ds, ann);
  }
}

}  // namespace pasteflow::mask
