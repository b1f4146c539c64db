// Polygon rasteriser (mask::from_polygon / from_polygons). Input: 2 bytes
// height, 2 bytes width (each modulo 512), 1 byte: number of parts (1-4,
// low 2 bits) and far exponent k (bits 2-4), then per part 1 byte number of
// values and that many int16 values, each a coordinate in 1/8 px
// (-4096..4096 px), the odd ones times 10^k: vertices far outside the image,
// up to 4e10 (beyond the +-1e8 limit: polygon_range), beside near ones.
// Whatever rasterises must be a well-formed mask of h x w, in time that does
// not grow with the far coordinates (libFuzzer's -timeout).
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <vector>

#include "fuzz_input.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/mask/rle.hpp"

using namespace pasteflow;

namespace {

void check(const mask::Rle& rle, uint32_t h, uint32_t w) {
  if (rle.h != h || rle.w != w) std::abort();
  uint64_t sum = 0;
  for (uint32_t c : rle.counts) sum += c;
  if (sum != uint64_t(h) * w) std::abort();
  const std::vector<uint8_t> pixels = mask::decode(rle);
  uint64_t ones = 0;
  for (uint8_t p : pixels) ones += p;
  if (mask::area(rle) != ones) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fuzz::Input in(data, size);
  const uint32_t h = in.u16() % 512, w = in.u16() % 512;
  const uint8_t parts_byte = in.byte();
  const size_t n_parts = 1 + parts_byte % 4;
  const double far = std::pow(10.0, (parts_byte >> 2) % 8);
  std::vector<std::vector<double>> parts(n_parts);
  for (std::vector<double>& part : parts) {
    const size_t n = in.byte();
    for (size_t i = 0; i < n && in.remaining() >= 2; ++i) {
      const int16_t v = static_cast<int16_t>(in.u16());
      part.push_back(v / 8.0 * (v % 2 != 0 ? far : 1.0));
    }
  }
  try {
    check(mask::from_polygon(parts[0].data(), parts[0].size(), h, w), h, w);
  } catch (const InputError&) {
  }
  std::vector<Span<const double>> spans;
  for (const std::vector<double>& part : parts) spans.emplace_back(part.data(), part.size());
  try {
    check(mask::from_polygons(spans, h, w), h, w);
  } catch (const InputError&) {
  }
  return 0;
}
