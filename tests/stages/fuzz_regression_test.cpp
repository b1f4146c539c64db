// Regression tests for what fuzz/fuzz_decode found (fuzz/FINDINGS.md); the
// reproducers are in tests/data/fuzz/fuzz_decode/.
#include <gtest/gtest.h>

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/stages/decode.hpp"

namespace pasteflow::stages {
namespace {

const std::string kFuzzData = std::string(PASTEFLOW_TEST_DATA) + "/fuzz/fuzz_decode/";

std::string reason_of(const std::vector<uint8_t>& bytes, const DecodeConfig& config) {
  try {
    (void)Decoder(config).decode_bytes(bytes, "fuzz.tif");
  } catch (const InputError& e) {
    return e.reason();
  }
  return "decoded";
}

// A little-endian classic TIFF whose first directory holds `entries`
// (tag, SHORT or LONG value), then 64 bytes of pixels; StripOffsets (273)
// and TileOffsets (324) point at them whatever value they are given.
std::vector<uint8_t> tiff(const std::vector<std::pair<uint16_t, uint32_t>>& entries) {
  std::vector<uint8_t> out = {'I', 'I', 42, 0, 8, 0, 0, 0, static_cast<uint8_t>(entries.size()), 0};
  const uint32_t pixels_at = static_cast<uint32_t>(8 + 2 + 12 * entries.size() + 4);
  for (auto [tag, value] : entries) {
    if (tag == 273 || tag == 324) value = pixels_at;
    const uint8_t type = value > 0xFFFF ? 4 : 3;
    const uint8_t e[12] = {static_cast<uint8_t>(tag), static_cast<uint8_t>(tag >> 8), type, 0, 1, 0, 0, 0,
                           static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                           static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24)};
    out.insert(out.end(), e, e + 12);
  }
  out.insert(out.end(), 4, 0);    // no next directory
  out.insert(out.end(), 64, 0);  // pixels
  return out;
}

TEST(DecodeRegression, TiffWithTwoImageWidthsIsCorruptNotA4GiBAllocation) {
  // ImageWidth 65520 and again 101, RowsPerStrip 16384: the header parser
  // took 101 and passed the pixel limit, OpenCV took 65520 and allocated
  // 65520 x 16384 x 4 bytes (libFuzzer: out-of-memory, malloc(4293918720)).
  const std::vector<uint8_t> bytes = read_file_bytes(kFuzzData + "tiff_rows_per_strip_4gib.tif");
  EXPECT_THROW(parse_image_header(bytes, "fuzz.tif"), InputError);
  DecodeConfig config;
  config.max_pixels = int64_t(1) << 22;
  EXPECT_EQ(reason_of(bytes, config), "corrupt_image");
}

TEST(DecodeRegression, TiffStripOf4097SamplesIsRefusedNotA2GiBAllocation) {
  // fuzz_decode (issue 11's raster reader): a 44816 x 12 strip of 4097
  // samples a pixel passed the pixel limit (538k pixels) and the reader
  // allocated its 2.2 GB decoded block (libFuzzer: out-of-memory,
  // malloc(2203333824)). The limit now also counts samples.
  const std::vector<uint8_t> bytes = read_file_bytes(kFuzzData + "tiff_strip_of_4097_samples_2gib.tif");
  DecodeConfig config;
  config.max_pixels = int64_t(1) << 22;
  EXPECT_EQ(reason_of(bytes, config), "pixel_limit");
}

TEST(DecodeRegression, TiffStripLargerThanThePixelLimitIsRefusedBeforeDecoding) {
  // 65520 x 12 is 786k pixels, but one strip of 16384 rows is 1.07 G pixels,
  // which OpenCV allocates whole (4 bytes a pixel).
  const auto bytes = tiff({{256, 65520}, {257, 12}, {258, 8}, {259, 1}, {262, 1}, {273, 0}, {277, 1},
                           {278, 16384}, {279, 64}});
  const ImageHeader h = parse_image_header(bytes, "strip.tif");
  EXPECT_EQ(h.width, 65520);
  EXPECT_EQ(h.height, 12);
  EXPECT_EQ(h.strip_pixels, int64_t(65520) * 16384);
  EXPECT_EQ(reason_of(bytes, DecodeConfig{}), "pixel_limit");
  // Tiles: the same rule.
  const auto tiled = tiff({{256, 64}, {257, 64}, {258, 8}, {259, 1}, {262, 1}, {277, 1}, {322, 65536},
                           {323, 65536}, {324, 0}, {325, 64}});
  EXPECT_EQ(parse_image_header(tiled, "tiled.tif").strip_pixels, int64_t(1) << 32);
  EXPECT_EQ(reason_of(tiled, DecodeConfig{}), "pixel_limit");
  // A strip taller than the image but small (what libtiff writes for small
  // images) is fine: one strip of 170 rows for an image of 12.
  const auto small = tiff({{256, 4}, {257, 12}, {258, 8}, {259, 1}, {262, 1}, {273, 0}, {277, 1},
                           {278, 170}, {279, 48}});
  EXPECT_EQ(parse_image_header(small, "small.tif").strip_pixels, 4 * 170);
  EXPECT_EQ(reason_of(small, DecodeConfig{}), "decoded");
}

}  // namespace
}  // namespace pasteflow::stages
