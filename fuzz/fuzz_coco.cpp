// COCO annotation reader (io::parse_coco, the in-memory entry of load_coco).
// Input: the JSON text. Each input is parsed under both policies, with the
// default block and with 64-byte blocks and batches (records split across
// blocks); whatever loads must write back (write_coco_string) into JSON that
// loads again with the same records, and every annotation's mask must build
// or throw an InputError.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"

using namespace pasteflow;

namespace {

// Masks are built only for images up to this many pixels: huge sizes hit
// the known 32-bit pixel-count bug of mask/ (issue 10), not what this
// target is after.
constexpr uint64_t kMaxMaskPixels = uint64_t(1) << 20;
void check_masks(const io::CocoDataset& ds) {
  for (const io::AnnotationRecord& a : ds.annotations) {
    const io::ImageRecord& im = ds.images[a.image_index];
    if (im.width <= 0 || im.height <= 0) continue;
    if (uint64_t(im.width) * uint64_t(im.height) > kMaxMaskPixels) continue;
    if (uint64_t(a.rle_width) * uint64_t(a.rle_height) > kMaxMaskPixels) continue;
    try {
      const mask::Rle rle = mask::annotation_rle(ds, a, uint32_t(im.height), uint32_t(im.width));
      (void)mask::area(rle);
    } catch (const InputError&) {
    }
  }
}

void round_trip(const io::CocoDataset& ds, const io::LoadOptions& options) {
  const std::string text = io::write_coco_string(ds);
  // What the writer produced must load again, with the same records.
  const io::CocoDataset back = io::parse_coco(text, "roundtrip.json", options);
  if (back.images.size() != ds.images.size() || back.annotations.size() != ds.annotations.size() ||
      back.categories.size() != ds.categories.size()) {
    std::abort();
  }
}

void run(std::string_view json, io::LoadOptions options) {
  try {
    const io::CocoDataset ds = io::parse_coco(json, "fuzz.json", options);
    check_masks(ds);
    options.policy = ErrorPolicy::kStrict;  // the written file has no bad records left
    round_trip(ds, options);
  } catch (const InputError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view json(reinterpret_cast<const char*>(data), size);
  io::LoadOptions options;
  options.keep_extra_fields = true;
  run(json, options);
  options.policy = ErrorPolicy::kSkip;
  options.keep_extra_fields = false;
  options.block_size = 64;
  options.batch_size = 64;
  run(json, options);
  return 0;
}
