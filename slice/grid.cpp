// SAHI get_slice_bboxes, and the checks of SliceConfig.
#include <cmath>
#include <string>

#include "pasteflow/core/error.hpp"
#include "pasteflow/slice/slice.hpp"
#include "grid_internal.hpp"

namespace pasteflow::slice {

namespace {

Location config_key(const std::string& field) {
  Location where;
  where.key = "slice." + field;
  return where;
}

}  // namespace

void validate(const SliceConfig& config) {
  if (config.above < 0) throw ConfigError("out_of_range", "above must be >= 0", config_key("above"));
  if (config.size < 16 || config.size > (int64_t(1) << 20)) {
    throw ConfigError("out_of_range", "size must be in [16, 1048576]", config_key("size"));
  }
  if (!(config.overlap >= 0.0 && config.overlap <= 0.95)) {
    throw ConfigError("out_of_range", "overlap must be in [0, 0.95]", config_key("overlap"));
  }
  if (!(config.min_area_ratio >= 0.0 && config.min_area_ratio <= 1.0)) {
    throw ConfigError("out_of_range", "min_area_ratio must be in [0, 1]", config_key("min_area_ratio"));
  }
  if (!(config.keep_empty >= 0.0 && config.keep_empty <= 1.0)) {
    throw ConfigError("out_of_range", "keep_empty must be in [0, 1]", config_key("keep_empty"));
  }
}

namespace detail {

int64_t overlap_px(int64_t slice, double overlap) {
  if (slice <= 0) throw ConfigError("out_of_range", "slice size must be positive", config_key("size"));
  if (!(overlap >= 0.0 && overlap < 1.0)) {
    throw ConfigError("out_of_range", "overlap must be in [0, 1)", config_key("overlap"));
  }
  // Python's int(): truncation of the double product.
  const int64_t px = static_cast<int64_t>(overlap * static_cast<double>(slice));
  if (px >= slice) throw ConfigError("out_of_range", "overlap leaves no step between slices", config_key("overlap"));
  return px;
}

std::vector<Span1> axis(int64_t length, int64_t slice, int64_t overlap) {
  // SAHI's loop on one axis (its windows are the product of the two axes'):
  //   max = min + slice; clamped to the image, shifted back by slice.
  std::vector<Span1> out;
  int64_t lo = 0, hi = 0;
  while (hi < length) {
    hi = lo + slice;
    const int64_t end = std::min(length, hi);
    const int64_t start = std::max<int64_t>(0, end - slice);
    out.push_back(Span1{start, end - start});
    lo = hi - overlap;
  }
  return out;
}

}  // namespace detail

std::vector<Window> grid(int64_t width, int64_t height, int64_t slice_width, int64_t slice_height,
                         double overlap) {
  const auto xs = detail::axis(width, slice_width, detail::overlap_px(slice_width, overlap));
  const auto ys = detail::axis(height, slice_height, detail::overlap_px(slice_height, overlap));
  std::vector<Window> out;
  out.reserve(xs.size() * ys.size());
  for (const auto& y : ys) {
    for (const auto& x : xs) out.push_back(Window{x.start, y.start, x.size, y.size});
  }
  return out;
}

}  // namespace pasteflow::slice
