// TiffWriter: a tiled, pyramidal BigTIFF written band by band (libtiff).
//
// Layout (COG-like order): directory 0 is the full image; directories 1, 2,
// ... are reduced-resolution versions (SubfileType = FILETYPE_REDUCEDIMAGE),
// each half the previous one's size (ceil(width / 2^k) x ceil(height / 2^k)),
// until a level fits in one tile. Every directory is tiled (tile x tile,
// a multiple of 16), 8-bit, 1 (min-is-black) or 3 (RGB) channels, and
// compressed with:
//   - kJpeg:    3 channels stored as YCbCr (photometric YCbCr, 2x2
//               subsampling, TIFFTAG_JPEGCOLORMODE = RGB so libtiff converts),
//               1 channel as grey; quality 1..100;
//   - kDeflate: zlib/libdeflate with the horizontal predictor (lossless);
//   - kNone.
//
// Writing: the caller hands the levels in order, each as bands of
// `tile` rows (the last band of a level may be shorter), top to bottom, of
// the level's full width, CV_8UC1 / CV_8UC3 (RGB order). Memory is one band
// (width x tile x channels) plus one tile: never the whole image. Edge tiles
// are padded by repeating the last column / row (JPEG compresses them better
// than black), readers crop them off.
//
// Files: the writer writes only into the path it is given, which must be a
// new file or an empty one (a DatasetWriter's create_image_file); an
// unfinished writer (destroyed before finish(), or after an error) removes
// that file. libtiff's errors and warnings never reach stderr: they are
// collected and thrown as Error "io_error" naming the file, the directory
// and the band.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

namespace pasteflow::raster {

enum class TiffCompression : uint8_t { kNone, kDeflate, kJpeg };
/// "none", "deflate", "jpeg".
const char* to_string(TiffCompression compression) noexcept;
/// Parses "none" / "deflate" / "jpeg"; ConfigError "bad_value" (key `key`) otherwise.
TiffCompression parse_tiff_compression(const std::string& text, const std::string& key = "compression");

struct TiffWriterOptions {
  int64_t width = 0;
  int64_t height = 0;
  int channels = 3;       ///< 1 (grey) or 3 (RGB)
  int64_t tile = 512;     ///< tile width and height: a multiple of 16, 16..65536
  TiffCompression compression = TiffCompression::kDeflate;
  int quality = 90;       ///< JPEG quality 1..100
  int deflate_level = 6;  ///< Deflate level 1..12 (libdeflate levels above 9)
  bool pyramid = true;    ///< write reduced-resolution levels after the full one
  bool big_tiff = true;   ///< BigTIFF ("w8"); classic TIFF is limited to 4 GiB
  std::string software = "pasteflow";  ///< TIFFTAG_SOFTWARE ("" = none)
};

/// Throws ConfigError (key "tiff.<field>") for options out of range.
void validate(const TiffWriterOptions& options);

/// The sizes of the pyramid's levels: (width, height) of level 0, then
/// halved (rounded up) until a level fits in one tile (just level 0 when
/// !pyramid).
std::vector<std::pair<int64_t, int64_t>> pyramid_sizes(int64_t width, int64_t height, int64_t tile,
                                                       bool pyramid = true);

class TiffWriter {
 public:
  /// Creates the file and the first directory's tags. Throws ConfigError
  /// (options), Error "output_exists" (a non-empty file at `path`),
  /// "io_error".
  TiffWriter(const std::string& path, const TiffWriterOptions& options);
  /// Unfinished: closes and removes the file.
  ~TiffWriter();
  TiffWriter(const TiffWriter&) = delete;
  TiffWriter& operator=(const TiffWriter&) = delete;

  const std::string& path() const noexcept;
  const TiffWriterOptions& options() const noexcept;
  int levels() const noexcept;
  int64_t level_width(int level) const;
  int64_t level_height(int level) const;
  /// Number of bands of `level` (ceil(height / tile)).
  int64_t bands(int level) const;
  /// Rows of band `band` of `level` (tile, or fewer for the last).
  int64_t band_rows(int level, int64_t band) const;

  /// The level and band the next write_band() call must hold.
  int current_level() const noexcept;
  int64_t current_band() const noexcept;
  bool complete() const noexcept;  ///< every band of every level written

  /// Writes the next band: band_rows(current_level(), current_band()) rows
  /// of level_width(current_level()) pixels, CV_8UC(channels). After a
  /// level's last band its directory is written and the next level begins.
  /// Throws Error "bad_band" on a wrong size or type, "io_error".
  void write_band(const cv::Mat& band);

  /// After the last band: closes the file (flushing it to disk with
  /// fsync when `fsync`). Throws Error "incomplete" when bands are missing.
  void finish(bool fsync = true);

  struct Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace pasteflow::raster
