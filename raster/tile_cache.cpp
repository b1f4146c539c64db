// TileCache: decoded TIFF blocks shared by every file and thread, LRU by bytes.
#include "tile_cache_impl.hpp"

namespace pasteflow::raster {

TileCache::TileCache(size_t max_bytes) : impl_(std::make_unique<Impl>()) { impl_->max_bytes = max_bytes; }
TileCache::~TileCache() = default;

TileCache::Stats TileCache::stats() const {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  Stats s;
  s.hits = impl_->hits;
  s.misses = impl_->misses;
  s.evictions = impl_->evictions;
  s.bytes = impl_->bytes;
  s.max_bytes = impl_->max_bytes;
  s.peak_bytes = impl_->peak_bytes;
  return s;
}

void TileCache::clear() {
  std::lock_guard<std::mutex> lock(impl_->mutex);
  impl_->map.clear();
  impl_->lru.clear();
  impl_->bytes = 0;
}

std::shared_ptr<const Block> TileCache::Impl::find(const BlockKey& key) {
  std::lock_guard<std::mutex> lock(mutex);
  const auto it = map.find(key);
  if (it == map.end()) {
    ++misses;
    return nullptr;
  }
  ++hits;
  lru.splice(lru.end(), lru, it->second);  // most recently used last
  return it->second->second;
}

void TileCache::Impl::insert(const BlockKey& key, std::shared_ptr<const Block> block) {
  const size_t size = block->size;
  std::lock_guard<std::mutex> lock(mutex);
  if (max_bytes == 0 || size > max_bytes) return;
  if (map.count(key) != 0) return;  // another thread decoded it meanwhile
  while (bytes + size > max_bytes && !lru.empty()) {
    bytes -= lru.front().second->size;
    map.erase(lru.front().first);
    lru.pop_front();
    ++evictions;
  }
  lru.emplace_back(key, std::move(block));
  map.emplace(key, std::prev(lru.end()));
  bytes += size;
  peak_bytes = std::max(peak_bytes, bytes);
}

}  // namespace pasteflow::raster
