// The raster layer: TIFF read by windows (libtiff), for images of any size.
//
// A TiffFile is one open TIFF (classic or BigTIFF), opened read-only with
// libtiff's on-demand strile loading ("rO": tile offsets are read when a
// tile is first needed, so a file with millions of tiles opens at once).
// read_window() decodes only the tiles or strips that touch the window,
// through the TileCache shared by every file and worker (byte cap, LRU,
// hit/miss counters). A TiffFile may be used from many threads at once: it
// keeps a small pool of libtiff handles, one per concurrent reader.
//
// Supported (what Debian 12's libtiff 4.5 decodes): tiled and striped;
// compression none, LZW, Deflate, JPEG (YCbCr, converted to RGB by libjpeg,
// and RGB photometric), ZSTD, PackBits, and others libtiff has codecs for;
// horizontal and floating-point predictors; planar contiguous and separate;
// 8-, 16- and 32-bit unsigned (and signed) integer and 32/64-bit float
// samples (1-, 4-, 12-bit and complex samples: "unsupported_image");
// 1 (min-is-black / min-is-white), 3 (RGB, YCbCr) and 4 (RGBA, extra
// sample) channels; palette (expanded to RGB).
//
// Output pixels (Window reads and whole-image reads alike):
//  - channels: 1 (grey) or 3 (RGB, also for palette and YCbCr); a 4th
//    (alpha / extra) sample is dropped or composited over
//    `alpha_background` (RasterConfig::alpha); more than 4 samples: the first
//    `1` or `3` as the photometric says.
//  - depth: CV_8U for 8-bit samples; 16-bit kept as CV_16U when the caller
//    asks (keep_16bit), otherwise every non-8-bit sample (16-bit ints,
//    signed ints, 32-bit float) is mapped to 8 bit by RasterConfig::to_8bit:
//      "fixed"      [range_min, range_max] -> [0, 255], clamped, rounded
//                   (the default range 0..65535 is the decode stage's
//                   255/65535 rule for 16-bit);
//      "minmax"     the image's [min, max] -> [0, 255];
//      "percentile" the image's [p_low, p_high] percentiles -> [0, 255].
//    "The image's" statistics are those of the level's pyramid computed once
//    per file, on the coarsest level of the same pyramid (as GDAL's
//    approximate statistics), or the level itself streamed tile by tile when
//    there is no overview (bands of blocks sampled to at most ~2^26 pixels);
//    so every window of an image maps alike. NaN and infinities are ignored.
//
// Pyramids: levels() are the full-resolution directory and its reduced
// versions (SubfileType bit 0 set, COG overviews, or same-aspect tiled
// directories following it, SVS levels), sorted by decreasing size;
// thumbnail, label and macro images (SubfileType with other bits, or a
// different aspect ratio / strip layout after the first level, as in SVS)
// are not levels. level_for_downsample(f) picks the level with the largest
// downsample <= f (never a coarser one than asked for).
//
// Errors: InputError with Location{file, byte_offset when known, record
// "directory N, tile T" / "directory N, strip S"} and reasons:
//   "missing_image" / "unreadable_image"  no file / cannot open it
//   "corrupt_image"      not a TIFF, truncated, a tile or strip past the
//                        end of the file, a codec error (the message names
//                        the tile and libtiff's words)
//   "unsupported_image"  a layout outside the list above (bits per sample,
//                        sample format, photometric, compression without a codec)
//   "bad_window"         a window outside the level or empty
//   "pixel_limit"        a window or a tile above RasterConfig::max_window_pixels
// libtiff's own warnings and errors never reach stderr: they are collected
// per handle and put in the exception's message. A JPEG tile or strip cut
// short (libjpeg pads it with grey and only warns) is "corrupt_image" too.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace pasteflow::raster {

/// A rectangle in a level's pixels: top-left (x, y), size width x height.
struct Window {
  int64_t x = 0;
  int64_t y = 0;
  int64_t width = 0;
  int64_t height = 0;
};
inline bool operator==(const Window& a, const Window& b) {
  return a.x == b.x && a.y == b.y && a.width == b.width && a.height == b.height;
}

struct RasterConfig {
  /// Bytes of decoded tiles the shared cache keeps (MiB); 0 = no caching.
  int64_t tile_cache_mb = 256;
  /// Non-8-bit samples -> 8 bit: "fixed", "minmax" or "percentile".
  std::string to_8bit = "fixed";
  double range_min = 0.0;      ///< "fixed": value mapped to 0
  double range_max = 65535.0;  ///< "fixed": value mapped to 255
  double percentile_low = 0.5;    ///< "percentile": lower percentile (0..100)
  double percentile_high = 99.5;  ///< "percentile": upper percentile (0..100)
  /// A 4th (alpha / extra) sample: "drop" or "composite" over alpha_background.
  std::string alpha = "drop";
  int alpha_background = 255;  ///< grey value composited under transparent pixels
  /// Largest window (width * height) one read may return (0 = no limit).
  int64_t max_window_pixels = 178956970;

  /// Config keys under "raster.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("tile_cache_mb", &RasterConfig::tile_cache_mb,
            "MiB of decoded TIFF tiles kept in the one cache shared by all workers (0 = no caching)")
        .range(0, 1 << 20);
    d.field("to_8bit", &RasterConfig::to_8bit,
            "16-bit, signed and float samples to 8 bit: fixed range, the image's min-max, or its percentiles")
        .one_of({"fixed", "minmax", "percentile"});
    d.field("range_min", &RasterConfig::range_min, "to_8bit fixed: sample value mapped to 0").range(-1e30, 1e30);
    d.field("range_max", &RasterConfig::range_max, "to_8bit fixed: sample value mapped to 255").range(-1e30, 1e30);
    d.field("percentile_low", &RasterConfig::percentile_low, "to_8bit percentile: lower percentile mapped to 0")
        .range(0.0, 100.0);
    d.field("percentile_high", &RasterConfig::percentile_high,
            "to_8bit percentile: upper percentile mapped to 255")
        .range(0.0, 100.0);
    d.field("alpha", &RasterConfig::alpha, "a 4th (alpha) sample: dropped, or composited over alpha_background")
        .one_of({"drop", "composite"});
    d.field("alpha_background", &RasterConfig::alpha_background, "grey level under transparent pixels (composite)")
        .range(0, 255);
    d.field("max_window_pixels", &RasterConfig::max_window_pixels,
            "largest window width*height one read returns, and largest tile or strip decoded (0 = no limit)")
        .min(0);
  }
};

/// Checks a RasterConfig (ConfigError with key "raster.<field>").
void validate(const RasterConfig& config);

/// Decoded tiles shared by all files and threads, least recently used
/// first out once the byte cap is reached. Thread-safe.
class TileCache {
 public:
  explicit TileCache(size_t max_bytes);
  ~TileCache();
  TileCache(const TileCache&) = delete;
  TileCache& operator=(const TileCache&) = delete;

  struct Stats {
    uint64_t hits = 0;
    uint64_t misses = 0;
    uint64_t evictions = 0;
    size_t bytes = 0;       ///< decoded bytes held now
    size_t max_bytes = 0;   ///< the cap
    size_t peak_bytes = 0;  ///< most bytes ever held
    double hit_rate() const { return hits + misses == 0 ? 0.0 : double(hits) / double(hits + misses); }
  };
  Stats stats() const;
  void clear();

  struct Impl;
  Impl& impl() noexcept { return *impl_; }

 private:
  std::unique_ptr<Impl> impl_;
};

enum class SampleFormat : uint8_t { kUInt, kInt, kFloat };

/// One image file directory (IFD) as stored.
struct Directory {
  int index = 0;              ///< IFD number in the file (0 = first)
  int64_t width = 0;
  int64_t height = 0;
  bool tiled = false;
  int64_t block_width = 0;    ///< tile width, or the image width for strips
  int64_t block_height = 0;   ///< tile height, or RowsPerStrip (clamped to height)
  int samples_per_pixel = 1;
  int bits_per_sample = 8;
  SampleFormat sample_format = SampleFormat::kUInt;
  int photometric = 0;        ///< TIFFTAG_PHOTOMETRIC value
  int compression = 1;        ///< TIFFTAG_COMPRESSION value
  int planar = 1;             ///< 1 contiguous, 2 separate
  int predictor = 1;
  uint32_t subfile_type = 0;  ///< TIFFTAG_SUBFILETYPE
  bool is_level = false;      ///< part of the main pyramid (see levels())
  double downsample = 1.0;    ///< level 0 width / this width (levels only)
  int channels = 0;           ///< channels read_window returns (1 or 3)
};

class TiffFile {
 public:
  /// Opens `path` read-only and reads every directory's tags (not its tile
  /// offsets). `cache` may be null (no caching). Throws InputError.
  static std::shared_ptr<TiffFile> open(const std::string& path, const RasterConfig& config,
                                        std::shared_ptr<TileCache> cache);
  ~TiffFile();
  TiffFile(const TiffFile&) = delete;
  TiffFile& operator=(const TiffFile&) = delete;

  const std::string& path() const noexcept;
  bool big_tiff() const noexcept;
  const std::vector<Directory>& directories() const noexcept;
  /// Indices into directories() of the pyramid, level 0 (full size) first.
  const std::vector<int>& levels() const noexcept;
  const Directory& level(int level) const;  ///< directories()[levels()[level]]
  int64_t width() const noexcept;   ///< of level 0
  int64_t height() const noexcept;  ///< of level 0
  /// The level whose downsample is the largest <= `factor` (0 for f < 1).
  int level_for_downsample(double factor) const noexcept;

  /// Pixels of `window` (in level `level`'s pixels) as described in the
  /// header comment; 16-bit data stays CV_16U when `keep_16bit`.
  cv::Mat read_window(int level, const Window& window, bool keep_16bit = false) const;
  /// The whole of level `level` (read_window over the full extent).
  cv::Mat read_level(int level, bool keep_16bit = false) const;
  /// `window` given in level-0 pixels, read from the finest level whose
  /// downsample <= `downsample` and resized (INTER_AREA) to
  /// ceil(width / downsample) x ceil(height / downsample).
  cv::Mat read_region(const Window& window, double downsample) const;

  /// Tiles / strips decoded by this file (cache misses), for tests and benches.
  uint64_t blocks_decoded() const noexcept;
  /// Identity of the file on disk when opened (device, inode, size, mtime
  /// hashed): the tile cache's key, and how TiffPool sees a replaced file.
  uint64_t identity() const noexcept;

  struct Impl;

 private:
  explicit TiffFile(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

/// True when `bytes` start with a TIFF or BigTIFF signature.
bool is_tiff(const uint8_t* bytes, size_t size) noexcept;

/// Keeps files open for a run: open() returns the already open TiffFile of
/// a path, all sharing one TileCache. Thread-safe. At most `max_open` files
/// stay open (least recently used closed first; a file in use stays valid
/// through its shared_ptr).
class TiffPool {
 public:
  TiffPool(RasterConfig config, size_t max_open = 64);
  std::shared_ptr<TiffFile> open(const std::string& path);
  const std::shared_ptr<TileCache>& cache() const noexcept { return cache_; }
  const RasterConfig& config() const noexcept { return config_; }

 private:
  RasterConfig config_;
  size_t max_open_;
  std::shared_ptr<TileCache> cache_;
  mutable std::mutex mutex_;
  std::vector<std::pair<std::string, std::shared_ptr<TiffFile>>> open_;  ///< most recently used last
};

}  // namespace pasteflow::raster
