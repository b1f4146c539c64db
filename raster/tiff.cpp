// TIFF read by windows on libtiff (see include/pasteflow/raster/tiff.hpp).
//
// Layout of this file:
//   - Handle: one libtiff TIFF* opened "rO" (read-only, on-demand strile
//     loading) with per-handle error / warning handlers collecting
//     libtiff's messages (nothing reaches stderr);
//   - Layout: what a directory's tags mean for reading (sample type,
//     channels, planes, blocks, palette), decided once at open;
//   - TiffFile::Impl: directories, levels, a free list of handles, block
//     decoding through the TileCache, window assembly and the conversion to
//     the output depth.
#include "pasteflow/raster/tiff.hpp"

#include <fcntl.h>
#include <sys/stat.h>
#include <tiffio.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <exception>
#include <limits>
#include <type_traits>
#include <utility>

#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"
#include "pasteflow/core/hash.hpp"
#include "tile_cache_impl.hpp"

namespace pasteflow::raster {

namespace {

Location at(const std::string& file, int64_t offset = -1, const std::string& record = {}) {
  Location where;
  where.file = file;
  where.byte_offset = offset;
  where.record = record;
  return where;
}

std::string dir_record(int dir) { return "directory " + std::to_string(dir); }

// ------------------------------------------------------------------ handles

/// One libtiff handle and the messages libtiff gave it.
struct Handle {
  TIFF* tif = nullptr;
  int dir = -1;  ///< directory selected (-1: reselect before use)
  std::string errors;
  std::string warnings;
  ~Handle() {
    if (tif != nullptr) TIFFClose(tif);
  }
  void clear_messages() {
    errors.clear();
    warnings.clear();
  }
  /// libtiff's errors (and warnings) for an exception's message.
  std::string said() const {
    std::string s;
    if (!errors.empty()) s = "libtiff: " + errors;
    if (!warnings.empty()) s += std::string(s.empty() ? "" : "; ") + "libtiff warnings: " + warnings;
    return s;
  }
};

void append_message(std::string& to, const char* module, const char* fmt, va_list ap) {
  if (to.size() > 1500) return;  // enough context; a corrupt file may warn thousands of times
  char buffer[512];
  std::vsnprintf(buffer, sizeof buffer, fmt, ap);
  if (!to.empty()) to += "; ";
  if (module != nullptr && *module != '\0') {
    to += module;
    to += ": ";
  }
  to += buffer;
}

int on_error(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  append_message(static_cast<Handle*>(user)->errors, module, fmt, ap);
  return 1;  // handled: libtiff's global handler (stderr) is not called
}

int on_warning(TIFF*, void* user, const char* module, const char* fmt, va_list ap) {
  append_message(static_cast<Handle*>(user)->warnings, module, fmt, ap);
  return 1;
}

std::unique_ptr<Handle> open_handle(const std::string& path) {
  auto handle = std::make_unique<Handle>();
  TIFFOpenOptions* options = TIFFOpenOptionsAlloc();
  if (options == nullptr) throw InputError("unreadable_image", "libtiff could not allocate its options", at(path));
  TIFFOpenOptionsSetErrorHandlerExtR(options, on_error, handle.get());
  TIFFOpenOptionsSetWarningHandlerExtR(options, on_warning, handle.get());
  // A corrupt directory cannot make libtiff allocate more than this at once.
  TIFFOpenOptionsSetMaxSingleMemAlloc(options, tmsize_t{1} << 30);
  // "m": no memory mapping. A mapped file's pages count in the process's
  // RSS as they are read, so reading every window of a 772 MB JPEG mosaic
  // grew the peak RSS to 644 MB (83 MB with "m", same speed; bench slices).
  handle->tif = TIFFOpenExt(path.c_str(), "rOm", options);
  TIFFOpenOptionsFree(options);
  if (handle->tif == nullptr) {
    throw InputError("corrupt_image", "libtiff cannot open it as a TIFF (" + handle->said() + ")",
                     at(path, -1, dir_record(0)));
  }
  return handle;
}

// ------------------------------------------------------------------ layouts

enum class Kind : uint8_t { kU8, kI8, kU16, kI16, kU32, kI32, kF32, kF64 };

/// What a directory's tags mean for reading it.
struct Layout {
  bool supported = false;
  std::string reason;  ///< "unsupported_image" or "corrupt_image" when not supported
  std::string why;
  Kind kind = Kind::kU8;
  int bytes = 1;           ///< bytes per sample
  int spp_block = 1;       ///< samples per pixel in a decoded block (1 for separate planes)
  bool separate = false;   ///< PlanarConfig 2: one block per plane
  int ncolor = 1;          ///< output colour channels (palette: 3 from 1 index sample)
  int color_src[3] = {0, 0, 0};
  int alpha_src = -1;      ///< the 4th (or grey's 2nd) sample, -1 when none
  bool invert = false;     ///< min-is-white
  double type_max = 255;   ///< the largest sample value (float: 1)
  bool palette = false;
  std::vector<uint8_t> lut;  ///< palette: 3 bytes a colour index
  bool jpeg_rgb = false;     ///< JPEG YCbCr: libjpeg converts to RGB (JPEGCOLORMODE_RGB)
  int64_t across = 0;        ///< blocks across
  int64_t down = 0;          ///< blocks down
  int64_t per_plane = 0;
};

bool is_integer(Kind k) { return k != Kind::kF32 && k != Kind::kF64; }
bool is_signed(Kind k) { return k == Kind::kI8 || k == Kind::kI16 || k == Kind::kI32; }

double kind_max(Kind k) {
  switch (k) {
    case Kind::kU8: return 255.0;
    case Kind::kI8: return 127.0;
    case Kind::kU16: return 65535.0;
    case Kind::kI16: return 32767.0;
    case Kind::kU32: return 4294967295.0;
    case Kind::kI32: return 2147483647.0;
    case Kind::kF32:
    case Kind::kF64: return 1.0;
  }
  return 1.0;
}

/// Reads the tags of the current directory of `tif` into `d` and decides its layout.
Layout read_directory(TIFF* tif, Directory& d) {
  Layout L;
  auto refuse = [&L](const char* reason, std::string why) {
    L.supported = false;
    L.reason = reason;
    L.why = std::move(why);
    return L;
  };
  uint32_t w = 0, h = 0;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
  d.width = w;
  d.height = h;
  uint16_t spp = 1, bps = 1, format = SAMPLEFORMAT_UINT, planar = PLANARCONFIG_CONTIG, compression = COMPRESSION_NONE;
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
  TIFFGetFieldDefaulted(tif, TIFFTAG_BITSPERSAMPLE, &bps);
  TIFFGetFieldDefaulted(tif, TIFFTAG_SAMPLEFORMAT, &format);
  TIFFGetFieldDefaulted(tif, TIFFTAG_PLANARCONFIG, &planar);
  TIFFGetFieldDefaulted(tif, TIFFTAG_COMPRESSION, &compression);
  uint16_t photometric = 0;
  const bool have_photometric = TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric) == 1;
  if (!have_photometric) photometric = spp >= 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK;
  uint16_t predictor = 1;
  if (TIFFIsCODECConfigured(compression)) TIFFGetField(tif, TIFFTAG_PREDICTOR, &predictor);
  uint32_t subfile = 0;
  TIFFGetField(tif, TIFFTAG_SUBFILETYPE, &subfile);
  d.samples_per_pixel = spp;
  d.bits_per_sample = bps;
  d.sample_format = format == SAMPLEFORMAT_INT ? SampleFormat::kInt
                    : format == SAMPLEFORMAT_IEEEFP ? SampleFormat::kFloat
                                                    : SampleFormat::kUInt;
  d.photometric = photometric;
  d.compression = compression;
  d.planar = planar;
  d.predictor = predictor;
  d.subfile_type = subfile;
  d.tiled = TIFFIsTiled(tif) != 0;
  if (d.tiled) {
    uint32_t tw = 0, th = 0;
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    d.block_width = tw;
    d.block_height = th;
  } else {
    uint32_t rps = 0;
    TIFFGetFieldDefaulted(tif, TIFFTAG_ROWSPERSTRIP, &rps);
    d.block_width = d.width;
    d.block_height = rps == 0 ? d.height : std::min<int64_t>(rps, d.height);
  }
  d.channels = 0;

  if (d.width <= 0 || d.height <= 0) return refuse("corrupt_image", "image size " + std::to_string(d.width) + " x " +
                                                                        std::to_string(d.height) + " is empty");
  if (d.block_width <= 0 || d.block_height <= 0) {
    return refuse("corrupt_image", "tile size " + std::to_string(d.block_width) + " x " +
                                       std::to_string(d.block_height) + " is empty");
  }
  if (spp < 1) return refuse("corrupt_image", "SamplesPerPixel is 0");
  if (planar != PLANARCONFIG_CONTIG && planar != PLANARCONFIG_SEPARATE) {
    return refuse("corrupt_image", "PlanarConfiguration " + std::to_string(planar) + " is not 1 or 2");
  }
  if (!TIFFIsCODECConfigured(compression)) {
    return refuse("unsupported_image", "compression " + std::to_string(compression) + " has no codec in libtiff");
  }
  // Sample type.
  if (format == SAMPLEFORMAT_UINT || format == SAMPLEFORMAT_VOID) {
    if (bps == 8) L.kind = Kind::kU8;
    else if (bps == 16) L.kind = Kind::kU16;
    else if (bps == 32) L.kind = Kind::kU32;
    else return refuse("unsupported_image", std::to_string(bps) + "-bit unsigned samples (8, 16 or 32 are read)");
  } else if (format == SAMPLEFORMAT_INT) {
    if (bps == 8) L.kind = Kind::kI8;
    else if (bps == 16) L.kind = Kind::kI16;
    else if (bps == 32) L.kind = Kind::kI32;
    else return refuse("unsupported_image", std::to_string(bps) + "-bit signed samples (8, 16 or 32 are read)");
  } else if (format == SAMPLEFORMAT_IEEEFP) {
    if (bps == 32) L.kind = Kind::kF32;
    else if (bps == 64) L.kind = Kind::kF64;
    else return refuse("unsupported_image", std::to_string(bps) + "-bit float samples (32 or 64 are read)");
  } else {
    return refuse("unsupported_image", "SampleFormat " + std::to_string(format) + " (complex) is not read");
  }
  L.bytes = bps / 8;
  L.type_max = kind_max(L.kind);
  L.separate = planar == PLANARCONFIG_SEPARATE && spp > 1;
  L.spp_block = L.separate ? 1 : spp;
  // Channels.
  switch (photometric) {
    case PHOTOMETRIC_MINISWHITE:
    case PHOTOMETRIC_MINISBLACK:
      if (photometric == PHOTOMETRIC_MINISWHITE) {
        if (!is_integer(L.kind) || is_signed(L.kind)) {
          return refuse("unsupported_image", "min-is-white with signed or float samples");
        }
        L.invert = true;
      }
      if (spp >= 3) {  // GDAL writes RGB bands as min-is-black with extra samples
        L.ncolor = 3;
        L.color_src[1] = 1;
        L.color_src[2] = 2;
        if (spp >= 4) L.alpha_src = 3;
      } else {
        L.ncolor = 1;
        if (spp == 2) L.alpha_src = 1;
      }
      break;
    case PHOTOMETRIC_YCBCR:
      if (compression != COMPRESSION_JPEG) {
        return refuse("unsupported_image", "YCbCr photometric without JPEG compression");
      }
      if (L.separate || spp != 3 || L.kind != Kind::kU8) {
        return refuse("unsupported_image", "JPEG YCbCr other than 8-bit, 3 samples, contiguous");
      }
      L.jpeg_rgb = true;
      L.ncolor = 3;
      L.color_src[1] = 1;
      L.color_src[2] = 2;
      break;
    case PHOTOMETRIC_RGB:
      if (spp < 3) return refuse("corrupt_image", "RGB photometric with " + std::to_string(spp) + " samples");
      L.ncolor = 3;
      L.color_src[1] = 1;
      L.color_src[2] = 2;
      if (spp >= 4) L.alpha_src = 3;
      break;
    case PHOTOMETRIC_PALETTE: {
      if (L.kind != Kind::kU8 && L.kind != Kind::kU16) {
        return refuse("unsupported_image", "palette with " + std::to_string(bps) + "-bit indices (8 or 16 are read)");
      }
      uint16_t *r = nullptr, *g = nullptr, *b = nullptr;
      if (TIFFGetField(tif, TIFFTAG_COLORMAP, &r, &g, &b) != 1 || r == nullptr || g == nullptr || b == nullptr) {
        return refuse("corrupt_image", "palette image without a ColorMap");
      }
      const size_t n = size_t{1} << bps;
      // An 8-bit colormap (every value < 256) is used as is, else values >> 8.
      bool eight = true;
      for (size_t i = 0; i < n && eight; ++i) eight = r[i] < 256 && g[i] < 256 && b[i] < 256;
      L.lut.resize(3 * n);
      for (size_t i = 0; i < n; ++i) {
        L.lut[3 * i] = static_cast<uint8_t>(eight ? r[i] : r[i] >> 8);
        L.lut[3 * i + 1] = static_cast<uint8_t>(eight ? g[i] : g[i] >> 8);
        L.lut[3 * i + 2] = static_cast<uint8_t>(eight ? b[i] : b[i] >> 8);
      }
      L.palette = true;
      L.ncolor = 3;
      break;
    }
    default:
      return refuse("unsupported_image", "photometric interpretation " + std::to_string(photometric) +
                                             " (grey, RGB, YCbCr-JPEG and palette are read)");
  }
  L.across = (d.width + d.block_width - 1) / d.block_width;
  L.down = (d.height + d.block_height - 1) / d.block_height;
  L.per_plane = L.across * L.down;
  if (L.per_plane * (L.separate ? spp : 1) > int64_t{0xFFFFFFFE}) {
    return refuse("corrupt_image", "more than 2^32 tiles or strips");
  }
  d.channels = L.ncolor;
  L.supported = true;
  return L;
}

// ------------------------------------------------------------------ pixel copies

/// Copies `n` channels of the rectangle (sx, sy, w, h) of a decoded block
/// (row of `block_w` pixels, `spp` samples each) into `dst` (channels
/// `dst_ch[i]` of `dst_channels`), converting T -> O.
template <class T, class O>
void copy_rect(const uint8_t* block, int64_t block_w, int spp, int64_t sx, int64_t sy, int64_t w, int64_t h,
               const int* samples, const int* dst_ch, int n, cv::Mat& dst, int64_t dx, int64_t dy, bool invert,
               double type_max) {
  const int dst_channels = dst.channels();
  bool identity = !invert && std::is_same<T, O>::value && n == spp && n == dst_channels;
  for (int i = 0; identity && i < n; ++i) identity = samples[i] == i && dst_ch[i] == i;
  const T tmax = static_cast<T>(type_max);
  for (int64_t r = 0; r < h; ++r) {
    const T* src = reinterpret_cast<const T*>(block) + ((sy + r) * block_w + sx) * spp;
    O* out = dst.ptr<O>(static_cast<int>(dy + r)) + dx * dst_channels;
    if (identity) {
      std::memcpy(out, src, static_cast<size_t>(w * spp) * sizeof(T));
      continue;
    }
    for (int i = 0; i < n; ++i) {
      const T* s = src + samples[i];
      O* o = out + dst_ch[i];
      if (invert) {
        for (int64_t x = 0; x < w; ++x) o[x * dst_channels] = static_cast<O>(tmax - s[x * spp]);
      } else {
        for (int64_t x = 0; x < w; ++x) o[x * dst_channels] = static_cast<O>(s[x * spp]);
      }
    }
  }
}

/// Palette indices of the rectangle -> RGB through `lut`.
template <class T>
void copy_palette(const uint8_t* block, int64_t block_w, int spp, int64_t sx, int64_t sy, int64_t w, int64_t h,
                  const std::vector<uint8_t>& lut, cv::Mat& dst, int64_t dx, int64_t dy) {
  const size_t n = lut.size() / 3;
  for (int64_t r = 0; r < h; ++r) {
    const T* src = reinterpret_cast<const T*>(block) + ((sy + r) * block_w + sx) * spp;
    uint8_t* out = dst.ptr<uint8_t>(static_cast<int>(dy + r)) + dx * 3;
    for (int64_t x = 0; x < w; ++x) {
      const size_t idx = std::min<size_t>(src[x * spp], n - 1);
      std::memcpy(out + 3 * x, &lut[3 * idx], 3);
    }
  }
}

template <class O>
void copy_any(Kind kind, const uint8_t* block, int64_t block_w, int spp, int64_t sx, int64_t sy, int64_t w, int64_t h,
              const int* samples, const int* dst_ch, int n, cv::Mat& dst, int64_t dx, int64_t dy, bool invert,
              double type_max) {
#define PF_COPY(T) copy_rect<T, O>(block, block_w, spp, sx, sy, w, h, samples, dst_ch, n, dst, dx, dy, invert, type_max)
  switch (kind) {
    case Kind::kU8: PF_COPY(uint8_t); break;
    case Kind::kI8: PF_COPY(int8_t); break;
    case Kind::kU16: PF_COPY(uint16_t); break;
    case Kind::kI16: PF_COPY(int16_t); break;
    case Kind::kU32: PF_COPY(uint32_t); break;
    case Kind::kI32: PF_COPY(int32_t); break;
    case Kind::kF32: PF_COPY(float); break;
    case Kind::kF64: PF_COPY(double); break;
  }
#undef PF_COPY
}

enum class Mode : uint8_t { k8, k16, kMapped, kPalette };

uint64_t file_identity(const struct stat& st) {
  const uint64_t fields[] = {uint64_t(st.st_dev), uint64_t(st.st_ino), uint64_t(st.st_size),
                             uint64_t(st.st_mtim.tv_sec), uint64_t(st.st_mtim.tv_nsec)};
  return fnv1a(fields, sizeof(fields));
}

}  // namespace

// ------------------------------------------------------------------ config

void validate(const RasterConfig& c) {
  auto bad = [](const std::string& key, const std::string& message) {
    Location where;
    where.key = "raster." + key;
    throw ConfigError("bad_value", message, where);
  };
  if (c.tile_cache_mb < 0 || c.tile_cache_mb > (int64_t{1} << 20)) {
    bad("tile_cache_mb", "tile_cache_mb must be in 0..1048576, got " + std::to_string(c.tile_cache_mb));
  }
  if (c.to_8bit != "fixed" && c.to_8bit != "minmax" && c.to_8bit != "percentile") {
    bad("to_8bit", "to_8bit must be 'fixed', 'minmax' or 'percentile', got '" + c.to_8bit + "'");
  }
  if (!(c.range_max > c.range_min)) bad("range_max", "range_max must be above range_min");
  if (!(c.percentile_low >= 0 && c.percentile_low <= 100)) bad("percentile_low", "percentile_low must be in 0..100");
  if (!(c.percentile_high >= 0 && c.percentile_high <= 100)) bad("percentile_high", "percentile_high must be in 0..100");
  if (!(c.percentile_high > c.percentile_low)) bad("percentile_high", "percentile_high must be above percentile_low");
  if (c.alpha != "drop" && c.alpha != "composite") bad("alpha", "alpha must be 'drop' or 'composite', got '" + c.alpha + "'");
  if (c.alpha_background < 0 || c.alpha_background > 255) bad("alpha_background", "alpha_background must be in 0..255");
  if (c.max_window_pixels < 0) bad("max_window_pixels", "max_window_pixels must be >= 0 (0 = no limit)");
}

bool is_tiff(const uint8_t* b, size_t size) noexcept {
  if (b == nullptr || size < 4) return false;
  return (b[0] == 'I' && b[1] == 'I' && (b[2] == 42 || b[2] == 43) && b[3] == 0) ||
         (b[0] == 'M' && b[1] == 'M' && b[2] == 0 && (b[3] == 42 || b[3] == 43));
}

// ------------------------------------------------------------------ TiffFile::Impl

struct TiffFile::Impl {
  std::string path;
  RasterConfig config;
  std::shared_ptr<TileCache> cache;
  uint64_t file_id = 0;
  bool big = false;
  std::vector<Directory> dirs;
  std::vector<Layout> layouts;
  std::vector<int> levels;
  std::atomic<uint64_t> decoded{0};

  std::mutex handle_mutex;
  std::vector<std::unique_ptr<Handle>> free_handles;

  std::mutex stats_mutex;
  bool stats_done = false;
  double stats_lo = 0, stats_hi = 1;

  /// A handle of the file, back to the free list when the guard ends.
  struct Lease {
    Impl* impl;
    std::unique_ptr<Handle> handle;
    explicit Lease(Impl* owner) : impl(owner) {}
    Lease(Lease&& other) noexcept : impl(other.impl), handle(std::move(other.handle)) {}
    Lease& operator=(Lease&&) = delete;
    ~Lease() {
      if (!handle) return;
      std::lock_guard<std::mutex> lock(impl->handle_mutex);
      if (impl->free_handles.size() < 32) impl->free_handles.push_back(std::move(handle));
    }
  };

  Lease lease(int dir) {
    Lease l(this);
    {
      std::lock_guard<std::mutex> lock(handle_mutex);
      for (size_t i = free_handles.size(); i-- > 0;) {
        if (free_handles[i]->dir == dir || i == 0) {
          l.handle = std::move(free_handles[i]);
          free_handles.erase(free_handles.begin() + static_cast<std::ptrdiff_t>(i));
          break;
        }
      }
    }
    if (!l.handle) {
      l.handle = open_handle(path);
      l.handle->dir = -1;
    }
    Handle& h = *l.handle;
    if (h.dir != dir) {
      h.clear_messages();
      h.dir = -1;
      if (TIFFSetDirectory(h.tif, static_cast<tdir_t>(dir)) != 1) {
        const std::string said = h.said();
        l.handle.reset();
        throw InputError("corrupt_image", "libtiff cannot read directory " + std::to_string(dir) + " (" + said + ")",
                         at(path, -1, dir_record(dir)));
      }
      if (layouts[static_cast<size_t>(dir)].jpeg_rgb) TIFFSetField(h.tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
      h.dir = dir;
    }
    return l;
  }

  std::string block_name(int dir, int64_t index) const {
    return dir_record(dir) + (dirs[static_cast<size_t>(dir)].tiled ? ", tile " : ", strip ") + std::to_string(index);
  }

  /// The decoded block `index` (planes after planes) of directory `dir`.
  std::shared_ptr<const Block> block(int dir, int64_t index) {
    const Directory& d = dirs[static_cast<size_t>(dir)];
    const Layout& L = layouts[static_cast<size_t>(dir)];
    const BlockKey key{file_id, static_cast<uint32_t>(dir), static_cast<uint32_t>(index)};
    TileCache::Impl* c = cache ? &cache->impl() : nullptr;
    if (c != nullptr) {
      if (auto hit = c->find(key)) return hit;
    }
    const int64_t in_plane = index % L.per_plane;
    const int64_t rows = d.tiled ? d.block_height
                                 : std::min(d.block_height, d.height - (in_plane / L.across) * d.block_height);
    const int64_t pixels = d.block_width * rows;  // each factor < 2^32, so no overflow in 64 bits unsigned
    // The limit counts pixels and, for blocks of many samples a pixel (the
    // fuzzer's 44816 x 12 strip of 4097 samples: 2.2 GB), samples: at most
    // 4 a pixel (RGBA) within the pixel budget.
    const uint64_t samples = static_cast<uint64_t>(pixels) * static_cast<uint64_t>(L.spp_block);
    if (config.max_window_pixels > 0 &&
        (pixels > config.max_window_pixels || samples > static_cast<uint64_t>(config.max_window_pixels) * 4)) {
      throw InputError("pixel_limit",
                       std::string(d.tiled ? "tile" : "strip") + " of " + std::to_string(d.block_width) + " x " +
                           std::to_string(rows) + " pixels x " + std::to_string(L.spp_block) +
                           " samples is above the limit of " + std::to_string(config.max_window_pixels) +
                           " pixels of at most 4 samples (raster.max_window_pixels)",
                       at(path, -1, block_name(dir, index)));
    }
    const uint64_t bytes = static_cast<uint64_t>(pixels) * static_cast<uint64_t>(L.spp_block * L.bytes);
    if (bytes > (uint64_t{1} << 32)) {
      throw InputError("pixel_limit", "a tile or strip of " + std::to_string(bytes) + " bytes (above 4 GiB)",
                       at(path, -1, block_name(dir, index)));
    }
    Lease l = lease(dir);
    Handle& h = *l.handle;
    TIFF* tif = h.tif;
    const uint64_t libtiff_bytes = d.tiled ? TIFFTileSize64(tif) : TIFFVStripSize64(tif, static_cast<uint32_t>(rows));
    if (libtiff_bytes != bytes) {
      throw InputError("unsupported_image",
                       "libtiff decodes " + std::to_string(libtiff_bytes) + " bytes per block where " +
                           std::to_string(bytes) + " were expected (subsampled or packed layout)",
                       at(path, -1, block_name(dir, index)));
    }
    auto out = std::make_shared<Block>();
    out->data.reset(new uint8_t[bytes]);
    out->size = bytes;
    h.clear_messages();
    const uint32_t strile = static_cast<uint32_t>(index);
    const tmsize_t got = d.tiled ? TIFFReadEncodedTile(tif, strile, out->data.get(), static_cast<tmsize_t>(bytes))
                                 : TIFFReadEncodedStrip(tif, strile, out->data.get(), static_cast<tmsize_t>(bytes));
    // libjpeg pads a cut scan with grey and only warns.
    const bool jpeg_cut = h.warnings.find("Premature end") != std::string::npos ||
                          h.warnings.find("Corrupt JPEG") != std::string::npos;
    if (got != static_cast<tmsize_t>(bytes) || !h.errors.empty() || jpeg_cut) {
      std::string said = h.said();
      h.clear_messages();
      int offset_err = 0, count_err = 0;
      const uint64_t offset = TIFFGetStrileOffsetWithErr(tif, strile, &offset_err);
      const uint64_t count = TIFFGetStrileByteCountWithErr(tif, strile, &count_err);
      h.clear_messages();
      // libtiff gives 0 for an entry it could not read (an array cut short).
      const bool known = offset_err == 0 && count_err == 0 && offset != 0;
      struct stat st {};
      const int64_t file_size = ::stat(path.c_str(), &st) == 0 ? static_cast<int64_t>(st.st_size) : -1;
      std::string message = "cannot decode " + block_name(dir, index);
      if (known) {
        message += " (" + std::to_string(count) + " bytes at offset " + std::to_string(offset);
        if (file_size >= 0 && (offset > static_cast<uint64_t>(file_size) ||
                               count > static_cast<uint64_t>(file_size) - offset)) {
          message += ", past the end of the file of " + std::to_string(file_size) + " bytes: truncated or bad offset";
        }
        message += ")";
      } else {
        message += " (its offset or byte count is missing: the offset arrays are cut short or corrupt)";
      }
      if (!said.empty()) message += ": " + said;
      l.handle.reset();  // libtiff's state after a failure is not trusted
      throw InputError("corrupt_image", message,
                       at(path, known && offset <= uint64_t(INT64_MAX) ? static_cast<int64_t>(offset) : -1,
                          block_name(dir, index)));
    }
    decoded.fetch_add(1, std::memory_order_relaxed);
    std::shared_ptr<const Block> result = std::move(out);
    if (c != nullptr) c->insert(key, result);
    return result;
  }

  Mode mode(int dir, bool keep_16bit) const {
    const Layout& L = layouts[static_cast<size_t>(dir)];
    if (L.palette) return Mode::kPalette;
    if (L.kind == Kind::kU8) return Mode::k8;
    if (L.kind == Kind::kU16 && keep_16bit) return Mode::k16;
    return Mode::kMapped;
  }

  /// Fills `work` (window.height x window.width, depth by mode, channels
  /// ncolor, + 1 for alpha when `with_alpha`) from the blocks touching `window`.
  void fill(int dir, const Window& window, Mode m, bool with_alpha, cv::Mat& work) {
    const Directory& d = dirs[static_cast<size_t>(dir)];
    const Layout& L = layouts[static_cast<size_t>(dir)];
    const int depth = m == Mode::k16 ? CV_16U : m == Mode::kMapped ? CV_32F : CV_8U;
    const int n_src = L.palette ? 1 : L.ncolor;
    const int nwork = (L.palette ? 3 : L.ncolor) + (with_alpha ? 1 : 0);
    work.create(static_cast<int>(window.height), static_cast<int>(window.width), CV_MAKETYPE(depth, nwork));
    int src[4], dst[4];
    int n = 0;
    for (int i = 0; i < n_src; ++i, ++n) {
      src[n] = L.color_src[i];
      dst[n] = i;
    }
    if (with_alpha) {
      src[n] = L.alpha_src;
      dst[n] = nwork - 1;
      ++n;
    }
    const int64_t bx0 = window.x / d.block_width, bx1 = (window.x + window.width - 1) / d.block_width;
    const int64_t by0 = window.y / d.block_height, by1 = (window.y + window.height - 1) / d.block_height;
    for (int64_t by = by0; by <= by1; ++by) {
      for (int64_t bx = bx0; bx <= bx1; ++bx) {
        const int64_t ox = bx * d.block_width, oy = by * d.block_height;
        const int64_t x0 = std::max(window.x, ox), x1 = std::min(window.x + window.width, ox + d.block_width);
        const int64_t y0 = std::max(window.y, oy), y1 = std::min(window.y + window.height, oy + d.block_height);
        const int64_t in_plane = by * L.across + bx;
        // One block per plane used (contiguous: plane 0 has every sample).
        for (int i = 0; i < n; ++i) {
          const int plane = L.separate ? src[i] : 0;
          if (!L.separate && i > 0) break;
          std::shared_ptr<const Block> b = block(dir, plane * L.per_plane + in_plane);
          const int one_src = 0;
          const int* s = L.separate ? &one_src : src;
          const int* t = L.separate ? &dst[i] : dst;
          const int count = L.separate ? 1 : n;
          if (L.palette) {
            if (L.kind == Kind::kU8) {
              copy_palette<uint8_t>(b->data.get(), d.block_width, L.spp_block, x0 - ox, y0 - oy, x1 - x0, y1 - y0,
                                    L.lut, work, x0 - window.x, y0 - window.y);
            } else {
              copy_palette<uint16_t>(b->data.get(), d.block_width, L.spp_block, x0 - ox, y0 - oy, x1 - x0, y1 - y0,
                                     L.lut, work, x0 - window.x, y0 - window.y);
            }
            break;
          }
          switch (m) {
            case Mode::k8:
              copy_any<uint8_t>(L.kind, b->data.get(), d.block_width, L.spp_block, x0 - ox, y0 - oy, x1 - x0, y1 - y0,
                                s, t, count, work, x0 - window.x, y0 - window.y, L.invert, L.type_max);
              break;
            case Mode::k16:
              copy_any<uint16_t>(L.kind, b->data.get(), d.block_width, L.spp_block, x0 - ox, y0 - oy, x1 - x0,
                                 y1 - y0, s, t, count, work, x0 - window.x, y0 - window.y, L.invert, L.type_max);
              break;
            default:
              copy_any<float>(L.kind, b->data.get(), d.block_width, L.spp_block, x0 - ox, y0 - oy, x1 - x0, y1 - y0,
                              s, t, count, work, x0 - window.x, y0 - window.y, L.invert, L.type_max);
              break;
          }
        }
      }
    }
    // Min-is-white alpha must not be inverted: copy_rect inverts every
    // channel it copies, so undo it for the alpha channel.
    if (with_alpha && L.invert) {
      std::vector<cv::Mat> planes;
      cv::split(work, planes);
      cv::Mat& a = planes.back();
      if (depth == CV_32F) {
        a = L.type_max - a;
      } else {
        cv::subtract(cv::Scalar(L.type_max), a, a);
      }
      cv::merge(planes, work);
    }
  }

  /// The [lo, hi] mapped to [0, 255] for non-8-bit samples.
  std::pair<double, double> range(int dir) {
    if (config.to_8bit == "fixed") return {config.range_min, config.range_max};
    std::lock_guard<std::mutex> lock(stats_mutex);
    if (stats_done) return {stats_lo, stats_hi};
    // Statistics of the coarsest level of the pyramid (every level of a
    // pyramid maps alike); a directory outside it uses its own.
    int source = levels.back();
    if (std::find(levels.begin(), levels.end(), dir) == levels.end()) source = dir;
    const Directory& d = dirs[static_cast<size_t>(source)];
    const Layout& L = layouts[static_cast<size_t>(source)];
    const bool percentile = config.to_8bit == "percentile";
    const uint64_t total = static_cast<uint64_t>(d.width) * static_cast<uint64_t>(d.height) * uint64_t(L.ncolor);
    constexpr uint64_t kKeep = uint64_t{1} << 22;
    const uint64_t step = std::max<uint64_t>(1, (total + kKeep - 1) / kKeep);
    std::vector<float> kept;
    uint64_t seen = 0;
    double lo = std::numeric_limits<double>::infinity(), hi = -lo;
    const int64_t band = std::max<int64_t>(1, std::min<int64_t>(d.height, d.block_height));
    // A coarsest level above 2^26 pixels (no overviews) is sampled: every
    // k-th band of blocks, so the statistics cost at most ~2^26 pixels.
    constexpr int64_t kMaxStatsPixels = int64_t{1} << 26;
    const int64_t band_pixels = band * d.width;
    const int64_t bands = (d.height + band - 1) / band;
    const int64_t every = std::max<int64_t>(1, (bands * band_pixels + kMaxStatsPixels - 1) / kMaxStatsPixels);
    cv::Mat work;
    // Windows of a band of blocks, at most ~4 Mpx of floats each (bounded memory).
    const int64_t chunk = std::max<int64_t>(1, (int64_t{1} << 22) / band / d.block_width) * d.block_width;
    for (int64_t y = 0; y < d.height; y += band * every) {
      for (int64_t x = 0; x < d.width; x += chunk) {
        const Window w{x, y, std::min(chunk, d.width - x), std::min(band, d.height - y)};
        fill(source, w, Mode::kMapped, false, work);
        for (int r = 0; r < work.rows; ++r) {
          const float* p = work.ptr<float>(r);
          const int64_t n = int64_t(work.cols) * work.channels();
          for (int64_t i = 0; i < n; ++i, ++seen) {
            const float v = p[i];
            if (!std::isfinite(v)) continue;
            lo = std::min(lo, double(v));
            hi = std::max(hi, double(v));
            if (percentile && seen % step == 0) kept.push_back(v);
          }
        }
      }
    }
    if (percentile && !kept.empty()) {
      auto at_percentile = [&kept](double p) {
        const double rank = p / 100.0 * double(kept.size() - 1);
        const size_t k = static_cast<size_t>(std::floor(rank));
        std::nth_element(kept.begin(), kept.begin() + static_cast<std::ptrdiff_t>(k), kept.end());
        const double a = kept[k];
        if (k + 1 >= kept.size()) return a;
        const double b = *std::min_element(kept.begin() + static_cast<std::ptrdiff_t>(k) + 1, kept.end());
        return a + (b - a) * (rank - double(k));
      };
      lo = at_percentile(config.percentile_low);
      hi = at_percentile(config.percentile_high);
    }
    if (!std::isfinite(lo) || !std::isfinite(hi)) {
      lo = 0;
      hi = 1;
    }
    if (!(hi > lo)) hi = lo + 1;
    stats_lo = lo;
    stats_hi = hi;
    stats_done = true;
    return {lo, hi};
  }

  cv::Mat read(int dir, const Window& window, bool keep_16bit) {
    const Layout& L = layouts[static_cast<size_t>(dir)];
    if (!L.supported) {
      throw InputError(L.reason, L.why, at(path, -1, dir_record(dir)));
    }
    const Mode m = mode(dir, keep_16bit);
    const bool composite = config.alpha == "composite" && L.alpha_src >= 0 && !L.palette;
    cv::Mat work;
    fill(dir, window, m, composite, work);
    const int nc = L.ncolor;
    cv::Mat color, alpha;
    if (composite) {
      color.create(work.rows, work.cols, CV_MAKETYPE(work.depth(), nc));
      alpha.create(work.rows, work.cols, CV_MAKETYPE(work.depth(), 1));
      std::vector<int> from_to;
      for (int i = 0; i < nc; ++i) {
        from_to.push_back(i);
        from_to.push_back(i);
      }
      from_to.push_back(nc);
      from_to.push_back(nc);
      cv::Mat outs[] = {color, alpha};
      cv::mixChannels(&work, 1, outs, 2, from_to.data(), from_to.size() / 2);
    } else {
      color = work;
    }
    cv::Mat out;
    if (m == Mode::kMapped) {
      const auto [lo, hi] = range(dir);
      color.convertTo(out, CV_8U, 255.0 / (hi - lo), -lo * 255.0 / (hi - lo));
    } else {
      out = color;
    }
    if (composite) {
      // alpha in [0, 1] of the sample's range; out = c * a + background * (1 - a).
      cv::Mat a;
      const double amax = m == Mode::k8 ? 255.0 : m == Mode::k16 ? 65535.0 : L.type_max;
      alpha.convertTo(a, CV_32F, 1.0 / amax);
      cv::min(cv::max(a, 0.0), 1.0, a);
      const double bg = out.depth() == CV_16U ? config.alpha_background * 257.0 : config.alpha_background;
      cv::Mat f;
      out.convertTo(f, CV_32F);
      cv::Mat a3;
      if (nc == 3) {
        cv::merge(std::vector<cv::Mat>{a, a, a}, a3);
      } else {
        a3 = a;
      }
      cv::Mat one_minus;
      cv::subtract(cv::Scalar::all(1.0), a3, one_minus);
      cv::Mat blended = f.mul(a3) + one_minus * bg;
      blended.convertTo(out, out.depth());
    }
    return out;
  }

  void check_window(int level, const Window& w) const {
    if (level < 0 || level >= static_cast<int>(levels.size())) {
      throw InputError("bad_window", "level " + std::to_string(level) + " does not exist (the file has " +
                                         std::to_string(levels.size()) + ")",
                       at(path));
    }
    const Directory& d = dirs[static_cast<size_t>(levels[static_cast<size_t>(level)])];
    if (w.width <= 0 || w.height <= 0 || w.x < 0 || w.y < 0 || w.x > d.width - w.width ||
        w.y > d.height - w.height) {
      throw InputError("bad_window",
                       "window (" + std::to_string(w.x) + ", " + std::to_string(w.y) + ", " + std::to_string(w.width) +
                           " x " + std::to_string(w.height) + ") is empty or outside level " + std::to_string(level) +
                           " of " + std::to_string(d.width) + " x " + std::to_string(d.height),
                       at(path, -1, dir_record(d.index)));
    }
    if (config.max_window_pixels > 0 && w.width * w.height > config.max_window_pixels) {
      throw InputError("pixel_limit",
                       "window of " + std::to_string(w.width) + " x " + std::to_string(w.height) +
                           " pixels is above the limit of " + std::to_string(config.max_window_pixels) +
                           " (raster.max_window_pixels)",
                       at(path, -1, dir_record(d.index)));
    }
    if (w.width > INT32_MAX || w.height > INT32_MAX) {
      throw InputError("pixel_limit", "window side above 2^31 - 1", at(path, -1, dir_record(d.index)));
    }
  }
};

// ------------------------------------------------------------------ TiffFile

TiffFile::TiffFile(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
TiffFile::~TiffFile() = default;

std::shared_ptr<TiffFile> TiffFile::open(const std::string& path, const RasterConfig& config,
                                         std::shared_ptr<TileCache> cache) {
  validate(config);
  if (path.empty()) throw InputError("missing_image", "empty image path", at(path));
  auto impl = std::make_unique<Impl>();
  impl->path = path;
  impl->config = config;
  impl->cache = std::move(cache);
  {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int err = errno;
      const bool missing = err == ENOENT || err == ENOTDIR;
      throw InputError(missing ? "missing_image" : "unreadable_image",
                       missing ? "image file not found" : std::string("cannot open image: ") + std::strerror(err),
                       at(path));
    }
    struct Closer {
      int fd;
      ~Closer() { ::close(fd); }
    } closer{fd};
    struct stat st {};
    if (::fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
      throw InputError("unreadable_image", "not a regular file", at(path));
    }
    uint8_t head[16] = {};
    const ssize_t got = ::pread(fd, head, sizeof head, 0);
    if (got < 8 || !is_tiff(head, static_cast<size_t>(got))) {
      throw InputError("corrupt_image", got < 8 ? "file too short for a TIFF header" : "not a TIFF file (bad signature)",
                       at(path, 0));
    }
    impl->file_id = file_identity(st);
  }
  std::unique_ptr<Handle> handle = open_handle(path);
  TIFF* tif = handle->tif;
  impl->big = TIFFIsBigTIFF(tif) != 0;
  constexpr int kMaxDirectories = 4096;
  for (int i = 0; i < kMaxDirectories; ++i) {
    Directory d;
    d.index = i;
    impl->layouts.push_back(read_directory(tif, d));
    impl->dirs.push_back(d);
    handle->clear_messages();
    if (TIFFReadDirectory(tif) != 1) break;  // the last one, or a broken chain: keep those read
  }
  const Layout& first = impl->layouts[0];
  if (!first.supported) throw InputError(first.reason, first.why, at(path, -1, dir_record(0)));
  // Levels: directory 0 and its reduced versions (same aspect within 1%,
  // tiled when directory 0 is, same channels, no label / macro bits).
  const Directory& d0 = impl->dirs[0];
  std::vector<int> levels{0};
  for (size_t i = 1; i < impl->dirs.size(); ++i) {
    const Directory& d = impl->dirs[i];
    if (!impl->layouts[i].supported) continue;
    if ((d.subfile_type & ~uint32_t{FILETYPE_REDUCEDIMAGE}) != 0) continue;
    if (d.width >= d0.width || d.height >= d0.height) continue;
    if (d0.tiled && !d.tiled) continue;  // SVS thumbnail: strips beside a tiled level 0
    if (d.channels != d0.channels || d.samples_per_pixel != d0.samples_per_pixel ||
        d.bits_per_sample != d0.bits_per_sample || d.sample_format != d0.sample_format) {
      continue;
    }
    const double factor = double(d0.width) / double(d.width);
    const double expect_h = double(d0.height) / factor;
    if (std::abs(expect_h - double(d.height)) > std::max(1.0, 0.01 * double(d.height))) continue;
    bool duplicate = false;
    for (int j : levels) duplicate = duplicate || impl->dirs[static_cast<size_t>(j)].width == d.width;
    if (!duplicate) levels.push_back(static_cast<int>(i));
  }
  std::stable_sort(levels.begin(), levels.end(), [&](int a, int b) {
    return impl->dirs[static_cast<size_t>(a)].width > impl->dirs[static_cast<size_t>(b)].width;
  });
  for (int j : levels) {
    Directory& d = impl->dirs[static_cast<size_t>(j)];
    d.is_level = true;
    d.downsample = double(d0.width) / double(d.width);
  }
  impl->levels = std::move(levels);
  handle->dir = -1;  // reselected (with the JPEG colour mode) on first use
  impl->free_handles.push_back(std::move(handle));
  return std::shared_ptr<TiffFile>(new TiffFile(std::move(impl)));
}

const std::string& TiffFile::path() const noexcept { return impl_->path; }
bool TiffFile::big_tiff() const noexcept { return impl_->big; }
const std::vector<Directory>& TiffFile::directories() const noexcept { return impl_->dirs; }
const std::vector<int>& TiffFile::levels() const noexcept { return impl_->levels; }

const Directory& TiffFile::level(int level) const {
  if (level < 0 || level >= static_cast<int>(impl_->levels.size())) {
    throw InputError("bad_window", "level " + std::to_string(level) + " does not exist (the file has " +
                                       std::to_string(impl_->levels.size()) + ")",
                     at(impl_->path));
  }
  return impl_->dirs[static_cast<size_t>(impl_->levels[static_cast<size_t>(level)])];
}

int64_t TiffFile::width() const noexcept { return impl_->dirs[0].width; }
int64_t TiffFile::height() const noexcept { return impl_->dirs[0].height; }

int TiffFile::level_for_downsample(double factor) const noexcept {
  int best = 0;
  for (size_t i = 0; i < impl_->levels.size(); ++i) {
    const double ds = impl_->dirs[static_cast<size_t>(impl_->levels[i])].downsample;
    if (ds <= factor * (1.0 + 1e-9)) best = static_cast<int>(i);  // levels sorted finest first
  }
  return best;
}

cv::Mat TiffFile::read_window(int level, const Window& window, bool keep_16bit) const {
  impl_->check_window(level, window);
  return impl_->read(impl_->levels[static_cast<size_t>(level)], window, keep_16bit);
}

cv::Mat TiffFile::read_level(int level, bool keep_16bit) const {
  const Directory& d = this->level(level);
  return read_window(level, Window{0, 0, d.width, d.height}, keep_16bit);
}

cv::Mat TiffFile::read_region(const Window& window, double downsample) const {
  if (!(downsample > 0) || !std::isfinite(downsample)) {
    throw InputError("bad_window", "downsample " + std::to_string(downsample) + " is not above 0", at(impl_->path));
  }
  impl_->check_window(0, window);
  const int l = level_for_downsample(downsample);
  const Directory& d0 = level(0);
  const Directory& d = level(l);
  const double sx = double(d0.width) / double(d.width), sy = double(d0.height) / double(d.height);
  Window w;
  w.x = std::min<int64_t>(d.width - 1, static_cast<int64_t>(std::floor(double(window.x) / sx)));
  w.y = std::min<int64_t>(d.height - 1, static_cast<int64_t>(std::floor(double(window.y) / sy)));
  const int64_t x1 = std::min<int64_t>(d.width, static_cast<int64_t>(std::ceil(double(window.x + window.width) / sx)));
  const int64_t y1 = std::min<int64_t>(d.height, static_cast<int64_t>(std::ceil(double(window.y + window.height) / sy)));
  w.width = std::max<int64_t>(1, x1 - w.x);
  w.height = std::max<int64_t>(1, y1 - w.y);
  cv::Mat pixels = read_window(l, w);
  const int tw = static_cast<int>(std::ceil(double(window.width) / downsample));
  const int th = static_cast<int>(std::ceil(double(window.height) / downsample));
  if (pixels.cols == tw && pixels.rows == th) return pixels;
  cv::Mat out;
  cv::resize(pixels, out, cv::Size(std::max(1, tw), std::max(1, th)), 0, 0, cv::INTER_AREA);
  return out;
}

uint64_t TiffFile::blocks_decoded() const noexcept { return impl_->decoded.load(std::memory_order_relaxed); }
uint64_t TiffFile::identity() const noexcept { return impl_->file_id; }

// ------------------------------------------------------------------ TiffPool

TiffPool::TiffPool(RasterConfig config, size_t max_open)
    : config_(std::move(config)), max_open_(std::max<size_t>(1, max_open)) {
  validate(config_);
  cache_ = std::make_shared<TileCache>(static_cast<size_t>(config_.tile_cache_mb) << 20);
}

std::shared_ptr<TiffFile> TiffPool::open(const std::string& path) {
  // A file replaced on disk (another inode, size or mtime) is opened anew.
  struct stat st {};
  const uint64_t id = ::stat(path.c_str(), &st) == 0 ? file_identity(st) : 0;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    for (size_t i = 0; i < open_.size(); ++i) {
      if (open_[i].first == path && open_[i].second->identity() != id) {
        open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(i));
        break;
      }
      if (open_[i].first == path) {
        auto entry = std::move(open_[i]);
        open_.erase(open_.begin() + static_cast<std::ptrdiff_t>(i));
        open_.push_back(std::move(entry));
        return open_.back().second;
      }
    }
  }
  std::shared_ptr<TiffFile> file = TiffFile::open(path, config_, cache_);
  std::lock_guard<std::mutex> lock(mutex_);
  for (const auto& entry : open_) {
    if (entry.first == path && entry.second->identity() == file->identity()) return entry.second;  // opened meanwhile
  }
  open_.emplace_back(path, file);
  while (open_.size() > max_open_) open_.erase(open_.begin());
  return file;
}

}  // namespace pasteflow::raster
