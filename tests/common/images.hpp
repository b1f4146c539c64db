// Test helper: image files written byte by byte, for the cases OpenCV's
// encoders cannot make (a header claiming a huge size with almost no data, a
// TIFF whose strip lies where the test wants it).
#pragma once

#include <cstdint>
#include <vector>

namespace pasteflow::testing {

inline uint32_t crc32(const uint8_t* data, std::size_t n) {
  uint32_t c = 0xFFFFFFFFu;
  for (std::size_t i = 0; i < n; ++i) {
    c ^= data[i];
    for (int k = 0; k < 8; ++k) c = (c >> 1) ^ (0xEDB88320u & (0u - (c & 1u)));
  }
  return c ^ 0xFFFFFFFFu;
}

inline void put_be32(std::vector<uint8_t>& out, uint32_t v) {
  for (int s = 24; s >= 0; s -= 8) out.push_back(static_cast<uint8_t>(v >> s));
}

inline void put_le(std::vector<uint8_t>& out, uint32_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) out.push_back(static_cast<uint8_t>(v >> (8 * i)));
}

inline void put_png_chunk(std::vector<uint8_t>& out, const char* type, const std::vector<uint8_t>& data) {
  put_be32(out, static_cast<uint32_t>(data.size()));
  std::vector<uint8_t> body(type, type + 4);
  body.insert(body.end(), data.begin(), data.end());
  out.insert(out.end(), body.begin(), body.end());
  put_be32(out, crc32(body.data(), body.size()));
}

/// A well-formed PNG start (signature + IHDR with a correct CRC) claiming w x h
/// RGB pixels, followed by a tiny IDAT and IEND: the header is all there is to
/// a decompression bomb until the decoder allocates.
inline std::vector<uint8_t> png_claiming(uint32_t w, uint32_t h) {
  std::vector<uint8_t> out = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};
  std::vector<uint8_t> ihdr;
  put_be32(ihdr, w);
  put_be32(ihdr, h);
  ihdr.insert(ihdr.end(), {8, 2, 0, 0, 0});
  put_png_chunk(out, "IHDR", ihdr);
  put_png_chunk(out, "IDAT", {0x78, 0x9C, 0x03, 0x00, 0x00, 0x00, 0x00, 0x01});
  put_png_chunk(out, "IEND", {});
  return out;
}

/// An uncompressed 8-bit grey little-endian TIFF of w x h: the 8-byte header,
/// one directory, then its one strip, pixel (x, y) = (x + 3 * y) & 255. With
/// `pixels` false the strip is left out (the directory still points at it):
/// a header claiming any size in 130 bytes.
inline std::vector<uint8_t> grey_tiff(uint32_t w, uint32_t h, bool pixels = true) {
  struct Entry {
    uint16_t tag, type;
    uint32_t value;
  };
  const uint32_t strip_at = 8 + 2 + 9 * 12 + 4;
  const Entry entries[] = {{256, 4, w},        {257, 4, h}, {258, 3, 8}, {259, 3, 1},     {262, 3, 1},
                           {273, 4, strip_at}, {277, 3, 1}, {278, 4, h}, {279, 4, w * h}};
  std::vector<uint8_t> out = {'I', 'I', 42, 0, 8, 0, 0, 0};
  put_le(out, 9, 2);
  for (const Entry& e : entries) {
    put_le(out, e.tag, 2);
    put_le(out, e.type, 2);
    put_le(out, 1, 4);
    put_le(out, e.value, 4);  // a SHORT sits in the field's first two bytes
  }
  put_le(out, 0, 4);  // no next directory
  if (pixels) {
    for (uint32_t y = 0; y < h; ++y)
      for (uint32_t x = 0; x < w; ++x) out.push_back(static_cast<uint8_t>(x + 3 * y));
  }
  return out;
}

}  // namespace pasteflow::testing
