// 64-bit FNV-1a, the one non-cryptographic hash of the project: seeded
// subsets and splits by file name (io/select, importers), a TIFF's file
// identity in the tile cache (raster), the ranks' weights check (dist).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace pasteflow {

inline constexpr uint64_t kFnv1aBasis = 0xcbf29ce484222325ULL;

/// FNV-1a over `size` bytes, continuing from `h` (kFnv1aBasis to start), so
/// several buffers hash as their concatenation.
inline uint64_t fnv1a(const void* data, size_t size, uint64_t h = kFnv1aBasis) noexcept {
  const auto* p = static_cast<const unsigned char*>(data);
  for (size_t i = 0; i < size; ++i) {
    h ^= p[i];
    h *= 0x100000001b3ULL;
  }
  return h;
}

inline uint64_t fnv1a(std::string_view text) noexcept { return fnv1a(text.data(), text.size()); }

}  // namespace pasteflow
