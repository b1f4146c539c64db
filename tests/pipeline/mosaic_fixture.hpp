// A small "huge image" for the tests of slices as samples (issue 11), built
// inside the test from real pixels and real annotations: four COCO images
// of the bundled sample (data/sample) tiled into one 1280 x 860 RGB tiled
// TIFF (128 x 128 Deflate tiles, written with libtiff), with their polygon
// annotations moved into mosaic coordinates, plus one ordinary JPEG of the
// sample that stays whole. The dataset file is written with io::write_coco.
//
//   +---------------------------+---------------------------+
//   | 000000000790.jpg (0, 0)   | 000000030752.jpg (640, 0) |   790, 84284: many
//   | 640x422, 21 small objects | 640x426, no small object  |   small objects;
//   +---------------------------+---------------------------+   30752, 37666:
//   | 000000084284.jpg (0, 430) | 000000037666.jpg (640,430)|   none
//   | 500x375, 15 small objects | 640x424, no small object  |
//   +---------------------------+---------------------------+
//   the rest of the canvas is grey 114.
#pragma once

#include <tiffio.h>

#include <algorithm>
#include <filesystem>
#include <stdexcept>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pasteflow/io/coco.hpp"

namespace pasteflow::testing {

struct Mosaic {
  std::string dir;          ///< holds mosaic.tif, the whole JPEG and annotations.json
  std::string annotations;  ///< dir/annotations.json
  cv::Mat rgb;              ///< the mosaic's pixels, RGB (what the TIFF holds)
  int64_t mosaic_id = 1;    ///< image id of the mosaic
  int64_t whole_id = 2;     ///< image id of the ordinary image
  std::string whole_file;   ///< its file name (a real JPEG of the sample)
};

inline constexpr int kMosaicWidth = 1280;
inline constexpr int kMosaicHeight = 860;
inline constexpr int kMosaicTile = 128;

/// Writes `rgb` (CV_8UC3, RGB) as a tiled, Deflate-compressed RGB TIFF.
inline void write_tiled_tiff(const std::string& path, const cv::Mat& rgb, int tile) {
  TIFF* tif = TIFFOpen(path.c_str(), "w");
  if (tif == nullptr) throw std::runtime_error("cannot create " + path);
  TIFFSetField(tif, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(rgb.cols));
  TIFFSetField(tif, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(rgb.rows));
  TIFFSetField(tif, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(tif, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(tif, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(tif, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(tif, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  TIFFSetField(tif, TIFFTAG_TILEWIDTH, static_cast<uint32_t>(tile));
  TIFFSetField(tif, TIFFTAG_TILELENGTH, static_cast<uint32_t>(tile));
  std::vector<uint8_t> buf(static_cast<size_t>(tile) * tile * 3);
  for (int y = 0; y < rgb.rows; y += tile) {
    for (int x = 0; x < rgb.cols; x += tile) {
      std::fill(buf.begin(), buf.end(), 0);
      const int w = std::min(tile, rgb.cols - x), h = std::min(tile, rgb.rows - y);
      for (int r = 0; r < h; ++r) {
        std::copy(rgb.ptr<uint8_t>(y + r) + 3 * x, rgb.ptr<uint8_t>(y + r) + 3 * (x + w),
                  buf.data() + static_cast<size_t>(r) * tile * 3);
      }
      if (TIFFWriteTile(tif, buf.data(), static_cast<uint32_t>(x), static_cast<uint32_t>(y), 0, 0) < 0) {
        TIFFClose(tif);
        throw std::runtime_error("cannot write a tile of " + path);
      }
    }
  }
  TIFFClose(tif);
}

/// Builds the mosaic dataset in `dir` from the sample in `sample_dir`.
inline Mosaic make_sample_mosaic(const std::string& dir, const std::string& sample_dir) {
  namespace fs = std::filesystem;
  io::LoadOptions opts;
  opts.image_root = sample_dir + "/images";
  const io::CocoDataset src = io::load_coco(sample_dir + "/annotations.json", opts);

  struct Piece {
    int64_t id;
    int x, y;
  };
  const Piece pieces[] = {{790, 0, 0}, {30752, 640, 0}, {84284, 0, 430}, {37666, 640, 430}};
  const int64_t whole = 54718;  // 640x480, stays whole

  Mosaic m;
  fs::create_directories(dir);
  m.dir = dir;
  m.annotations = dir + "/annotations.json";
  m.rgb = cv::Mat(kMosaicHeight, kMosaicWidth, CV_8UC3, cv::Scalar(114, 114, 114));

  io::CocoDataset out = src;  // categories and strings
  out.source_path.clear();
  out.images.clear();
  out.annotations.clear();
  out.image_annotations.clear();
  out.annotation_sources.clear();
  out.coords.clear();
  out.part_offsets = {0};
  out.rle_counts.clear();

  io::ImageRecord mosaic_rec;
  mosaic_rec.id = m.mosaic_id;
  mosaic_rec.width = kMosaicWidth;
  mosaic_rec.height = kMosaicHeight;
  mosaic_rec.file_name = out.add_string("mosaic.tif");
  out.images.push_back(mosaic_rec);

  int64_t next_ann = 1;
  auto copy_annotation = [&](const io::AnnotationRecord& a, int64_t image_id, double dx, double dy) {
    if (a.seg_kind != io::SegmentationKind::kPolygons) throw std::runtime_error("the fixture moves polygons only");
    io::AnnotationRecord r = a;
    r.id = next_ann++;
    r.image_id = image_id;
    r.bbox[0] += dx;
    r.bbox[1] += dy;
    for (size_t k = 0; k < src.num_parts(a); ++k) {
      const Span<const double> p = src.polygon(a, k);
      std::vector<double> moved(p.begin(), p.end());
      for (size_t i = 0; i < moved.size(); i += 2) {
        moved[i] += dx;
        moved[i + 1] += dy;
      }
      const uint64_t part = out.add_part(Span<const double>(moved.data(), moved.size()));
      if (k == 0) r.seg_begin = part;
    }
    r.extra = {};
    out.annotations.push_back(r);
  };

  for (const Piece& p : pieces) {
    const int64_t index = src.image_index(p.id);
    if (index < 0) throw std::runtime_error("sample image missing");
    const io::ImageRecord& im = src.images[static_cast<size_t>(index)];
    const cv::Mat bgr = cv::imread(src.image_path(im), cv::IMREAD_COLOR | cv::IMREAD_IGNORE_ORIENTATION);
    if (bgr.empty() || bgr.cols != im.width || bgr.rows != im.height) throw std::runtime_error("cannot read a sample image");
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    rgb.copyTo(m.rgb(cv::Rect(p.x, p.y, rgb.cols, rgb.rows)));
    for (const uint32_t a : src.annotations_of(static_cast<size_t>(index))) {
      copy_annotation(src.annotations[a], m.mosaic_id, p.x, p.y);
    }
  }

  const int64_t wi = src.image_index(whole);
  const io::ImageRecord& wrec = src.images[static_cast<size_t>(wi)];
  m.whole_file = std::string(src.file_name(wrec));
  fs::copy_file(src.image_path(wrec), fs::path(dir) / m.whole_file, fs::copy_options::overwrite_existing);
  io::ImageRecord whole_rec = wrec;
  whole_rec.id = m.whole_id;
  whole_rec.file_name = out.add_string(m.whole_file);
  whole_rec.extra = {};
  out.images.push_back(whole_rec);
  for (const uint32_t a : src.annotations_of(static_cast<size_t>(wi))) copy_annotation(src.annotations[a], m.whole_id, 0, 0);

  out.rebuild_index();
  write_tiled_tiff(dir + "/mosaic.tif", m.rgb, kMosaicTile);
  io::write_coco(out, m.annotations);
  return m;
}

}  // namespace pasteflow::testing
