// The mosaic generator: placements, moved annotations (exact masks), the
// pyramidal TIFF's pixels read back with libtiff, atomic output, stops.
// Sources: the repository's 16-image COCO sample (data/sample: real photos,
// polygon and uncompressed-RLE crowd annotations).
#include "pasteflow/synth/mosaic.hpp"

#include <gtest/gtest.h>
#include <tiffio.h>
#include <unistd.h>

#include <signal.h>
#include <sys/wait.h>

#include <cmath>
#include <cstdarg>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/command.hpp"
#include "common/file.hpp"
#include "common/temp_dir.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/raster/tiff.hpp"
#include "pasteflow/slice/slice.hpp"
#include "pasteflow/stages/decode.hpp"

namespace fs = std::filesystem;
using namespace pasteflow;

namespace {

const std::string kSample = PASTEFLOW_SAMPLE_DATA;

io::CocoDataset load_sample() {
  io::LoadOptions lo;
  lo.image_root = kSample + "/images";
  return io::load_coco(kSample + "/annotations.json", lo);
}

struct TempDir : pasteflow::testing::ScratchDir {
  TempDir() : ScratchDir("mosaic") {}
};

int quiet(TIFF*, void*, const char*, const char*, va_list) { return 1; }

/// Directory `dir` of a tiled 8-bit TIFF, assembled from TIFFReadEncodedTile.
cv::Mat read_directory(const std::string& path, int dir, int* directories = nullptr) {
  TIFFOpenOptions* opts = TIFFOpenOptionsAlloc();
  TIFFOpenOptionsSetErrorHandlerExtR(opts, quiet, nullptr);
  TIFFOpenOptionsSetWarningHandlerExtR(opts, quiet, nullptr);
  TIFF* tif = TIFFOpenExt(path.c_str(), "r", opts);
  TIFFOpenOptionsFree(opts);
  if (tif == nullptr) return {};
  if (directories) *directories = TIFFNumberOfDirectories(tif);
  cv::Mat out;
  if (TIFFSetDirectory(tif, static_cast<tdir_t>(dir)) == 1) {
    uint32_t w = 0, h = 0, tw = 0, th = 0;
    uint16_t spp = 0;
    TIFFGetField(tif, TIFFTAG_IMAGEWIDTH, &w);
    TIFFGetField(tif, TIFFTAG_IMAGELENGTH, &h);
    TIFFGetField(tif, TIFFTAG_TILEWIDTH, &tw);
    TIFFGetField(tif, TIFFTAG_TILELENGTH, &th);
    TIFFGetField(tif, TIFFTAG_SAMPLESPERPIXEL, &spp);
    uint16_t compression = 0, photometric = 0;
    TIFFGetField(tif, TIFFTAG_COMPRESSION, &compression);
    TIFFGetField(tif, TIFFTAG_PHOTOMETRIC, &photometric);
    if (compression == COMPRESSION_JPEG && photometric == PHOTOMETRIC_YCBCR) {
      TIFFSetField(tif, TIFFTAG_JPEGCOLORMODE, JPEGCOLORMODE_RGB);  // libjpeg converts to RGB
    }
    out = cv::Mat(int(h), int(w), CV_8UC(spp));
    std::vector<uint8_t> tile(size_t(tw) * th * spp);
    for (uint32_t y = 0; y < h; y += th) {
      for (uint32_t x = 0; x < w; x += tw) {
        if (TIFFReadEncodedTile(tif, TIFFComputeTile(tif, x, y, 0, 0), tile.data(), tmsize_t(tile.size())) < 0) {
          TIFFClose(tif);
          return {};
        }
        for (uint32_t r = 0; r < std::min(th, h - y); ++r) {
          std::memcpy(out.ptr<uint8_t>(int(y + r)) + size_t(x) * spp, tile.data() + size_t(r) * tw * spp,
                      size_t(std::min(tw, w - x)) * spp);
        }
      }
    }
  }
  TIFFClose(tif);
  return out;
}

synth::MosaicConfig small_config() {
  synth::MosaicConfig c;
  c.width = 2100;
  c.height = 1500;
  c.gap = 8;
  c.tile = 256;
  c.compression = raster::TiffCompression::kDeflate;
  c.seed = 5;
  return c;
}

TEST(MosaicPlan, ShelvesInsideTheImageWithGapsAndEveryAnnotationMoved) {
  const io::CocoDataset src = load_sample();
  const synth::MosaicConfig c = small_config();
  const synth::MosaicPlan plan = synth::plan_mosaic(src, c);
  ASSERT_GE(plan.placements.size(), 6u);
  EXPECT_EQ(plan.skipped_images, 0u);
  size_t expected_annotations = 0;
  for (size_t i = 0; i < plan.placements.size(); ++i) {
    const synth::MosaicPlacement& p = plan.placements[i];
    const io::ImageRecord& im = src.images[p.source_image_index];
    EXPECT_EQ(p.source_image_id, im.id);
    EXPECT_EQ(p.width, im.width);
    EXPECT_EQ(p.height, im.height);
    EXPECT_GE(p.x, c.gap);
    EXPECT_GE(p.y, c.gap);
    EXPECT_LE(p.x + p.width + c.gap, c.width);
    EXPECT_LE(p.y + p.height + c.gap, c.height);
    for (size_t j = 0; j < i; ++j) {  // disjoint, at least `gap` apart on one axis
      const synth::MosaicPlacement& q = plan.placements[j];
      const bool apart = p.x >= q.x + q.width + c.gap || q.x >= p.x + p.width + c.gap ||
                         p.y >= q.y + q.height + c.gap || q.y >= p.y + p.height + c.gap;
      EXPECT_TRUE(apart) << "placements " << j << " and " << i;
    }
    expected_annotations += src.annotations_of(p.source_image_index).size();
  }
  // The first cycle is a permutation: the first 16 placements (when there are
  // that many) are 16 distinct images.
  std::map<uint32_t, int> seen;
  for (size_t i = 0; i < std::min<size_t>(plan.placements.size(), src.images.size()); ++i) {
    EXPECT_EQ(++seen[plan.placements[i].source_image_index], 1);
  }
  const io::CocoDataset& ds = plan.dataset;
  ASSERT_EQ(ds.images.size(), 1u);
  EXPECT_EQ(ds.images[0].id, 1);
  EXPECT_EQ(ds.images[0].width, c.width);
  EXPECT_EQ(ds.images[0].height, c.height);
  EXPECT_EQ(ds.file_name(ds.images[0]), "mosaic.tif");
  EXPECT_EQ(ds.categories.size(), src.categories.size());
  ASSERT_EQ(ds.annotations.size(), expected_annotations);
  for (size_t k = 0; k < ds.annotations.size(); ++k) {
    const io::AnnotationRecord& a = ds.annotations[k];
    const io::AnnotationRecord& s = src.annotations[plan.annotation_source[k]];
    const synth::MosaicPlacement& p = plan.placements[plan.annotation_placement[k]];
    EXPECT_EQ(a.id, int64_t(k) + 1);
    EXPECT_EQ(a.image_id, 1);
    EXPECT_EQ(s.image_id, p.source_image_id);
    EXPECT_EQ(a.category_id, s.category_id);
    EXPECT_EQ(a.area, s.area);
    EXPECT_EQ(a.iscrowd, s.iscrowd);
    EXPECT_EQ(a.bbox[0], s.bbox[0] + double(p.x));
    EXPECT_EQ(a.bbox[1], s.bbox[1] + double(p.y));
    EXPECT_EQ(a.bbox[2], s.bbox[2]);
    EXPECT_EQ(a.bbox[3], s.bbox[3]);
  }

  // Same seed, same plan; another seed, another order.
  const synth::MosaicPlan again = synth::plan_mosaic(src, c);
  ASSERT_EQ(again.placements.size(), plan.placements.size());
  for (size_t i = 0; i < plan.placements.size(); ++i) {
    EXPECT_EQ(again.placements[i].source_image_index, plan.placements[i].source_image_index);
  }
  synth::MosaicConfig c2 = c;
  c2.seed = 6;
  const synth::MosaicPlan other = synth::plan_mosaic(src, c2);
  bool differs = other.placements.size() != plan.placements.size();
  for (size_t i = 0; !differs && i < plan.placements.size(); ++i) {
    differs = other.placements[i].source_image_index != plan.placements[i].source_image_index;
  }
  EXPECT_TRUE(differs);
}

/// Pixels of the masks `a` and `b` (same size) that differ.
uint64_t differing(const mask::Rle& a, const mask::Rle& b) {
  const mask::Rle both = mask::merge({a, b}, true), either = mask::merge({a, b}, false);
  return mask::area(either) - mask::area(both);
}

TEST(Mosaic, WrittenDatasetHoldsTheSourcesPixelsAndMasks) {
  const io::CocoDataset src = load_sample();
  const synth::MosaicConfig c = small_config();
  TempDir tmp;
  const std::string out = (tmp.path() / "out").string();
  uint64_t calls = 0, total_seen = 0;
  synth::MosaicOutputOptions oo;
  oo.progress = [&](uint64_t done, uint64_t total) {
    EXPECT_EQ(done, ++calls);
    total_seen = total;
    return true;
  };
  const synth::MosaicSummary sum = synth::generate_mosaic(src, out, c, oo);
  ASSERT_TRUE(sum.pixels.completed);
  EXPECT_EQ(sum.pixels.levels, 5);  // 2100x1500 -> 1050x750 -> 525x375 -> 263x188 (> 256) -> 132x94
  EXPECT_EQ(calls, total_seen);
  EXPECT_EQ(sum.pixels.bands, total_seen);
  EXPECT_GT(sum.file_bytes, 0u);
  EXPECT_EQ(sum.image_path, out + "/images/mosaic.tif");
  EXPECT_LE(sum.pixels.decoded, src.images.size());  // the cache holds them all: each decoded once
  ASSERT_TRUE(fs::exists(sum.image_path));
  EXPECT_EQ(fs::file_size(sum.image_path), sum.file_bytes);

  io::LoadOptions lo;
  lo.keep_extra_fields = true;
  const io::CocoDataset ds = io::load_coco(sum.annotations_path, lo);
  ASSERT_EQ(ds.images.size(), 1u);
  EXPECT_EQ(ds.file_name(ds.images[0]), "mosaic.tif");
  EXPECT_EQ(ds.images[0].width, c.width);
  EXPECT_NE(ds.str(ds.top_level_extra).find("\"placements\":[{\"image_id\":"), std::string::npos);

  // The plan the file came from (deterministic), for the placements.
  const synth::MosaicPlan plan = synth::plan_mosaic(src, c);
  ASSERT_EQ(ds.annotations.size(), plan.dataset.annotations.size());

  int directories = 0;
  const cv::Mat level0 = read_directory(sum.image_path, 0, &directories);
  EXPECT_EQ(directories, 5);
  ASSERT_EQ(level0.cols, c.width);
  ASSERT_EQ(level0.rows, c.height);
  const cv::Mat level1 = read_directory(sum.image_path, 1);
  ASSERT_EQ(level1.cols, (c.width + 1) / 2);

  stages::Decoder decoder;
  cv::Mat covered(level0.rows, level0.cols, CV_8U, cv::Scalar(0));
  for (const synth::MosaicPlacement& p : plan.placements) {
    const io::ImageRecord& im = src.images[p.source_image_index];
    SCOPED_TRACE(src.file_name(im));
    const cv::Mat source = decoder.decode(src.image_path(im));
    const cv::Rect r(int(p.x), int(p.y), int(p.width), int(p.height));
    EXPECT_EQ(cv::norm(level0(r), source, cv::NORM_INF), 0.0);  // Deflate: exact
    covered(r).setTo(1);
    // Level 1: the source resized (INTER_AREA) at half the position.
    cv::Mat half;
    cv::resize(source, half, cv::Size((im.width + 1) / 2, (im.height + 1) / 2), 0, 0, cv::INTER_AREA);
    EXPECT_EQ(cv::norm(level1(cv::Rect(int(p.x / 2), int(p.y / 2), half.cols, half.rows)), half, cv::NORM_INF), 0.0);
  }
  // Everything else is the grey background.
  cv::Mat grey_part;
  cv::Mat background_mask = covered == 0;
  EXPECT_GT(cv::countNonZero(background_mask), 0);
  for (int ch = 0; ch < 3; ++ch) {
    cv::Mat plane;
    cv::extractChannel(level0, plane, ch);
    double lo_v = 0, hi_v = 0;
    cv::minMaxLoc(plane, &lo_v, &hi_v, nullptr, nullptr, background_mask);
    EXPECT_EQ(lo_v, c.background);
    EXPECT_EQ(hi_v, c.background);
  }

  // Masks: the full-size mask cropped to the placement == the source mask.
  const uint32_t H = uint32_t(c.height), W = uint32_t(c.width);
  size_t rle_sources = 0, polygon_sources = 0, polygon_exact = 0;
  uint64_t polygon_pixels = 0, polygon_diff = 0;
  for (size_t k = 0; k < ds.annotations.size(); ++k) {
    const io::AnnotationRecord& a = ds.annotations[k];
    const io::AnnotationRecord& s = src.annotations[plan.annotation_source[k]];
    const synth::MosaicPlacement& p = plan.placements[plan.annotation_placement[k]];
    const mask::Rle full = mask::annotation_rle(ds, a, H, W);
    const mask::Rle window = mask::crop(full, int(p.x), int(p.y), uint32_t(p.width), uint32_t(p.height));
    const mask::Rle expected = mask::annotation_rle(src, s, uint32_t(p.height), uint32_t(p.width));
    if (s.seg_kind == io::SegmentationKind::kPolygons) {
      ++polygon_sources;
      EXPECT_EQ(a.seg_kind, io::SegmentationKind::kPolygons);
      const uint64_t d = differing(window, expected);
      polygon_exact += d == 0;
      polygon_diff += d;
      polygon_pixels += mask::area(expected);
      // pycocotools' rounding of shifted vertices: at most a pixel here and there.
      EXPECT_LE(d, 2 + mask::area(expected) / 100) << "annotation " << a.id;
    } else {
      ++rle_sources;
      EXPECT_EQ(a.seg_kind, io::SegmentationKind::kRleString);
      EXPECT_EQ(window, expected) << "annotation " << a.id;  // RLE: exact
      EXPECT_EQ(mask::area(full), mask::area(expected));      // nothing outside the window
    }
  }
  EXPECT_GT(rle_sources, 0u);
  EXPECT_GT(polygon_sources, 50u);
  std::printf("polygons: %zu of %zu exact after the shift; %llu of %llu pixels differ\n", polygon_exact,
              polygon_sources, static_cast<unsigned long long>(polygon_diff),
              static_cast<unsigned long long>(polygon_pixels));
}

TEST(Mosaic, JpegLevelsAreCloseToTheSources) {
  const io::CocoDataset src = load_sample();
  synth::MosaicConfig c = small_config();
  c.compression = raster::TiffCompression::kJpeg;
  c.quality = 90;
  c.width = 1400;
  c.height = 900;
  TempDir tmp;
  const synth::MosaicSummary sum = synth::generate_mosaic(src, (tmp.path() / "out").string(), c);
  ASSERT_TRUE(sum.pixels.completed);
  const synth::MosaicPlan plan = synth::plan_mosaic(src, c);
  const cv::Mat level0 = read_directory(sum.image_path, 0);
  ASSERT_EQ(level0.cols, c.width);
  stages::Decoder decoder;
  for (const synth::MosaicPlacement& p : plan.placements) {
    const cv::Mat source = decoder.decode(src.image_path(src.images[p.source_image_index]));
    const cv::Mat got = level0(cv::Rect(int(p.x), int(p.y), int(p.width), int(p.height)));
    EXPECT_GT(cv::PSNR(got, source), 30.0);
  }
}

TEST(Mosaic, AStopLeavesNothingBehind) {
  const io::CocoDataset src = load_sample();
  TempDir tmp;
  const std::string out = (tmp.path() / "out").string();
  synth::MosaicOutputOptions oo;
  oo.progress = [](uint64_t done, uint64_t) { return done < 3; };
  const synth::MosaicSummary sum = synth::generate_mosaic(src, out, small_config(), oo);
  EXPECT_FALSE(sum.pixels.completed);
  EXPECT_EQ(sum.pixels.bands, 3u);
  // OUT was created by the writer and is removed again (empty).
  EXPECT_FALSE(fs::exists(out + "/annotations.json"));
  EXPECT_FALSE(fs::exists(out + "/images"));
  if (fs::exists(out)) {
    EXPECT_TRUE(fs::is_empty(out));
  }
}

TEST(Mosaic, RefusesToReplaceAnOutputWithoutOverwrite) {
  const io::CocoDataset src = load_sample();
  TempDir tmp;
  const std::string out = (tmp.path() / "out").string();
  synth::MosaicConfig c = small_config();
  c.width = 700;
  c.height = 500;
  synth::generate_mosaic(src, out, c);
  const std::string before = pasteflow::testing::read_file(out + "/annotations.json");
  c.seed = 99;
  try {
    synth::generate_mosaic(src, out, c);
    FAIL() << "expected output_exists";
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), "output_exists");
  }
  EXPECT_EQ(pasteflow::testing::read_file(out + "/annotations.json"), before);
  synth::MosaicOutputOptions oo;
  oo.overwrite = true;
  EXPECT_TRUE(synth::generate_mosaic(src, out, c, oo).pixels.completed);
}

TEST(Mosaic, BadRequestsAreErrors) {
  const io::CocoDataset src = load_sample();
  synth::MosaicConfig c = small_config();
  c.width = 300;  // no sample image fits in 300 px
  c.height = 300;
  try {
    synth::plan_mosaic(src, c);
    FAIL() << "expected no_images";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "no_images");
  }
  c = small_config();
  c.tile = 100;
  EXPECT_THROW(synth::plan_mosaic(src, c), ConfigError);
  c = small_config();
  c.gap = -1;
  EXPECT_THROW(synth::plan_mosaic(src, c), ConfigError);
  // The sample has (uncompressed) RLE crowd masks: a mosaic of 2^32 pixels
  // or more cannot hold them as 32-bit runs.
  c = small_config();
  c.width = 70000;
  c.height = 70000;
  try {
    synth::plan_mosaic(src, c);
    FAIL() << "expected a ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "mosaic.width");
  }
  // A missing source image: InputError naming it, nothing published.
  io::CocoDataset broken = load_sample();
  broken.image_root = "/nonexistent";
  TempDir tmp;
  c = small_config();
  try {
    synth::generate_mosaic(broken, (tmp.path() / "out").string(), c);
    FAIL() << "expected missing_image";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "missing_image");
    EXPECT_NE(e.where().file.find("/nonexistent/"), std::string::npos);
  }
  EXPECT_FALSE(fs::exists(tmp.path() / "out" / "annotations.json"));
}

// Round trip with the slicer: 320 x 320 views of the sample (slice_dataset)
// become the sources of a gap-free mosaic whose placements lie exactly on a
// 320 grid; slicing the mosaic with that grid gives back each source view's
// annotations (RLE: exactly) and its pixels (Deflate, read with the raster
// reader).
class MosaicSliceRoundTrip : public ::testing::TestWithParam<bool> {};

TEST_P(MosaicSliceRoundTrip, AlignedSlicesGiveBackTheSources) {
  const bool polygons = GetParam();
  const io::CocoDataset sample = load_sample();
  TempDir tmp;
  const fs::path tiles = tmp.path() / "tiles";
  fs::create_directories(tiles);

  slice::SliceConfig sc;
  sc.size = 320;
  sc.overlap = 0.0;
  sc.min_area_ratio = 0.0;
  sc.keep_empty = 1.0;
  sc.polygons = polygons;
  slice::SlicedDataset views = slice::slice_dataset(sample, sc, 1, /*slice_all=*/true);
  ASSERT_GT(views.views.size(), 40u);
  io::CocoDataset& tile_ds = views.dataset;
  {
    stages::Decoder decoder;
    std::map<uint32_t, cv::Mat> decoded;
    for (size_t i = 0; i < views.views.size(); ++i) {
      const slice::View& v = views.views[i];
      cv::Mat& src = decoded[v.source_image_index];
      if (src.empty()) src = decoder.decode(sample.image_path(sample.images[v.source_image_index]));
      cv::Mat bgr;
      cv::cvtColor(src(cv::Rect(int(v.window.x), int(v.window.y), int(v.window.width), int(v.window.height))), bgr,
                   cv::COLOR_RGB2BGR);
      const std::string name = "view_" + std::to_string(i) + ".png";
      ASSERT_TRUE(cv::imwrite((tiles / name).string(), bgr));
      tile_ds.images[i].file_name = tile_ds.add_string(name);
    }
  }
  tile_ds.image_root = tiles.string();

  synth::MosaicConfig c;
  c.width = 4 * 320;
  c.height = 3 * 320;
  c.gap = 0;
  c.tile = 128;
  c.compression = raster::TiffCompression::kDeflate;
  c.seed = 3;
  const synth::MosaicSummary sum = synth::generate_mosaic(tile_ds, (tmp.path() / "out").string(), c);
  ASSERT_TRUE(sum.pixels.completed);
  const synth::MosaicPlan plan = synth::plan_mosaic(tile_ds, c);
  ASSERT_EQ(plan.placements.size(), 12u);
  std::map<std::pair<int64_t, int64_t>, const synth::MosaicPlacement*> at;
  for (const synth::MosaicPlacement& p : plan.placements) at[{p.x, p.y}] = &p;

  io::LoadOptions lo;
  lo.image_root = (tmp.path() / "out" / "images").string();
  const io::CocoDataset mosaic = io::load_coco(sum.annotations_path, lo);
  slice::SliceConfig sc2 = sc;
  const slice::SlicedDataset cut = slice::slice_dataset(mosaic, sc2, 1, true);
  ASSERT_EQ(cut.views.size(), 12u);

  const auto tif = raster::TiffFile::open(sum.image_path, raster::RasterConfig{}, nullptr);
  size_t compared = 0;
  uint64_t polygon_diff = 0;
  for (size_t j = 0; j < cut.views.size(); ++j) {
    const slice::Window& w = cut.views[j].window;
    ASSERT_EQ(w.width, 320);
    ASSERT_EQ(w.height, 320);
    ASSERT_EQ(at.count({w.x, w.y}), 1u) << "window " << w.x << "," << w.y << " is not a placement";
    const synth::MosaicPlacement& p = *at[{w.x, w.y}];
    SCOPED_TRACE("window " + std::to_string(w.x) + "," + std::to_string(w.y) + " <- view " +
                 std::to_string(p.source_image_index));
    // Pixels.
    const cv::Mat got = tif->read_window(0, w);
    cv::Mat expected_bgr = cv::imread(tile_ds.image_path(tile_ds.images[p.source_image_index]), cv::IMREAD_COLOR);
    cv::Mat expected;
    cv::cvtColor(expected_bgr, expected, cv::COLOR_BGR2RGB);
    EXPECT_EQ(cv::norm(got, expected, cv::NORM_INF), 0.0);
    // Annotations.
    const auto mine = cut.dataset.annotations_of(j);
    const auto theirs = tile_ds.annotations_of(p.source_image_index);
    ASSERT_EQ(mine.size(), theirs.size());
    for (size_t k = 0; k < mine.size(); ++k) {
      const io::AnnotationRecord& a = cut.dataset.annotations[mine[k]];
      const io::AnnotationRecord& b = tile_ds.annotations[theirs[k]];
      EXPECT_EQ(a.category_id, b.category_id);
      EXPECT_EQ(a.iscrowd, b.iscrowd);
      const mask::Rle ma = mask::annotation_rle(cut.dataset, a, 320, 320);
      const mask::Rle mb = mask::annotation_rle(tile_ds, b, 320, 320);
      if (b.seg_kind == io::SegmentationKind::kPolygons) {
        const uint64_t d = differing(ma, mb);
        polygon_diff += d;
        EXPECT_LE(d, 2 + mask::area(mb) / 100);  // shifted vertices: pycocotools rounding
      } else {
        EXPECT_EQ(ma, mb);  // RLE: exact
        EXPECT_EQ(a.area, b.area);
        EXPECT_EQ(a.bbox, b.bbox);
      }
      ++compared;
    }
  }
  EXPECT_GT(compared, 10u);
  std::printf("round trip (%s): %zu annotations compared, %llu polygon pixels differ\n",
              polygons ? "polygons" : "rle", compared, static_cast<unsigned long long>(polygon_diff));
}

#ifdef PASTEFLOW_BIN
// The commands: `pasteflow generate mosaic` and `pasteflow bench slices`
// (its output format; the figures themselves are not tested).
TEST(MosaicCli, GenerateMosaicThenBenchSlices) {
  using pasteflow::testing::run_command;
  TempDir tmp;
  const std::string out = (tmp.path() / "out").string();
  const std::string gen = std::string(PASTEFLOW_BIN) + " generate mosaic --annotations " + kSample +
                          "/annotations.json --images " + kSample + "/images --out " + out +
                          " --width 1500 --height 1100 --compression deflate --tile 256 --seed 4 --json";
  const auto r = run_command(gen, false);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("\"levels\": 4"), std::string::npos) << r.output;  // 1500 750 375 188
  EXPECT_NE(r.output.find("\"placements\": "), std::string::npos);
  ASSERT_TRUE(fs::exists(out + "/images/mosaic.tif"));
  // Same seed, same annotations (the pixels are the same sources).
  io::LoadOptions lo;
  lo.keep_extra_fields = true;
  const io::CocoDataset ds = io::load_coco(out + "/annotations.json", lo);
  synth::MosaicConfig c;
  c.width = 1500;
  c.height = 1100;
  c.tile = 256;
  c.seed = 4;
  c.compression = raster::TiffCompression::kDeflate;
  const synth::MosaicPlan plan = synth::plan_mosaic(load_sample(), c);
  EXPECT_EQ(ds.annotations.size(), plan.dataset.annotations.size());

  // A second run without --overwrite is refused; the output stays.
  const auto again = run_command(gen, true);
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.output.find("overwrite"), std::string::npos) << again.output;
  // No image fits: a clear error, exit 1, nothing written.
  const auto tiny = run_command(std::string(PASTEFLOW_BIN) + " generate mosaic --annotations " + kSample +
                                "/annotations.json --images " + kSample + "/images --out " +
                                (tmp.path() / "tiny").string() + " --width 200 --height 200");
  EXPECT_EQ(tiny.status, 1);
  EXPECT_NE(tiny.output.find("fits"), std::string::npos) << tiny.output;
  EXPECT_FALSE(fs::exists(tmp.path() / "tiny" / "annotations.json"));

  const auto bench = run_command(std::string(PASTEFLOW_BIN) + " bench slices --image " + out +
                                     "/images/mosaic.tif --size 256 --threads 2 --json",
                                 false);
  ASSERT_EQ(bench.status, 0) << bench.output;
  for (const char* key : {"megapixels", "slices_per_s", "megapixels_per_s", "peak_rss_mb", "tile_cache_hit_rate",
                          "vips_megapixels_per_s", "ratio_vs_vips", "whole_decode_megapixels_per_s",
                          "ratio_vs_whole_decode", "whole_decode_peak_rss_mb"}) {
    EXPECT_NE(bench.output.find(std::string("\"") + key + "\": "), std::string::npos) << key << "\n" << bench.output;
  }
  EXPECT_NE(bench.output.find("\"slices\": 30,"), std::string::npos) << bench.output;  // 6 x 5 windows of 256 (1500 x 1100)
  // The whole decode crops the same pixels: same checksum.
  EXPECT_NE(bench.output.find("\"checksums_match\": true"), std::string::npos) << bench.output;
  // The pipeline variant (the keys) and the reader alone (reader_
  // keys): numbers, every window batched at its size, in 15 batches of 2.
  const bool have_vips = bench.output.find("\"vips_note\"") == std::string::npos;
  for (const char* key : {"megapixels", "slices_per_s", "megapixels_per_s", "peak_rss_mb", "baseline_rss_mb",
                          "tile_cache_hit_rate", "reader_megapixels_per_s", "reader_peak_rss_mb",
                          "reader_tile_cache_hit_rate", "reader_slices_per_s", "vips_megapixels_per_s",
                          "ratio_vs_vips", "reader_ratio_vs_vips"}) {
    const std::string k = std::string("\"") + key + "\": ";
    if (!have_vips && std::string(key).find("vips") != std::string::npos) continue;
    const size_t at = bench.output.find(k);
    ASSERT_NE(at, std::string::npos) << key << "\n" << bench.output;
    const char* begin = bench.output.c_str() + at + k.size();
    char* end = nullptr;
    const double v = std::strtod(begin, &end);
    EXPECT_NE(end, begin) << key << " is not a number\n" << bench.output;
    EXPECT_TRUE(std::isfinite(v)) << key;
    EXPECT_GE(v, 0.0) << key;
    if (std::string(key).find("hit_rate") != std::string::npos) {
      EXPECT_LE(v, 1.0) << key;
    }
    if (std::string(key).find("_per_s") != std::string::npos || std::string(key).find("rss") != std::string::npos) {
      EXPECT_GT(v, 0.0) << key;
    }
  }
  {
    const std::string k = "\"megapixels\": ";
    const size_t at = bench.output.find(k);
    ASSERT_NE(at, std::string::npos);
    EXPECT_NEAR(std::strtod(bench.output.c_str() + at + k.size(), nullptr), 30 * 256 * 256 / 1e6, 1e-9);
  }
  EXPECT_NE(bench.output.find("\"reader_slices\": 30,"), std::string::npos) << bench.output;
  EXPECT_NE(bench.output.find("\"batches\": 15,"), std::string::npos) << bench.output;
  EXPECT_NE(bench.output.find("\"windows_read\": 30,"), std::string::npos) << bench.output;
  EXPECT_NE(bench.output.find("\"batched_pixels_match\": true"), std::string::npos) << bench.output;
  EXPECT_NE(bench.output.find("\"view_annotations\": 0,"), std::string::npos) << bench.output;
  EXPECT_NE(bench.output.find("\"instances\": 0,"), std::string::npos) << bench.output;

  // With the mosaic's annotations cut to every view (its record found by
  // the file name); batches of 4: 8 batches (the last of 2).
  const auto annotated =
      run_command(std::string(PASTEFLOW_BIN) + " bench slices --image " + out + "/images/mosaic.tif --annotations " +
                      out + "/annotations.json --size 256 --overlap 0.2 --batch-size 4 --no-vips --max-whole-mb 0 --json",
                  false);
  ASSERT_EQ(annotated.status, 0) << annotated.output;
  const size_t n_windows = slice::grid(1500, 1100, 256, 256, 0.2).size();
  EXPECT_NE(annotated.output.find("\"slices\": " + std::to_string(n_windows) + ","), std::string::npos)
      << annotated.output;
  EXPECT_NE(annotated.output.find("\"batches\": " + std::to_string((n_windows + 3) / 4) + ","), std::string::npos)
      << annotated.output;
  EXPECT_NE(annotated.output.find("\"batched_pixels_match\": true"), std::string::npos) << annotated.output;
  // The annotations were cut to the views and reached the batches.
  {
    const slice::SliceConfig sc = [] {
      slice::SliceConfig c;
      c.above = 1;
      c.size = 256;
      c.overlap = 0.2;
      c.keep_empty = 1.0;
      return c;
    }();
    io::CocoDataset one = ds;  // the mosaic's one image, its file name as the command sees it
    const slice::SlicedDataset cut = slice::slice_dataset(one, sc, 0);
    ASSERT_GT(cut.dataset.annotations.size(), 0u);
    EXPECT_NE(annotated.output.find("\"view_annotations\": " + std::to_string(cut.dataset.annotations.size()) + ","),
              std::string::npos)
        << annotated.output;
    const std::string k = "\"instances\": ";
    const size_t at = annotated.output.find(k);
    ASSERT_NE(at, std::string::npos);
    EXPECT_GT(std::strtoull(annotated.output.c_str() + at + k.size(), nullptr, 10), 0u) << annotated.output;
  }
  // An annotation file without the image: exit 1, the error names the file.
  const auto missing = run_command(std::string(PASTEFLOW_BIN) + " bench slices --image " + out +
                                       "/images/mosaic.tif --annotations " + kSample +
                                       "/annotations.json --size 256 --no-vips --json",
                                   true);
  EXPECT_EQ(missing.status, 1) << missing.output;
  EXPECT_NE(missing.output.find("mosaic.tif"), std::string::npos) << missing.output;
  EXPECT_NE(missing.output.find(kSample + "/annotations.json"), std::string::npos) << missing.output;
}

// Ctrl-C while the pixels are written: exit status 130, nothing published,
// no staging directory left.
TEST(MosaicCli, InterruptLeavesNothing) {
  TempDir tmp;
  const fs::path out = tmp.path() / "out";
  const pid_t pid = pasteflow::testing::spawn_command(
      "exec " + std::string(PASTEFLOW_BIN) + " generate mosaic --annotations " + kSample + "/annotations.json --images " +
      kSample + "/images --out " + out.string() + " --width 30000 --height 30000 --compression deflate 2>/dev/null");
  ASSERT_GT(pid, 0);
  // Wait until the run has opened its staging directory (the signal handler is in place by then).
  bool staging = false;
  for (int i = 0; i < 600 && !staging; ++i) {
    ::usleep(50 * 1000);
    std::error_code ec;
    if (fs::exists(out, ec)) {
      for (const auto& e : fs::directory_iterator(out, ec)) {
        staging = staging || e.path().filename().string().rfind(".pasteflow-staging-", 0) == 0;
      }
    }
  }
  ASSERT_TRUE(staging);
  ::usleep(300 * 1000);
  ::kill(pid, SIGINT);
  int status = 0;
  ASSERT_EQ(::waitpid(pid, &status, 0), pid);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_EQ(WEXITSTATUS(status), 130);
  EXPECT_FALSE(fs::exists(out / "annotations.json"));
  EXPECT_FALSE(fs::exists(out / "images"));
  std::error_code ec;
  if (fs::exists(out, ec)) {
    for (const auto& e : fs::directory_iterator(out, ec)) ADD_FAILURE() << "left behind: " << e.path();
  }
}
#endif

// Regression: a parameterised test is named "Name/rle"; its scratch directory
// was "<tmp>/pasteflow_mosaic_<pid>_Name/rle", and removing it left
// "pasteflow_mosaic_<pid>_Name" in /tmp after every run.
TEST_P(MosaicSliceRoundTrip, ScratchDirectoryOfAParameterisedTestIsOneLevelAndRemovedWhole) {
  fs::path made;
  {
    TempDir tmp;
    made = tmp.path();
    EXPECT_EQ(made.parent_path(), fs::temp_directory_path());
    EXPECT_NE(made.filename().string().find(GetParam() ? "_polygons" : "_rle"), std::string::npos) << made;
    std::ofstream(made / "file") << "x";
  }
  EXPECT_FALSE(fs::exists(made)) << made;
}

INSTANTIATE_TEST_SUITE_P(Segmentations, MosaicSliceRoundTrip, ::testing::Values(false, true),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? std::string("polygons") : std::string("rle");
                         });

}  // namespace
