#include "pasteflow/stages/decode.hpp"

#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/images.hpp"
#include "pasteflow/core/error.hpp"

namespace pasteflow::stages {
namespace {

namespace fs = std::filesystem;
using pasteflow::testing::grey_tiff;
using pasteflow::testing::png_claiming;

// oracle: data/sample/annotations.json (COCO train2017 image records) for the sizes.
const std::string kImages = std::string(PASTEFLOW_TEST_DATA) + "/images/";
const std::string kJpegA = kImages + "000000070133.jpg";  // 640 x 427
const std::string kJpegB = kImages + "000000030752.jpg";  // 640 x 426

std::vector<uint8_t> slurp(const std::string& path) { return read_file_bytes(path); }

// An APP1 Exif segment whose only tag is Orientation = `orientation`.
std::vector<uint8_t> exif_app1(uint16_t orientation) {
  std::vector<uint8_t> tiff = {'M', 'M', 0, 42, 0, 0, 0, 8,  // big-endian TIFF header, IFD at 8
                               0, 1,                          // one entry
                               0x01, 0x12, 0, 3, 0, 0, 0, 1,  // tag 0x0112 SHORT count 1
                               static_cast<uint8_t>(orientation >> 8), static_cast<uint8_t>(orientation), 0, 0,
                               0, 0, 0, 0};  // no next IFD
  std::vector<uint8_t> seg = {0xFF, 0xE1, 0, 0, 'E', 'x', 'i', 'f', 0, 0};
  seg.insert(seg.end(), tiff.begin(), tiff.end());
  const std::size_t length = seg.size() - 2;
  seg[2] = static_cast<uint8_t>(length >> 8);
  seg[3] = static_cast<uint8_t>(length);
  return seg;
}

template <typename Fn>
InputError expect_input_error(Fn&& fn, const std::string& reason) {
  try {
    fn();
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), reason) << e.what();
    return e;
  }
  ADD_FAILURE() << "no InputError, expected " << reason;
  return InputError("none", "none");
}

class DecodeTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("pasteflow_decode_test_" + std::to_string(::getpid()) + "_" +
            ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string write(const std::string& name, const std::vector<uint8_t>& bytes) {
    const std::string path = (dir_ / name).string();
    std::ofstream out(path, std::ios::binary);
    out.write(reinterpret_cast<const char*>(bytes.data()), static_cast<std::streamsize>(bytes.size()));
    return path;
  }
  std::string write_image(const std::string& name, const cv::Mat& image) {
    const std::string path = (dir_ / name).string();
    EXPECT_TRUE(cv::imwrite(path, image)) << path;
    return path;
  }
  fs::path dir_;
};

// ------------------------------------------------------------------ real JPEGs

TEST_F(DecodeTest, RealJpegsDecodeToTheirAnnotatedSizeInRgbOrder) {
  struct Case {
    std::string path;
    int w, h;
  };
  for (const Case& c : {Case{kJpegA, 640, 427}, Case{kJpegB, 640, 426}}) {
    const ImageHeader header = read_image_header(c.path);
    EXPECT_EQ(header.format, ImageFormat::kJpeg);
    EXPECT_EQ(header.width, c.w);
    EXPECT_EQ(header.height, c.h);
    EXPECT_EQ(header.channels, 3);
    EXPECT_EQ(header.bit_depth, 8);

    const cv::Mat rgb = Decoder().decode(c.path, c.w, c.h);
    ASSERT_EQ(rgb.cols, c.w);
    ASSERT_EQ(rgb.rows, c.h);
    ASSERT_EQ(rgb.type(), CV_8UC3);
    // Reference: OpenCV's own imread (BGR) with the channels swapped.
    const cv::Mat bgr = cv::imread(c.path, cv::IMREAD_COLOR);
    cv::Mat swapped;
    cv::cvtColor(bgr, swapped, cv::COLOR_BGR2RGB);
    EXPECT_EQ(cv::norm(rgb, swapped, cv::NORM_INF), 0.0);
    EXPECT_GT(cv::norm(rgb, bgr, cv::NORM_INF), 0.0);  // the swap is not a no-op

    DecodeConfig grey;
    grey.color = "grey";
    const cv::Mat g = Decoder(grey).decode(c.path);
    EXPECT_EQ(g.type(), CV_8UC1);
    EXPECT_EQ(g.size(), rgb.size());
  }
}

TEST_F(DecodeTest, ChannelOrderIsRgbOnAKnownPixel) {
  cv::Mat bgr(4, 6, CV_8UC3, cv::Scalar(0, 0, 255));  // pure red in OpenCV's BGR
  bgr.at<cv::Vec3b>(1, 2) = cv::Vec3b(255, 0, 0);     // one pure blue pixel
  const std::string path = write_image("red.png", bgr);
  const cv::Mat rgb = Decoder().decode(path);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb.at<cv::Vec3b>(0, 0), cv::Vec3b(255, 0, 0));
  EXPECT_EQ(rgb.at<cv::Vec3b>(1, 2), cv::Vec3b(0, 0, 255));
}

TEST_F(DecodeTest, SampleOperatorFillsTheImageAndChecksMaskSizes) {
  Sample s;
  s.image_id = 70133;
  s.path = kJpegA;
  Instance inst;
  inst.has_mask = true;
  inst.mask.h = 427;
  inst.mask.w = 640;
  s.instances.push_back(inst);
  Decoder decode;
  decode(s);
  EXPECT_EQ(s.image.cols, 640);
  EXPECT_EQ(s.image.rows, 427);
  EXPECT_EQ(s.image.channels(), 3);

  Sample wrong = s;
  wrong.image.release();
  wrong.instances[0].mask.w = 427;
  wrong.instances[0].mask.h = 640;
  const InputError e = expect_input_error([&] { decode(wrong); }, "size_mismatch");
  EXPECT_EQ(e.where().file, kJpegA);
  EXPECT_EQ(e.where().record, "image id 70133");
  EXPECT_TRUE(wrong.image.empty());

  Sample sized = s;
  sized.instances.clear();
  expect_input_error([&] { decode(sized, 641, 427); }, "size_mismatch");
  decode(sized, 640, 427);
  EXPECT_EQ(sized.image.cols, 640);
}

TEST_F(DecodeTest, SizeMismatchAgainstAnnotationNamesBothSizes) {
  const InputError e = expect_input_error([&] { Decoder().decode(kJpegB, 426, 640); }, "size_mismatch");
  EXPECT_NE(std::string(e.what()).find("640 x 426"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("426 x 640"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("000000030752.jpg"), std::string::npos) << e.what();
}

// ------------------------------------------------------------------ EXIF orientation

TEST_F(DecodeTest, ExifOrientationIsIgnored) {
  std::vector<uint8_t> bytes = slurp(kJpegA);  // 640 x 427, stored landscape
  const std::vector<uint8_t> app1 = exif_app1(6);  // 6 = rotate 90 degrees clockwise to display
  bytes.insert(bytes.begin() + 2, app1.begin(), app1.end());
  const std::string path = write("rotated.jpg", bytes);

  // Control: the tag is live; OpenCV's default imread rotates to 427 x 640.
  const cv::Mat shown = cv::imread(path, cv::IMREAD_COLOR);
  ASSERT_EQ(shown.cols, 427);
  ASSERT_EQ(shown.rows, 640);

  const cv::Mat stored = Decoder().decode(path, 640, 427);
  EXPECT_EQ(stored.cols, 640);
  EXPECT_EQ(stored.rows, 427);
  const cv::Mat plain = Decoder().decode(kJpegA);
  EXPECT_EQ(cv::norm(stored, plain, cv::NORM_INF), 0.0);  // same pixels as without the tag
}

// ------------------------------------------------------------------ grey and 16 bit

TEST_F(DecodeTest, GreyPngFollowsTheColorSetting) {
  cv::Mat grey(5, 7, CV_8UC1);
  for (int y = 0; y < grey.rows; ++y)
    for (int x = 0; x < grey.cols; ++x) grey.at<uint8_t>(y, x) = static_cast<uint8_t>(y * 40 + x);
  const std::string path = write_image("grey.png", grey);
  EXPECT_EQ(read_image_header(path).channels, 1);

  DecodeConfig cfg;
  cfg.color = "rgb";
  const cv::Mat rgb = Decoder(cfg).decode(path);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  for (int y = 0; y < grey.rows; ++y)
    for (int x = 0; x < grey.cols; ++x) {
      const uint8_t v = grey.at<uint8_t>(y, x);
      EXPECT_EQ(rgb.at<cv::Vec3b>(y, x), cv::Vec3b(v, v, v));
    }
  for (const char* mode : {"grey", "keep"}) {
    cfg.color = mode;
    const cv::Mat one = Decoder(cfg).decode(path);
    ASSERT_EQ(one.type(), CV_8UC1) << mode;
    EXPECT_EQ(cv::norm(one, grey, cv::NORM_INF), 0.0) << mode;
  }
  // "keep" leaves a colour image colour.
  cfg.color = "keep";
  EXPECT_EQ(Decoder(cfg).decode(kJpegA).type(), CV_8UC3);
}

TEST_F(DecodeTest, SixteenBitPngKeptOrScaled) {
  cv::Mat deep(3, 4, CV_16UC1);
  const uint16_t values[] = {0, 1, 128, 129, 257, 1000, 32767, 32768, 40000, 65278, 65534, 65535};
  for (int i = 0; i < 12; ++i) deep.at<uint16_t>(i / 4, i % 4) = values[i];
  const std::string path = write_image("deep.png", deep);
  const ImageHeader header = read_image_header(path);
  EXPECT_EQ(header.bit_depth, 16);
  EXPECT_EQ(header.format, ImageFormat::kPng);

  DecodeConfig cfg;
  cfg.color = "keep";
  const cv::Mat kept = Decoder(cfg).decode(path);
  ASSERT_EQ(kept.type(), CV_16UC1);
  EXPECT_EQ(cv::norm(kept, deep, cv::NORM_INF), 0.0);

  cfg.keep_16bit = false;
  const cv::Mat eight = Decoder(cfg).decode(path);
  ASSERT_EQ(eight.type(), CV_8UC1);
  for (int i = 0; i < 12; ++i) {
    const int want = static_cast<int>(values[i] / 257.0 + 0.5);  // v * 255 / 65535, rounded
    EXPECT_EQ(eight.at<uint8_t>(i / 4, i % 4), want) << values[i];
  }

  cfg.color = "rgb";
  cfg.keep_16bit = true;
  const cv::Mat rgb16 = Decoder(cfg).decode(path);
  ASSERT_EQ(rgb16.type(), CV_16UC3);
  EXPECT_EQ(rgb16.at<cv::Vec3w>(2, 3), cv::Vec3w(65535, 65535, 65535));
}

TEST_F(DecodeTest, SixteenBitColourPngIsRgb) {
  cv::Mat bgr(2, 2, CV_16UC3, cv::Scalar(1000, 2000, 60000));  // B, G, R
  const std::string path = write_image("deep_colour.png", bgr);
  const cv::Mat rgb = Decoder().decode(path);
  ASSERT_EQ(rgb.type(), CV_16UC3);
  EXPECT_EQ(rgb.at<cv::Vec3w>(1, 1), cv::Vec3w(60000, 2000, 1000));
}

TEST_F(DecodeTest, TiffHeaderAndPixels) {
  cv::Mat bgr(9, 13, CV_8UC3, cv::Scalar(10, 20, 30));
  const std::string path8 = write_image("colour.tif", bgr);
  const ImageHeader h8 = read_image_header(path8);
  EXPECT_EQ(h8.format, ImageFormat::kTiff);
  EXPECT_EQ(h8.width, 13);
  EXPECT_EQ(h8.height, 9);
  EXPECT_EQ(h8.channels, 3);
  EXPECT_EQ(h8.bit_depth, 8);
  const cv::Mat rgb = Decoder().decode(path8, 13, 9);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb.at<cv::Vec3b>(8, 12), cv::Vec3b(30, 20, 10));

  cv::Mat deep(6, 5, CV_16UC1, cv::Scalar(4321));
  const std::string path16 = write_image("deep.tif", deep);
  EXPECT_EQ(read_image_header(path16).bit_depth, 16);
  DecodeConfig cfg;
  cfg.color = "keep";
  const cv::Mat kept = Decoder(cfg).decode(path16);
  ASSERT_EQ(kept.type(), CV_16UC1);
  EXPECT_EQ(kept.at<uint16_t>(5, 4), 4321);
}

TEST(ImageHeaderParse, HandMadeTiffDirectories) {
  // Big-endian classic TIFF: ImageWidth SHORT 300, ImageLength LONG 200.
  const std::vector<uint8_t> mm = {'M', 'M', 0, 42, 0, 0, 0, 8,  // header
                                   0, 2,                          // 2 entries
                                   1, 0, 0, 3, 0, 0, 0, 1, 1, 44, 0, 0,  // 256 SHORT 300
                                   1, 1, 0, 4, 0, 0, 0, 1, 0, 0, 0, 200,  // 257 LONG 200
                                   0, 0, 0, 0};
  const ImageHeader a = parse_image_header(mm, "mm.tif");
  EXPECT_EQ(a.width, 300);
  EXPECT_EQ(a.height, 200);
  EXPECT_EQ(a.channels, 1);  // TIFF default SamplesPerPixel

  // Little-endian BigTIFF: width LONG8 70000, height SHORT 5, SamplesPerPixel 3.
  std::vector<uint8_t> big = {'I', 'I', 43, 0, 8, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0,  // header, IFD at 16
                              3, 0, 0, 0, 0, 0, 0, 0};                             // 3 entries
  auto entry = [&](uint16_t tag, uint16_t type, uint64_t value) {
    const uint8_t e[20] = {static_cast<uint8_t>(tag), static_cast<uint8_t>(tag >> 8),
                           static_cast<uint8_t>(type), 0, 1, 0, 0, 0, 0, 0, 0, 0,
                           static_cast<uint8_t>(value), static_cast<uint8_t>(value >> 8),
                           static_cast<uint8_t>(value >> 16), static_cast<uint8_t>(value >> 24), 0, 0, 0, 0};
    big.insert(big.end(), e, e + 20);
  };
  entry(256, 16, 70000);
  entry(257, 3, 5);
  entry(277, 3, 3);
  big.insert(big.end(), 8, 0);
  const ImageHeader b = parse_image_header(big, "big.tif");
  EXPECT_EQ(b.width, 70000);
  EXPECT_EQ(b.height, 5);
  EXPECT_EQ(b.channels, 3);

  // Directory cut short.
  const std::vector<uint8_t> cut(mm.begin(), mm.begin() + 20);
  expect_input_error([&] { parse_image_header(cut, "cut.tif"); }, "corrupt_image");
}

TEST(ImageHeaderParse, PrefixesAndMutationsOnlyEverThrowInputError) {
  // Robustness: every prefix and many byte mutations of real headers either
  // parse or throw InputError (run under ASan to check the bounds).
  std::vector<std::vector<uint8_t>> files = {read_file_bytes(kJpegA)};
  cv::Mat small(7, 5, CV_16UC3, cv::Scalar(1, 2, 3));
  for (const char* ext : {".png", ".tiff"}) {
    std::vector<uint8_t> bytes;
    ASSERT_TRUE(cv::imencode(ext, small, bytes));
    files.push_back(bytes);
  }
  uint64_t state = 12345;
  auto next = [&state] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<std::size_t>(state >> 33);
  };
  int parsed = 0, refused = 0;
  for (const auto& file : files) {
    const std::size_t limit = std::min<std::size_t>(file.size(), 700);
    for (std::size_t n = 0; n <= limit; ++n) {
      const std::vector<uint8_t> prefix(file.begin(), file.begin() + static_cast<long>(n));
      try {
        parse_image_header(prefix, "prefix");
        ++parsed;
      } catch (const InputError&) {
        ++refused;
      }
    }
    for (int trial = 0; trial < 3000; ++trial) {
      std::vector<uint8_t> mutated = file;
      for (int k = 0; k < 3; ++k) mutated[next() % limit] = static_cast<uint8_t>(next());
      try {
        parse_image_header(mutated, "mutated");
        ++parsed;
      } catch (const InputError&) {
        ++refused;
      }
    }
  }
  EXPECT_GT(parsed, 0);
  EXPECT_GT(refused, 0);
}

// ------------------------------------------------------------------ decompression bombs

TEST_F(DecodeTest, PngBombIsRefusedBeforeDecoding) {
  const std::string path = write("bomb.png", png_claiming(100000, 100000));
  const ImageHeader h = read_image_header(path);
  EXPECT_EQ(h.width, 100000);
  EXPECT_EQ(h.height, 100000);
  const InputError e = expect_input_error([&] { Decoder().decode(path); }, "pixel_limit");
  const std::string what = e.what();
  EXPECT_NE(what.find("bomb.png"), std::string::npos) << what;
  EXPECT_NE(what.find("100000 x 100000"), std::string::npos) << what;
  EXPECT_NE(what.find("178956970"), std::string::npos) << what;

  // With the limit off, OpenCV's own 2^30 cap still refuses it, with the same reason.
  DecodeConfig off;
  off.max_pixels = 0;
  expect_input_error([&] { Decoder(off).decode(path); }, "pixel_limit");
}

TEST_F(DecodeTest, JpegBombIsRefusedBeforeDecoding) {
  std::vector<uint8_t> bytes = slurp(kJpegA);
  const ImageHeader h = parse_image_header(bytes, kJpegA);
  // Patch the frame header: SOF payload is length(2) precision(1) height(2) width(2).
  std::size_t sof = 0;
  for (std::size_t i = 2; i + 1 < bytes.size(); ++i) {
    if (bytes[i] == 0xFF && bytes[i + 1] == 0xC0) {
      sof = i;
      break;
    }
  }
  ASSERT_GT(sof, 0u);
  ASSERT_EQ(bytes[sof + 5], static_cast<uint8_t>(h.height >> 8));
  bytes[sof + 5] = 0xEA;  // height 60000
  bytes[sof + 6] = 0x60;
  bytes[sof + 7] = 0xEA;  // width 60000
  bytes[sof + 8] = 0x60;
  const std::string path = write("bomb.jpg", bytes);
  const InputError e = expect_input_error([&] { Decoder().decode(path); }, "pixel_limit");
  EXPECT_NE(std::string(e.what()).find("60000 x 60000"), std::string::npos) << e.what();
}

TEST_F(DecodeTest, PixelLimitBoundaryIsInclusive) {
  DecodeConfig cfg;
  cfg.max_pixels = 640 * 427;
  EXPECT_EQ(Decoder(cfg).decode(kJpegA).cols, 640);
  cfg.max_pixels = 640 * 427 - 1;
  expect_input_error([&] { Decoder(cfg).decode(kJpegA); }, "pixel_limit");
}

// ------------------------------------------------------------------ bad files

TEST_F(DecodeTest, TruncatedJpegIsCorrupt) {
  const std::vector<uint8_t> bytes = slurp(kJpegA);
  for (double keep : {0.9, 0.5}) {
    const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() * keep));
    const std::string path = write("cut.jpg", cut);
    const InputError e = expect_input_error([&] { Decoder().decode(path); }, "corrupt_image");
    EXPECT_EQ(e.where().file, path);
    EXPECT_NE(std::string(e.what()).find("cut.jpg"), std::string::npos);
  }
  // Cut inside the header segments, before the frame header.
  const std::vector<uint8_t> head(bytes.begin(), bytes.begin() + 10);
  const std::string path = write("head.jpg", head);
  expect_input_error([&] { read_image_header(path); }, "corrupt_image");
  expect_input_error([&] { Decoder().decode(path); }, "corrupt_image");
  // Losing only the final two bytes (the EOI marker) is enough to be refused.
  const std::vector<uint8_t> no_eoi(bytes.begin(), bytes.end() - 2);
  expect_input_error([&] { Decoder().decode(write("no_eoi.jpg", no_eoi)); }, "corrupt_image");
}

TEST_F(DecodeTest, TruncatedAndGarbledPngAreCorrupt) {
  cv::Mat noise(64, 64, CV_8UC3);
  cv::randu(noise, cv::Scalar::all(0), cv::Scalar::all(255));
  std::vector<uint8_t> bytes;
  ASSERT_TRUE(cv::imencode(".png", noise, bytes));
  const std::vector<uint8_t> cut(bytes.begin(), bytes.begin() + static_cast<long>(bytes.size() / 2));
  expect_input_error([&] { Decoder().decode(write("cut.png", cut)); }, "corrupt_image");

  // Intact chunk chain but garbage compressed data: OpenCV fails, we report it.
  std::vector<uint8_t> garbled = png_claiming(16, 16);
  expect_input_error([&] { Decoder().decode(write("garbled.png", garbled)); }, "corrupt_image");
}

TEST_F(DecodeTest, NonImageAndEmptyFiles) {
  const std::string text = "this is not an image\n";
  const std::string path = write("notes.jpg", std::vector<uint8_t>(text.begin(), text.end()));
  const InputError e = expect_input_error([&] { Decoder().decode(path); }, "unsupported_image");
  EXPECT_NE(std::string(e.what()).find("notes.jpg"), std::string::npos);
  expect_input_error([&] { Decoder().decode(write("empty.png", {})); }, "corrupt_image");
}

TEST_F(DecodeTest, MissingAndUnreadableFiles) {
  const std::string missing = (dir_ / "nope.jpg").string();
  const InputError e = expect_input_error([&] { Decoder().decode(missing); }, "missing_image");
  EXPECT_EQ(e.where().file, missing);
  EXPECT_NE(std::string(e.what()).find("nope.jpg"), std::string::npos);
  expect_input_error([&] { Decoder().decode((dir_ / "no_dir" / "x.jpg").string()); }, "missing_image");
  expect_input_error([&] { Decoder().decode(""); }, "missing_image");
  expect_input_error([&] { Decoder().decode(dir_.string()); }, "unreadable_image");

  Sample s;
  s.image_id = 9;
  s.path = missing;
  const InputError in_sample = expect_input_error([&] { Decoder()(s); }, "missing_image");
  EXPECT_EQ(in_sample.where().record, "image id 9");
}

TEST(DecodeConfigCheck, RejectsBadValues) {
  DecodeConfig cfg;
  cfg.color = "bgr";
  try {
    Decoder d(cfg);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "decode.color");
  }
  cfg = {};
  cfg.max_pixels = -1;
  try {
    Decoder d(cfg);
    ADD_FAILURE() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "decode.max_pixels");
  }
}

// ------------------------------------------------------------------ regressions (issue 10)

// A TIFF cut inside its strip reached libtiff, which failed inside OpenCV:
// OpenCV printed two lines to stderr and the error said only "OpenCV could
// not decode it". The directory's strip offsets and byte counts are checked
// against the file's size first.
TEST_F(DecodeTest, TruncatedTiffIsRefusedBeforeLibtiffReadsIt) {
  const std::vector<uint8_t> whole = grey_tiff(6, 4);
  const cv::Mat grey = [&] {  // control: the hand-made file decodes to its pattern
    DecodeConfig keep;
    keep.color = "keep";
    return Decoder(keep).decode(write("whole.tif", whole), 6, 4);
  }();
  ASSERT_EQ(grey.type(), CV_8UC1);
  EXPECT_EQ(grey.at<uint8_t>(3, 5), 5 + 3 * 3);
  EXPECT_EQ(read_image_header(write("whole2.tif", whole)).data_end, static_cast<int64_t>(whole.size()));

  const std::vector<uint8_t> cut(whole.begin(), whole.end() - 5);
  const std::string path = write("cut.tif", cut);
  const InputError e = expect_input_error([&] { Decoder().decode(path); }, "corrupt_image");
  EXPECT_EQ(e.where().file, path);
  EXPECT_EQ(e.where().byte_offset, static_cast<int64_t>(cut.size()));
  EXPECT_NE(std::string(e.what()).find("TIFF is truncated"), std::string::npos) << e.what();

  // Through a Sample the image id is named too.
  Sample s;
  s.image_id = 12;
  s.path = path;
  EXPECT_EQ(expect_input_error([&] { Decoder()(s, 6, 4); }, "corrupt_image").where().record, "image id 12");

  // OpenCV's own TIFFs (directory after the data, LZW strips) cut in half.
  cv::Mat noise(40, 30, CV_8UC3);
  cv::randu(noise, cv::Scalar::all(0), cv::Scalar::all(255));
  std::vector<uint8_t> encoded;
  ASSERT_TRUE(cv::imencode(".tiff", noise, encoded));
  const std::vector<uint8_t> half(encoded.begin(), encoded.begin() + static_cast<long>(encoded.size() / 2));
  expect_input_error([&] { Decoder().decode(write("half.tif", half)); }, "corrupt_image");
}

// A BigTIFF value offset near 2^64 wrapped the bounds check of the directory
// reader (offset + size overflowed to a small number): a read outside the
// file (caught by ASan).
TEST(ImageHeaderParse, BigTiffOffsetNear2To64IsCorrupt) {
  std::vector<uint8_t> big = {'I', 'I', 43, 0, 8, 0, 0, 0, 16, 0, 0, 0, 0, 0, 0, 0,  // header, IFD at 16
                              4, 0, 0, 0, 0, 0, 0, 0};                             // 4 entries
  auto entry = [&](uint16_t tag, uint16_t type, uint64_t count, uint64_t value) {
    pasteflow::testing::put_le(big, tag, 2);
    pasteflow::testing::put_le(big, type, 2);
    pasteflow::testing::put_le(big, static_cast<uint32_t>(count), 4);
    pasteflow::testing::put_le(big, static_cast<uint32_t>(count >> 32), 4);
    pasteflow::testing::put_le(big, static_cast<uint32_t>(value), 4);
    pasteflow::testing::put_le(big, static_cast<uint32_t>(value >> 32), 4);
  };
  entry(256, 16, 2, ~uint64_t{0} - 3);  // two LONG8 widths, stored "at" 2^64 - 4
  entry(257, 3, 1, 8);
  entry(273, 16, 2, ~uint64_t{0} - 3);  // the same for the strip offsets
  entry(279, 16, 1, 64);
  big.insert(big.end(), 8, 0);
  const InputError e = expect_input_error([&] { parse_image_header(big, "wrap.tif"); }, "corrupt_image");
  EXPECT_NE(std::string(e.what()).find("wrap.tif"), std::string::npos) << e.what();
}

// A TIFF header claiming 100000 x 100000 (130 bytes) is refused by
// decode.max_pixels before anything is allocated, naming the file and id.
TEST_F(DecodeTest, TiffBombIsRefusedBeforeDecoding) {
  Sample s;
  s.image_id = 4;
  s.path = write("bomb.tif", grey_tiff(100000, 100000, /*pixels=*/false));
  const InputError e = expect_input_error([&] { Decoder()(s, 100000, 100000); }, "pixel_limit");
  EXPECT_EQ(e.where().record, "image id 4");
  EXPECT_NE(std::string(e.what()).find("100000 x 100000"), std::string::npos) << e.what();
  EXPECT_NE(std::string(e.what()).find("decode.max_pixels"), std::string::npos) << e.what();
}

// CMYK JPEGs (Adobe, inverted, as Photoshop and PIL write them) come out as
// RGB with the right colours. tests/data/images/cmyk_red_blue.jpg: 16 x 8,
// left half red, right half blue.
TEST_F(DecodeTest, CmykJpegDecodesToRgb) {
  const std::string path = kImages + "cmyk_red_blue.jpg";
  const ImageHeader h = read_image_header(path);
  EXPECT_EQ(h.channels, 4);
  const cv::Mat rgb = Decoder().decode(path, 16, 8);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  const cv::Vec3b red = rgb.at<cv::Vec3b>(4, 2), blue = rgb.at<cv::Vec3b>(4, 13);
  EXPECT_GT(red[0], 230);
  EXPECT_LT(red[2], 25);
  EXPECT_GT(blue[2], 230);
  EXPECT_LT(blue[0], 25);
}

// A 1 x 1 image whose annotation says 32 x 24 is an error, never resized.
TEST_F(DecodeTest, OnePixelImageAgainstALargerAnnotatedSizeIsAnError) {
  Sample s;
  s.image_id = 5;
  s.path = write_image("one.png", cv::Mat(1, 1, CV_8UC3, cv::Scalar(1, 2, 3)));
  const InputError e = expect_input_error([&] { Decoder()(s, 32, 24); }, "size_mismatch");
  EXPECT_EQ(e.where().record, "image id 5");
  EXPECT_NE(std::string(e.what()).find("1 x 1"), std::string::npos) << e.what();
  EXPECT_TRUE(s.image.empty());
}

// A PNG with alpha named .jpg: the signature decides, the alpha is dropped.
TEST_F(DecodeTest, RgbaPngWithAJpgExtensionDecodesToRgb) {
  const std::string path = write_image("rgba.png", cv::Mat(3, 5, CV_8UC4, cv::Scalar(10, 20, 30, 40)));
  const std::string misnamed = (dir_ / "rgba.jpg").string();
  fs::rename(path, misnamed);
  const cv::Mat rgb = Decoder().decode(misnamed, 5, 3);
  ASSERT_EQ(rgb.type(), CV_8UC3);
  EXPECT_EQ(rgb.at<cv::Vec3b>(2, 4), cv::Vec3b(30, 20, 10));
}

}  // namespace
}  // namespace pasteflow::stages
