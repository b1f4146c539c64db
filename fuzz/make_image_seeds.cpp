// fuzz_decode's seed corpus: small crops of the real photos in tests/data/
// encoded in every form the decode stage accepts (JPEG baseline and
// progressive, PNG 8/16-bit grey/RGB/RGBA, TIFF 8/16-bit, grey and colour).
//
//   make_image_seeds OUT_DIR IMAGE...     writes OUT_DIR/fuzz_decode/<name>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

namespace {

void write(const std::filesystem::path& dir, const std::string& name, const cv::Mat& image,
           const std::string& ext, const std::vector<int>& params = {}) {
  std::vector<uchar> bytes;
  if (!cv::imencode(ext, image, bytes, params)) {
    std::fprintf(stderr, "make_image_seeds: cannot encode %s\n", name.c_str());
    std::exit(1);
  }
  std::ofstream(dir / name, std::ios::binary).write(reinterpret_cast<const char*>(bytes.data()), bytes.size());
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: make_image_seeds OUT_DIR IMAGE...\n");
    return 2;
  }
  const std::filesystem::path dir = std::filesystem::path(argv[1]) / "fuzz_decode";
  std::filesystem::create_directories(dir);
  for (int i = 2; i < argc; ++i) {
    const cv::Mat photo = cv::imread(argv[i], cv::IMREAD_COLOR);
    if (photo.empty()) {
      std::fprintf(stderr, "make_image_seeds: cannot read %s\n", argv[i]);
      return 1;
    }
    // A 16 x 12 crop from the middle and a 7 x 5 one (odd sizes: MCU padding).
    const cv::Mat crop = photo(cv::Rect(photo.cols / 2, photo.rows / 2, 16, 12)).clone();
    const cv::Mat odd = photo(cv::Rect(photo.cols / 3, photo.rows / 3, 7, 5)).clone();
    cv::Mat grey, bgra, wide;
    cv::cvtColor(crop, grey, cv::COLOR_BGR2GRAY);
    cv::cvtColor(crop, bgra, cv::COLOR_BGR2BGRA);
    crop.convertTo(wide, CV_16U, 257.0);
    const std::string tag = std::to_string(i - 1);
    write(dir, tag + ".jpg", crop, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 60});
    write(dir, tag + "_odd.jpg", odd, ".jpg", {cv::IMWRITE_JPEG_QUALITY, 90});
    write(dir, tag + "_progressive.jpg", crop, ".jpg", {cv::IMWRITE_JPEG_PROGRESSIVE, 1});
    write(dir, tag + "_grey.jpg", grey, ".jpg");
    write(dir, tag + ".png", crop, ".png");
    write(dir, tag + "_grey.png", grey, ".png");
    write(dir, tag + "_rgba.png", bgra, ".png");
    write(dir, tag + "_16bit.png", wide, ".png");
    write(dir, tag + ".tif", crop, ".tif");
    write(dir, tag + "_grey.tif", grey, ".tif");
    write(dir, tag + "_16bit.tif", wide, ".tif");
    write(dir, tag + "_odd.tif", odd, ".tif", {cv::IMWRITE_TIFF_COMPRESSION, 1});
  }
  return 0;
}
