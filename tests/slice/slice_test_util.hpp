// Helpers of the slice tests: real COCO data, pixel crops done by hand.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/slice/slice.hpp"

namespace slicetest {

inline std::string data(const std::string& rel) { return std::string(PASTEFLOW_TEST_DATA) + "/" + rel; }

inline pasteflow::io::CocoDataset load(const std::string& rel) {
  pasteflow::io::LoadOptions opt;
  opt.keep_extra_fields = true;
  return pasteflow::io::load_coco(data(rel), opt);
}

/// Row-major pixels of `full` (W x H) inside `w`, copied by hand.
inline std::vector<uint8_t> crop_pixels(const std::vector<uint8_t>& full, int64_t W, const pasteflow::slice::Window& w) {
  std::vector<uint8_t> out(static_cast<size_t>(w.width * w.height));
  for (int64_t y = 0; y < w.height; ++y) {
    for (int64_t x = 0; x < w.width; ++x) {
      out[static_cast<size_t>(y * w.width + x)] = full[static_cast<size_t>((w.y + y) * W + (w.x + x))];
    }
  }
  return out;
}

inline uint64_t ones(const std::vector<uint8_t>& px) {
  uint64_t n = 0;
  for (uint8_t v : px) n += v != 0;
  return n;
}

/// The decoded mask of a cut annotation of the sliced dataset (its RLE
/// string, or its polygons rasterised at the window size).
inline pasteflow::mask::Rle cut_mask(const pasteflow::io::CocoDataset& ds, const pasteflow::io::AnnotationRecord& a) {
  using pasteflow::io::SegmentationKind;
  const auto& im = ds.images[a.image_index];
  if (a.seg_kind == SegmentationKind::kRleString) return pasteflow::mask::from_string(ds.rle_string(a), a.rle_height, a.rle_width);
  std::vector<pasteflow::Span<const double>> parts;
  for (size_t k = 0; k < ds.num_parts(a); ++k) parts.push_back(ds.polygon(a, k));
  return pasteflow::mask::from_polygons(parts, static_cast<uint32_t>(im.height), static_cast<uint32_t>(im.width));
}

}  // namespace slicetest
