// TIFF window reader (raster::TiffFile): open, directories, levels, windows.
// Input: the TIFF file's bytes (put in an anonymous memory file: libtiff
// reads a path). Limits: max_window_pixels 2^16, so a header claiming a huge
// tile or window is refused before any allocation; a 64 KiB tile cache.
// Properties checked beyond "no crash": every error is an InputError; the
// level list starts at directory 0 and gets smaller; windows have the
// asked size and the level's channel count; a window equals the same
// rectangle of the whole level (when the level fits the limit), with and
// without the cache, and a second read (cache hits) gives the same pixels.
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <string>

#include "pasteflow/core/error.hpp"
#include "pasteflow/raster/tiff.hpp"

using namespace pasteflow;

namespace {

bool same(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return false;
  for (int r = 0; r < a.rows; ++r) {
    if (std::memcmp(a.ptr(r), b.ptr(r), a.cols * a.elemSize()) != 0) return false;
  }
  return true;
}

void check_file(const std::string& path, const raster::RasterConfig& config,
                const std::shared_ptr<raster::TileCache>& cache) {
  std::shared_ptr<raster::TiffFile> file;
  try {
    file = raster::TiffFile::open(path, config, cache);
  } catch (const InputError&) {
    return;
  }
  const auto& levels = file->levels();
  if (levels.empty() || levels[0] != 0) std::abort();
  for (size_t i = 1; i < levels.size(); ++i) {
    if (file->level(int(i)).width >= file->level(int(i) - 1).width) std::abort();
  }
  const int n_levels = std::min<int>(static_cast<int>(levels.size()), 3);
  for (int l = 0; l < n_levels; ++l) {
    const raster::Directory& d = file->level(l);
    const int64_t w = std::min<int64_t>(d.width, 40), h = std::min<int64_t>(d.height, 40);
    const raster::Window windows[] = {{0, 0, w, h}, {d.width - w, d.height - h, w, h},
                                      {d.width / 2, d.height / 2, std::max<int64_t>(1, w / 2), std::max<int64_t>(1, h / 2)}};
    cv::Mat whole;
    const bool fits = d.width * d.height <= config.max_window_pixels;
    for (bool keep : {false, true}) {
      if (fits) {
        try {
          whole = file->read_level(l, keep);
        } catch (const InputError&) {
          whole = cv::Mat();
        }
      }
      for (const raster::Window& win : windows) {
        if (win.x + win.width > d.width || win.y + win.height > d.height) continue;
        cv::Mat a;
        try {
          a = file->read_window(l, win, keep);
        } catch (const InputError&) {
          continue;
        }
        if (a.cols != win.width || a.rows != win.height || a.channels() != d.channels) std::abort();
        if (!keep && a.depth() != CV_8U) std::abort();
        cv::Mat b;
        try {
          b = file->read_window(l, win, keep);  // from the cache now
        } catch (const InputError&) {
          std::abort();  // it read a moment ago
        }
        if (!same(a, b)) std::abort();
        if (!whole.empty()) {
          const cv::Rect r(int(win.x), int(win.y), int(win.width), int(win.height));
          if (!same(a, whole(r))) std::abort();
        }
      }
    }
  }
  try {
    (void)file->read_region({0, 0, file->width(), file->height()}, double(file->width()) / 16.0);
  } catch (const InputError&) {
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (!raster::is_tiff(data, size)) return 0;
  const int fd = ::memfd_create("fuzz_tiff", MFD_CLOEXEC);
  if (fd < 0) return 0;
  size_t done = 0;
  while (done < size) {
    const ssize_t put = ::write(fd, data + done, size - done);
    if (put <= 0) break;
    done += static_cast<size_t>(put);
  }
  const std::string path = "/proc/self/fd/" + std::to_string(fd);
  raster::RasterConfig config;
  config.max_window_pixels = 1 << 16;
  config.tile_cache_mb = 0;
  static const auto cache = std::make_shared<raster::TileCache>(size_t{64} << 10);
  check_file(path, config, cache);
  config.to_8bit = "minmax";
  config.alpha = "composite";
  check_file(path, config, nullptr);
  cache->clear();
  ::close(fd);
  return 0;
}
