// Helpers shared by the mask sources (not installed).
#pragma once

#include <cstdint>
#include <string>

#include "pasteflow/mask/rle.hpp"

namespace pasteflow::mask::detail {

/// Sum of the counts in 64 bits.
inline uint64_t count_sum(const Rle& r) {
  uint64_t s = 0;
  for (uint32_t c : r.counts) s += c;
  return s;
}

inline uint64_t pixels(const Rle& r) { return static_cast<uint64_t>(r.h) * r.w; }

/// Throws InputError "mask_too_large" when h * w is above kMaxPixels.
void check_pixels(uint64_t h, uint64_t w, const char* what);

/// Throws InputError "rle_sum" unless the counts add up to h * w (and
/// "mask_too_large" as check_pixels).
void check_sum(const Rle& r, const char* what);

/// Appends runs, merging runs of equal value; starts with the zero run.
class RunBuilder {
 public:
  explicit RunBuilder(std::vector<uint32_t>& out) : out_(out) { out_.clear(); }
  void push(bool value, uint64_t length) {
    if (length == 0) return;
    if (value != value_) {
      out_.push_back(static_cast<uint32_t>(run_));
      run_ = 0;
      value_ = value;
    }
    run_ += length;
  }
  void finish() { out_.push_back(static_cast<uint32_t>(run_)); }

 private:
  std::vector<uint32_t>& out_;
  bool value_ = false;
  uint64_t run_ = 0;
};

}  // namespace pasteflow::mask::detail
