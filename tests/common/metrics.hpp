// Test helper: the last evaluation line of a training run's metrics.jsonl
// (the end-to-end learning tests read their final AP from it).
#pragma once

#include <filesystem>
#include <fstream>
#include <string>

namespace pasteflow::testing {

/// The last line of `metrics` whose "type" is "eval"; empty when there is none.
inline std::string last_eval_line(const std::filesystem::path& metrics) {
  std::ifstream in(metrics);
  std::string line, last;
  while (std::getline(in, line)) {
    if (line.find("\"type\":\"eval\"") != std::string::npos) last = line;
  }
  return last;
}

}  // namespace pasteflow::testing
