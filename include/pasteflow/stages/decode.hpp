// Decode stage: image file -> pixels, refusing decompression bombs before
// any pixel is decoded.
//
// Steps of Decoder::decode(path):
//   1. read the file's bytes                      "missing_image" (no such file)
//                                                 "unreadable_image" (a directory, no permission, I/O error)
//   2. parse the header ourselves: JPEG SOFn, PNG IHDR, TIFF (classic and
//      BigTIFF) first IFD -> width, height       "unsupported_image" (not JPEG/PNG/TIFF)
//                                                 "corrupt_image" (header cut or malformed)
//   3. width * height <= max_pixels              "pixel_limit" (names file and size)
//      and a TIFF's strip or tile too (OpenCV
//      allocates a whole one, 4 bytes a pixel)
//   4. width, height equal the annotation's
//      when given                                 "size_mismatch"
//   5. the file is complete: a JPEG has an EOI marker after its frame header
//      (libjpeg would otherwise pad a truncated scan with grey and succeed);
//      a PNG's chunks chain intact up to IEND; a TIFF's strips or tiles lie
//      inside the file                            "corrupt_image"
//   6. JPEG and PNG: cv::imdecode with IMREAD_ANYDEPTH | IMREAD_ANYCOLOR (or
//      IMREAD_GRAYSCALE for color "grey") | IMREAD_IGNORE_ORIENTATION:
//      annotations refer to the stored pixels, so EXIF orientation is never
//      applied. TIFF: the raster layer (raster::TiffPool, libtiff; any
//      layout it reads: tiled, BigTIFF, palette, float ...), errors naming
//      the directory and tile. An empty result, a cv::Exception, a codec
//      error, or a decoded size that differs from the header "corrupt_image"
//   7. depth: CV_8U kept; CV_16U kept when keep_16bit, else scaled to 8 bit
//      by 255/65535 (rounded; TIFF: the pool's raster.to_8bit rule, whose
//      default "fixed" 0..65535 is the same); TIFF float and signed samples
//      are mapped to 8 bit by that rule; any other depth "unsupported_image"
//   8. channels: colour is converted BGR -> RGB (alpha dropped);
//      color "rgb" expands grey to 3 channels, "grey" gives 1 channel,
//      "keep" keeps a grey image 1-channel and a colour one 3-channel RGB.
// Every error is a pasteflow::InputError whose Location names the file (and
// the byte offset for header problems, the image id from a Sample).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "pasteflow/core/span.hpp"
#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/stages/sample.hpp"

namespace pasteflow::stages {

struct DecodeConfig {
  /// Largest width * height accepted (PIL's decompression-bomb error limit,
  /// 2 * 89478485); 0 = no limit.
  int64_t max_pixels = 178956970;
  std::string color = "rgb";  ///< "rgb", "grey" or "keep"
  bool keep_16bit = true;     ///< keep 16-bit images as CV_16U, else scale to 8 bit

  /// Config keys under "decode.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("max_pixels", &DecodeConfig::max_pixels,
            "largest width*height decoded, checked from the header before decoding (0 = no limit)")
        .min(0);
    d.field("color", &DecodeConfig::color, "rgb: always 3 channels; grey: 1 channel; keep: as stored")
        .one_of({"rgb", "grey", "keep"});
    d.field("keep_16bit", &DecodeConfig::keep_16bit, "keep 16-bit images 16-bit (else scaled to 8 bit)");
  }
};

enum class ImageFormat : uint8_t { kJpeg, kPng, kTiff };
const char* to_string(ImageFormat format) noexcept;

/// What the header of an image file says, read without decoding pixels.
struct ImageHeader {
  ImageFormat format = ImageFormat::kJpeg;
  int64_t width = 0;
  int64_t height = 0;
  int channels = 0;    ///< components / samples per pixel as stored (0 when unknown)
  int bit_depth = 0;   ///< bits per sample as stored (0 when unknown)
  int64_t header_end = 0;  ///< byte offset just after the part that gave the size
  int64_t data_end = 0;    ///< TIFF: one past the last byte of its strips or tiles (0 when not given)
  /// TIFF: pixels of one strip (width x RowsPerStrip) or tile, which the
  /// decoder allocates at once, whatever the image's size; 0 otherwise.
  int64_t strip_pixels = 0;
};

/// Parses the header of a JPEG, PNG or TIFF held in `bytes`; `file` only
/// names the input in errors. Throws InputError "unsupported_image" or
/// "corrupt_image".
ImageHeader parse_image_header(Span<const uint8_t> bytes, const std::string& file);

/// Reads the file and parses its header (the whole file is read).
ImageHeader read_image_header(const std::string& path);

/// Reads a whole file; "missing_image" / "unreadable_image".
std::vector<uint8_t> read_file_bytes(const std::string& path);

class Decoder {
 public:
  /// Validates the config: ConfigError with key "decode.<field>". TIFF
  /// images are read through `pool` (shared with other readers: one tile
  /// cache); null: the decoder makes its own on first use from a default
  /// RasterConfig whose max_window_pixels is config.max_pixels.
  explicit Decoder(DecodeConfig config = {}, std::shared_ptr<raster::TiffPool> pool = nullptr);

  /// Decodes `path`. expected_width / expected_height (the annotation's
  /// image size) are checked when both are > 0.
  cv::Mat decode(const std::string& path, int64_t expected_width = 0,
                 int64_t expected_height = 0) const;
  /// Decodes an in-memory file; `name` names it in errors.
  cv::Mat decode_bytes(Span<const uint8_t> bytes, const std::string& name,
                       int64_t expected_width = 0, int64_t expected_height = 0) const;

  /// The pixels of `window` (level-0 pixels) of the image at `path`, after
  /// the same depth and colour conversion as decode(). TIFF: read through
  /// the pool, decoding only the tiles or strips the window touches (the
  /// image may be of any size; the window is subject to max_pixels). JPEG
  /// and PNG: decode() (subject to max_pixels) then a crop. A window empty
  /// or outside the image: "bad_window".
  cv::Mat decode_window(const std::string& path, const raster::Window& window) const;

  /// The TIFF pool the decoder reads through (made on first use when none was given).
  std::shared_ptr<raster::TiffPool> tiff_pool() const;

  /// Fills sample.image from sample.path. The size must equal every
  /// instance mask's h x w (instances with has_mask).
  void operator()(Sample& sample) const;
  /// Same, and the size must equal (width, height) when both are > 0.
  void operator()(Sample& sample, int64_t width, int64_t height) const;

  const DecodeConfig& config() const noexcept { return config_; }

 private:
  cv::Mat decode_impl(Span<const uint8_t> bytes, const std::string& name, int64_t expected_width,
                      int64_t expected_height, const std::string& record, bool from_file) const;
  cv::Mat to_output(cv::Mat raw, const std::string& name, const std::string& record) const;

  struct PoolHolder;
  DecodeConfig config_;
  std::shared_ptr<PoolHolder> pool_;  ///< shared by copies of the decoder
};

}  // namespace pasteflow::stages
