// TiffWriter: pyramidal tiled BigTIFF written band by band, read back with
// libtiff directly (TIFFReadEncodedTile), tile by tile.
#include "pasteflow/raster/tiff_writer.hpp"

#include <gtest/gtest.h>
#include <tiffio.h>
#include <unistd.h>

#include <cstdarg>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/temp_dir.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/raster/tiff.hpp"

namespace fs = std::filesystem;
using pasteflow::raster::pyramid_sizes;
using pasteflow::raster::TiffCompression;
using pasteflow::raster::TiffWriter;
using pasteflow::raster::TiffWriterOptions;

namespace {

struct TempDir : pasteflow::testing::ScratchDir {
  TempDir() : ScratchDir("tiff_writer") {}
};

/// A real photo (RGB) tiled to w x h (mirrored copies), so the content is
/// natural (JPEG tolerances mean something) and exact tests see real noise.
cv::Mat photo(int w, int h, int channels) {
  cv::Mat bgr = cv::imread(std::string(PASTEFLOW_TEST_DATA) + "/images/000000070133.jpg", cv::IMREAD_COLOR);
  EXPECT_FALSE(bgr.empty());
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  cv::Mat big;
  cv::copyMakeBorder(rgb, big, 0, std::max(0, h - rgb.rows), 0, std::max(0, w - rgb.cols), cv::BORDER_REFLECT_101);
  cv::Mat out = big(cv::Rect(0, 0, w, h)).clone();
  if (channels == 1) cv::cvtColor(out, out, cv::COLOR_RGB2GRAY);
  return out;
}

/// Level k of `full`: INTER_AREA to the pyramid's size.
std::vector<cv::Mat> levels_of(const cv::Mat& full, int64_t tile) {
  std::vector<cv::Mat> out;
  for (const auto& [w, h] : pyramid_sizes(full.cols, full.rows, tile)) {
    cv::Mat m;
    if (w == full.cols && h == full.rows) {
      m = full;
    } else {
      cv::resize(full, m, cv::Size(int(w), int(h)), 0, 0, cv::INTER_AREA);
    }
    out.push_back(m);
  }
  return out;
}

void write_all(TiffWriter& writer, const std::vector<cv::Mat>& levels) {
  const int64_t t = writer.options().tile;
  for (int l = 0; l < writer.levels(); ++l) {
    ASSERT_EQ(writer.current_level(), l);
    for (int64_t b = 0; b < writer.bands(l); ++b) {
      const int rows = static_cast<int>(writer.band_rows(l, b));
      writer.write_band(levels[size_t(l)](cv::Rect(0, int(b * t), levels[size_t(l)].cols, rows)));
    }
  }
  EXPECT_TRUE(writer.complete());
  writer.finish(false);
}

int quiet_handler(TIFF*, void*, const char*, const char*, va_list) { return 1; }

struct ReadBack {
  uint32_t width = 0, height = 0, tile_w = 0, tile_h = 0, subfile = 0;
  uint16_t compression = 0, photometric = 0, spp = 0, bps = 0, predictor = 0;
  cv::Mat pixels;
};

/// Every directory of `path`, pixels assembled from TIFFReadEncodedTile.
std::vector<ReadBack> read_back(const std::string& path, bool* big_tiff) {
  std::vector<ReadBack> out;
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, quiet_handler, nullptr);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, quiet_handler, nullptr);
  TIFF* tif = TIFFOpenExt(path.c_str(), "r", opts);
  TIFFOpenOptionsFree(opts);
  EXPECT_NE(tif, nullptr);
  if (tif == nullptr) return out;
  *big_tiff = TIFFIsBigTIFF(tif) != 0;
  do {
    ReadBack r;
    EXPECT_TRUE(TIFFIsTiled(tif));
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &r.width);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &r.height);
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &r.tile_w);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &r.tile_h);
    TIFFGetFieldDefaulted(tif, TIFFTAG_SUBFILETYPE, &r.subfile);
    TIFFGetField(tif, TIFFTAG_COMPRESSION, &r.compression);
    TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &r.photometric);
    TIFFGetField(tif, TIFFTAG_SAMPLESPERPIXEL, &r.spp);
    TIFFGetField(tif, TIFFTAG_BITSPERSAMPLE, &r.bps);
    TIFFGetFieldDefaulted(tif, TIFFTAG_PREDICTOR, &r.predictor);
    if (r.compression == COMPRESSION_JPEG && r.photometric == PHOTOMETRIC_YCBCR) {
      TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);
    }
    const int ch = r.spp;
    r.pixels = cv::Mat(int(r.height), int(r.width), CV_8UC(ch));
    std::vector<uint8_t> tile(size_t(r.tile_w) * r.tile_h * ch);
    for (uint32_t y = 0; y < r.height; y += r.tile_h) {
      for (uint32_t x = 0; x < r.width; x += r.tile_w) {
        const tmsize_t n = TIFFReadEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), tile.data(),
                                               static_cast<tmsize_t>(tile.size()));
        EXPECT_EQ(n, static_cast<tmsize_t>(tile.size())) << "tile at " << x << "," << y;
        const uint32_t cw = std::min(r.tile_w, r.width - x), chh = std::min(r.tile_h, r.height - y);
        for (uint32_t row = 0; row < chh; ++row) {
          std::memcpy(r.pixels.ptr<uint8_t>(int(y + row)) + size_t(x) * ch, tile.data() + size_t(row) * r.tile_w * ch,
                      size_t(cw) * ch);
        }
      }
    }
    out.push_back(std::move(r));
  } while (TIFFReadDirectory(tif) == 1);
  TIFFClose(tif);
  return out;
}

double psnr(const cv::Mat& a, const cv::Mat& b) { return cv::PSNR(a, b); }

struct Case {
  TiffCompression compression;
  int channels;
};

class TiffWriterRoundTrip : public ::testing::TestWithParam<Case> {};

TEST_P(TiffWriterRoundTrip, PyramidReadsBackAsWritten) {
  const Case c = GetParam();
  TempDir dir;
  const std::string path = dir.file("out.tif");
  const int64_t tile = 128;
  const cv::Mat full = photo(700, 451, c.channels);  // edge tiles on both axes
  const std::vector<cv::Mat> levels = levels_of(full, tile);
  ASSERT_EQ(levels.size(), 4u);  // 700x451, 350x226, 175x113, 88x57

  TiffWriterOptions o;
  o.width = full.cols;
  o.height = full.rows;
  o.channels = c.channels;
  o.tile = tile;
  o.compression = c.compression;
  o.quality = 92;
  {
    TiffWriter writer(path, o);
    EXPECT_EQ(writer.levels(), 4);
    EXPECT_EQ(writer.bands(0), 4);
    EXPECT_EQ(writer.band_rows(0, 3), 451 - 3 * 128);
    write_all(writer, levels);
  }
  ASSERT_TRUE(fs::exists(path));  // finished: kept

  bool big = false;
  const std::vector<ReadBack> dirs = read_back(path, &big);
  EXPECT_TRUE(big);
  ASSERT_EQ(dirs.size(), levels.size());
  for (size_t l = 0; l < dirs.size(); ++l) {
    SCOPED_TRACE("directory " + std::to_string(l));
    const ReadBack& r = dirs[l];
    EXPECT_EQ(r.width, uint32_t(levels[l].cols));
    EXPECT_EQ(r.height, uint32_t(levels[l].rows));
    EXPECT_EQ(r.tile_w, uint32_t(tile));
    EXPECT_EQ(r.tile_h, uint32_t(tile));
    EXPECT_EQ(r.subfile, l == 0 ? 0u : uint32_t(FILETYPE_REDUCEDIMAGE));
    EXPECT_EQ(r.spp, c.channels);
    EXPECT_EQ(r.bps, 8);
    switch (c.compression) {
      case TiffCompression::kNone:
        EXPECT_EQ(r.compression, COMPRESSION_NONE);
        break;
      case TiffCompression::kDeflate:
        EXPECT_EQ(r.compression, COMPRESSION_ADOBE_DEFLATE);
        EXPECT_EQ(r.predictor, PREDICTOR_HORIZONTAL);
        break;
      case TiffCompression::kJpeg:
        EXPECT_EQ(r.compression, COMPRESSION_JPEG);
        EXPECT_EQ(r.photometric, c.channels == 3 ? PHOTOMETRIC_YCBCR : PHOTOMETRIC_MINISBLACK);
        break;
    }
    if (c.compression != TiffCompression::kJpeg) {
      EXPECT_EQ(r.photometric, c.channels == 3 ? PHOTOMETRIC_RGB : PHOTOMETRIC_MINISBLACK);
      EXPECT_EQ(cv::norm(r.pixels, levels[l], cv::NORM_INF), 0.0);  // lossless: exact
    } else {
      // JPEG quality 92 (4:2:0 chroma for RGB): close, not equal.
      EXPECT_GT(psnr(r.pixels, levels[l]), 30.0);
      cv::Mat diff;
      cv::absdiff(r.pixels, levels[l], diff);
      EXPECT_LT(cv::mean(diff)[0], 4.0);
      EXPECT_GT(cv::norm(r.pixels, levels[l], cv::NORM_INF), 0.0);  // really lossy, really compared
    }
  }
}

// The raster reader sees the written pyramid as levels (reduced-resolution
// directories, downsample 2^k) and reads windows across tile edges equal to
// the written pixels (Deflate: exactly).
TEST(TiffWriter, RasterReaderSeesThePyramid) {
  TempDir dir;
  const std::string path = dir.file("pyr.tif");
  const cv::Mat full = photo(1000, 600, 3);
  const std::vector<cv::Mat> levels = levels_of(full, 256);
  TiffWriterOptions o;
  o.width = 1000;
  o.height = 600;
  o.tile = 256;
  {
    TiffWriter writer(path, o);
    write_all(writer, levels);
  }
  const auto file = pasteflow::raster::TiffFile::open(path, pasteflow::raster::RasterConfig{}, nullptr);
  EXPECT_TRUE(file->big_tiff());
  ASSERT_EQ(file->levels().size(), levels.size());  // 1000x600, 500x300, 250x150
  for (size_t l = 0; l < levels.size(); ++l) {
    const pasteflow::raster::Directory& d = file->level(int(l));
    EXPECT_EQ(d.width, levels[l].cols);
    EXPECT_EQ(d.height, levels[l].rows);
    EXPECT_TRUE(d.tiled);
    EXPECT_EQ(d.block_width, 256);
    EXPECT_EQ(d.subfile_type, l == 0 ? 0u : 1u);
    EXPECT_NEAR(d.downsample, double(1 << l), 0.01);
  }
  EXPECT_EQ(file->level_for_downsample(2.5), 1);
  const pasteflow::raster::Window w{200, 100, 400, 300};  // crosses tile edges at 256 and 512
  EXPECT_EQ(cv::norm(file->read_window(0, w), full(cv::Rect(200, 100, 400, 300)), cv::NORM_INF), 0.0);
  EXPECT_EQ(cv::norm(file->read_level(2), levels[2], cv::NORM_INF), 0.0);
}

INSTANTIATE_TEST_SUITE_P(Compressions, TiffWriterRoundTrip,
                         ::testing::Values(Case{TiffCompression::kNone, 3}, Case{TiffCompression::kDeflate, 3},
                                           Case{TiffCompression::kDeflate, 1}, Case{TiffCompression::kJpeg, 3},
                                           Case{TiffCompression::kJpeg, 1}),
                         [](const ::testing::TestParamInfo<Case>& info) {
                           return std::string(to_string(info.param.compression)) + "_" +
                                  std::to_string(info.param.channels) + "ch";
                         });

TEST(TiffWriter, PyramidSizesHalveUntilOneTile) {
  const auto s = pyramid_sizes(50000, 50000, 512);
  ASSERT_EQ(s.size(), 8u);  // 50000 -> 25000 -> 12500 -> 6250 -> 3125 -> 1563 -> 782 -> 391
  EXPECT_EQ(s[5].first, 1563);
  EXPECT_EQ(s.back().first, 391);
  EXPECT_EQ(pyramid_sizes(512, 100, 512).size(), 1u);
  EXPECT_EQ(pyramid_sizes(513, 100, 512).size(), 2u);
  EXPECT_EQ(pyramid_sizes(5000, 100, 512, false).size(), 1u);
}

TEST(TiffWriter, SingleLevelWhenPyramidOff) {
  TempDir dir;
  const cv::Mat full = photo(300, 200, 3);
  TiffWriterOptions o;
  o.width = 300;
  o.height = 200;
  o.tile = 64;
  o.pyramid = false;
  o.big_tiff = false;
  {
    TiffWriter writer(dir.file("a.tif"), o);
    ASSERT_EQ(writer.levels(), 1);
    write_all(writer, {full});
  }
  bool big = true;
  const auto dirs = read_back(dir.file("a.tif"), &big);
  EXPECT_FALSE(big);
  ASSERT_EQ(dirs.size(), 1u);
  EXPECT_EQ(cv::norm(dirs[0].pixels, full, cv::NORM_INF), 0.0);
}

TEST(TiffWriter, RefusesANonEmptyFileAndLeavesIt) {
  TempDir dir;
  const std::string path = dir.file("user.tif");
  { std::ofstream(path) << "precious"; }
  TiffWriterOptions o;
  o.width = o.height = 64;
  o.tile = 16;
  try {
    TiffWriter writer(path, o);
    FAIL() << "expected output_exists";
  } catch (const pasteflow::Error& e) {
    EXPECT_EQ(e.reason(), "output_exists");
    EXPECT_EQ(e.where().file, path);
  }
  std::ifstream in(path);
  std::string text;
  in >> text;
  EXPECT_EQ(text, "precious");
}

TEST(TiffWriter, WritesIntoAnEmptyFileItIsGiven) {
  TempDir dir;
  const std::string path = dir.file("given.tif");
  { std::ofstream touch(path); }
  TiffWriterOptions o;
  o.width = 40;
  o.height = 20;
  o.tile = 16;
  o.pyramid = false;
  const cv::Mat full = photo(40, 20, 3);
  {
    TiffWriter writer(path, o);
    write_all(writer, {full});
  }
  bool big = false;
  const auto dirs = read_back(path, &big);
  ASSERT_EQ(dirs.size(), 1u);
  EXPECT_EQ(cv::norm(dirs[0].pixels, full, cv::NORM_INF), 0.0);
}

TEST(TiffWriter, WrongBandAndEarlyFinishAreErrorsAndAnUnfinishedFileIsRemoved) {
  TempDir dir;
  const std::string path = dir.file("partial.tif");
  TiffWriterOptions o;
  o.width = 100;
  o.height = 50;
  o.tile = 32;
  {
    TiffWriter writer(path, o);
    ASSERT_TRUE(fs::exists(path));
    try {
      writer.write_band(cv::Mat(31, 100, CV_8UC3, cv::Scalar::all(0)));  // band 0 has 32 rows
      FAIL() << "expected bad_band";
    } catch (const pasteflow::Error& e) {
      EXPECT_EQ(e.reason(), "bad_band");
      EXPECT_NE(e.where().record.find("directory 0, band 0"), std::string::npos);
    }
    EXPECT_THROW(writer.write_band(cv::Mat(32, 100, CV_8UC1, cv::Scalar::all(0))), pasteflow::Error);
    writer.write_band(cv::Mat(32, 100, CV_8UC3, cv::Scalar::all(7)));
    EXPECT_EQ(writer.current_band(), 1);
    try {
      writer.finish(false);
      FAIL() << "expected incomplete";
    } catch (const pasteflow::Error& e) {
      EXPECT_EQ(e.reason(), "incomplete");
    }
  }
  EXPECT_FALSE(fs::exists(path));
}

TEST(TiffWriter, OptionsOutOfRangeAreConfigErrors) {
  TempDir dir;
  auto refused = [&](TiffWriterOptions o, const std::string& key) {
    try {
      TiffWriter writer(dir.file("x.tif"), o);
      ADD_FAILURE() << "accepted " << key;
    } catch (const pasteflow::ConfigError& e) {
      EXPECT_EQ(e.where().key, key);
    }
    EXPECT_FALSE(fs::exists(dir.file("x.tif")));
  };
  TiffWriterOptions ok;
  ok.width = ok.height = 64;
  TiffWriterOptions o = ok;
  o.tile = 100;  // not a multiple of 16
  refused(o, "tiff.tile");
  o = ok;
  o.channels = 2;
  refused(o, "tiff.channels");
  o = ok;
  o.quality = 0;
  refused(o, "tiff.quality");
  o = ok;
  o.width = 0;
  refused(o, "tiff.width");
  EXPECT_EQ(pasteflow::raster::parse_tiff_compression("jpeg"), TiffCompression::kJpeg);
  EXPECT_THROW(pasteflow::raster::parse_tiff_compression("lzw"), pasteflow::ConfigError);
}

}  // namespace
