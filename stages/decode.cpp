#include "pasteflow/stages/decode.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <mutex>
#include <utility>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"

namespace pasteflow::stages {

namespace {

// OpenCV refuses images above CV_IO_MAX_IMAGE_PIXELS (default 1 << 30).
constexpr int64_t kOpenCvPixelLimit = int64_t{1} << 30;

Location at(const std::string& file, int64_t offset = -1, const std::string& record = {}) {
  Location where;
  where.file = file;
  where.byte_offset = offset;
  where.record = record;
  return where;
}

[[noreturn]] void corrupt(const std::string& file, int64_t offset, const std::string& message) {
  throw InputError("corrupt_image", message, at(file, offset));
}

uint32_t be16(const uint8_t* p) { return (uint32_t{p[0]} << 8) | p[1]; }
uint32_t be32(const uint8_t* p) { return (be16(p) << 16) | be16(p + 2); }

// ------------------------------------------------------------------ JPEG

bool is_sof(uint8_t marker) {
  return marker >= 0xC0 && marker <= 0xCF && marker != 0xC4 && marker != 0xC8 && marker != 0xCC;
}

ImageHeader parse_jpeg(Span<const uint8_t> b, const std::string& file) {
  const std::size_t n = b.size();
  std::size_t pos = 2;  // after SOI
  while (true) {
    if (pos >= n) corrupt(file, static_cast<int64_t>(pos), "JPEG ends before its frame header");
    if (b[pos] != 0xFF) {
      corrupt(file, static_cast<int64_t>(pos), "JPEG marker expected, found byte " + std::to_string(b[pos]));
    }
    while (pos < n && b[pos] == 0xFF) ++pos;  // fill bytes
    if (pos >= n) corrupt(file, static_cast<int64_t>(pos), "JPEG ends before its frame header");
    const uint8_t marker = b[pos];
    const std::size_t marker_at = pos - 1;
    ++pos;
    if (marker == 0x01 || marker == 0xD8 || (marker >= 0xD0 && marker <= 0xD7)) continue;  // no length
    if (marker == 0xD9 || marker == 0xDA) {
      corrupt(file, static_cast<int64_t>(marker_at), "JPEG has no frame header (SOF) before its scan");
    }
    if (pos + 2 > n) corrupt(file, static_cast<int64_t>(pos), "JPEG segment length cut off");
    const std::size_t length = be16(&b[pos]);
    if (length < 2) corrupt(file, static_cast<int64_t>(pos), "JPEG segment length below 2");
    if (pos + length > n) corrupt(file, static_cast<int64_t>(marker_at), "JPEG segment runs past the end of the file");
    if (is_sof(marker)) {
      if (length < 8) corrupt(file, static_cast<int64_t>(marker_at), "JPEG frame header too short");
      ImageHeader h;
      h.format = ImageFormat::kJpeg;
      h.bit_depth = b[pos + 2];
      h.height = be16(&b[pos + 3]);
      h.width = be16(&b[pos + 5]);
      h.channels = b[pos + 7];
      h.header_end = static_cast<int64_t>(pos + length);
      if (h.width == 0 || h.height == 0) {
        corrupt(file, static_cast<int64_t>(marker_at),
                "JPEG frame header gives a zero size (" + std::to_string(h.width) + " x " +
                    std::to_string(h.height) + ")");
      }
      return h;
    }
    pos += length;
  }
}

// ------------------------------------------------------------------ PNG

constexpr uint8_t kPngSignature[8] = {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A};

ImageHeader parse_png(Span<const uint8_t> b, const std::string& file) {
  if (b.size() < 33) corrupt(file, static_cast<int64_t>(b.size()), "PNG ends inside its IHDR chunk");
  if (be32(&b[8]) != 13 || std::memcmp(&b[12], "IHDR", 4) != 0) {
    corrupt(file, 8, "PNG does not start with a 13-byte IHDR chunk");
  }
  ImageHeader h;
  h.format = ImageFormat::kPng;
  h.width = be32(&b[16]);
  h.height = be32(&b[20]);
  h.bit_depth = b[24];
  switch (b[25]) {
    case 0: h.channels = 1; break;
    case 2: h.channels = 3; break;
    case 3: h.channels = 3; break;  // palette
    case 4: h.channels = 2; break;
    case 6: h.channels = 4; break;
    default: corrupt(file, 25, "PNG colour type " + std::to_string(b[25]) + " is not valid");
  }
  h.header_end = 33;
  if (h.width == 0 || h.height == 0 || h.width > INT32_MAX || h.height > INT32_MAX) {
    corrupt(file, 16, "PNG size " + std::to_string(h.width) + " x " + std::to_string(h.height) + " is not valid");
  }
  return h;
}

// Every chunk must lie inside the file, up to IEND.
void check_png_complete(Span<const uint8_t> b, const std::string& file) {
  std::size_t pos = 8;
  while (pos + 12 <= b.size()) {
    const std::size_t length = be32(&b[pos]);
    if (length > INT32_MAX) corrupt(file, static_cast<int64_t>(pos), "PNG chunk length above 2^31 - 1");
    if (pos + 12 + length > b.size()) {
      corrupt(file, static_cast<int64_t>(pos), "PNG is truncated: a chunk runs past the end of the file");
    }
    if (std::memcmp(&b[pos + 4], "IEND", 4) == 0) return;
    pos += 12 + length;
  }
  corrupt(file, static_cast<int64_t>(pos), "PNG is truncated: no IEND chunk");
}

// A truncated JPEG lacks the EOI marker after its scans; entropy-coded data
// never contains FF D9 (0xFF is stuffed), so the last FF D9 must come after
// the frame header.
void check_jpeg_complete(Span<const uint8_t> b, const ImageHeader& h, const std::string& file) {
  for (std::size_t i = b.size(); i >= 2 && i - 2 >= static_cast<std::size_t>(h.header_end); --i) {
    if (b[i - 2] == 0xFF && b[i - 1] == 0xD9) return;
  }
  corrupt(file, static_cast<int64_t>(b.size()), "JPEG is truncated: no end-of-image marker after the frame");
}

// ------------------------------------------------------------------ TIFF

struct TiffReader {
  Span<const uint8_t> b;
  bool little;
  const std::string& file;

  uint64_t get(std::size_t pos, int bytes) const {
    if (pos > b.size() || static_cast<std::size_t>(bytes) > b.size() - pos) {  // BigTIFF offsets reach 2^64
      corrupt(file, static_cast<int64_t>(pos), "TIFF directory points past the end of the file");
    }
    uint64_t v = 0;
    for (int i = 0; i < bytes; ++i) {
      const uint64_t byte = b[pos + static_cast<std::size_t>(i)];
      v |= little ? byte << (8 * i) : byte << (8 * (bytes - 1 - i));
    }
    return v;
  }
};

int tiff_type_size(uint64_t type) {
  switch (type) {
    case 3: return 2;   // SHORT
    case 4: return 4;   // LONG
    case 16: return 8;  // LONG8 (BigTIFF)
    default: return 0;
  }
}

/// The values of one array tag of a directory (StripOffsets, TileByteCounts, ...).
struct TiffArray {
  bool present = false;
  uint64_t count = 0;
  int size = 0;             ///< bytes per value
  std::size_t values = 0;   ///< offset of the first value
  std::size_t entry = 0;    ///< offset of the directory entry
};

/// One past the last byte of the strips (or tiles) that `offsets` and
/// `counts` describe; 0 without them. Saturates instead of wrapping.
int64_t tiff_data_end(const TiffReader& r, const TiffArray& offsets, const TiffArray& counts) {
  if (!offsets.present || !counts.present) return 0;
  if (offsets.count != counts.count) {
    corrupt(r.file, static_cast<int64_t>(counts.entry),
            "TIFF has " + std::to_string(offsets.count) + " strip or tile offsets but " +
                std::to_string(counts.count) + " byte counts");
  }
  constexpr uint64_t kMax = static_cast<uint64_t>(INT64_MAX);
  uint64_t end = 0;
  for (uint64_t i = 0; i < offsets.count; ++i) {
    const uint64_t at = r.get(offsets.values + i * static_cast<uint64_t>(offsets.size), offsets.size);
    const uint64_t n = r.get(counts.values + i * static_cast<uint64_t>(counts.size), counts.size);
    end = std::max(end, at > kMax || n > kMax - at ? kMax : at + n);
  }
  return static_cast<int64_t>(end);
}

ImageHeader parse_tiff(Span<const uint8_t> b, const std::string& file) {
  const bool little = b[0] == 'I';
  TiffReader r{b, little, file};
  const uint64_t version = r.get(2, 2);
  const bool big = version == 43;
  uint64_t ifd = 0;
  if (big) {
    if (r.get(4, 2) != 8) corrupt(file, 4, "BigTIFF offset size is not 8");
    ifd = r.get(8, 8);
  } else {
    ifd = r.get(4, 4);
  }
  if (ifd < 8 || ifd >= b.size()) corrupt(file, big ? 8 : 4, "TIFF first directory offset is outside the file");
  const int count_bytes = big ? 8 : 2;
  const std::size_t entry_size = big ? 20 : 12;
  const int field_bytes = big ? 8 : 4;
  const uint64_t entries = r.get(ifd, count_bytes);
  const std::size_t first = ifd + static_cast<std::size_t>(count_bytes);
  if (entries > (b.size() - first) / entry_size) {
    corrupt(file, static_cast<int64_t>(ifd), "TIFF directory runs past the end of the file");
  }
  ImageHeader h;
  h.format = ImageFormat::kTiff;
  h.channels = 1;   // TIFF defaults
  h.bit_depth = 1;
  bool have_w = false, have_h = false;
  TiffArray strip_offsets, strip_counts, tile_offsets, tile_counts;
  uint64_t rows_per_strip = 0, tile_w = 0, tile_h = 0;
  std::vector<uint64_t> seen;  // the tags read, each allowed once
  for (uint64_t e = 0; e < entries; ++e) {
    const std::size_t at = first + e * entry_size;
    const uint64_t tag = r.get(at, 2);
    const uint64_t type = r.get(at + 2, 2);
    const uint64_t count = r.get(at + 4, big ? 8 : 4);
    const std::size_t field = at + 4 + (big ? 8 : 4);
    TiffArray* array = tag == 273   ? &strip_offsets
                       : tag == 279 ? &strip_counts
                       : tag == 324 ? &tile_offsets
                       : tag == 325 ? &tile_counts
                                    : nullptr;
    if (tag != 256 && tag != 257 && tag != 258 && tag != 277 && tag != 278 && tag != 322 && tag != 323 &&
        array == nullptr) {
      continue;
    }
    // Which of two ImageWidth entries libtiff believes is not ours to guess
    // (a 65520 vs 101 pair made OpenCV allocate 4 GiB for a 101-wide header).
    if (std::find(seen.begin(), seen.end(), tag) != seen.end()) {
      corrupt(file, static_cast<int64_t>(at), "TIFF tag " + std::to_string(tag) + " appears twice");
    }
    seen.push_back(tag);
    const int size = tiff_type_size(type);
    if (size == 0 || count == 0) {
      corrupt(file, static_cast<int64_t>(at), "TIFF tag " + std::to_string(tag) + " has type " +
                                                  std::to_string(type) + " or count 0");
    }
    std::size_t value_at = field;
    if (count > static_cast<uint64_t>(field_bytes / size)) {
      value_at = static_cast<std::size_t>(r.get(field, field_bytes));  // values elsewhere
    }
    if (array != nullptr) {
      *array = {true, count, size, value_at, at};
      continue;
    }
    const uint64_t value = r.get(value_at, size);
    switch (tag) {
      case 256: h.width = static_cast<int64_t>(value); have_w = true; break;
      case 257: h.height = static_cast<int64_t>(value); have_h = true; break;
      case 258: h.bit_depth = static_cast<int>(value); break;
      case 277: h.channels = static_cast<int>(value); break;
      case 278: rows_per_strip = value; break;
      case 322: tile_w = value; break;
      case 323: tile_h = value; break;
      default: break;
    }
  }
  h.header_end = static_cast<int64_t>(first + entries * entry_size);
  h.data_end = std::max(tiff_data_end(r, strip_offsets, strip_counts), tiff_data_end(r, tile_offsets, tile_counts));
  if (!have_w || !have_h) corrupt(file, static_cast<int64_t>(ifd), "TIFF directory lacks ImageWidth or ImageLength");
  if (h.width <= 0 || h.height <= 0 || h.width > INT32_MAX || h.height > INT32_MAX) {
    corrupt(file, static_cast<int64_t>(ifd),
            "TIFF size " + std::to_string(h.width) + " x " + std::to_string(h.height) + " is not valid");
  }
  // OpenCV reads a TIFF a strip or tile at a time into a buffer of that
  // size, not clamped to the image: RowsPerStrip 16384 on a 65520 x 12
  // image allocates 4 GiB. 2^32 - 1 rows
  // (libtiff's default) means one strip, the whole image.
  const uint64_t cap = uint64_t(1) << 32;
  if (tile_w > 0 && tile_h > 0) {
    h.strip_pixels = static_cast<int64_t>(std::min(tile_w, cap) * std::min(tile_h, cap));
  } else if (rows_per_strip > 0 && rows_per_strip < 0xFFFFFFFFu) {
    h.strip_pixels = h.width * static_cast<int64_t>(rows_per_strip);  // < 2^31 * 2^32
  }
  return h;
}

// libtiff reads strips at the offsets the directory gives; a cut file makes
// it fail inside OpenCV, which prints to stderr and says only "can't read data".
void check_tiff_complete(Span<const uint8_t> b, const ImageHeader& h, const std::string& file) {
  if (h.data_end > static_cast<int64_t>(b.size())) {
    corrupt(file, static_cast<int64_t>(b.size()),
            "TIFF is truncated: its image data runs to byte " + std::to_string(h.data_end) + " but the file has " +
                std::to_string(b.size()) + " bytes");
  }
}

// ------------------------------------------------------------------ files

std::vector<uint8_t> read_file_impl(const std::string& path, const std::string& record) {
  if (path.empty()) throw InputError("missing_image", "empty image path", at(path, -1, record));
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    const int err = errno;
    const bool missing = err == ENOENT || err == ENOTDIR;
    throw InputError(missing ? "missing_image" : "unreadable_image",
                     missing ? "image file not found" : std::string("cannot open image: ") + std::strerror(err),
                     at(path, -1, record));
  }
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  struct stat st {};
  if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    throw InputError("unreadable_image", "not a regular file", at(path, -1, record));
  }
  std::vector<uint8_t> bytes(static_cast<std::size_t>(st.st_size));
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t got = ::read(fd, bytes.data() + done, bytes.size() - done);
    if (got < 0) {
      if (errno == EINTR) continue;
      throw InputError("unreadable_image", std::string("read failed: ") + std::strerror(errno),
                       at(path, static_cast<int64_t>(done), record));
    }
    if (got == 0) break;  // the file shrank while we read it
    done += static_cast<std::size_t>(got);
  }
  bytes.resize(done);
  return bytes;
}

InputError with_record(const InputError& e, const std::string& record) {
  Location where = e.where();
  where.record = record;
  return InputError(e.reason(), e.detail(), where);
}

std::string size_text(int64_t w, int64_t h) { return std::to_string(w) + " x " + std::to_string(h); }

}  // namespace

const char* to_string(ImageFormat format) noexcept {
  switch (format) {
    case ImageFormat::kJpeg: return "jpeg";
    case ImageFormat::kPng: return "png";
    case ImageFormat::kTiff: return "tiff";
  }
  return "?";
}

ImageHeader parse_image_header(Span<const uint8_t> bytes, const std::string& file) {
  const std::size_t n = bytes.size();
  if (n == 0) corrupt(file, 0, "empty file");
  if (n >= 2 && bytes[0] == 0xFF && bytes[1] == 0xD8) return parse_jpeg(bytes, file);
  if (n >= 8 && std::memcmp(bytes.data(), kPngSignature, 8) == 0) return parse_png(bytes, file);
  if (n >= 8 && ((bytes[0] == 'I' && bytes[1] == 'I' && (bytes[2] == 42 || bytes[2] == 43) && bytes[3] == 0) ||
                 (bytes[0] == 'M' && bytes[1] == 'M' && bytes[2] == 0 && (bytes[3] == 42 || bytes[3] == 43)))) {
    return parse_tiff(bytes, file);
  }
  throw InputError("unsupported_image", "not a JPEG, PNG or TIFF file (unrecognised signature)", at(file, 0));
}

std::vector<uint8_t> read_file_bytes(const std::string& path) { return read_file_impl(path, {}); }

ImageHeader read_image_header(const std::string& path) {
  const std::vector<uint8_t> bytes = read_file_bytes(path);
  return parse_image_header(bytes, path);
}

struct Decoder::PoolHolder {
  std::mutex mutex;
  std::shared_ptr<raster::TiffPool> pool;
  int64_t max_pixels = 0;
};

Decoder::Decoder(DecodeConfig config, std::shared_ptr<raster::TiffPool> pool)
    : config_(std::move(config)), pool_(std::make_shared<PoolHolder>()) {
  if (config_.max_pixels < 0) {
    Location where;
    where.key = "decode.max_pixels";
    throw ConfigError("bad_value", "max_pixels must be >= 0 (0 = no limit), got " +
                                       std::to_string(config_.max_pixels), where);
  }
  if (config_.color != "rgb" && config_.color != "grey" && config_.color != "keep") {
    Location where;
    where.key = "decode.color";
    throw ConfigError("bad_value", "color must be 'rgb', 'grey' or 'keep', got '" + config_.color + "'", where);
  }
  pool_->pool = std::move(pool);
  pool_->max_pixels = config_.max_pixels;
}

std::shared_ptr<raster::TiffPool> Decoder::tiff_pool() const {
  std::lock_guard<std::mutex> lock(pool_->mutex);
  if (!pool_->pool) {
    raster::RasterConfig raster_config;
    raster_config.max_window_pixels = pool_->max_pixels;
    pool_->pool = std::make_shared<raster::TiffPool>(raster_config);
  }
  return pool_->pool;
}

namespace {

/// A raster error re-thrown under the decoder's name for the input and its record.
[[noreturn]] void rethrow_raster(const InputError& e, const std::string& name, const std::string& record) {
  Location where = e.where();
  where.file = name;
  if (!record.empty()) where.record = where.record.empty() ? record : record + ", " + where.record;
  throw InputError(e.reason(), e.detail(), where);
}

/// Reads a TIFF held in memory through the raster layer (an anonymous
/// memory file: libtiff reads a path), without a shared cache.
cv::Mat read_tiff_bytes(Span<const uint8_t> bytes, bool keep_16bit, int64_t max_pixels) {
  const int fd = ::memfd_create("pasteflow_tiff", MFD_CLOEXEC);
  if (fd < 0) throw InputError("unreadable_image", std::string("memfd_create failed: ") + std::strerror(errno));
  struct Closer {
    int fd;
    ~Closer() { ::close(fd); }
  } closer{fd};
  std::size_t done = 0;
  while (done < bytes.size()) {
    const ssize_t put = ::write(fd, bytes.data() + done, bytes.size() - done);
    if (put < 0 && errno == EINTR) continue;
    if (put <= 0) throw InputError("unreadable_image", std::string("memory file write failed: ") + std::strerror(errno));
    done += static_cast<std::size_t>(put);
  }
  raster::RasterConfig config;
  config.max_window_pixels = max_pixels;
  config.tile_cache_mb = 0;
  auto file = raster::TiffFile::open("/proc/self/fd/" + std::to_string(fd), config, nullptr);
  return file->read_level(0, keep_16bit);
}

}  // namespace

cv::Mat Decoder::decode_impl(Span<const uint8_t> bytes, const std::string& name, int64_t expected_width,
                             int64_t expected_height, const std::string& record, bool from_file) const {
  ImageHeader h;
  try {
    h = parse_image_header(bytes, name);
  } catch (const InputError& e) {
    if (record.empty()) throw;
    throw with_record(e, record);
  }
  const int64_t pixels = h.width * h.height;  // both < 2^31: no overflow
  const int64_t limit = config_.max_pixels > 0 ? std::min(config_.max_pixels, kOpenCvPixelLimit) : kOpenCvPixelLimit;
  if (h.strip_pixels > std::max(pixels, limit)) {
    throw InputError("pixel_limit",
                     "TIFF strip or tile of " + std::to_string(h.strip_pixels) +
                         " pixels (RowsPerStrip or TileWidth x TileLength) is above the limit of " +
                         std::to_string(limit) + " pixels; the decoder would allocate it whole",
                     at(name, -1, record));
  }
  if (config_.max_pixels > 0 && pixels > config_.max_pixels) {
    throw InputError("pixel_limit",
                     std::string(to_string(h.format)) + " image of " + size_text(h.width, h.height) + " = " +
                         std::to_string(pixels) + " pixels is above the limit of " +
                         std::to_string(config_.max_pixels) + " (decode.max_pixels)",
                     at(name, -1, record));
  }
  if (pixels > kOpenCvPixelLimit) {
    throw InputError("pixel_limit",
                     "image of " + size_text(h.width, h.height) +
                         " pixels is above OpenCV's limit of 2^30 pixels (CV_IO_MAX_IMAGE_PIXELS)",
                     at(name, -1, record));
  }
  if (expected_width > 0 && expected_height > 0 && (h.width != expected_width || h.height != expected_height)) {
    throw InputError("size_mismatch",
                     "image is " + size_text(h.width, h.height) + " but its annotation says " +
                         size_text(expected_width, expected_height),
                     at(name, -1, record));
  }
  try {
    if (h.format == ImageFormat::kJpeg) check_jpeg_complete(bytes, h, name);
    if (h.format == ImageFormat::kPng) check_png_complete(bytes, name);
    if (h.format == ImageFormat::kTiff) check_tiff_complete(bytes, h, name);
  } catch (const InputError& e) {
    if (record.empty()) throw;
    throw with_record(e, record);
  }

  cv::Mat raw;
  if (h.format == ImageFormat::kTiff) {
    // libtiff through the raster layer: RGB or grey, 8-bit or (kept) 16-bit.
    try {
      raw = from_file ? tiff_pool()->open(name)->read_level(0, config_.keep_16bit)
                      : read_tiff_bytes(bytes, config_.keep_16bit, pool_->max_pixels);
    } catch (const InputError& e) {
      rethrow_raster(e, name, record);
    }
  } else {
    if (bytes.size() > static_cast<std::size_t>(INT_MAX)) {
      throw InputError("unsupported_image", "file larger than 2 GiB", at(name, -1, record));
    }
    const bool grey = config_.color == "grey";
    const int flags = (grey ? cv::IMREAD_GRAYSCALE : cv::IMREAD_ANYCOLOR) | cv::IMREAD_ANYDEPTH |
                      cv::IMREAD_IGNORE_ORIENTATION;
    try {
      const cv::Mat buffer(1, static_cast<int>(bytes.size()), CV_8U, const_cast<uint8_t*>(bytes.data()));
      raw = cv::imdecode(buffer, flags);
    } catch (const cv::Exception& e) {
      throw InputError("corrupt_image", std::string("OpenCV could not decode it: ") + e.what(), at(name, -1, record));
    }
    if (raw.empty()) throw InputError("corrupt_image", "OpenCV could not decode it", at(name, -1, record));
    // OpenCV gives BGR(A); the raster layer RGB.
    if (raw.channels() == 3) cv::cvtColor(raw, raw, cv::COLOR_BGR2RGB);
    if (raw.channels() == 4) cv::cvtColor(raw, raw, cv::COLOR_BGRA2RGB);
  }
  if (raw.cols != h.width || raw.rows != h.height) {
    throw InputError("corrupt_image",
                     "decoded " + size_text(raw.cols, raw.rows) + " but the header says " +
                         size_text(h.width, h.height),
                     at(name, -1, record));
  }
  return to_output(std::move(raw), name, record);
}

// Depth (16 -> 8 bit unless keep_16bit) and channels (color rgb / grey /
// keep) of RGB or grey pixels.
cv::Mat Decoder::to_output(cv::Mat raw, const std::string& name, const std::string& record) const {
  if (raw.depth() == CV_16U && !config_.keep_16bit) {
    cv::Mat eight;
    raw.convertTo(eight, CV_8U, 255.0 / 65535.0);
    raw = std::move(eight);
  } else if (raw.depth() != CV_8U && raw.depth() != CV_16U) {
    throw InputError("unsupported_image",
                     "pixel depth " + std::to_string(raw.depth()) + " is neither 8 nor 16 bit unsigned",
                     at(name, -1, record));
  }
  cv::Mat out;
  const int channels = raw.channels();
  if (channels == 1) {
    if (config_.color == "rgb") {
      cv::cvtColor(raw, out, cv::COLOR_GRAY2RGB);
    } else {
      out = std::move(raw);
    }
  } else if (channels == 3) {
    if (config_.color == "grey") {
      cv::cvtColor(raw, out, cv::COLOR_RGB2GRAY);
    } else {
      out = std::move(raw);
    }
  } else {
    throw InputError("unsupported_image", std::to_string(channels) + " channels after decoding",
                     at(name, -1, record));
  }
  return out;
}

cv::Mat Decoder::decode(const std::string& path, int64_t expected_width, int64_t expected_height) const {
  const std::vector<uint8_t> bytes = read_file_impl(path, {});
  return decode_impl(bytes, path, expected_width, expected_height, {}, true);
}

cv::Mat Decoder::decode_bytes(Span<const uint8_t> bytes, const std::string& name, int64_t expected_width,
                              int64_t expected_height) const {
  return decode_impl(bytes, name, expected_width, expected_height, {}, false);
}

cv::Mat Decoder::decode_window(const std::string& path, const raster::Window& window) const {
  auto bad_window = [&](int64_t w, int64_t h) {
    return InputError("bad_window",
                      "window (" + std::to_string(window.x) + ", " + std::to_string(window.y) + ", " +
                          size_text(window.width, window.height) + ") is empty or outside the image of " +
                          size_text(w, h),
                      at(path));
  };
  // The format from the first bytes only: a TIFF may be of any size.
  uint8_t head[8] = {};
  std::size_t got = 0;
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd >= 0) {
      const ssize_t n = ::pread(fd, head, sizeof head, 0);
      got = n > 0 ? static_cast<std::size_t>(n) : 0;
      ::close(fd);
    }
  }
  if (got >= 8 && raster::is_tiff(head, got)) {
    if (window.width > 0 && window.height > 0 && config_.max_pixels > 0 &&
        window.width * window.height > config_.max_pixels) {
      throw InputError("pixel_limit",
                       "window of " + size_text(window.width, window.height) + " pixels is above the limit of " +
                           std::to_string(config_.max_pixels) + " (decode.max_pixels)",
                       at(path));
    }
    cv::Mat raw;
    try {
      const std::shared_ptr<raster::TiffFile> file = tiff_pool()->open(path);
      if (window.width <= 0 || window.height <= 0 || window.x < 0 || window.y < 0 ||
          window.x > file->width() - window.width || window.y > file->height() - window.height) {
        throw bad_window(file->width(), file->height());
      }
      raw = file->read_window(0, window, config_.keep_16bit);
    } catch (const InputError& e) {
      rethrow_raster(e, path, {});
    }
    return to_output(std::move(raw), path, {});
  }
  // JPEG, PNG (and errors: a missing file, an unknown format): whole, then cropped.
  const cv::Mat whole = decode(path);
  if (window.width <= 0 || window.height <= 0 || window.x < 0 || window.y < 0 ||
      window.x > whole.cols - window.width || window.y > whole.rows - window.height) {
    throw bad_window(whole.cols, whole.rows);
  }
  return whole(cv::Rect(static_cast<int>(window.x), static_cast<int>(window.y), static_cast<int>(window.width),
                        static_cast<int>(window.height)))
      .clone();
}

void Decoder::operator()(Sample& sample) const { (*this)(sample, 0, 0); }

void Decoder::operator()(Sample& sample, int64_t width, int64_t height) const {
  const std::string record = "image id " + std::to_string(sample.image_id);
  // Instance masks are full-frame: they fix the size too, and must agree.
  for (const Instance& inst : sample.instances) {
    if (!inst.has_mask) continue;
    const int64_t mw = inst.mask.w, mh = inst.mask.h;
    if (width > 0 && height > 0 && (mw != width || mh != height)) {
      throw InputError("size_mismatch",
                       "mask of annotation " + std::to_string(inst.id) + " is " + size_text(mw, mh) +
                           " but the image should be " + size_text(width, height),
                       at(sample.path, -1, record));
    }
    width = mw;
    height = mh;
  }
  const std::vector<uint8_t> bytes = read_file_impl(sample.path, record);
  sample.image = decode_impl(bytes, sample.path, width, height, record, true);
}

}  // namespace pasteflow::stages
