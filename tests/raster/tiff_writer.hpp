// Test helper: writes TIFFs of any layout with libtiff (tiled or striped,
// any codec, planar contiguous or separate, BigTIFF), with deterministic
// pixels, and reads references back through libtiff's own RGBA reader.
#pragma once

#include <tiffio.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgproc.hpp>

namespace pasteflow::testing {

struct TiffSpec {
  int width = 83;
  int height = 61;
  int spp = 1;
  int bits = 8;
  int sample_format = SAMPLEFORMAT_UINT;
  int photometric = -1;  ///< -1: min-is-black for 1-2 samples, RGB for 3+
  int compression = COMPRESSION_NONE;
  int predictor = 1;
  int planar = PLANARCONFIG_CONTIG;
  bool tiled = true;
  int tile_w = 32;
  int tile_h = 16;
  int rows_per_strip = 7;
  bool big = false;
  int jpeg_quality = 90;
  bool ycbcr = false;  ///< JPEG: store YCbCr (photometric 6, JPEGCOLORMODE RGB on write)
  std::vector<uint16_t> colormap;  ///< palette: 3 * 2^bits entries (r..., g..., b...)
  uint32_t subfile_type = 0;

  std::string name() const {
    return std::to_string(width) + "x" + std::to_string(height) + " spp" + std::to_string(spp) + " bits" +
           std::to_string(bits) + " fmt" + std::to_string(sample_format) + " comp" + std::to_string(compression) +
           " pred" + std::to_string(predictor) + " planar" + std::to_string(planar) +
           (tiled ? " tiled " + std::to_string(tile_w) + "x" + std::to_string(tile_h)
                  : " strips " + std::to_string(rows_per_strip)) +
           (big ? " bigtiff" : "") + (ycbcr ? " ycbcr" : "");
  }
};

/// Deterministic sample values: a smooth ramp plus a hash, in the type's range
/// (JPEG-friendly when `smooth`).
inline cv::Mat make_pixels(const TiffSpec& s, bool smooth = false) {
  const int depth = s.sample_format == SAMPLEFORMAT_IEEEFP ? CV_32F
                    : s.bits == 16 ? (s.sample_format == SAMPLEFORMAT_INT ? CV_16S : CV_16U)
                                   : CV_8U;
  cv::Mat m(s.height, s.width, CV_MAKETYPE(depth, s.spp));
  for (int y = 0; y < s.height; ++y) {
    for (int x = 0; x < s.width; ++x) {
      for (int c = 0; c < s.spp; ++c) {
        uint32_t h = static_cast<uint32_t>(x) * 73856093u ^ static_cast<uint32_t>(y) * 19349663u ^
                     static_cast<uint32_t>(c) * 83492791u;
        h = (h ^ (h >> 13)) * 0x5bd1e995u;
        h ^= h >> 15;
        const double ramp = double((x * 3 + y * 2 + c * 40) % 256) / 255.0;
        const double noise = double(h % 1000) / 999.0;
        const double v = smooth ? ramp : 0.5 * ramp + 0.5 * noise;
        const size_t i = static_cast<size_t>(x) * s.spp + c;
        switch (depth) {
          case CV_8U: m.ptr<uint8_t>(y)[i] = static_cast<uint8_t>(v * 255.0 + 0.5); break;
          case CV_16U: m.ptr<uint16_t>(y)[i] = static_cast<uint16_t>(v * 65535.0 + 0.5); break;
          case CV_16S: m.ptr<int16_t>(y)[i] = static_cast<int16_t>(v * 60000.0 - 30000.0); break;
          default: m.ptr<float>(y)[i] = static_cast<float>(v); break;
        }
      }
    }
  }
  return m;
}

/// Writes `pixels` (rows x cols, spp interleaved channels) as the current
/// directory of `tif` (the caller calls TIFFWriteDirectory or TIFFClose).
inline void write_directory(TIFF* tif, const TiffSpec& s, const cv::Mat& pixels) {
  const int photometric = s.photometric >= 0 ? s.photometric
                          : s.ycbcr          ? PHOTOMETRIC_YCBCR
                          : s.spp >= 3       ? PHOTOMETRIC_RGB
                                             : PHOTOMETRIC_MINISBLACK;
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, uint32_t(s.width));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, uint32_t(s.height));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, uint16_t(s.spp));
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t(s.bits));
  TIFFSetField(tif, TIFFTAG_SAMPLEFORMAT, uint16_t(s.sample_format));
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, uint16_t(photometric));
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, uint16_t(s.planar));
  TIFFSetField(tif, TIFFTAG_COMPRESSION, uint16_t(s.compression));
  if (s.subfile_type != 0) TIFFSetField(tif, TIFFTAG_SUBFILETYPE, s.subfile_type);
  if (s.predictor != 1) TIFFSetField(tif, TIFFTAG_PREDICTOR, uint16_t(s.predictor));
  if (s.compression == COMPRESSION_JPEG) {
    TIFFSetField(tif, TIFFTAG_JPEGQUALITY, s.jpeg_quality);
    if (s.ycbcr) TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
  }
  if (s.spp == 2 || s.spp == 4) {
    const uint16_t extra[] = {EXTRASAMPLE_UNASSALPHA};
    TIFFSetField(tif, TIFFTAG_EXTRASAMPLES, uint16_t(1), extra);
  }
  if (photometric == PHOTOMETRIC_PALETTE) {
    const size_t n = size_t{1} << s.bits;
    TIFFSetField(tif, TIFFTAG_COLORMAP, s.colormap.data(), s.colormap.data() + n, s.colormap.data() + 2 * n);
  }
  const size_t bytes = static_cast<size_t>(s.bits / 8);
  const int planes = s.planar == PLANARCONFIG_SEPARATE ? s.spp : 1;
  const int spp_block = s.planar == PLANARCONFIG_SEPARATE ? 1 : s.spp;
  auto sample_at = [&](int x, int y, int c, uint8_t* to) {
    std::memcpy(to, pixels.ptr<uint8_t>(y) + (static_cast<size_t>(x) * s.spp + c) * bytes, bytes);
  };
  if (s.tiled) {
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, uint32_t(s.tile_w));
    TIFFSetField(tif, TIFFTAG_TILELENGTH, uint32_t(s.tile_h));
    std::vector<uint8_t> tile(static_cast<size_t>(s.tile_w) * s.tile_h * spp_block * bytes);
    for (int p = 0; p < planes; ++p) {
      for (int ty = 0; ty < s.height; ty += s.tile_h) {
        for (int tx = 0; tx < s.width; tx += s.tile_w) {
          std::fill(tile.begin(), tile.end(), 0);
          for (int y = 0; y < s.tile_h && ty + y < s.height; ++y) {
            for (int x = 0; x < s.tile_w && tx + x < s.width; ++x) {
              for (int c = 0; c < spp_block; ++c) {
                sample_at(tx + x, ty + y, planes > 1 ? p : c,
                          &tile[((static_cast<size_t>(y) * s.tile_w + x) * spp_block + c) * bytes]);
              }
            }
          }
          if (TIFFWriteTile(tif, tile.data(), uint32_t(tx), uint32_t(ty), 0, uint16_t(p)) < 0) {
            throw std::runtime_error("TIFFWriteTile failed for " + s.name());
          }
        }
      }
    }
  } else {
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, uint32_t(s.rows_per_strip));
    std::vector<uint8_t> row(static_cast<size_t>(s.width) * spp_block * bytes);
    for (int p = 0; p < planes; ++p) {
      for (int y = 0; y < s.height; ++y) {
        for (int x = 0; x < s.width; ++x) {
          for (int c = 0; c < spp_block; ++c) {
            sample_at(x, y, planes > 1 ? p : c, &row[(static_cast<size_t>(x) * spp_block + c) * bytes]);
          }
        }
        if (TIFFWriteScanline(tif, row.data(), uint32_t(y), uint16_t(p)) < 0) {
          throw std::runtime_error("TIFFWriteScanline failed for " + s.name());
        }
      }
    }
  }
}

/// Writes a one-directory TIFF.
inline void write_tiff(const std::string& path, const TiffSpec& s, const cv::Mat& pixels) {
  TIFF* tif = TIFFOpen(path.c_str(), s.big ? "w8" : "w");
  if (tif == nullptr) throw std::runtime_error("cannot write " + path);
  try {
    write_directory(tif, s, pixels);
  } catch (...) {
    TIFFClose(tif);
    throw;
  }
  TIFFClose(tif);
}

/// A `side` x `side` 8-bit grey BigTIFF of `tile` x `tile` Deflate tiles,
/// every tile the same (row y of a tile holds (y % 251)): one tile is
/// compressed once and written raw for all, so a 100000 x 100000 image takes
/// well under a second to write (30 MB).
inline void write_huge_tiled(const std::string& path, uint32_t side, uint32_t tile) {
  auto header = [&](TIFF* tif) {
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, side);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, side);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t(8));
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, uint16_t(1));
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, uint16_t(PHOTOMETRIC_MINISBLACK));
    TIFFSetField(tif, TIFFTAG_COMPRESSION, uint16_t(COMPRESSION_ADOBE_DEFLATE));
    TIFFSetField(tif, TIFFTAG_TILEWIDTH, tile);
    TIFFSetField(tif, TIFFTAG_TILELENGTH, tile);
  };
  // Compress the pattern tile once (through a one-tile file), read it back raw.
  std::vector<uint8_t> raw;
  {
    const std::string one = path + ".one";
    TIFF* tif = TIFFOpen(one.c_str(), "w");
    if (tif == nullptr) throw std::runtime_error("cannot write " + one);
    header(tif);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, tile);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, tile);
    std::vector<uint8_t> pattern(size_t{tile} * tile);
    for (uint32_t y = 0; y < tile; ++y) std::fill_n(&pattern[size_t{y} * tile], tile, uint8_t(y % 251));
    TIFFWriteEncodedTile(tif, 0, pattern.data(), static_cast<tmsize_t>(pattern.size()));
    TIFFClose(tif);
    tif = TIFFOpen(one.c_str(), "r");
    if (tif == nullptr) throw std::runtime_error("cannot read " + one);
    raw.resize(TIFFGetStrileByteCount(tif, 0));
    TIFFReadRawTile(tif, 0, raw.data(), static_cast<tmsize_t>(raw.size()));
    TIFFClose(tif);
    std::remove(one.c_str());
  }
  TIFF* tif = TIFFOpen(path.c_str(), "w8");
  if (tif == nullptr) throw std::runtime_error("cannot write " + path);
  header(tif);
  const uint32_t across = (side + tile - 1) / tile;
  for (uint32_t t = 0; t < across * across; ++t) {
    if (TIFFWriteRawTile(tif, t, raw.data(), static_cast<tmsize_t>(raw.size())) != static_cast<tmsize_t>(raw.size())) {
      TIFFClose(tif);
      throw std::runtime_error("TIFFWriteRawTile failed");
    }
  }
  TIFFClose(tif);
}

/// libtiff's own RGBA reader of directory `dir` (TIFFReadRGBAImageOriented):
/// an independent 8-bit RGB reference (JPEG YCbCr converted by libjpeg).
inline cv::Mat rgba_reference(const std::string& path, int dir = 0) {
  TIFF* tif = TIFFOpen(path.c_str(), "r");
  if (tif == nullptr) return {};
  if (TIFFSetDirectory(tif, static_cast<tdir_t>(dir)) != 1) {
    TIFFClose(tif);
    return {};
  }
  uint32_t w = 0, h = 0;
  TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
  TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
  cv::Mat rgba(static_cast<int>(h), static_cast<int>(w), CV_8UC4);
  const int ok = TIFFReadRGBAImageOriented(tif, w, h, reinterpret_cast<uint32_t*>(rgba.data), ORIENTATION_TOPLEFT, 0);
  TIFFClose(tif);
  if (ok != 1) return {};
  // Packed ABGR in a uint32 = bytes R, G, B, A on a little-endian host.
  cv::Mat rgb;
  cv::cvtColor(rgba, rgb, cv::COLOR_RGBA2RGB);
  return rgb;
}

}  // namespace pasteflow::testing
