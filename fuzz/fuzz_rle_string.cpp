// RLE string decoder (mask::from_string). Input: 2 bytes height, 2 bytes
// width (each taken modulo 1024: sizes whose pixel count overflows 32 bits
// are the known mask/ bug of issue 10), then the compressed counts string.
// A string that decodes must survive the codec's identities: to_string ->
// from_string gives it back, encode(decode) has the same pixels, area and
// bbox agree with the pixels.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fuzz_input.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/mask/rle.hpp"

using namespace pasteflow;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint32_t h = in.u16() % 1024, w = in.u16() % 1024;
  mask::Rle rle;
  try {
    rle = mask::from_string(in.rest(), h, w);
  } catch (const InputError&) {
    return 0;
  }
  if (rle.h != h || rle.w != w) std::abort();
  if (mask::from_string(mask::to_string(rle), h, w) != rle) std::abort();
  const std::vector<uint8_t> pixels = mask::decode(rle);
  if (pixels.size() != size_t(h) * w) std::abort();
  uint64_t ones = 0;
  for (uint8_t p : pixels) ones += p;
  if (mask::area(rle) != ones) std::abort();
  const mask::Rle again = mask::encode(pixels.data(), h, w, w);
  if (mask::decode(again) != pixels) std::abort();
  // bbox as rleToBbox: a non-canonical string (runs of 0 ones) gets
  // pycocotools' odd box, so the bounds are checked on the canonical runs.
  const auto box = mask::bbox(again);
  if (ones == 0 && (box[2] != 0 || box[3] != 0)) std::abort();
  if (ones > 0 && (box[2] < 1 || box[3] < 1 || box[0] + box[2] > w || box[1] + box[3] > h)) std::abort();
  return 0;
}
