// Sliced prediction of huge images (train/predict.hpp "Sliced prediction",
// train/sliced_predict.cpp; issue 11 section 3) with the tiny model of
// configs/train/sample_tiny.yaml (seeded init, no training) on a real photo
// of the bundled sample written as a tiled, Deflate-compressed TIFF with
// libtiff in the test:
//  - one slice covering the whole image gives exactly the unsliced results
//    (results.json byte for byte);
//  - several slices (nms and greedy_nmm): every result in full-image
//    coordinates (boxes inside the image, RLE of the full image's size), the
//    merge counts add up, the results load and evaluate against the
//    full-image ground truth (eval never decodes pixels), and the overlay is
//    the down-scaled image (long side --overlay-max-side);
//  - a truncated TIFF: an error naming the file (strict) or a skipped image.
// The box score threshold is 0 (model.box.score_thresh=0.0) so that the
// barely initialised model gives detections.
#include <gtest/gtest.h>
#include <tiffio.h>
#include <unistd.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <string>
#include <tuple>
#include <variant>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "common/command.hpp"
#include "common/file.hpp"
#include "pasteflow/config/config.hpp"
#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/eval/results.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/model/weights.hpp"
#include "pasteflow/slice/slice.hpp"
#include "pasteflow/train/config.hpp"
#include "pasteflow/train/predict.hpp"
#include "pasteflow/train/trainer.hpp"
#include "../../train/sliced_predict.hpp"  // train/'s internal overview reader

#include "train_test_util.hpp"

namespace pasteflow::train {
namespace {

namespace fs = std::filesystem;
using pasteflow::testing::read_file;

using testing_util::kSample;
const int64_t kImageId = 54718;  // 000000054718.jpg, 640 x 480, 8 objects

/// `rgb` (CV_8UC3) as a tiled (64 x 64), Deflate-compressed RGB TIFF.
void write_tiled_tiff(const cv::Mat& rgb, const std::string& path) {
  TIFF* t = TIFFOpen(path.c_str(), "w");
  ASSERT_NE(t, nullptr);
  TIFFSetField(t, TIFFTAG_IMAGEWIDTH, static_cast<uint32_t>(rgb.cols));
  TIFFSetField(t, TIFFTAG_IMAGELENGTH, static_cast<uint32_t>(rgb.rows));
  TIFFSetField(t, TIFFTAG_SAMPLESPERPIXEL, 3);
  TIFFSetField(t, TIFFTAG_BITSPERSAMPLE, 8);
  TIFFSetField(t, TIFFTAG_PHOTOMETRIC, PHOTOMETRIC_RGB);
  TIFFSetField(t, TIFFTAG_PLANARCONFIG, PLANARCONFIG_CONTIG);
  TIFFSetField(t, TIFFTAG_COMPRESSION, COMPRESSION_ADOBE_DEFLATE);
  TIFFSetField(t, TIFFTAG_TILEWIDTH, 64);
  TIFFSetField(t, TIFFTAG_TILELENGTH, 64);
  std::vector<uint8_t> tile(64 * 64 * 3);
  for (int ty = 0; ty < rgb.rows; ty += 64) {
    for (int tx = 0; tx < rgb.cols; tx += 64) {
      std::fill(tile.begin(), tile.end(), 0);
      for (int y = ty; y < std::min(ty + 64, rgb.rows); ++y) {
        for (int x = tx; x < std::min(tx + 64, rgb.cols); ++x) {
          const cv::Vec3b p = rgb.at<cv::Vec3b>(y, x);
          uint8_t* q = &tile[(static_cast<size_t>(y - ty) * 64 + static_cast<size_t>(x - tx)) * 3];
          q[0] = p[0];
          q[1] = p[1];
          q[2] = p[2];
        }
      }
      ASSERT_GE(TIFFWriteTile(t, tile.data(), static_cast<uint32_t>(tx), static_cast<uint32_t>(ty), 0, 0), 0);
    }
  }
  TIFFClose(t);
}

class SlicedPredict : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("pasteflow_sliced_predict_" + std::to_string(::getpid())));
    fs::remove_all(*dir_);
    fs::create_directories(*dir_ / "images");
    const std::vector<std::string> overrides = {
        "data.train_annotations=" + kSample + "/annotations.json",
        "data.train_images=" + kSample + "/images",
        "data.val_annotations=" + kSample + "/annotations.json",
        "data.val_images=" + kSample + "/images",
        "output_dir=" + (*dir_ / "run").string(),
        "model.box.score_thresh=0.0",
        "torch_threads=2",
        "pipeline.loader.threads=2",
    };
    const TrainConfig cfg =
        load_train_config(std::string(PASTEFLOW_SOURCE_DIR) + "/configs/train/sample_tiny.yaml", overrides);
    {
      Trainer trainer(cfg);
      std::ofstream(path("config.yaml")) << config::dump_config(trainer.config());
      model::save_weights(*trainer.model(), path("best.pt"));
    }
    // The image as a tiled TIFF, and the ground truth of the full image (the
    // sample's annotations of that image, its record naming the TIFF).
    cv::Mat bgr = cv::imread(kSample + "/images/000000054718.jpg", cv::IMREAD_COLOR);
    ASSERT_FALSE(bgr.empty());
    cv::Mat rgb;
    cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
    write_tiled_tiff(rgb, path("images/scene.tif"));
    width_ = rgb.cols;
    height_ = rgb.rows;
    io::CocoDataset gt = io::load_coco(kSample + "/annotations.json");
    std::vector<io::ImageRecord> images;
    for (io::ImageRecord im : gt.images) {
      if (im.id != kImageId) continue;
      im.file_name = gt.add_string("scene.tif");
      images.push_back(im);
    }
    gt.images = images;
    std::vector<io::AnnotationRecord> anns;
    for (const io::AnnotationRecord& a : gt.annotations) {
      if (a.image_id == kImageId) anns.push_back(a);
    }
    gt.annotations = anns;
    gt.rebuild_index();
    io::write_coco(gt, path("gt.json"));
  }
  static void TearDownTestSuite() {
    fs::remove_all(*dir_);
    delete dir_;
  }
  static std::string path(const std::string& name) { return (*dir_ / name).string(); }

  static PredictOptions options(const std::string& out) {
    PredictOptions o;
    o.config = path("config.yaml");
    o.weights = path("best.pt");
    o.annotations = path("gt.json");
    o.image_dir = path("images");
    o.categories = kSample + "/annotations.json";  // the training set's map
    o.out_dir = path(out);
    o.threads = 2;
    return o;
  }

  static fs::path* dir_;
  static int width_, height_;
};
fs::path* SlicedPredict::dir_ = nullptr;
int SlicedPredict::width_ = 0;
int SlicedPredict::height_ = 0;

/// Checks every result is of the image, inside it, with an RLE of its size; returns them.
std::vector<eval::Detection> expect_full_image_results(const std::string& results, int width, int height) {
  const io::CocoDataset gt = io::load_coco(fs::path(results).parent_path().parent_path().string() + "/gt.json");
  const std::vector<eval::Detection> dets = eval::load_results(results, gt);
  for (const eval::Detection& d : dets) {
    EXPECT_EQ(d.image_id, kImageId);
    EXPECT_TRUE(d.bbox.has_value());
    if (!d.bbox) continue;
    const auto& b = *d.bbox;
    EXPECT_GE(b[0], 0.0);
    EXPECT_GE(b[1], 0.0);
    EXPECT_LE(b[0] + b[2], width + 1e-3);
    EXPECT_LE(b[1] + b[3], height + 1e-3);
    uint32_t h = 0, w = 0;
    if (const auto* c = std::get_if<eval::CompressedMask>(&d.segmentation)) {
      h = c->h;
      w = c->w;
    } else if (const auto* r = std::get_if<mask::Rle>(&d.segmentation)) {
      h = r->h;
      w = r->w;
    } else {
      ADD_FAILURE() << "a result without an RLE segmentation";
    }
    EXPECT_EQ(h, static_cast<uint32_t>(height));
    EXPECT_EQ(w, static_cast<uint32_t>(width));
  }
  return dets;
}

TEST_F(SlicedPredict, OneSliceCoveringTheImageGivesTheUnslicedResults) {
  PredictOptions whole = options("whole");
  whole.slice_above = 0;
  const PredictReport a = predict(whole);
  EXPECT_EQ(a.sliced_images, 0u);
  EXPECT_EQ(a.slices, 0u);

  PredictOptions one = options("one");
  one.slice_above = 100;   // the 640 x 480 image is "huge"
  one.slice_size = 1024;   // one window of the image's size
  const PredictReport b = predict(one);
  EXPECT_EQ(b.sliced_images, 1u);
  EXPECT_EQ(b.slices, 1u);
  EXPECT_EQ(b.images, 1u);
  ASSERT_GT(a.detections, 0u);
  EXPECT_EQ(a.detections, b.detections);
  EXPECT_EQ(a.below_threshold, b.below_threshold);
  const std::string ra = read_file(a.results_path), rb = read_file(b.results_path);
  ASSERT_FALSE(ra.empty());
  EXPECT_EQ(ra, rb);
  expect_full_image_results(b.results_path, width_, height_);
  // The overlay of a sliced image under --overlay-max-side is at full size, as the unsliced one.
  const cv::Mat oa = cv::imread(path("whole/overlays/54718_scene.png"));
  const cv::Mat ob = cv::imread(path("one/overlays/54718_scene.png"));
  ASSERT_FALSE(oa.empty());
  ASSERT_FALSE(ob.empty());
  EXPECT_EQ(oa.size(), ob.size());
  EXPECT_EQ(oa.cols, width_);
}

TEST_F(SlicedPredict, SeveralSlicesGiveFullImageResultsThatEvaluate) {
  for (const std::string merge : {"nms", "greedy_nmm"}) {
    SCOPED_TRACE(merge);
    PredictOptions o = options("grid_" + merge);
    o.slice_above = 100;
    o.slice_size = 256;
    o.slice_overlap = 0.25;
    o.merge = merge;
    o.overlay_max_side = 200;
    o.batch_size = 3;
    const PredictReport r = predict(o);
    const size_t windows = slice::grid(width_, height_, 256, 256, 0.25).size();
    ASSERT_GT(windows, 4u);
    EXPECT_EQ(r.slices, windows);
    EXPECT_EQ(r.sliced_images, 1u);
    ASSERT_GT(r.detections, 0u);
    EXPECT_LE(r.detections, r.merge_input);
    EXPECT_EQ(r.merge_input - r.merge_suppressed - r.merge_merged - r.merge_rejected, r.detections);
    if (merge == "nms") {
      EXPECT_GT(r.merge_suppressed, 0u);  // overlapping windows see the same things
      EXPECT_EQ(r.merge_merged, 0u);
    } else {
      EXPECT_GT(r.merge_merged, 0u);
      EXPECT_EQ(r.merge_suppressed, 0u);
    }
    const std::vector<eval::Detection> dets = expect_full_image_results(r.results_path, width_, height_);
    EXPECT_EQ(dets.size(), r.detections);
    // Boxes beyond a single slice exist only when merging grew them or the model saw the object whole.
    // The results evaluate against the full-image ground truth (bbox and segm).
    const io::CocoDataset gt = io::load_coco(path("gt.json"));
    for (const eval::IouType type : {eval::IouType::kBbox, eval::IouType::kSegm}) {
      eval::EvalParams p;
      p.iou_type = type;
      const eval::EvalResult e = eval::evaluate(gt, dets, p);
      EXPECT_GE(e.stats[0], 0.0);  // computed (-1 would mean no ground truth matched the image)
    }
    // The overlay: the image down-scaled to a longer side of 200 (640 / 3.2 x 480 / 3.2).
    const cv::Mat ov = cv::imread(path("grid_" + merge + "/overlays/54718_scene.png"));
    ASSERT_FALSE(ov.empty());
    EXPECT_EQ(ov.cols, 200);
    EXPECT_EQ(ov.rows, 150);
  }
}

TEST_F(SlicedPredict, TruncatedTiffIsAnErrorNamingTheFileOrASkip) {
  const std::string bytes = read_file(path("images/scene.tif"));
  fs::create_directories(path("cut/images"));
  std::ofstream(path("cut/images/scene.tif"), std::ios::binary) << bytes.substr(0, bytes.size() / 2);
  PredictOptions o = options("cut/out");
  o.image_dir = path("cut/images");
  o.slice_above = 100;
  o.slice_size = 256;
  try {
    predict(o);
    ADD_FAILURE() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("scene.tif"), std::string::npos) << e.what();
  }
  o.on_error = "skip";
  const PredictReport r = predict(o);
  EXPECT_EQ(r.images, 0u);
  EXPECT_EQ(r.skipped.total(), 1u);
  EXPECT_EQ(r.detections, 0u);
}

/// An image list mixing a huge image (sliced) and a small one (the loader's
/// path): ids by position, the small image's results those of unsliced
/// prediction (batches of 1 in both runs, so padding cannot differ).
TEST_F(SlicedPredict, MixedListSlicesOnlyTheHugeImage) {
  cv::Mat bgr = cv::imread(kSample + "/images/000000070133.jpg", cv::IMREAD_COLOR);
  ASSERT_FALSE(bgr.empty());
  ASSERT_TRUE(cv::imwrite(path("images/small.png"), bgr(cv::Rect(100, 50, 300, 200))));
  auto run = [&](const std::string& out, int64_t above) {
    PredictOptions o = options(out);
    o.annotations.clear();
    o.image_dir.clear();
    o.images = {path("images/scene.tif"), path("images/small.png")};
    o.slice_above = above;
    o.slice_size = 320;
    o.batch_size = 1;
    o.overlays = false;
    return predict(o);
  };
  const PredictReport plain = run("mixed_plain", 0);
  const PredictReport mixed = run("mixed_sliced", 500);
  EXPECT_EQ(mixed.images, 2u);
  EXPECT_EQ(mixed.sliced_images, 1u);
  EXPECT_EQ(mixed.slices, slice::grid(width_, height_, 320, 320, 0.2).size());
  io::CocoDataset gt = io::load_coco(kSample + "/annotations.json");
  gt.images.clear();
  gt.annotations.clear();
  for (const auto& [id, w, h] : {std::tuple<int64_t, int, int>{1, width_, height_}, {2, 300, 200}}) {
    io::ImageRecord r;
    r.id = id;
    r.width = w;
    r.height = h;
    r.file_name = gt.add_string(id == 1 ? "scene.tif" : "small.png");
    gt.images.push_back(r);
  }
  gt.rebuild_index();
  auto of_image = [&](const std::string& file, int64_t id) {
    std::string keep;
    for (const eval::Detection& d : eval::load_results(file, gt)) {
      if (d.image_id == id) keep += eval::results_to_json({d});
    }
    return keep;
  };
  const std::string small_plain = of_image(plain.results_path, 2), small_mixed = of_image(mixed.results_path, 2);
  EXPECT_FALSE(small_plain.empty());
  EXPECT_EQ(small_plain, small_mixed);
  EXPECT_FALSE(of_image(mixed.results_path, 1).empty());
}

// Slicing from the config (pipeline.slice.above / size / overlap overrides, no --slice-* flag).
TEST_F(SlicedPredict, CommandLineReportsSlicesAndMerges) {
  const std::string out = path("cli");
  const pasteflow::testing::CommandResult r = pasteflow::testing::run_command(
      std::string(PASTEFLOW_BIN) + " predict -c " + path("config.yaml") + " -w " + path("best.pt") + " -o " + out +
          " --categories " + kSample + "/annotations.json --annotations " + path("gt.json") + " --images " +
          path("images") + " pipeline.slice.above=100 pipeline.slice.size=256 pipeline.slice.overlap=0.25" +
          " --merge greedy_nmm" +
          " --merge-threshold 0.5 --overlay-max-side 320 --threads 2 --json",
      false);
  ASSERT_EQ(r.status, 0) << r.output;
  const size_t windows = slice::grid(width_, height_, 256, 256, 0.25).size();
  EXPECT_NE(r.output.find("\"slices\": " + std::to_string(windows)), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"sliced_images\": 1"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"method\": \"greedy_nmm\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"metric\": \"ios\""), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("\"merged\": "), std::string::npos) << r.output;
  // pasteflow eval reads them against the full image's ground truth.
  const pasteflow::testing::CommandResult e = pasteflow::testing::run_command(
      std::string(PASTEFLOW_BIN) + " eval --gt " + path("gt.json") + " --results " + out +
          "/results.json --type segm --json",
      false);
  ASSERT_EQ(e.status, 0) << e.output;
  EXPECT_NE(e.output.find("\"stats\""), std::string::npos) << e.output;
  const cv::Mat ov = cv::imread(out + "/overlays/54718_scene.png");
  EXPECT_EQ(ov.cols, 320);
  EXPECT_EQ(ov.rows, 240);
}

/// The overview of a TIFF read in bands equals the one read at once (an
/// integer downsample, so INTER_AREA averages the same 2 x 2 blocks), and
/// is the image resized.
TEST_F(SlicedPredict, OverviewReadInBandsEqualsOneRead) {
  raster::TiffPool pool(raster::RasterConfig{});
  const stages::Decoder decoder;
  const std::string file = path("images/scene.tif");
  const cv::Mat once = detail::read_overview(file, width_, height_, 2.0, pool, decoder);
  const cv::Mat bands = detail::read_overview(file, width_, height_, 2.0, pool, decoder, 640 * 2 * 5);  // 5 rows
  ASSERT_EQ(once.size(), cv::Size(320, 240));
  ASSERT_EQ(bands.size(), once.size());
  EXPECT_EQ(cv::norm(once, bands, cv::NORM_INF), 0.0);
  // Bands also follow raster.max_window_pixels (read_region checks the level-0 window).
  raster::RasterConfig small;
  small.max_window_pixels = 640 * 2 * 7;
  raster::TiffPool limited(small);
  const cv::Mat capped = detail::read_overview(file, width_, height_, 2.0, limited, decoder);
  EXPECT_EQ(cv::norm(once, capped, cv::NORM_INF), 0.0);
  cv::Mat rgb;
  cv::cvtColor(cv::imread(kSample + "/images/000000054718.jpg"), rgb, cv::COLOR_BGR2RGB);
  cv::Mat half;
  cv::resize(rgb, half, cv::Size(320, 240), 0, 0, cv::INTER_AREA);
  EXPECT_LE(cv::norm(once, half, cv::NORM_INF), 1.0);
  EXPECT_EQ(detail::overview_downsample(36000, 18000, 2048), 36000.0 / 2048);
  EXPECT_EQ(detail::overview_downsample(640, 480, 2048), 1.0);
}

/// pasteflow eval on a ground truth whose image is above the loader's
/// whole-image pixel limit (20000 x 10000 = 2e8 > 178956970): eval never
/// decodes pixels, so it loads with no limit; a perfect result scores 1.
TEST(EvalHugeGroundTruth, LoadsAndScoresAboveTheDecodePixelLimit) {
  const fs::path dir = fs::temp_directory_path() / ("pasteflow_eval_huge_" + std::to_string(::getpid()));
  fs::create_directories(dir);
  const double poly[8] = {15000, 7000, 15400, 7000, 15400, 7300, 15000, 7300};
  {
    std::ofstream gt(dir / "gt.json");
    gt << R"({"images": [{"id": 7, "file_name": "huge.tif", "width": 20000, "height": 10000}],
      "categories": [{"id": 3, "name": "thing"}],
      "annotations": [{"id": 1, "image_id": 7, "category_id": 3, "iscrowd": 0, "area": 120000,
        "bbox": [15000, 7000, 400, 300], "segmentation": [[15000, 7000, 15400, 7000, 15400, 7300, 15000, 7300]]}]})";
  }
  eval::Detection d;
  d.image_id = 7;
  d.category_id = 3;
  d.score = 0.9;
  d.bbox = std::array<double, 4>{15000, 7000, 400, 300};
  d.segmentation = mask::from_polygon(poly, 8, 10000, 20000);
  std::ofstream(dir / "results.json") << eval::results_to_json({d});
  for (const std::string type : {"bbox", "segm"}) {
    const pasteflow::testing::CommandResult e = pasteflow::testing::run_command(
        std::string(PASTEFLOW_BIN) + " eval --gt " + (dir / "gt.json").string() + " --results " +
            (dir / "results.json").string() + " --type " + type + " --json",
        false);
    EXPECT_EQ(e.status, 0) << e.output;
    const size_t at = e.output.find("\"stats\": [");
    ASSERT_NE(at, std::string::npos) << e.output;
    const double ap = std::stod(e.output.substr(at + 10));  // AP@[.5:.95]
    EXPECT_NEAR(ap, 1.0, 1e-9) << type << ": " << e.output;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace pasteflow::train
