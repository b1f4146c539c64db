// Internal: open-addressing id -> record index tables without per-entry
// allocation. Slots hold index + 1 (0 = empty); the id itself is read back
// from the records through a caller-supplied accessor.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace pasteflow::io::detail {

inline uint64_t mix_id(int64_t id) {
  uint64_t x = static_cast<uint64_t>(id);
  x ^= x >> 33;
  x *= 0xff51afd7ed558ccdULL;
  x ^= x >> 33;
  x *= 0xc4ceb9fe1a85ec53ULL;
  x ^= x >> 33;
  return x;
}

inline void reset_slots(std::vector<uint32_t>& slots, size_t n) {
  size_t cap = 16;
  while (cap < 2 * n) cap <<= 1;
  slots.assign(cap, 0);
}

/// Inserts record `index` with `id`; returns the index already holding `id`
/// (nothing inserted) or -1 when inserted.
template <typename IdOf>
int64_t slots_insert(std::vector<uint32_t>& slots, int64_t id, uint32_t index, IdOf id_of) {
  const uint64_t mask = slots.size() - 1;
  for (uint64_t h = mix_id(id) & mask;; h = (h + 1) & mask) {
    const uint32_t s = slots[h];
    if (s == 0) {
      slots[h] = index + 1;
      return -1;
    }
    if (id_of(s - 1) == id) return static_cast<int64_t>(s - 1);
  }
}

template <typename IdOf>
int64_t slots_find(const std::vector<uint32_t>& slots, int64_t id, IdOf id_of) {
  if (slots.empty()) return -1;
  const uint64_t mask = slots.size() - 1;
  for (uint64_t h = mix_id(id) & mask;; h = (h + 1) & mask) {
    const uint32_t s = slots[h];
    if (s == 0) return -1;
    if (id_of(s - 1) == id) return static_cast<int64_t>(s - 1);
  }
}

/// Id set with the ids stored inline (for annotation duplicate checks).
class IdSet {
 public:
  explicit IdSet(size_t n) {
    size_t cap = 16;
    while (cap < 2 * n) cap <<= 1;
    keys_.assign(cap, 0);
    used_.assign(cap, 0);
    mask_ = cap - 1;
  }
  bool contains(int64_t id) const {
    for (uint64_t h = mix_id(id) & mask_;; h = (h + 1) & mask_) {
      if (!used_[h]) return false;
      if (keys_[h] == id) return true;
    }
  }
  /// Returns false when `id` was already present.
  bool insert(int64_t id) {
    for (uint64_t h = mix_id(id) & mask_;; h = (h + 1) & mask_) {
      if (!used_[h]) {
        used_[h] = 1;
        keys_[h] = id;
        return true;
      }
      if (keys_[h] == id) return false;
    }
  }

 private:
  std::vector<int64_t> keys_;
  std::vector<uint8_t> used_;
  uint64_t mask_ = 0;
};

}  // namespace pasteflow::io::detail
