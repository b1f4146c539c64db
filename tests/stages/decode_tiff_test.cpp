// The decode stage reads TIFFs through the raster layer: whole images
// (decode, decode_bytes, Sample) and windows (decode_window), with the
// decoder's checks (max_pixels, size_mismatch, colour, 16-bit) and errors
// naming the directory and tile.
#include <gtest/gtest.h>
#include <tiffio.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"
#include "pasteflow/stages/decode.hpp"
#include "raster/tiff_writer.hpp"

namespace fs = std::filesystem;
using pasteflow::InputError;
using pasteflow::stages::DecodeConfig;
using pasteflow::stages::Decoder;
using pasteflow::stages::Sample;
namespace raster = pasteflow::raster;
using pasteflow::testing::make_pixels;
using pasteflow::testing::TiffSpec;
using pasteflow::testing::write_tiff;

namespace {

const std::string kTiff = std::string(PASTEFLOW_TEST_DATA) + "/tiff/";
const std::string kImages = std::string(PASTEFLOW_TEST_DATA) + "/images/";

class DecodeTiff : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("pf_decode_tiff_" + std::to_string(::getpid()));
    fs::create_directories(dir_);
    TIFFSetWarningHandler(nullptr);  // the tests' own libtiff writes
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string file(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

double max_diff(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return -1;
  cv::Mat d;
  cv::absdiff(a.reshape(1), b.reshape(1), d);
  double hi = 0;
  cv::minMaxLoc(d, nullptr, &hi);
  return hi;
}

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

bool has(const std::exception& e, const std::string& text) {
  return std::string(e.what()).find(text) != std::string::npos;
}

std::vector<uint8_t> read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::vector<uint8_t>(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

}  // namespace

TEST_F(DecodeTiff, RealTiffsDecodeAsTheRasterLayerReadsThem) {
  // A COG with JPEG-YCbCr tiles and a pyramid: level 0, RGB.
  const std::string cog = kTiff + "cog_hirise_mars.tif";
  const cv::Mat rgb = Decoder().decode(cog, 1118, 1683);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(max_diff(rgb, pasteflow::testing::rgba_reference(cog, 0)), 0.0);
  // color grey / keep.
  DecodeConfig grey;
  grey.color = "grey";
  cv::Mat expect_grey;
  cv::cvtColor(rgb, expect_grey, cv::COLOR_RGB2GRAY);
  EXPECT_EQ(max_diff(Decoder(grey).decode(cog), expect_grey), 0.0);
  DecodeConfig keep;
  keep.color = "keep";
  EXPECT_EQ(Decoder(keep).decode(cog).type(), CV_8UC3);
  expect_error([&] { Decoder().decode(cog, 1000, 1683); }, "size_mismatch");
  DecodeConfig small;
  small.max_pixels = 1000 * 1000;
  expect_error([&] { Decoder(small).decode(cog); }, "pixel_limit");
  // RGB strips: what OpenCV decodes (BGR -> RGB).
  const std::string strips = kTiff + "201404_13SED190110_201404_0x1500m_CL_1.tif";
  cv::Mat bgr = cv::imread(strips, cv::IMREAD_COLOR);
  cv::Mat expect;
  cv::cvtColor(bgr, expect, cv::COLOR_BGR2RGB);
  EXPECT_EQ(max_diff(Decoder().decode(strips), expect), 0.0);
  // In memory: the same pixels; errors name the given name.
  const std::vector<uint8_t> bytes = read_all(strips);
  EXPECT_EQ(max_diff(Decoder().decode_bytes(bytes, "mem.tif"), expect), 0.0);
}

TEST_F(DecodeTiff, SixteenBitKeptOrScaledAsBeforeAndFloatMapped) {
  TiffSpec s;
  s.bits = 16;
  s.spp = 3;
  s.tiled = true;
  s.compression = COMPRESSION_ADOBE_DEFLATE;
  s.predictor = PREDICTOR_HORIZONTAL;
  const cv::Mat pixels = make_pixels(s);  // RGB order as written
  const std::string path = file("deep.tif");
  write_tiff(path, s, pixels);
  DecodeConfig keep;
  keep.keep_16bit = true;
  const cv::Mat kept = Decoder(keep).decode(path);
  ASSERT_EQ(kept.type(), CV_16UC3);
  EXPECT_EQ(max_diff(kept, pixels), 0.0);
  DecodeConfig eight;
  eight.keep_16bit = false;
  cv::Mat expect;
  pixels.convertTo(expect, CV_8U, 255.0 / 65535.0);  // the decoder's rule for 16-bit PNGs too
  EXPECT_EQ(max_diff(Decoder(eight).decode(path), expect), 0.0);
  // A float TIFF (OpenCV's decode gave CV_32F, refused): mapped by the pool's rule.
  TiffSpec f;
  f.bits = 32;
  f.sample_format = SAMPLEFORMAT_IEEEFP;
  const cv::Mat values = make_pixels(f);  // 0..1
  const std::string fpath = file("float.tif");
  write_tiff(fpath, f, values);
  raster::RasterConfig unit;
  unit.range_min = 0;
  unit.range_max = 1;
  const Decoder mapped(DecodeConfig{}, std::make_shared<raster::TiffPool>(unit));
  cv::Mat expect_f, expect_f3;
  values.convertTo(expect_f, CV_8U, 255.0);
  cv::cvtColor(expect_f, expect_f3, cv::COLOR_GRAY2RGB);
  EXPECT_EQ(max_diff(mapped.decode(fpath), expect_f3), 0.0);
}

TEST_F(DecodeTiff, DecodeWindowReadsOnlyTheWindowForTiffAndCropsOtherFormats) {
  raster::RasterConfig config;
  config.tile_cache_mb = 16;
  auto pool = std::make_shared<raster::TiffPool>(config);
  const Decoder decoder(DecodeConfig{}, pool);
  const std::string cog = kTiff + "cog_hirise_mars.tif";
  const cv::Mat whole = decoder.decode(cog);
  const raster::Window w{600, 1100, 300, 250};  // across four 512 x 512 tiles
  const cv::Rect r(600, 1100, 300, 250);
  const auto before = pool->cache()->stats();
  EXPECT_EQ(max_diff(decoder.decode_window(cog, w), whole(r)), 0.0);
  EXPECT_GT(pool->cache()->stats().hits, before.hits);  // decode() above went through the same pool
  DecodeConfig grey;
  grey.color = "grey";
  cv::Mat whole_grey;
  cv::cvtColor(whole, whole_grey, cv::COLOR_RGB2GRAY);
  EXPECT_EQ(max_diff(Decoder(grey, pool).decode_window(cog, w), whole_grey(r)), 0.0);
  // JPEG and PNG: the whole decode, cropped.
  for (const std::string& name : {std::string("000000030752.jpg")}) {
    const std::string jpg = kImages + name;
    const cv::Mat full = Decoder().decode(jpg);
    const raster::Window jw{10, 20, 50, 40};
    EXPECT_EQ(max_diff(Decoder().decode_window(jpg, jw), full(cv::Rect(10, 20, 50, 40))), 0.0);
    const std::string png = file("copy.png");
    cv::Mat bgr;
    cv::cvtColor(full, bgr, cv::COLOR_RGB2BGR);
    ASSERT_TRUE(cv::imwrite(png, bgr));
    EXPECT_EQ(max_diff(Decoder().decode_window(png, jw), full(cv::Rect(10, 20, 50, 40))), 0.0);
    expect_error([&] { Decoder().decode_window(png, {full.cols - 5, 0, 10, 10}); }, "bad_window");
  }
  expect_error([&] { decoder.decode_window(cog, {1110, 0, 10, 10}); }, "bad_window");
  expect_error([&] { decoder.decode_window(cog, {0, 0, 0, 10}); }, "bad_window");
  expect_error([&] { decoder.decode_window(file("missing.tif"), {0, 0, 1, 1}); }, "missing_image");
}

TEST_F(DecodeTiff, HugeTiffIsRefusedWholeButReadByWindows) {
  const std::string path = file("huge.tif");
  pasteflow::testing::write_huge_tiled(path, 60000, 512);
  const Decoder decoder;
  expect_error([&] { decoder.decode(path); }, "pixel_limit");
  const cv::Mat window = decoder.decode_window(path, {59000, 30000, 700, 600});
  ASSERT_EQ(window.type(), CV_8UC3);
  ASSERT_EQ(window.rows, 600);
  for (int r = 0; r < window.rows; ++r) {
    const uint8_t v = static_cast<uint8_t>(((30000 + r) % 512) % 251);
    ASSERT_EQ(window.at<cv::Vec3b>(r, 0), cv::Vec3b(v, v, v)) << r;
  }
  DecodeConfig small;
  small.max_pixels = 100000;
  expect_error([&] { Decoder(small).decode_window(path, {0, 0, 400, 400}); }, "pixel_limit");
}

TEST_F(DecodeTiff, CorruptTileNamesImageIdDirectoryAndTile) {
  TiffSpec s;
  s.compression = COMPRESSION_ADOBE_DEFLATE;
  const std::string good = file("good.tif");
  write_tiff(good, s, make_pixels(s));
  std::vector<uint8_t> bytes = read_all(good);
  // Overwrite the start of tile 3's deflate stream (offsets from libtiff).
  TIFF* tif = TIFFOpen(good.c_str(), "r");
  ASSERT_NE(tif, nullptr);
  const uint64_t offset = TIFFGetStrileOffset(tif, 3);
  TIFFClose(tif);
  for (size_t i = 0; i < 12; ++i) bytes[offset + i] = static_cast<uint8_t>(0x3C ^ (i * 17));
  const std::string bad = file("bad.tif");
  {
    std::ofstream out(bad, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
  }
  Sample sample;
  sample.image_id = 77;
  sample.path = bad;
  const InputError e = expect_error([&] { Decoder()(sample); }, "corrupt_image");
  EXPECT_TRUE(has(e, bad)) << e.what();
  EXPECT_TRUE(has(e, "image id 77, directory 0, tile 3")) << e.what();
  EXPECT_EQ(e.where().byte_offset, static_cast<int64_t>(offset));
  const InputError m = expect_error([&] { Decoder().decode_bytes(bytes, "in_memory.tif"); }, "corrupt_image");
  EXPECT_TRUE(has(m, "in_memory.tif")) << m.what();
  EXPECT_FALSE(has(m, "/proc/self/fd")) << m.what();
  // decode_window away from tile 3 still reads.
  EXPECT_NO_THROW(Decoder().decode_window(bad, {0, 0, 30, 15}));
}
