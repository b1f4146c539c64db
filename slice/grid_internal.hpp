// The grid's axes (a SAHI grid is the product of its x and y positions).
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

namespace pasteflow::slice::detail {

struct Span1 {
  int64_t start = 0;
  int64_t size = 0;
};

/// int(overlap * slice), checked (ConfigError "out_of_range").
int64_t overlap_px(int64_t slice, double overlap);

/// The slice positions along one axis of `length` px (SAHI's loop).
std::vector<Span1> axis(int64_t length, int64_t slice, int64_t overlap);

}  // namespace pasteflow::slice::detail
