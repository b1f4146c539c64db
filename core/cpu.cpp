#include "pasteflow/core/cpu.hpp"

#include <fstream>
#include <string>

namespace pasteflow {

bool cpu_has_native_bf16() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("flags", 0) != 0) continue;
    line += ' ';
    return line.find(" avx512_bf16 ") != std::string::npos || line.find(" amx_bf16 ") != std::string::npos;
  }
  return false;
}

}  // namespace pasteflow
