// TiffWriter: tiled pyramidal BigTIFF written band by band (see the header).
#include "pasteflow/raster/tiff_writer.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <limits>
#include <utility>

#include "pasteflow/core/error.hpp"

namespace pasteflow::raster {

namespace {

Location at_file(const std::string& path, const std::string& record = {}) {
  Location loc;
  loc.file = path;
  loc.record = record;
  return loc;
}

ConfigError bad_option(const std::string& field, const std::string& message) {
  Location loc;
  loc.key = "tiff." + field;
  return ConfigError("bad_value", message, loc);
}

}  // namespace

const char* to_string(TiffCompression compression) noexcept {
  switch (compression) {
    case TiffCompression::kNone: return "none";
    case TiffCompression::kDeflate: return "deflate";
    case TiffCompression::kJpeg: return "jpeg";
  }
  return "?";
}

TiffCompression parse_tiff_compression(const std::string& text, const std::string& key) {
  if (text == "none") return TiffCompression::kNone;
  if (text == "deflate") return TiffCompression::kDeflate;
  if (text == "jpeg") return TiffCompression::kJpeg;
  Location loc;
  loc.key = key;
  throw ConfigError("bad_value", "expected none, deflate or jpeg, got '" + text + "'", loc);
}

void validate(const TiffWriterOptions& o) {
  constexpr int64_t kMaxSide = std::numeric_limits<uint32_t>::max();
  if (o.width < 1 || o.width > kMaxSide) throw bad_option("width", "width must be 1..2^32-1, got " + std::to_string(o.width));
  if (o.height < 1 || o.height > kMaxSide) {
    throw bad_option("height", "height must be 1..2^32-1, got " + std::to_string(o.height));
  }
  if (o.channels != 1 && o.channels != 3) {
    throw bad_option("channels", "channels must be 1 or 3, got " + std::to_string(o.channels));
  }
  if (o.tile < 16 || o.tile > 65536 || o.tile % 16 != 0) {
    throw bad_option("tile", "tile must be a multiple of 16 in 16..65536, got " + std::to_string(o.tile));
  }
  if (o.quality < 1 || o.quality > 100) throw bad_option("quality", "quality must be 1..100, got " + std::to_string(o.quality));
  if (o.deflate_level < 1 || o.deflate_level > 12) {
    throw bad_option("deflate_level", "deflate_level must be 1..12, got " + std::to_string(o.deflate_level));
  }
  if (!o.big_tiff) {
    // Classic TIFF offsets are 32-bit: refuse what may not fit (uncompressed size).
    const double bytes = double(o.width) * double(o.height) * o.channels * (o.pyramid ? 4.0 / 3.0 : 1.0);
    if (bytes > 3.5e9) throw bad_option("big_tiff", "an image this large needs BigTIFF");
  }
}

std::vector<std::pair<int64_t, int64_t>> pyramid_sizes(int64_t width, int64_t height, int64_t tile, bool pyramid) {
  std::vector<std::pair<int64_t, int64_t>> sizes{{width, height}};
  if (!pyramid || tile <= 0) return sizes;
  while (sizes.back().first > tile || sizes.back().second > tile) {
    const auto [w, h] = sizes.back();
    sizes.emplace_back((w + 1) / 2, (h + 1) / 2);
  }
  return sizes;
}

struct TiffWriter::Impl {
  std::string path;
  TiffWriterOptions options;
  std::vector<std::pair<int64_t, int64_t>> sizes;
  TIFF* tif = nullptr;
  int fd = -1;
  int level = 0;
  int64_t band = 0;
  bool finished = false;
  bool created = false;  ///< this writer created the file (else the caller gave an empty one)
  std::string errors;    ///< libtiff errors since the last check
  std::vector<uint8_t> tile_buffer;

  static int on_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
    auto* self = static_cast<Impl*>(user);
    char text[1024];
    std::vsnprintf(text, sizeof text, fmt, ap);
    if (!self->errors.empty()) self->errors += "; ";
    if (module != nullptr && *module != '\0') self->errors += std::string(module) + ": ";
    self->errors += text;
    return 1;  // handled: libtiff's global handler (stderr) is not called
  }
  static int on_warning(TIFF*, void*, const char*, const char*, va_list) { return 1; }

  std::string record() const {
    return "directory " + std::to_string(level) + ", band " + std::to_string(band);
  }
  [[noreturn]] void fail(const std::string& what) {
    std::string message = what;
    if (!errors.empty()) message += ": " + errors;
    errors.clear();
    throw Error("io_error", message, at_file(path, record()));
  }

  void set_tags() {
    const TiffWriterOptions& o = options;
    const auto [w, h] = sizes[static_cast<size_t>(level)];
    bool ok = true;
    ok &= TIFFSetField(tif, TIFFTAG_SUBFILETYPE, level > 0 ? uint32_t(FILETYPE_REDUCEDIMAGE) : uint32_t(0)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(w)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(h)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t(8)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, static_cast<uint16_t>(o.channels)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, uint16_t(SAMPLEFORMAT_UINT)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_PLANARCONFIG, uint16_t(PLANARCONFIG_CONTIG)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(o.tile)) == 1;
    ok &= TIFFSetField(tif, TIFFTAG_TILELENGTH, static_cast<uint32_t>(o.tile)) == 1;
    switch (o.compression) {
      case TiffCompression::kNone:
        ok &= TIFFSetField(tif, TIFFTAG_COMPRESSION, uint16_t(COMPRESSION_NONE)) == 1;
        ok &= TIFFSetField(tif, TIFFTAG_PHOTOMETRIC,
                           uint16_t(o.channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK)) == 1;
        break;
      case TiffCompression::kDeflate:
        ok &= TIFFSetField(tif, TIFFTAG_COMPRESSION, uint16_t(COMPRESSION_ADOBE_DEFLATE)) == 1;
        ok &= TIFFSetField(tif, TIFFTAG_PHOTOMETRIC,
                           uint16_t(o.channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK)) == 1;
        ok &= TIFFSetField(tif, TIFFTAG_PREDICTOR, uint16_t(PREDICTOR_HORIZONTAL)) == 1;
        ok &= TIFFSetField(tif, TIFFTAG_ZIPQUALITY, o.deflate_level) == 1;
        break;
      case TiffCompression::kJpeg:
        ok &= TIFFSetField(tif, TIFFTAG_COMPRESSION, uint16_t(COMPRESSION_JPEG)) == 1;
        if (o.channels == 3) {
          ok &= TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, uint16_t(PHOTOMETRIC_YCBCR)) == 1;
          ok &= TIFFSetField(tif, TIFFTAG_YCBCRSUBSAMPLING, uint16_t(2), uint16_t(2)) == 1;
          ok &= TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, int(JPEGCOLORMODE_RGB)) == 1;
        } else {
          ok &= TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, uint16_t(PHOTOMETRIC_MINISBLACK)) == 1;
        }
        ok &= TIFFSetField(tif, TIFFTAG_JPEGQUALITY, o.quality) == 1;
        break;
    }
    if (!o.software.empty()) ok &= TIFFSetField(tif, TIFFTAG_SOFTWARE, o.software.c_str()) == 1;
    if (!ok) fail("cannot set the TIFF tags (is the codec missing from libtiff?)");
  }

  void close_and_remove() noexcept {
    if (tif != nullptr) {
      TIFFClose(tif);  // closes fd
      tif = nullptr;
      fd = -1;
    } else if (fd >= 0) {
      ::close(fd);
      fd = -1;
    }
    // Only a file this writer created is removed; an empty file the caller
    // made (the dataset writer's staged name) is left, emptied again.
    if (created) {
      ::unlink(path.c_str());
    } else {
      const int rc = ::truncate(path.c_str(), 0);  // best effort, as unlink above
      (void)rc;
    }
  }
};

TiffWriter::TiffWriter(const std::string& path, const TiffWriterOptions& options) : impl_(std::make_unique<Impl>()) {
  validate(options);
  Impl& m = *impl_;
  m.path = path;
  m.options = options;
  m.sizes = pyramid_sizes(options.width, options.height, options.tile, options.pyramid);

  // A new file, or an empty one that the caller created for us: never
  // truncate anything.
  m.fd = ::open(path.c_str(), O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  m.created = m.fd >= 0;
  if (m.fd < 0 && errno == EEXIST) m.fd = ::open(path.c_str(), O_RDWR | O_CLOEXEC);
  if (m.fd < 0) throw Error("io_error", std::string("cannot create: ") + std::strerror(errno), at_file(path));
  struct stat st {};
  if (::fstat(m.fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size != 0) {
    ::close(m.fd);
    m.fd = -1;
    throw Error("output_exists", "refusing to write a TIFF over an existing non-empty file", at_file(path));
  }
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, &Impl::on_error, &m);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, &Impl::on_warning, &m);
  m.tif = TIFFFdOpenExt(m.fd, path.c_str(), options.big_tiff ? "w8" : "w", opts);
  TIFFOpenOptionsFree(opts);
  if (m.tif == nullptr) {
    const std::string errors = m.errors;
    m.close_and_remove();
    throw Error("io_error", "libtiff cannot open the file for writing" + (errors.empty() ? "" : ": " + errors),
                at_file(path));
  }
  try {
    m.set_tags();
  } catch (...) {
    m.close_and_remove();
    throw;
  }
  m.tile_buffer.resize(static_cast<size_t>(options.tile * options.tile * options.channels));
}

TiffWriter::~TiffWriter() {
  if (impl_ && !impl_->finished) impl_->close_and_remove();
}

const std::string& TiffWriter::path() const noexcept { return impl_->path; }
const TiffWriterOptions& TiffWriter::options() const noexcept { return impl_->options; }
int TiffWriter::levels() const noexcept { return static_cast<int>(impl_->sizes.size()); }

int64_t TiffWriter::level_width(int level) const { return impl_->sizes.at(static_cast<size_t>(level)).first; }
int64_t TiffWriter::level_height(int level) const { return impl_->sizes.at(static_cast<size_t>(level)).second; }
int64_t TiffWriter::bands(int level) const {
  const int64_t t = impl_->options.tile;
  return (level_height(level) + t - 1) / t;
}
int64_t TiffWriter::band_rows(int level, int64_t band) const {
  const int64_t t = impl_->options.tile;
  return std::min(t, level_height(level) - band * t);
}
int TiffWriter::current_level() const noexcept { return impl_->level; }
int64_t TiffWriter::current_band() const noexcept { return impl_->band; }
bool TiffWriter::complete() const noexcept { return impl_->level >= levels(); }

void TiffWriter::write_band(const cv::Mat& band) {
  Impl& m = *impl_;
  if (m.finished || m.tif == nullptr) throw Error("io_error", "the TIFF writer is closed", at_file(m.path));
  if (complete()) throw Error("bad_band", "every band of every level is already written", at_file(m.path));
  const TiffWriterOptions& o = m.options;
  const int64_t width = level_width(m.level), rows = band_rows(m.level, m.band);
  if (band.type() != CV_8UC(o.channels) || band.cols != width || band.rows != rows) {
    throw Error("bad_band",
                "expected a band of " + std::to_string(width) + " x " + std::to_string(rows) + " pixels, " +
                    std::to_string(o.channels) + " channel(s) of 8 bits; got " + std::to_string(band.cols) + " x " +
                    std::to_string(band.rows) + ", type " + std::to_string(band.type()),
                at_file(m.path, m.record()));
  }
  const int64_t t = o.tile, ch = o.channels;
  const int64_t y0 = m.band * t;
  const tmsize_t tile_bytes = static_cast<tmsize_t>(m.tile_buffer.size());
  for (int64_t x0 = 0; x0 < width; x0 += t) {
    const int64_t cols = std::min(t, width - x0);
    uint8_t* dst = m.tile_buffer.data();
    for (int64_t r = 0; r < t; ++r) {
      const int64_t src_row = std::min(r, rows - 1);  // pad below by repeating the last row
      const uint8_t* src = band.ptr<uint8_t>(static_cast<int>(src_row)) + x0 * ch;
      uint8_t* out = dst + r * t * ch;
      std::memcpy(out, src, static_cast<size_t>(cols * ch));
      for (int64_t c = cols; c < t; ++c) {  // pad right by repeating the last column
        std::memcpy(out + c * ch, src + (cols - 1) * ch, static_cast<size_t>(ch));
      }
    }
    const uint32_t index = TIFFComputeTile(m.tif, static_cast<uint32_t>(x0), static_cast<uint32_t>(y0), 0, 0);
    if (TIFFWriteEncodedTile(m.tif, index, m.tile_buffer.data(), tile_bytes) < 0) {
      m.fail("cannot write tile " + std::to_string(index));
    }
  }
  ++m.band;
  if (m.band == bands(m.level)) {
    if (TIFFWriteDirectory(m.tif) != 1) m.fail("cannot write the directory");
    ++m.level;
    m.band = 0;
    if (m.level < levels()) m.set_tags();
  }
}

void TiffWriter::finish(bool fsync) {
  Impl& m = *impl_;
  if (m.finished) return;
  if (!complete()) {
    throw Error("incomplete",
                "finish() before every band was written (next: " + m.record() + " of " + std::to_string(levels()) +
                    " levels)",
                at_file(m.path));
  }
  if (TIFFFlush(m.tif) != 1) m.fail("cannot flush");
  if (fsync && ::fsync(m.fd) != 0) m.fail(std::string("cannot fsync: ") + std::strerror(errno));
  TIFFClose(m.tif);  // closes the descriptor
  m.tif = nullptr;
  m.fd = -1;
  if (!m.errors.empty()) {
    const std::string errors = m.errors;
    m.close_and_remove();
    throw Error("io_error", "closing the TIFF: " + errors, at_file(m.path));
  }
  m.finished = true;
}

}  // namespace pasteflow::raster
