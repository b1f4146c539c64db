// Numbers in error messages.
#pragma once

#include <cstdio>
#include <string>

namespace pasteflow {

/// A number for a message: %g-like with up to 10 significant digits
/// ("1e+308", "0.5", "-100000001", "nan"), never the 309 digits
/// std::to_string prints for 1e308.
inline std::string short_number(double value) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.10g", value);
  return buf;
}

}  // namespace pasteflow
