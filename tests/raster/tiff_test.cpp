// The raster layer's TIFF window reader: generated layouts x codecs x depths
// x channels x planar configurations, real files (COG JPEG-YCbCr pyramid,
// float BigTIFF, SVS, RGB strips), the tile cache, concurrency, errors and a
// huge sparse image.
#include "pasteflow/raster/tiff.hpp"

#include <gtest/gtest.h>
#include <tiffio.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <unistd.h>
#include <string>
#include <thread>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"
#include "tiff_writer.hpp"

namespace fs = std::filesystem;
using pasteflow::InputError;
using pasteflow::testing::make_pixels;
using pasteflow::testing::rgba_reference;
using pasteflow::testing::TiffSpec;
using pasteflow::testing::write_tiff;
using namespace pasteflow::raster;

namespace {

const std::string kData = std::string(PASTEFLOW_TEST_DATA) + "/tiff/";

// The tests' own libtiff calls (writing, the RGBA reference) would print
// libtiff's warnings (GeoTIFF tags) to stderr; the reader never does.
const bool kQuietLibtiff = [] {
  TIFFSetWarningHandler(nullptr);
  TIFFSetErrorHandler(nullptr);  // TiffHuge opens a cut file with libtiff's eager mode on purpose
  return true;
}();

class TempDir {
 public:
  TempDir() {
    path_ = fs::temp_directory_path() /
            ("pf_raster_" + std::to_string(::getpid()) + "_" + std::to_string(counter_++));
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  std::string file(const std::string& name) const { return (path_ / name).string(); }

 private:
  fs::path path_;
  static inline int counter_ = 0;
};

/// Max absolute difference of two images of the same size and type (-1 when they differ in shape).
double max_diff(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return -1;
  if (a.empty()) return 0;
  cv::Mat d;
  cv::absdiff(a.reshape(1), b.reshape(1), d);
  double hi = 0;
  cv::minMaxLoc(d, nullptr, &hi);
  return hi;
}

std::string shape(const cv::Mat& m) {
  return std::to_string(m.cols) + "x" + std::to_string(m.rows) + " type " + std::to_string(m.type());
}

cv::Rect rect(const Window& w) {
  return cv::Rect(static_cast<int>(w.x), static_cast<int>(w.y), static_cast<int>(w.width), static_cast<int>(w.height));
}

/// Windows of every kind for an image of w x h with blocks of bw x bh.
std::vector<Window> windows_for(int64_t w, int64_t h, int64_t bw, int64_t bh) {
  std::vector<Window> out;
  out.push_back({0, 0, w, h});                                            // whole image
  out.push_back({1, 1, std::min<int64_t>(3, bw - 2), std::min<int64_t>(3, bh - 2)});  // inside one block
  out.push_back({bw - 3, bh - 2, std::min<int64_t>(7, w - bw + 3), std::min<int64_t>(5, h - bh + 2)});  // across
  out.push_back({w - 5, h - 4, 5, 4});                                    // touching the right and bottom edges
  out.push_back({0, h / 2, w, 1});                                        // one full row
  out.push_back({w / 3, 0, 1, h});                                        // one full column
  out.push_back({w - 1, h - 1, 1, 1});                                    // the last pixel
  std::vector<Window> valid;
  for (const Window& v : out) {
    if (v.width > 0 && v.height > 0 && v.x >= 0 && v.y >= 0 && v.x + v.width <= w && v.y + v.height <= h) {
      valid.push_back(v);
    }
  }
  return valid;
}

/// What the reader must return for lossless pixels written with `s`.
cv::Mat expected_pixels(const TiffSpec& s, const cv::Mat& written, const RasterConfig& config, bool keep_16bit) {
  const int colors = s.spp >= 3 ? 3 : 1;
  cv::Mat color(written.rows, written.cols, CV_MAKETYPE(written.depth(), colors));
  std::vector<int> from_to;
  for (int c = 0; c < colors; ++c) {
    from_to.push_back(c);
    from_to.push_back(c);
  }
  cv::mixChannels(&written, 1, &color, 1, from_to.data(), static_cast<size_t>(colors));
  if (written.depth() == CV_8U || (written.depth() == CV_16U && keep_16bit)) return color;
  cv::Mat out;
  const double scale = 255.0 / (config.range_max - config.range_min);
  color.convertTo(out, CV_8U, scale, -config.range_min * scale);
  return out;
}

RasterConfig config_for(const TiffSpec& s) {
  RasterConfig c;
  if (s.sample_format == SAMPLEFORMAT_IEEEFP) {
    c.range_min = 0;
    c.range_max = 1;
  } else if (s.sample_format == SAMPLEFORMAT_INT) {
    c.range_min = -30000;
    c.range_max = 30000;
  }
  return c;
}

/// Opens `path`, checks every window against the full read and `expected` (when given).
void check_windows(const std::string& path, const RasterConfig& config, bool keep_16bit, const cv::Mat& expected,
                   double tolerance = 0) {
  auto file = TiffFile::open(path, config, std::make_shared<TileCache>(size_t{4} << 20));
  const Directory& d = file->level(0);
  const cv::Mat full = file->read_level(0, keep_16bit);
  ASSERT_EQ(full.cols, d.width);
  ASSERT_EQ(full.rows, d.height);
  ASSERT_EQ(full.channels(), d.channels);
  if (!expected.empty()) {
    const double diff = max_diff(full, expected);
    ASSERT_GE(diff, 0) << shape(full) << " vs " << shape(expected);
    ASSERT_LE(diff, tolerance);
  }
  for (const Window& w : windows_for(d.width, d.height, d.block_width, d.block_height)) {
    const cv::Mat got = file->read_window(0, w, keep_16bit);
    SCOPED_TRACE("window " + std::to_string(w.x) + "," + std::to_string(w.y) + " " + std::to_string(w.width) + "x" +
                 std::to_string(w.height));
    ASSERT_EQ(max_diff(got, full(rect(w))), 0.0) << shape(got);
  }
}

bool codec(int compression) { return TIFFIsCODECConfigured(static_cast<uint16_t>(compression)) != 0; }

}  // namespace

// ------------------------------------------------------------------ generated layouts

TEST(TiffLayouts, LosslessCodecsDepthsChannelsPlanarEveryWindowEqualsWrittenPixels) {
  TempDir dir;
  const int compressions[] = {COMPRESSION_NONE, COMPRESSION_LZW, COMPRESSION_ADOBE_DEFLATE, COMPRESSION_ZSTD,
                              COMPRESSION_PACKBITS};
  struct Depth {
    int bits, format;
  };
  const Depth depths[] = {{8, SAMPLEFORMAT_UINT}, {16, SAMPLEFORMAT_UINT}, {32, SAMPLEFORMAT_IEEEFP},
                          {16, SAMPLEFORMAT_INT}};
  int n = 0;
  for (bool tiled : {true, false}) {
    for (int compression : compressions) {
      ASSERT_TRUE(codec(compression)) << "libtiff lacks codec " << compression;
      for (const Depth& depth : depths) {
        for (int spp : {1, 3, 4}) {
          for (int planar : {PLANARCONFIG_CONTIG, PLANARCONFIG_SEPARATE}) {
            if (spp == 1 && planar == PLANARCONFIG_SEPARATE) continue;
            TiffSpec s;
            s.tiled = tiled;
            s.compression = compression;
            s.bits = depth.bits;
            s.sample_format = depth.format;
            s.spp = spp;
            s.planar = planar;
            s.big = (n % 3) == 1;
            if (compression == COMPRESSION_LZW || compression == COMPRESSION_ADOBE_DEFLATE ||
                compression == COMPRESSION_ZSTD) {
              s.predictor = depth.format == SAMPLEFORMAT_IEEEFP ? PREDICTOR_FLOATINGPOINT : PREDICTOR_HORIZONTAL;
            }
            SCOPED_TRACE(s.name());
            const cv::Mat pixels = make_pixels(s);
            const std::string path = dir.file("case" + std::to_string(n++) + ".tif");
            write_tiff(path, s, pixels);
            const RasterConfig config = config_for(s);
            for (bool keep : {false, true}) {
              check_windows(path, config, keep, expected_pixels(s, pixels, config, keep));
              if (HasFatalFailure()) return;
            }
            auto file = TiffFile::open(path, config, nullptr);
            EXPECT_EQ(file->big_tiff(), s.big);
            EXPECT_EQ(file->level(0).tiled, tiled);
            EXPECT_EQ(file->level(0).planar, planar);
            EXPECT_EQ(file->level(0).predictor, s.predictor);
            EXPECT_EQ(file->read_level(0, true).depth(), depth.bits == 16 && depth.format == SAMPLEFORMAT_UINT
                                                             ? CV_16U
                                                             : CV_8U);
          }
        }
      }
    }
  }
  EXPECT_EQ(n, 2 * 5 * 4 * 5);
}

TEST(TiffLayouts, JpegTilesAndStripsEqualLibtiffsRgbaReader) {
  TempDir dir;
  ASSERT_TRUE(codec(COMPRESSION_JPEG));
  int n = 0;
  for (bool tiled : {true, false}) {
    for (int kind = 0; kind < 3; ++kind) {  // grey, RGB photometric, YCbCr
      TiffSpec s;
      s.width = 101;
      s.height = 75;
      s.tiled = tiled;
      s.rows_per_strip = 16;
      s.compression = COMPRESSION_JPEG;
      s.spp = kind == 0 ? 1 : 3;
      s.ycbcr = kind == 2;
      SCOPED_TRACE(s.name());
      const cv::Mat pixels = make_pixels(s, /*smooth=*/true);
      const std::string path = dir.file("jpeg" + std::to_string(n++) + ".tif");
      write_tiff(path, s, pixels);
      cv::Mat reference = rgba_reference(path);
      ASSERT_FALSE(reference.empty());
      if (s.spp == 1) cv::cvtColor(reference, reference, cv::COLOR_RGB2GRAY);  // R = G = B
      check_windows(path, RasterConfig{}, false, reference);
      if (HasFatalFailure()) return;
      // And close to what was written (lossy).
      auto file = TiffFile::open(path, RasterConfig{}, nullptr);
      cv::Mat diff;
      cv::absdiff(file->read_level(0), pixels, diff);
      EXPECT_LT(cv::mean(diff)[0], 6.0);
    }
  }
}

TEST(TiffLayouts, PaletteMinIsWhiteGreyAlphaAndComposite) {
  TempDir dir;
  // Palette with a 16-bit colormap (values >> 8) and with an 8-bit one (kept).
  for (bool eight_bit_map : {false, true}) {
    TiffSpec s;
    s.photometric = PHOTOMETRIC_PALETTE;
    s.compression = COMPRESSION_ADOBE_DEFLATE;
    s.colormap.resize(3 * 256);
    for (int i = 0; i < 256; ++i) {
      const int r = i, g = 255 - i, b = (i * 7) % 256;
      s.colormap[i] = static_cast<uint16_t>(eight_bit_map ? r : r * 257);
      s.colormap[256 + i] = static_cast<uint16_t>(eight_bit_map ? g : g * 256 + 3);
      s.colormap[512 + i] = static_cast<uint16_t>(eight_bit_map ? b : b << 8);
    }
    const cv::Mat index = make_pixels(s);
    const std::string path = dir.file(std::string("palette") + (eight_bit_map ? "8" : "16") + ".tif");
    write_tiff(path, s, index);
    cv::Mat expected(index.size(), CV_8UC3);
    for (int y = 0; y < index.rows; ++y) {
      for (int x = 0; x < index.cols; ++x) {
        const int i = index.at<uint8_t>(y, x);
        expected.at<cv::Vec3b>(y, x) = cv::Vec3b(uint8_t(i), uint8_t(255 - i), uint8_t((i * 7) % 256));
      }
    }
    check_windows(path, RasterConfig{}, false, expected);
    EXPECT_EQ(max_diff(TiffFile::open(path, {}, nullptr)->read_level(0), rgba_reference(path)), 0.0);
  }
  // Min-is-white: inverted.
  {
    TiffSpec s;
    s.photometric = PHOTOMETRIC_MINISWHITE;
    s.compression = COMPRESSION_LZW;
    const cv::Mat pixels = make_pixels(s);
    const std::string path = dir.file("white.tif");
    write_tiff(path, s, pixels);
    cv::Mat expected = 255 - pixels;
    check_windows(path, RasterConfig{}, false, expected);
  }
  // Grey + alpha and RGBA: dropped, or composited over the background.
  for (int spp_planar : {2, 4, -2, -4}) {  // negative: planar separate
    const int spp = std::abs(spp_planar);
    TiffSpec s;
    s.spp = spp;
    s.planar = spp_planar < 0 ? PLANARCONFIG_SEPARATE : PLANARCONFIG_CONTIG;
    s.tiled = spp_planar != 4;
    s.photometric = spp == 2 ? PHOTOMETRIC_MINISBLACK : PHOTOMETRIC_RGB;
    s.compression = COMPRESSION_ADOBE_DEFLATE;
    const cv::Mat pixels = make_pixels(s);
    const std::string path = dir.file("alpha" + std::to_string(spp_planar) + ".tif");
    SCOPED_TRACE(s.name());
    write_tiff(path, s, pixels);
    const int colors = spp == 2 ? 1 : 3;
    std::vector<cv::Mat> planes;
    cv::split(pixels, planes);
    cv::Mat alpha = planes.back();
    planes.pop_back();
    cv::Mat color;
    cv::merge(planes, color);
    check_windows(path, RasterConfig{}, false, color);
    RasterConfig composite;
    composite.alpha = "composite";
    composite.alpha_background = 200;
    cv::Mat expected(pixels.size(), CV_8UC(colors));
    for (int y = 0; y < pixels.rows; ++y) {
      for (int x = 0; x < pixels.cols; ++x) {
        const double a = alpha.at<uint8_t>(y, x) / 255.0;
        for (int c = 0; c < colors; ++c) {
          const double v = color.ptr<uint8_t>(y)[x * colors + c];
          expected.ptr<uint8_t>(y)[x * colors + c] = cv::saturate_cast<uint8_t>(v * a + 200.0 * (1.0 - a));
        }
      }
    }
    check_windows(path, composite, false, expected, /*tolerance=*/1);
  }
}

TEST(TiffLayouts, MinIsWhiteWithAlphaInvertsTheGreyNotTheAlpha) {
  TempDir dir;
  TiffSpec s;
  s.spp = 2;
  s.bits = 16;
  s.photometric = PHOTOMETRIC_MINISWHITE;
  s.compression = COMPRESSION_LZW;
  s.predictor = PREDICTOR_HORIZONTAL;
  const cv::Mat pixels = make_pixels(s);
  const std::string path = dir.file("white_alpha.tif");
  write_tiff(path, s, pixels);
  RasterConfig composite;
  composite.alpha = "composite";
  composite.alpha_background = 0;
  cv::Mat expected(pixels.size(), CV_16UC1);
  for (int y = 0; y < pixels.rows; ++y) {
    for (int x = 0; x < pixels.cols; ++x) {
      const cv::Vec2w v = pixels.at<cv::Vec2w>(y, x);
      const double a = v[1] / 65535.0;
      expected.at<uint16_t>(y, x) = cv::saturate_cast<uint16_t>((65535.0 - v[0]) * a);
    }
  }
  check_windows(path, composite, /*keep_16bit=*/true, expected, /*tolerance=*/1);
}

TEST(TiffLayouts, MinmaxAndPercentileMapTheImagesStatistics) {
  TempDir dir;
  TiffSpec s;
  s.bits = 16;
  s.compression = COMPRESSION_ZSTD;
  cv::Mat pixels(s.height, s.width, CV_16UC1);
  // Values 1000..1000 + width*height - 1, one each: percentiles are known.
  for (int y = 0; y < s.height; ++y) {
    for (int x = 0; x < s.width; ++x) pixels.at<uint16_t>(y, x) = static_cast<uint16_t>(1000 + y * s.width + x);
  }
  const std::string path = dir.file("stats.tif");
  write_tiff(path, s, pixels);
  const double n = double(s.width) * s.height;
  RasterConfig minmax;
  minmax.to_8bit = "minmax";
  cv::Mat expected;
  pixels.convertTo(expected, CV_8U, 255.0 / (n - 1), -1000.0 * 255.0 / (n - 1));
  check_windows(path, minmax, false, expected);
  RasterConfig pct;
  pct.to_8bit = "percentile";
  pct.percentile_low = 10;
  pct.percentile_high = 90;
  const double lo = 1000 + 0.10 * (n - 1), hi = 1000 + 0.90 * (n - 1);
  pixels.convertTo(expected, CV_8U, 255.0 / (hi - lo), -lo * 255.0 / (hi - lo));
  check_windows(path, pct, false, expected, /*tolerance=*/1);  // float32 rounding of the scale
}

TEST(TiffLayouts, PyramidLevelsSkipThumbnailLabelAndMacro) {
  TempDir dir;
  const std::string path = dir.file("pyramid.tif");
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(tif, nullptr);
  auto add = [&](int w, int h, bool tiled, uint32_t subfile) {
    TiffSpec s;
    s.width = w;
    s.height = h;
    s.tiled = tiled;
    s.subfile_type = subfile;
    s.compression = COMPRESSION_ADOBE_DEFLATE;
    pasteflow::testing::write_directory(tif, s, make_pixels(s));
    ASSERT_EQ(TIFFWriteDirectory(tif), 1);
  };
  add(400, 200, true, 0);   // 0 level 0
  add(100, 50, false, 0);   // 1 SVS-like thumbnail: strips beside a tiled level 0
  add(200, 100, true, 0);   // 2 level (SVS levels have no subfile type)
  add(150, 120, true, 1);   // 3 label: another aspect ratio
  add(50, 25, true, 1);     // 4 COG overview
  add(100, 50, true, 9);    // 5 macro (subfile type bits other than 1)
  add(101, 50, true, 1);    // 6 level (aspect within 1%)
  TIFFClose(tif);
  auto file = TiffFile::open(path, {}, nullptr);
  ASSERT_EQ(file->directories().size(), 7u);
  EXPECT_EQ(file->levels(), (std::vector<int>{0, 2, 6, 4}));
  EXPECT_DOUBLE_EQ(file->level(1).downsample, 2.0);
  EXPECT_DOUBLE_EQ(file->level(3).downsample, 8.0);
  EXPECT_FALSE(file->directories()[1].is_level);
  EXPECT_FALSE(file->directories()[3].is_level);
  EXPECT_FALSE(file->directories()[5].is_level);
  EXPECT_EQ(file->level_for_downsample(0.5), 0);
  EXPECT_EQ(file->level_for_downsample(1.9), 0);
  EXPECT_EQ(file->level_for_downsample(2.0), 1);
  EXPECT_EQ(file->level_for_downsample(3.9), 1);
  EXPECT_EQ(file->level_for_downsample(4.0), 2);
  EXPECT_EQ(file->level_for_downsample(100), 3);
  EXPECT_EQ(file->width(), 400);
  EXPECT_EQ(file->height(), 200);
}

// ------------------------------------------------------------------ real files

TEST(TiffRealFiles, CogJpegYcbcrPyramidEqualsLibtiffRgbaAndWindowsEqualFullRead) {
  const std::string path = kData + "cog_hirise_mars.tif";
  auto file = TiffFile::open(path, {}, std::make_shared<TileCache>(size_t{64} << 20));
  ASSERT_EQ(file->levels().size(), 3u);
  EXPECT_EQ(file->width(), 1118);
  EXPECT_EQ(file->height(), 1683);
  EXPECT_NEAR(file->level(1).downsample, 2.0, 1e-9);
  EXPECT_EQ(file->level(0).photometric, PHOTOMETRIC_YCBCR);
  for (int l = 0; l < 3; ++l) {
    const cv::Mat reference = rgba_reference(path, file->levels()[static_cast<size_t>(l)]);
    ASSERT_FALSE(reference.empty());
    EXPECT_EQ(max_diff(file->read_level(l), reference), 0.0) << "level " << l;
  }
  check_windows(path, {}, false, rgba_reference(path, 0));
  // read_region: a level-0 window at downsample 2 comes from level 1.
  const Window w{200, 300, 400, 600};
  const cv::Mat region = file->read_region(w, 2.0);
  EXPECT_EQ(region.cols, 200);
  EXPECT_EQ(region.rows, 300);
  cv::Mat shrunk;
  cv::resize(file->read_window(0, w), shrunk, cv::Size(200, 300), 0, 0, cv::INTER_AREA);
  cv::Mat diff;
  cv::absdiff(region, shrunk, diff);
  EXPECT_LT(cv::mean(diff)[0], 8.0);
}

TEST(TiffRealFiles, FloatBigTiffEqualsOpenCvsReadMapped) {
  const std::string path = kData + "cog_nonearth.tif";
  RasterConfig config;
  config.range_min = -5000;  // a fixed range around the data
  config.range_max = 5000;
  auto file = TiffFile::open(path, config, nullptr);
  EXPECT_TRUE(file->big_tiff());
  ASSERT_EQ(file->levels().size(), 2u);
  EXPECT_EQ(file->level(0).sample_format, SampleFormat::kFloat);
  const cv::Mat raw = cv::imread(path, cv::IMREAD_UNCHANGED);
  ASSERT_EQ(raw.type(), CV_32FC1);
  cv::Mat expected;
  raw.convertTo(expected, CV_8U, 255.0 / 10000.0, 5000 * 255.0 / 10000.0);
  check_windows(path, config, false, expected);
  // minmax: finite values of the coarsest level map to 0..255.
  RasterConfig minmax;
  minmax.to_8bit = "minmax";
  check_windows(path, minmax, false, {});
  double lo = 0, hi = 0;
  cv::minMaxLoc(TiffFile::open(path, minmax, nullptr)->read_level(1), &lo, &hi);
  EXPECT_EQ(lo, 0);
  EXPECT_EQ(hi, 255);
}

TEST(TiffRealFiles, SvsHasOneLevelAndEqualsLibtiffRgba) {
  const std::string path = kData + "small_HE.svs";
  auto file = TiffFile::open(path, {}, std::make_shared<TileCache>(size_t{64} << 20));
  ASSERT_EQ(file->directories().size(), 4u);
  EXPECT_EQ(file->levels(), std::vector<int>{0});  // thumbnail (strips), label, macro are not levels
  EXPECT_FALSE(file->directories()[1].tiled);
  EXPECT_EQ(file->directories()[3].subfile_type, 9u);
  check_windows(path, {}, false, rgba_reference(path, 0));
}

TEST(TiffRealFiles, RgbStripsEqualOpenCv) {
  const std::string path = kData + "201404_13SED190110_201404_0x1500m_CL_1.tif";
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_FALSE(bgr.empty());
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  check_windows(path, {}, false, rgb);
}

// ------------------------------------------------------------------ cache

TEST(TiffCache, CapRespectedHitsCountedTinyCapStillCorrect) {
  const std::string path = kData + "cog_hirise_mars.tif";
  const cv::Mat full = TiffFile::open(path, {}, nullptr)->read_level(0);
  // A tile is 512 x 512 x 3 bytes = 768 KiB; a cap of 2 MiB holds two.
  auto cache = std::make_shared<TileCache>(size_t{2} << 20);
  auto file = TiffFile::open(path, {}, cache);
  const Window w{100, 100, 300, 200};  // inside tile 0
  cv::Mat a = file->read_window(0, w);
  const auto s1 = cache->stats();
  EXPECT_EQ(s1.misses, 1u);
  EXPECT_EQ(s1.hits, 0u);
  cv::Mat b = file->read_window(0, w);
  const auto s2 = cache->stats();
  EXPECT_EQ(s2.hits, 1u);
  EXPECT_EQ(file->blocks_decoded(), 1u);
  EXPECT_EQ(max_diff(a, b), 0.0);
  const cv::Mat all = file->read_level(0);  // 3 x 4 tiles through a 2-tile cache
  EXPECT_EQ(max_diff(all, full), 0.0);
  const auto s3 = cache->stats();
  EXPECT_LE(s3.peak_bytes, s3.max_bytes);
  EXPECT_LE(s3.bytes, s3.max_bytes);
  EXPECT_GT(s3.evictions, 0u);
  EXPECT_GT(s3.hit_rate(), 0.0);
  // A cap below one tile: nothing kept, pixels still right.
  auto tiny = std::make_shared<TileCache>(1000);
  auto small = TiffFile::open(path, {}, tiny);
  EXPECT_EQ(max_diff(small->read_level(0), full), 0.0);
  EXPECT_EQ(max_diff(small->read_window(0, {500, 500, 100, 700}), full(cv::Rect(500, 500, 100, 700))), 0.0);
  EXPECT_EQ(tiny->stats().bytes, 0u);
  EXPECT_EQ(tiny->stats().hits, 0u);
  // Two files of one pool share the cache; the pool gives the open file back.
  RasterConfig config;
  config.tile_cache_mb = 8;
  TiffPool pool(config);
  auto p1 = pool.open(path);
  EXPECT_EQ(pool.open(path).get(), p1.get());
  p1->read_window(0, w);
  EXPECT_EQ(pool.cache()->stats().misses, 1u);
  p1->read_window(0, w);
  EXPECT_EQ(pool.cache()->stats().hits, 1u);
  EXPECT_EQ(pool.cache()->stats().max_bytes, size_t{8} << 20);
}

// ------------------------------------------------------------------ concurrency

TEST(TiffConcurrency, ManyThreadsReadTheSamePixelsAsOne) {
  const std::string path = kData + "cog_hirise_mars.tif";
  const cv::Mat full = TiffFile::open(path, {}, nullptr)->read_level(0);
  RasterConfig config;
  config.tile_cache_mb = 1;  // evictions while threads read
  TiffPool pool(config);
  auto file = pool.open(path);
  std::vector<std::thread> threads;
  std::vector<int> bad(8, 0);
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      uint32_t state = 12345u + static_cast<uint32_t>(t);
      auto next = [&state](uint32_t n) {
        state = state * 1664525u + 1013904223u;
        return (state >> 8) % n;
      };
      for (int i = 0; i < 25; ++i) {
        const int64_t w = 1 + next(600), h = 1 + next(600);
        const int64_t x = next(static_cast<uint32_t>(full.cols - w + 1));
        const int64_t y = next(static_cast<uint32_t>(full.rows - h + 1));
        const cv::Mat got = file->read_window(0, {x, y, w, h});
        if (max_diff(got, full(cv::Rect(int(x), int(y), int(w), int(h)))) != 0.0) ++bad[static_cast<size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 8; ++t) EXPECT_EQ(bad[static_cast<size_t>(t)], 0) << "thread " << t;
}

TEST(TiffConcurrency, StatisticsComputedOnceWhileThreadsRead) {
  // minmax on a float BigTIFF: the first windows of several threads race to
  // compute the statistics; every thread must map alike.
  const std::string path = kData + "cog_nonearth.tif";
  RasterConfig config;
  config.to_8bit = "minmax";
  const cv::Mat full = TiffFile::open(path, config, nullptr)->read_level(0);
  auto file = TiffFile::open(path, config, std::make_shared<TileCache>(size_t{1} << 20));
  std::vector<std::thread> threads;
  std::vector<int> bad(6, 0);
  for (int t = 0; t < 6; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 10; ++i) {
        const Window w{(t * 97 + i * 31) % 800, (t * 53 + i * 71) % 800, 80, 60};
        if (max_diff(file->read_window(0, w), full(rect(w))) != 0.0) ++bad[static_cast<size_t>(t)];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 6; ++t) EXPECT_EQ(bad[static_cast<size_t>(t)], 0) << "thread " << t;
}

// ------------------------------------------------------------------ errors

namespace {

InputError expect_error(const std::function<void()>& f, const std::string& reason) {
  try {
    f();
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), reason) << e.what();
    return e;
  }
  ADD_FAILURE() << "no InputError (" << reason << ")";
  return InputError("none", "none");
}

void copy_prefix(const std::string& from, const std::string& to, size_t n) {
  std::ifstream in(from, std::ios::binary);
  std::vector<char> bytes(n);
  in.read(bytes.data(), static_cast<std::streamsize>(n));
  std::ofstream out(to, std::ios::binary);
  out.write(bytes.data(), in.gcount());
}

/// Where the values of array tag `tag` of directory 0 of a classic
/// little-endian TIFF are (inline or not), and their size (2 SHORT, 4 LONG).
struct TagValues {
  size_t at = 0;
  int size = 0;
};
TagValues tag_values(const std::vector<uint8_t>& b, uint16_t tag) {
  auto u16 = [&](size_t p) { return size_t(b[p]) | size_t(b[p + 1]) << 8; };
  auto u32 = [&](size_t p) { return u16(p) | u16(p + 2) << 16; };
  const size_t ifd = u32(4);
  const size_t n = u16(ifd);
  for (size_t e = 0; e < n; ++e) {
    const size_t at = ifd + 2 + 12 * e;
    if (u16(at) != tag) continue;
    const int size = u16(at + 2) == 3 ? 2 : 4;
    const size_t count = u32(at + 4);
    return {count * size_t(size) <= 4 ? at + 8 : u32(at + 8), size};
  }
  return {};
}

uint32_t get_value(const std::vector<uint8_t>& b, const TagValues& v, size_t i) {
  uint32_t x = 0;
  for (int k = 0; k < v.size; ++k) x |= uint32_t(b[v.at + i * size_t(v.size) + size_t(k)]) << (8 * k);
  return x;
}

void set_value(std::vector<uint8_t>& b, const TagValues& v, size_t i, uint32_t x) {
  for (int k = 0; k < v.size; ++k) b[v.at + i * size_t(v.size) + size_t(k)] = static_cast<uint8_t>(x >> (8 * k));
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void write_all(const std::string& path, const std::vector<uint8_t>& b) {
  std::ofstream out(path, std::ios::binary);
  out.write(reinterpret_cast<const char*>(b.data()), static_cast<std::streamsize>(b.size()));
}

bool has(const InputError& e, const std::string& text) { return std::string(e.what()).find(text) != std::string::npos; }

}  // namespace

TEST(TiffErrors, TruncatedRealTiffNamesFileDirectoryAndTile) {
  TempDir dir;
  const std::string cut = dir.file("cut_hirise.tif");
  copy_prefix(kData + "cog_hirise_mars.tif", cut, 200000);  // of 367937: the directories are at the front
  auto file = TiffFile::open(cut, {}, nullptr);
  const InputError e = expect_error([&] { file->read_level(0); }, "corrupt_image");
  EXPECT_TRUE(has(e, cut)) << e.what();
  EXPECT_TRUE(has(e, "directory 0, tile ")) << e.what();
  EXPECT_TRUE(has(e, "past the end of the file")) << e.what();
  EXPECT_GE(e.where().byte_offset, 0);
  // The tiles before the cut still read.
  const cv::Mat ok = file->read_window(2, {0, 0, 10, 10});
  EXPECT_EQ(ok.cols, 10);
  // Cut inside the directories: the open fails, naming the file.
  const std::string tiny = dir.file("tiny.tif");
  copy_prefix(kData + "small_HE.svs", tiny, 12);
  const InputError e2 = expect_error([&] { TiffFile::open(tiny, {}, nullptr); }, "corrupt_image");
  EXPECT_TRUE(has(e2, tiny)) << e2.what();
  // Not a TIFF at all.
  const std::string png = dir.file("not.tif");
  write_all(png, {0x89, 'P', 'N', 'G', 0x0D, 0x0A, 0x1A, 0x0A, 0, 0});
  expect_error([&] { TiffFile::open(png, {}, nullptr); }, "corrupt_image");
  expect_error([&] { TiffFile::open(dir.file("missing.tif"), {}, nullptr); }, "missing_image");
}

TEST(TiffErrors, CorruptTileOffsetAndTileDataNameTheTile) {
  TempDir dir;
  TiffSpec s;
  s.compression = COMPRESSION_ADOBE_DEFLATE;
  const std::string path = dir.file("good.tif");
  write_tiff(path, s, make_pixels(s));
  std::vector<uint8_t> bytes = read_all(path);
  const TagValues offsets = tag_values(bytes, TIFFTAG_TILEOFFSETS);
  ASSERT_EQ(offsets.size, 4);
  // Tile 5's offset points far past the end of the file.
  std::vector<uint8_t> bad_offset = bytes;
  set_value(bad_offset, offsets, 5, 0x7F000000u);
  const std::string p1 = dir.file("bad_offset.tif");
  write_all(p1, bad_offset);
  auto f1 = TiffFile::open(p1, {}, nullptr);
  const InputError e1 = expect_error([&] { f1->read_level(0); }, "corrupt_image");
  EXPECT_TRUE(has(e1, p1)) << e1.what();
  EXPECT_TRUE(has(e1, "directory 0, tile 5")) << e1.what();
  EXPECT_NO_THROW(f1->read_window(0, {0, 0, 32, 16}));  // tile 0 is intact
  // Tile 2's compressed bytes overwritten: the codec's error names tile 2.
  const size_t tile2 = get_value(bytes, offsets, 2);
  std::vector<uint8_t> bad_data = bytes;
  for (size_t i = 0; i < 16; ++i) bad_data[tile2 + i] = static_cast<uint8_t>(0xA5 ^ i);
  const std::string p2 = dir.file("bad_data.tif");
  write_all(p2, bad_data);
  const InputError e2 =
      expect_error([&] { TiffFile::open(p2, {}, nullptr)->read_window(0, {64, 0, 5, 5}); }, "corrupt_image");
  EXPECT_TRUE(has(e2, "directory 0, tile 2")) << e2.what();
  EXPECT_TRUE(has(e2, "libtiff")) << e2.what();
}

TEST(TiffErrors, JpegTileCutShortIsCorruptNotGreyPadding) {
  // libjpeg pads a cut scan with grey and only warns: the reader must refuse.
  TempDir dir;
  TiffSpec s;
  s.width = 64;
  s.height = 32;
  s.compression = COMPRESSION_JPEG;
  s.spp = 3;
  s.ycbcr = true;
  s.tile_w = s.tile_h = 32;
  const std::string path = dir.file("jpeg.tif");
  write_tiff(path, s, make_pixels(s));
  std::vector<uint8_t> bytes = read_all(path);
  const TagValues counts = tag_values(bytes, TIFFTAG_TILEBYTECOUNTS);
  ASSERT_GT(counts.size, 0);
  set_value(bytes, counts, 1, get_value(bytes, counts, 1) / 2);  // tile 1 cut in half
  const std::string cut = dir.file("jpeg_cut.tif");
  write_all(cut, bytes);
  auto file = TiffFile::open(cut, {}, nullptr);
  EXPECT_NO_THROW(file->read_window(0, {0, 0, 32, 32}));  // tile 0 intact
  const InputError e = expect_error([&] { file->read_window(0, {32, 0, 32, 32}); }, "corrupt_image");
  EXPECT_TRUE(has(e, "directory 0, tile 1")) << e.what();
}

TEST(TiffErrors, UnsupportedBitsBadWindowsAndPixelLimit) {
  TempDir dir;
  for (int bits : {1, 4, 12}) {
    const std::string path = dir.file("bits" + std::to_string(bits) + ".tif");
    TIFF* tif = TIFFOpen(path.c_str(), "w");
    ASSERT_NE(tif, nullptr);
    TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, 16u);
    TIFFSetField(tif, TIFFTAG_IMAGELENGTH, 4u);
    TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, uint16_t(bits));
    TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, uint16_t(1));
    TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, uint16_t(PHOTOMETRIC_MINISBLACK));
    TIFFSetField(tif, TIFFTAG_ROWSPERSTRIP, 4u);
    std::vector<uint8_t> row(64, 0x5A);
    for (uint32_t y = 0; y < 4; ++y) TIFFWriteScanline(tif, row.data(), y, 0);
    TIFFClose(tif);
    const InputError e = expect_error([&] { TiffFile::open(path, {}, nullptr); }, "unsupported_image");
    EXPECT_TRUE(has(e, path)) << e.what();
    EXPECT_TRUE(has(e, "directory 0")) << e.what();
    EXPECT_TRUE(has(e, std::to_string(bits) + "-bit")) << e.what();
  }
  const std::string path = kData + "cog_hirise_mars.tif";
  auto file = TiffFile::open(path, {}, nullptr);
  expect_error([&] { file->read_window(0, {-1, 0, 10, 10}); }, "bad_window");
  expect_error([&] { file->read_window(0, {1110, 0, 10, 10}); }, "bad_window");
  expect_error([&] { file->read_window(0, {0, 0, 0, 10}); }, "bad_window");
  expect_error([&] { file->read_window(3, {0, 0, 10, 10}); }, "bad_window");
  expect_error([&] { file->read_window(2, {0, 0, 280, 420}); }, "bad_window");  // level 2 is 279 x 420
  RasterConfig small;
  small.max_window_pixels = 100 * 100;
  auto limited = TiffFile::open(path, small, nullptr);
  expect_error([&] { limited->read_window(0, {0, 0, 101, 100}); }, "pixel_limit");
  // A 10 x 10 window inside a 512 x 512 tile: the tile itself is above the limit.
  const InputError e = expect_error([&] { limited->read_window(0, {0, 0, 10, 10}); }, "pixel_limit");
  EXPECT_TRUE(has(e, "directory 0, tile 0")) << e.what();
  RasterConfig wrong;
  wrong.to_8bit = "log";
  EXPECT_THROW(validate(wrong), pasteflow::ConfigError);
  wrong = RasterConfig{};
  wrong.percentile_low = 60;
  wrong.percentile_high = 40;
  EXPECT_THROW(validate(wrong), pasteflow::ConfigError);
}

// ------------------------------------------------------------------ huge and sparse

TEST(TiffHuge, HundredThousandSquaredOpensAndReadsAWindowQuickly) {
  TempDir dir;
  const std::string path = dir.file("huge.tif");
  const uint32_t side = 100000, tile = 1024;
  const uint32_t across = (side + tile - 1) / tile;
  pasteflow::testing::write_huge_tiled(path, side, tile);
  const auto start = std::chrono::steady_clock::now();
  auto file = TiffFile::open(path, {}, std::make_shared<TileCache>(size_t{16} << 20));
  EXPECT_EQ(file->width(), side);
  EXPECT_TRUE(file->big_tiff());
  // A window across four tiles near the far corner.
  const Window w{side - 1500, side - 1200, 1000, 900};
  const cv::Mat got = file->read_window(0, w);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  EXPECT_EQ(file->blocks_decoded(), 4u);  // only the tiles touching the window
  for (int r = 0; r < got.rows; ++r) {
    const uint8_t expect = static_cast<uint8_t>(((w.y + r) % tile) % 251);
    ASSERT_EQ(got.at<uint8_t>(r, 0), expect) << "row " << r;
    ASSERT_EQ(got.at<uint8_t>(r, got.cols - 1), expect) << "row " << r;
  }
  // Open + read touches 4 of 9604 tiles; generous bound for a loaded machine.
  EXPECT_LT(seconds, 5.0);
  // On-demand strile loading: cut the file inside its TileOffsets array
  // (libtiff writes it last) keeping 2048 of the 9604 entries. Loading the
  // whole array at open (libtiff's plain "r" mode) fails; the reader opens
  // it and reads the first tiles, and names the tile it cannot locate.
  uint64_t offsets_at = 0;
  {
    std::ifstream in(path, std::ios::binary);
    uint64_t ifd = 0, entries = 0;
    in.seekg(8);
    in.read(reinterpret_cast<char*>(&ifd), 8);
    in.seekg(static_cast<std::streamoff>(ifd));
    in.read(reinterpret_cast<char*>(&entries), 8);
    for (uint64_t e = 0; e < entries; ++e) {
      uint16_t tag = 0, type = 0;
      uint64_t count = 0, value = 0;
      in.read(reinterpret_cast<char*>(&tag), 2);
      in.read(reinterpret_cast<char*>(&type), 2);
      in.read(reinterpret_cast<char*>(&count), 8);
      in.read(reinterpret_cast<char*>(&value), 8);
      if (tag == TIFFTAG_TILEOFFSETS) offsets_at = value;
    }
  }
  ASSERT_GT(offsets_at, 0u);
  const uintmax_t file_size = fs::file_size(path);
  ASSERT_GT(file_size, offsets_at + 8 * 4096);  // the array is at the end
  fs::resize_file(path, offsets_at + 8 * 2048);
  TIFF* whole_arrays = TIFFOpen(path.c_str(), "r");
  EXPECT_EQ(whole_arrays, nullptr) << "libtiff's eager mode should fail on the cut array";
  if (whole_arrays != nullptr) TIFFClose(whole_arrays);
  auto cut = TiffFile::open(path, {}, nullptr);
  const cv::Mat first = cut->read_window(0, {0, 0, 1000, 900});
  EXPECT_EQ(first.at<uint8_t>(5, 0), 5);
  const InputError e = expect_error([&] { cut->read_window(0, {side - 10, side - 10, 10, 10}); }, "corrupt_image");
  EXPECT_TRUE(has(e, "directory 0, tile " + std::to_string(across * across - 1))) << e.what();
  std::cout << "[ figures  ] 100000 x 100000 BigTIFF (" << file_size / 1024
            << " KiB): open + 1000 x 900 window in " << seconds * 1000 << " ms\n";
}
