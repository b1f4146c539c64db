#include "pasteflow/io/bench.hpp"

#include <fcntl.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <memory>
#include <simdjson.h>
#include <string>

namespace pasteflow::io {
namespace {

double status_field_mb(const char* field) {
  std::ifstream in("/proc/self/status");
  std::string line;
  const size_t n = std::strlen(field);
  while (std::getline(in, line)) {
    if (line.compare(0, n, field) == 0) {
      return std::stod(line.substr(n + 1)) / 1024.0;  // kB
    }
  }
  return -1;
}

double seconds_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

/// Reads the file once so that every measured run sees the page cache.
uint64_t warm_page_cache(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    Location loc;
    loc.file = path;
    throw InputError("io_error", std::string("cannot open: ") + std::strerror(errno), loc);
  }
  std::unique_ptr<char[]> buf(new char[size_t(8) << 20]);
  uint64_t total = 0;
  while (true) {
    const ssize_t r = ::read(fd, buf.get(), size_t(8) << 20);
    if (r <= 0) break;
    total += static_cast<uint64_t>(r);
  }
  ::close(fd);
  return total;
}

}  // namespace

double current_rss_mb() { return status_field_mb("VmRSS:"); }
double peak_rss_mb() { return status_field_mb("VmHWM:"); }

bool reset_peak_rss() {
  std::FILE* f = std::fopen("/proc/self/clear_refs", "w");
  if (!f) return false;
  const bool ok = std::fputs("5", f) >= 0;
  return (std::fclose(f) == 0) && ok;
}

ParseBenchResult bench_parse(const std::string& path, const LoadOptions& options) {
  ParseBenchResult r;
  r.file_mb = static_cast<double>(warm_page_cache(path)) / (1024.0 * 1024.0);

  r.peak_reset = reset_peak_rss();
  {
    const auto t0 = std::chrono::steady_clock::now();
    CocoDataset ds = load_coco(path, options);
    r.load_s = seconds_since(t0);
    r.peak_rss_mb = peak_rss_mb();
    r.images = ds.images.size();
    r.annotations = ds.annotations.size();
  }

  r.peak_reset = reset_peak_rss() && r.peak_reset;
  {
    const auto t0 = std::chrono::steady_clock::now();
    simdjson::padded_string json;
    if (auto e = simdjson::padded_string::load(path).get(json)) {
      Location loc;
      loc.file = path;
      throw InputError("io_error", std::string("simdjson could not load the file: ") + simdjson::error_message(e),
                       loc);
    }
    simdjson::dom::parser parser;
    simdjson::dom::element root;
    if (auto e = parser.parse(json).get(root)) {
      Location loc;
      loc.file = path;
      throw InputError("malformed_json", std::string("simdjson DOM parse failed: ") + simdjson::error_message(e),
                       loc);
    }
    r.bare_parse_s = seconds_since(t0);
    r.bare_peak_rss_mb = peak_rss_mb();
  }
  r.ratio = r.bare_parse_s > 0 ? r.load_s / r.bare_parse_s : 0;
  return r;
}

}  // namespace pasteflow::io
