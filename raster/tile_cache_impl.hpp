// Internals of TileCache shared by tiff.cpp and tile_cache.cpp.
#pragma once

#include <cstddef>
#include <cstdint>
#include <list>
#include <memory>
#include <mutex>
#include <unordered_map>
#include <utility>

#include "pasteflow/raster/tiff.hpp"

namespace pasteflow::raster {

/// One decoded tile or strip as libtiff returns it.
struct Block {
  std::unique_ptr<uint8_t[]> data;
  size_t size = 0;
};

/// File identity (device, inode, size, mtime) + directory + block index
/// (planes of separate-planar images have their own block indices).
struct BlockKey {
  uint64_t file = 0;
  uint32_t directory = 0;
  uint32_t block = 0;
  bool operator==(const BlockKey& o) const { return file == o.file && directory == o.directory && block == o.block; }
};

struct BlockKeyHash {
  size_t operator()(const BlockKey& k) const noexcept {
    uint64_t h = k.file * 0x9E3779B97F4A7C15ull;
    h ^= (uint64_t{k.directory} << 32 | k.block) + 0x632BE59BD9B4E019ull + (h << 6) + (h >> 2);
    return static_cast<size_t>(h ^ (h >> 29));
  }
};

struct TileCache::Impl {
  using Entry = std::pair<BlockKey, std::shared_ptr<const Block>>;
  std::mutex mutex;
  std::list<Entry> lru;  ///< least recently used first
  std::unordered_map<BlockKey, std::list<Entry>::iterator, BlockKeyHash> map;
  size_t max_bytes = 0;
  size_t bytes = 0;
  size_t peak_bytes = 0;
  uint64_t hits = 0;
  uint64_t misses = 0;
  uint64_t evictions = 0;

  /// The block, counting a hit, or null, counting a miss.
  std::shared_ptr<const Block> find(const BlockKey& key);
  /// Keeps `block`, evicting least recently used ones above the cap.
  void insert(const BlockKey& key, std::shared_ptr<const Block> block);
};

}  // namespace pasteflow::raster
