// The slicer (slice::slice_dataset) on COCO JSON from io::parse_coco.
// Input: 8 bytes of settings, then the JSON text:
//   [0] slice size 16 + 32 * (b % 8)       (16..240 px)
//   [1] overlap (b % 51) / 100             (0..0.5)
//   [2] min_area_ratio b / 255
//   [3] keep_empty b / 255
//   [4] bit 0 polygons, bit 1 slice_all, bit 2 kSkip (else kStrict)
//   [5] above 8 * b px                     (0 = off unless slice_all)
//   [6..7] seed
// Images are at most 2^19 px (LoadOptions::max_pixels), so a grid has at
// most ~8000 windows. Properties (abort() when violated): one view per image
// record, its window inside the source image and of the record's size;
// annotation ids 1..M pointing at their view; a cut segmentation decodes at
// the view's size with the recorded area (RLE), or has parts of >= 6
// numbers inside the window (polygons); area > 0 and >= min_area_ratio of
// the source's when cut; the output writes and loads back with the same
// records. InputError is the only exception allowed.
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/slice/slice.hpp"

using namespace pasteflow;

namespace {

void check(bool ok) {
  if (!ok) std::abort();
}

void check_output(const io::CocoDataset& src, const slice::SlicedDataset& out, const slice::SliceConfig& c) {
  const io::CocoDataset& ds = out.dataset;
  check(ds.images.size() == out.views.size());
  check(ds.annotations.size() == out.annotation_source.size());
  for (size_t v = 0; v < out.views.size(); ++v) {
    const slice::View& view = out.views[v];
    check(view.source_image_index < src.images.size());
    const io::ImageRecord& sim = src.images[view.source_image_index];
    const slice::Window& w = view.window;
    check(w.x >= 0 && w.y >= 0 && w.width > 0 && w.height > 0);
    check(w.x + w.width <= sim.width && w.y + w.height <= sim.height);
    check(ds.images[v].width == w.width && ds.images[v].height == w.height);
    check(ds.images[v].id == static_cast<int64_t>(v) + 1);
    if (view.sliced) check(w.width == std::min<int64_t>(c.size, sim.width) && w.height == std::min<int64_t>(c.size, sim.height));
  }
  for (size_t i = 0; i < ds.annotations.size(); ++i) {
    const io::AnnotationRecord& a = ds.annotations[i];
    check(a.id == static_cast<int64_t>(i) + 1);
    check(a.image_index < ds.images.size());
    const slice::View& view = out.views[a.image_index];
    if (!view.sliced) continue;
    const uint32_t h = static_cast<uint32_t>(view.window.height), w = static_cast<uint32_t>(view.window.width);
    check(a.has_area && a.area > 0);
    if (a.seg_kind == io::SegmentationKind::kRleString) {
      check(a.rle_height == h && a.rle_width == w);
      const mask::Rle m = mask::from_string(ds.rle_string(a), h, w);  // must not throw
      check(static_cast<double>(mask::area(m)) == a.area);
      check(mask::bbox(m) == a.bbox);
      // The source's full mask: the cut keeps at least min_area_ratio of it.
      const io::AnnotationRecord& s = src.annotations[out.annotation_source[i]];
      const io::ImageRecord& sim = src.images[view.source_image_index];
      const mask::Rle full = mask::annotation_rle(src, s, uint32_t(sim.height), uint32_t(sim.width));
      check(a.area >= c.min_area_ratio * static_cast<double>(mask::area(full)));
      check(mask::crop(full, int(view.window.x), int(view.window.y), w, h) == m);
    } else if (a.seg_kind == io::SegmentationKind::kPolygons) {
      check(c.polygons && ds.num_parts(a) > 0);
      for (size_t k = 0; k < ds.num_parts(a); ++k) {
        const Span<const double> xy = ds.polygon(a, k);
        check(xy.size() >= 6 && xy.size() % 2 == 0);
        for (size_t j = 0; j < xy.size(); j += 2) {
          check(xy[j] >= 0 && xy[j] <= double(w) && xy[j + 1] >= 0 && xy[j + 1] <= double(h));
        }
      }
    } else {
      check(a.seg_kind == io::SegmentationKind::kNone);
      check(a.bbox[0] >= 0 && a.bbox[1] >= 0 && a.bbox[0] + a.bbox[2] <= double(w) + 1e-9 &&
            a.bbox[1] + a.bbox[3] <= double(h) + 1e-9);
    }
  }
  // Writes, and loads back with the same records.
  io::LoadOptions opt;
  opt.keep_extra_fields = true;
  opt.max_pixels = 0;
  const io::CocoDataset back = io::parse_coco(io::write_coco_string(ds), "slices.json", opt);
  check(back.images.size() == ds.images.size() && back.annotations.size() == ds.annotations.size() &&
        back.categories.size() == ds.categories.size());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 8) return 0;
  slice::SliceConfig c;
  c.size = 16 + 32 * (data[0] % 8);
  c.overlap = static_cast<double>(data[1] % 51) / 100.0;
  c.min_area_ratio = data[2] / 255.0;
  c.keep_empty = data[3] / 255.0;
  c.polygons = data[4] & 1;
  const bool slice_all = data[4] & 2;
  const ErrorPolicy policy = (data[4] & 4) ? ErrorPolicy::kSkip : ErrorPolicy::kStrict;
  c.above = 8 * static_cast<int64_t>(data[5]);
  const uint64_t seed = data[6] | (uint64_t(data[7]) << 8);
  const std::string_view json(reinterpret_cast<const char*>(data + 8), size - 8);
  io::LoadOptions opt;
  opt.policy = policy;
  opt.max_pixels = int64_t(1) << 19;
  opt.keep_extra_fields = true;
  try {
    const io::CocoDataset src = io::parse_coco(json, "fuzz.json", opt);
    const slice::SlicedDataset out = slice::slice_dataset(src, c, seed, slice_all, policy);
    check_output(src, out, c);
  } catch (const InputError&) {
  }
  return 0;
}
