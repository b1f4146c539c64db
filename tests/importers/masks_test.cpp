// The mask importer on real Data Science Bowl 2018 files (tests/data/dsb2018:
// three clean folders, one with a real overlap of two masks): every mask file
// becomes one annotation whose area is the PNG's non-zero pixel count, whose
// bbox is its extent and whose RLE decodes back to it; the COCO output loads
// with the project's reader and evaluates; label images made at test time
// from the same masks (16-bit PNG, TIFF) give the same annotations; bad files
// are named (fail) or counted (skip); the split is deterministic.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <vector>

#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>

#include "pasteflow/eval/coco_eval.hpp"
#include "pasteflow/importers/masks.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"
#include "raster/tiff_writer.hpp"

namespace fs = std::filesystem;
using namespace pasteflow;
using namespace pasteflow::importers;

namespace {

const std::string kClean = std::string(PASTEFLOW_TEST_DATA) + "/dsb2018/clean";
const std::string kOverlap = std::string(PASTEFLOW_TEST_DATA) + "/dsb2018/overlap";

struct TempDir {
  fs::path path;
  explicit TempDir(const std::string& name) {
    path = fs::temp_directory_path() / ("pasteflow_import_" + name + "_" + std::to_string(getpid()));
    fs::remove_all(path);
    fs::create_directories(path);
  }
  ~TempDir() { fs::remove_all(path); }
};

std::vector<ImportedImage> import_all(const std::string& dir, const Listing& listing, ImportOptions options = {}) {
  std::vector<ImportedImage> out;
  for (const ImageEntry& e : listing.images) out.push_back(import_image(dir, e, options));
  return out;
}

/// The expected extent of a mask file read independently with OpenCV.
struct Truth {
  uint64_t area = 0;
  std::array<double, 4> bbox{};
  cv::Mat binary;  // CV_8U 0/1
};

Truth truth_of(const std::string& path) {
  const cv::Mat m = cv::imread(path, cv::IMREAD_GRAYSCALE);
  EXPECT_FALSE(m.empty()) << path;
  Truth t;
  t.binary = cv::Mat(m.rows, m.cols, CV_8U);
  int x0 = m.cols, y0 = m.rows, x1 = -1, y1 = -1;
  for (int y = 0; y < m.rows; ++y) {
    for (int x = 0; x < m.cols; ++x) {
      const bool on = m.at<uint8_t>(y, x) != 0;
      t.binary.at<uint8_t>(y, x) = on;
      if (!on) continue;
      ++t.area;
      x0 = std::min(x0, x), y0 = std::min(y0, y), x1 = std::max(x1, x), y1 = std::max(y1, y);
    }
  }
  t.bbox = {double(x0), double(y0), double(x1 - x0 + 1), double(y1 - y0 + 1)};
  return t;
}

size_t count_pngs(const fs::path& dir) {
  size_t n = 0;
  for (const auto& e : fs::directory_iterator(dir)) n += e.path().extension() == ".png";
  return n;
}

std::string expect_error(const std::function<void()>& f, const std::string& reason) {
  try {
    f();
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), reason) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no InputError " << reason;
  return {};
}

/// A copy of one clean DSB folder (the one with the fewest masks) in `dir`.
std::string copy_one_folder(const fs::path& dir) {
  std::string best;
  size_t fewest = SIZE_MAX;
  for (const auto& e : fs::directory_iterator(kClean)) {
    const size_t n = count_pngs(e.path() / "masks");
    if (n < fewest) fewest = n, best = e.path().filename().string();
  }
  fs::copy(fs::path(kClean) / best, dir / best, fs::copy_options::recursive);
  return best;
}

void write_png(const fs::path& path, const cv::Mat& m) { ASSERT_TRUE(cv::imwrite(path.string(), m)) << path; }

}  // namespace

TEST(ImportLayout, DetectsInstancePngsAndLabelImages) {
  EXPECT_EQ(detect_layout(kClean), Layout::kInstancePngs);
  TempDir t("detect");
  expect_error([&] { detect_layout(t.path.string()); }, "unknown_layout");
  fs::create_directories(t.path / "images");
  fs::create_directories(t.path / "labels");
  std::ofstream(t.path / "labels" / "a.png") << "x";
  EXPECT_EQ(detect_layout(t.path.string()), Layout::kLabelImages);
  EXPECT_EQ(parse_layout("label-images"), Layout::kLabelImages);
  EXPECT_THROW(parse_layout("pngs"), ConfigError);
}

TEST(ImportInstancePngs, OneAnnotationPerMaskFileWithItsExactAreaBboxAndMask) {
  const Listing listing = list_images(kClean, Layout::kInstancePngs, ErrorPolicy::kStrict);
  ASSERT_EQ(listing.images.size(), 3u);
  const std::vector<ImportedImage> imported = import_all(kClean, listing);
  size_t total = 0;
  for (size_t i = 0; i < listing.images.size(); ++i) {
    const ImageEntry& e = listing.images[i];
    const ImportedImage& im = imported[i];
    ASSERT_TRUE(im.ok);
    const fs::path folder = fs::path(kClean) / fs::path(e.image).parent_path().parent_path();
    const size_t files = count_pngs(folder / "masks");
    ASSERT_EQ(im.instances.size(), files) << e.image;
    ASSERT_EQ(e.masks.size(), files);
    total += files;
    // The image is RGBA as stored; its size is recorded, not rewritten.
    const cv::Mat raw = cv::imread((fs::path(kClean) / e.image).string(), cv::IMREAD_UNCHANGED);
    EXPECT_EQ(im.channels, 4) << e.image;
    EXPECT_EQ(raw.channels(), 4);
    EXPECT_EQ(im.width, raw.cols);
    EXPECT_EQ(im.height, raw.rows);
    EXPECT_EQ(im.overlapping_pairs, 0u);
    for (const Instance& inst : im.instances) {
      const Truth t = truth_of((fs::path(kClean) / inst.source).string());
      EXPECT_GT(t.area, 0u);
      EXPECT_EQ(inst.area, t.area) << inst.source;
      EXPECT_EQ(inst.bbox, t.bbox) << inst.source;
      EXPECT_EQ(mask::area(inst.rle), t.area);
      const std::vector<uint8_t> decoded = mask::decode(inst.rle);
      ASSERT_EQ(decoded.size(), size_t(t.binary.total()));
      EXPECT_TRUE(std::equal(decoded.begin(), decoded.end(), t.binary.data)) << inst.source;
      // Through the compressed string too.
      EXPECT_EQ(mask::from_string(mask::to_string(inst.rle), inst.rle.h, inst.rle.w), inst.rle);
    }
  }
  EXPECT_GE(total, 20u);
  // A few nuclei in the colour one; modality recorded.
  std::set<std::string> modalities;
  for (const auto& im : imported) modalities.insert(im.modality);
  EXPECT_TRUE(modalities.count("fluorescence"));
  EXPECT_TRUE(modalities.count("colour"));
}

TEST(ImportInstancePngs, CocoOutputLoadsWithTheProjectReaderAndEvaluatesPerfectly) {
  const Listing listing = list_images(kClean, Layout::kInstancePngs, ErrorPolicy::kStrict);
  const std::vector<ImportedImage> imported = import_all(kClean, listing);
  std::vector<size_t> all(imported.size());
  std::iota(all.begin(), all.end(), size_t(0));
  const auto categories = category_names(imported);
  ASSERT_EQ(categories.size(), 1u);
  const io::CocoDataset built = to_coco(listing.images, imported, all, categories, "nucleus");
  TempDir t("coco");
  const std::string path = (t.path / "dsb.json").string();
  io::write_coco(built, path);
  io::LoadOptions lo;
  lo.keep_extra_fields = true;
  lo.image_root = kClean;
  const io::CocoDataset ds = io::load_coco(path, lo);
  ASSERT_EQ(ds.images.size(), 3u);
  ASSERT_EQ(ds.categories.size(), 1u);
  EXPECT_EQ(ds.str(ds.categories[0].name), "nucleus");
  size_t n = 0;
  for (const auto& im : imported) n += im.instances.size();
  ASSERT_EQ(ds.annotations.size(), n);
  size_t k = 0;
  for (size_t i = 0; i < imported.size(); ++i) {
    const io::ImageRecord& rec = ds.images[i];
    EXPECT_EQ(ds.file_name(rec), listing.images[i].image);
    EXPECT_TRUE(fs::exists(ds.image_path(rec))) << ds.image_path(rec);
    EXPECT_NE(ds.str(rec.extra).find("\"channels\":4"), std::string::npos);
    for (const Instance& inst : imported[i].instances) {
      const io::AnnotationRecord& a = ds.annotations[k++];
      EXPECT_EQ(a.seg_kind, io::SegmentationKind::kRleString);
      EXPECT_EQ(a.area, double(inst.area));
      EXPECT_EQ(a.bbox, inst.bbox);
      EXPECT_EQ(a.image_id, rec.id);
      EXPECT_EQ(mask::annotation_rle(ds, a, uint32_t(rec.height), uint32_t(rec.width)), inst.rle);
    }
  }
  // The ground truth as detections: AP 1 for segm and bbox.
  for (eval::IouType type : {eval::IouType::kSegm, eval::IouType::kBbox}) {
    std::vector<eval::Detection> dets;
    for (const auto& a : ds.annotations) {
      eval::Detection d;
      d.image_id = a.image_id;
      d.category_id = a.category_id;
      d.score = 1.0;
      d.bbox = a.bbox;
      if (type == eval::IouType::kSegm) {
        d.segmentation = mask::annotation_rle(ds, a, a.rle_height, a.rle_width);
      }
      dets.push_back(d);
    }
    eval::EvalParams params;
    params.iou_type = type;
    const eval::EvalResult r = eval::evaluate(ds, dets, params);
    EXPECT_DOUBLE_EQ(r.stats[0], 1.0) << r.summary;
    EXPECT_DOUBLE_EQ(r.stats[3], 1.0) << r.summary;  // AP small
  }
}

TEST(ImportInstancePngs, MasksInSubfoldersGetTheFolderCategory) {
  TempDir t("category");
  const std::string id = copy_one_folder(t.path);
  const fs::path masks = t.path / id / "masks";
  std::vector<fs::path> files;
  for (const auto& e : fs::directory_iterator(masks)) files.push_back(e.path());
  std::sort(files.begin(), files.end());
  fs::create_directories(masks / "mitotic");
  fs::rename(files[0], masks / "mitotic" / files[0].filename());
  const Listing listing = list_images(t.path.string(), Layout::kInstancePngs, ErrorPolicy::kStrict);
  const std::vector<ImportedImage> imported = import_all(t.path.string(), listing);
  const auto categories = category_names(imported);
  ASSERT_EQ(categories, (std::vector<std::string>{"", "mitotic"}));
  const io::CocoDataset ds = to_coco(listing.images, imported, {0}, categories, "nucleus");
  ASSERT_EQ(ds.annotations.size(), files.size());
  size_t mitotic = 0;
  for (const auto& a : ds.annotations) mitotic += a.category_id == 2;
  EXPECT_EQ(mitotic, 1u);
  EXPECT_EQ(ds.str(ds.categories[1].name), "mitotic");
}

// ----------------------------------------------------------------- labels

namespace {

/// DIR/images/NAME.png + DIR/labels/NAME_masks.png (16-bit, ids from 1000)
/// or NAME.tif (16-bit TIFF, ids from 1) made from the real instance masks.
void make_label_dataset(const fs::path& out, const Listing& listing, const std::vector<ImportedImage>& imported) {
  fs::create_directories(out / "images");
  fs::create_directories(out / "labels");
  for (size_t i = 0; i < listing.images.size(); ++i) {
    const ImportedImage& im = imported[i];
    const std::string stem = fs::path(listing.images[i].image).stem().string();
    fs::copy_file(fs::path(kClean) / listing.images[i].image, out / "images" / (stem + ".png"));
    const bool tiff = i == 1;
    const uint16_t base = tiff ? 1 : 1000;
    cv::Mat labels(int(im.height), int(im.width), CV_16U, cv::Scalar(0));
    for (size_t k = 0; k < im.instances.size(); ++k) {
      const std::vector<uint8_t> px = mask::decode(im.instances[k].rle);
      for (size_t p = 0; p < px.size(); ++p) {
        if (px[p]) labels.at<uint16_t>(int(p / size_t(im.width)), int(p % size_t(im.width))) = uint16_t(base + k);
      }
    }
    if (tiff) {
      pasteflow::testing::TiffSpec spec;
      spec.width = labels.cols;
      spec.height = labels.rows;
      spec.bits = 16;
      spec.compression = COMPRESSION_ADOBE_DEFLATE;
      spec.tiled = false;
      spec.rows_per_strip = 37;
      pasteflow::testing::write_tiff((out / "labels" / (stem + ".tif")).string(), spec, labels);
    } else {
      write_png(out / "labels" / (stem + "_masks.png"), labels);
    }
  }
}

}  // namespace

TEST(ImportLabelImages, SixteenBitPngAndTiffLabelsGiveTheInstancePngAnnotations) {
  const Listing listing = list_images(kClean, Layout::kInstancePngs, ErrorPolicy::kStrict);
  const std::vector<ImportedImage> reference = import_all(kClean, listing);
  TempDir t("labels");
  make_label_dataset(t.path, listing, reference);
  ASSERT_EQ(detect_layout(t.path.string()), Layout::kLabelImages);
  const Listing labels = list_images(t.path.string(), Layout::kLabelImages, ErrorPolicy::kStrict);
  ASSERT_EQ(labels.images.size(), listing.images.size());
  EXPECT_NE(labels.images[1].labels.find(".tif"), std::string::npos);
  EXPECT_NE(labels.images[0].labels.find("_masks.png"), std::string::npos);
  const std::vector<ImportedImage> got = import_all(t.path.string(), labels);
  for (size_t i = 0; i < got.size(); ++i) {
    ASSERT_TRUE(got[i].ok);
    EXPECT_EQ(got[i].width, reference[i].width);
    EXPECT_EQ(got[i].height, reference[i].height);
    ASSERT_EQ(got[i].instances.size(), reference[i].instances.size()) << labels.images[i].labels;
    // Label values were given in mask order, so instance k is mask k.
    for (size_t k = 0; k < got[i].instances.size(); ++k) {
      EXPECT_EQ(got[i].instances[k].rle, reference[i].instances[k].rle) << labels.images[i].labels << " " << k;
      EXPECT_EQ(got[i].instances[k].area, reference[i].instances[k].area);
      EXPECT_EQ(got[i].instances[k].bbox, reference[i].instances[k].bbox);
    }
    EXPECT_EQ(to_coco(labels.images, got, {i}, {""}, "nucleus").annotations.size(), reference[i].instances.size());
  }
}

TEST(ImportLabelImages, CellposeSideBySideLayoutAndMissingPartners) {
  const Listing listing = list_images(kClean, Layout::kInstancePngs, ErrorPolicy::kStrict);
  const std::vector<ImportedImage> reference = import_all(kClean, listing);
  TempDir src("cp_src");
  make_label_dataset(src.path, listing, reference);
  TempDir t("cellpose");
  for (const auto& e : fs::directory_iterator(src.path / "images")) fs::copy_file(e.path(), t.path / e.path().filename());
  // Only PNG labels in this layout: NAME_masks.png beside NAME.png.
  for (const auto& e : fs::directory_iterator(src.path / "labels")) {
    if (e.path().extension() == ".png") fs::copy_file(e.path(), t.path / e.path().filename());
  }
  EXPECT_EQ(detect_layout(t.path.string()), Layout::kLabelImages);
  // The TIFF-labelled image now has no label image: named under fail, counted under skip.
  const std::string msg =
      expect_error([&] { list_images(t.path.string(), Layout::kLabelImages, ErrorPolicy::kStrict); }, "missing_labels");
  EXPECT_NE(msg.find(fs::path(listing.images[1].image).filename().string()), std::string::npos) << msg;
  const Listing l = list_images(t.path.string(), Layout::kLabelImages, ErrorPolicy::kSkip);
  EXPECT_EQ(l.images.size(), 2u);
  EXPECT_EQ(l.skipped.count("missing_labels"), 1u);
  // A label image without its image.
  fs::copy_file(t.path / fs::path(l.images[0].labels).filename(), t.path / "orphan_masks.png");
  const Listing l2 = list_images(t.path.string(), Layout::kLabelImages, ErrorPolicy::kSkip);
  EXPECT_EQ(l2.skipped.count("missing_image"), 1u);
  EXPECT_EQ(l2.images.size(), 2u);
}

TEST(ImportLabelImages, InstancesFromLabelsMatchPerValueEncoding) {
  // 8-bit and 16-bit, values in any order, runs crossing columns.
  std::mt19937 rng(7);
  for (int depth : {CV_8U, CV_16U}) {
    cv::Mat labels(37, 23, depth, cv::Scalar(0));
    for (int y = 0; y < labels.rows; ++y) {
      for (int x = 0; x < labels.cols; ++x) {
        const int v = int(rng() % 5) == 0 ? 0 : int((x / 5 + (y / 7) * 5) % 11) * (depth == CV_8U ? 23 : 5000);
        if (depth == CV_8U) labels.at<uint8_t>(y, x) = uint8_t(v); else labels.at<uint16_t>(y, x) = uint16_t(v);
      }
    }
    const std::vector<Instance> got = instances_from_labels(labels, "t.png");
    std::set<int> values;
    for (int y = 0; y < labels.rows; ++y)
      for (int x = 0; x < labels.cols; ++x) {
        const int v = depth == CV_8U ? labels.at<uint8_t>(y, x) : labels.at<uint16_t>(y, x);
        if (v) values.insert(v);
      }
    ASSERT_EQ(got.size(), values.size());
    size_t k = 0;
    for (int v : values) {
      cv::Mat one(labels.rows, labels.cols, CV_8U);
      for (int y = 0; y < labels.rows; ++y)
        for (int x = 0; x < labels.cols; ++x)
          one.at<uint8_t>(y, x) = (depth == CV_8U ? labels.at<uint8_t>(y, x) : labels.at<uint16_t>(y, x)) == v;
      EXPECT_EQ(got[k].rle, mask::encode(one.data, uint32_t(one.rows), uint32_t(one.cols), one.step[0])) << v;
      EXPECT_EQ(got[k].source, "t.png:" + std::to_string(v));
      ++k;
    }
  }
  EXPECT_TRUE(instances_from_labels(cv::Mat(4, 4, CV_8U, cv::Scalar(0)), "z").empty());
  expect_error([] { instances_from_labels(cv::Mat(4, 4, CV_8UC3, cv::Scalar(0)), "c"); }, "unsupported_label_image");
}

// ------------------------------------------------------------------ errors

TEST(ImportErrors, RealOverlapIsCountedKeptOrRefused) {
  const Listing listing = list_images(kOverlap, Layout::kInstancePngs, ErrorPolicy::kStrict);
  ASSERT_EQ(listing.images.size(), 1u);
  // Independent count: pixels set in more than one mask PNG.
  const ImageEntry& e = listing.images[0];
  cv::Mat sum;
  for (const MaskFile& m : e.masks) {
    const Truth t = truth_of((fs::path(kOverlap) / m.path).string());
    if (sum.empty()) sum = cv::Mat::zeros(t.binary.size(), CV_32S);
    cv::Mat b;
    t.binary.convertTo(b, CV_32S);
    sum += b;
  }
  uint64_t extra = 0;
  for (int y = 0; y < sum.rows; ++y)
    for (int x = 0; x < sum.cols; ++x) extra += uint64_t(std::max(0, sum.at<int>(y, x) - 1));
  ASSERT_GT(extra, 0u) << "the test folder must hold a real overlap";

  const ImportedImage kept = import_image(kOverlap, e, {});
  ASSERT_TRUE(kept.ok);
  EXPECT_EQ(kept.instances.size(), e.masks.size());
  EXPECT_EQ(kept.overlapping_pixels, extra);
  EXPECT_GE(kept.overlapping_pairs, 1u);
  EXPECT_NE(kept.first_overlap.find(".png and "), std::string::npos) << kept.first_overlap;

  ImportOptions refuse;
  refuse.overlap_is_error = true;
  const std::string msg = expect_error([&] { import_image(kOverlap, e, refuse); }, "overlapping_masks");
  EXPECT_NE(msg.find("/masks/"), std::string::npos) << msg;
  // The pixel named is in both masks.
  const size_t at = msg.find("pixel (");
  ASSERT_NE(at, std::string::npos) << msg;
  int px = -1, py = -1;
  ASSERT_EQ(std::sscanf(msg.c_str() + at, "pixel (%d, %d)", &px, &py), 2) << msg;
  ASSERT_TRUE(px >= 0 && py >= 0 && px < sum.cols && py < sum.rows) << msg;
  EXPECT_GE(sum.at<int>(py, px), 2) << msg;
  refuse.policy = ErrorPolicy::kSkip;
  const ImportedImage skipped = import_image(kOverlap, e, refuse);
  EXPECT_FALSE(skipped.ok);
  EXPECT_TRUE(skipped.instances.empty());
  EXPECT_EQ(skipped.skipped.count("overlapping_masks"), 1u);
}

TEST(ImportErrors, EmptyMaskIsNamedUnderFailAndLeftOutAloneUnderSkip) {
  TempDir t("empty");
  const std::string id = copy_one_folder(t.path);
  const size_t n = count_pngs(t.path / id / "masks");
  const Listing l0 = list_images(t.path.string(), Layout::kInstancePngs, ErrorPolicy::kStrict);
  const ImportedImage before = import_image(t.path.string(), l0.images[0], {});
  write_png(t.path / id / "masks" / "zz_empty.png",
            cv::Mat(int(before.height), int(before.width), CV_8U, cv::Scalar(0)));
  const Listing l = list_images(t.path.string(), Layout::kInstancePngs, ErrorPolicy::kStrict);
  ASSERT_EQ(l.images[0].masks.size(), n + 1);
  const std::string msg = expect_error([&] { import_image(t.path.string(), l.images[0], {}); }, "empty_mask");
  EXPECT_NE(msg.find("zz_empty.png"), std::string::npos) << msg;
  ImportOptions skip;
  skip.policy = ErrorPolicy::kSkip;
  const ImportedImage got = import_image(t.path.string(), l.images[0], skip);
  EXPECT_TRUE(got.ok);
  EXPECT_EQ(got.instances.size(), n);
  EXPECT_EQ(got.skipped.count("empty_mask"), 1u);
}

TEST(ImportErrors, SizeMismatchNonBinaryAndCorruptMasksLeaveTheImageOutUnderSkip) {
  struct Case {
    std::string reason;
    std::function<void(const fs::path& masks, const fs::path& a_real_mask, int w, int h)> make;
  };
  const std::vector<Case> cases = {
      {"mask_size_mismatch",
       [](const fs::path& masks, const fs::path&, int w, int h) {
         cv::Mat m(h + 1, w, CV_8U, cv::Scalar(0));
         m.at<uint8_t>(3, 3) = 255;
         write_png(masks / "zz_bad.png", m);
       }},
      {"non_binary_mask",
       [](const fs::path& masks, const fs::path& real, int, int) {
         cv::Mat m = cv::imread(real.string(), cv::IMREAD_GRAYSCALE);
         m.at<uint8_t>(0, 0) = 128;
         write_png(masks / "zz_bad.png", m);
       }},
      {"corrupt_image",
       [](const fs::path& masks, const fs::path& real, int, int) {
         std::ifstream in(real, std::ios::binary);
         std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
         std::ofstream(masks / "zz_bad.png", std::ios::binary) << bytes.substr(0, bytes.size() / 2);
       }},
      {"unsupported_image",
       [](const fs::path& masks, const fs::path&, int, int) {
         std::ofstream(masks / "zz_bad.png", std::ios::binary) << "this is not an image at all";
       }},
  };
  for (const Case& c : cases) {
    TempDir t("bad_" + c.reason);
    const std::string id = copy_one_folder(t.path);
    const Listing l0 = list_images(t.path.string(), Layout::kInstancePngs, ErrorPolicy::kStrict);
    const ImportedImage before = import_image(t.path.string(), l0.images[0], {});
    c.make(t.path / id / "masks", fs::path(t.path) / l0.images[0].masks[0].path, int(before.width),
           int(before.height));
    const Listing l = list_images(t.path.string(), Layout::kInstancePngs, ErrorPolicy::kStrict);
    const std::string msg = expect_error([&] { import_image(t.path.string(), l.images[0], {}); }, c.reason);
    EXPECT_NE(msg.find("zz_bad.png"), std::string::npos) << c.reason << ": " << msg;
    ImportOptions skip;
    skip.policy = ErrorPolicy::kSkip;
    const ImportedImage got = import_image(t.path.string(), l.images[0], skip);
    EXPECT_FALSE(got.ok) << c.reason;
    EXPECT_TRUE(got.instances.empty());
    EXPECT_EQ(got.skipped.count(c.reason), 1u) << c.reason;
  }
}

TEST(ImportErrors, FolderWithoutOrWithTwoImagesIsNamed) {
  TempDir t("folders");
  const std::string id = copy_one_folder(t.path);
  fs::create_directories(t.path / "noimage" / "images");
  fs::create_directories(t.path / "noimage" / "masks");
  const std::string msg =
      expect_error([&] { list_images(t.path.string(), Layout::kInstancePngs, ErrorPolicy::kStrict); }, "missing_image");
  EXPECT_NE(msg.find("noimage"), std::string::npos) << msg;
  const Listing l = list_images(t.path.string(), Layout::kInstancePngs, ErrorPolicy::kSkip);
  EXPECT_EQ(l.images.size(), 1u);
  EXPECT_EQ(l.skipped.count("missing_image"), 1u);
  fs::copy_file(t.path / id / "images" / (id + ".png"), t.path / id / "images" / "second.png");
  fs::remove_all(t.path / "noimage");
  expect_error([&] { list_images(t.path.string(), Layout::kInstancePngs, ErrorPolicy::kStrict); }, "ambiguous_image");
}

// ------------------------------------------------------------------- split

TEST(ImportSplit, DeterministicIndependentOfOrderAndExactPerStratum) {
  std::vector<std::string> names, strata;
  for (int i = 0; i < 200; ++i) {
    names.push_back("img_" + std::to_string(i * 7919 % 1000) + ".png");
    strata.push_back(i % 3 == 0 ? "256x256" : (i % 3 == 1 ? "360x360" : "1024x1024"));
  }
  const std::vector<uint8_t> a = split_validation(names, strata, 0.15, 42);
  // Same names in another order: each name keeps its side.
  std::vector<size_t> perm(names.size());
  std::iota(perm.begin(), perm.end(), size_t(0));
  std::shuffle(perm.begin(), perm.end(), std::mt19937(3));
  std::vector<std::string> n2, s2;
  for (size_t p : perm) n2.push_back(names[p]), s2.push_back(strata[p]);
  const std::vector<uint8_t> b = split_validation(n2, s2, 0.15, 42);
  for (size_t k = 0; k < perm.size(); ++k) EXPECT_EQ(b[k], a[perm[k]]) << n2[k];
  // round(0.15 * n) of each stratum.
  std::map<std::string, std::pair<size_t, size_t>> per;  // stratum -> (val, n)
  for (size_t i = 0; i < names.size(); ++i) per[strata[i]].first += a[i], per[strata[i]].second += 1;
  for (const auto& [s, vn] : per) EXPECT_EQ(vn.first, size_t(std::llround(0.15 * double(vn.second)))) << s;
  // Another seed: another split of the same size.
  const std::vector<uint8_t> c = split_validation(names, strata, 0.15, 43);
  EXPECT_NE(a, c);
  EXPECT_EQ(std::accumulate(a.begin(), a.end(), 0), std::accumulate(c.begin(), c.end(), 0));
  EXPECT_THROW(split_validation(names, strata, 1.5, 1), ConfigError);
}

TEST(ImportSplit, StrataOfRealImages) {
  const Listing listing = list_images(kClean, Layout::kInstancePngs, ErrorPolicy::kStrict);
  const std::vector<ImportedImage> imported = import_all(kClean, listing);
  std::set<std::string> sizes, modalities;
  for (const auto& im : imported) sizes.insert(stratum_of(im, "size")), modalities.insert(stratum_of(im, "modality"));
  EXPECT_TRUE(sizes.count("256x256"));
  EXPECT_TRUE(sizes.count("320x256"));
  EXPECT_EQ(modalities, (std::set<std::string>{"colour", "fluorescence"}));
  EXPECT_EQ(stratum_of(imported[0], "none"), "");
  EXPECT_THROW(stratum_of(imported[0], "colourfulness"), ConfigError);
}

TEST(ImportLabelImages, StarDistMasksFolderWithEightBitTiffAndBadLabelImages) {
  const Listing listing = list_images(kClean, Layout::kInstancePngs, ErrorPolicy::kStrict);
  const ImportedImage reference = import_image(kClean, listing.images[0], {});
  ASSERT_LT(reference.instances.size(), 255u);
  TempDir t("stardist");
  fs::create_directories(t.path / "images");
  fs::create_directories(t.path / "masks");
  fs::copy_file(fs::path(kClean) / listing.images[0].image, t.path / "images" / "a.png");
  cv::Mat labels(int(reference.height), int(reference.width), CV_8U, cv::Scalar(0));
  for (size_t k = 0; k < reference.instances.size(); ++k) {
    const std::vector<uint8_t> px = mask::decode(reference.instances[k].rle);
    for (size_t p = 0; p < px.size(); ++p) {
      if (px[p]) labels.at<uint8_t>(int(p / size_t(labels.cols)), int(p % size_t(labels.cols))) = uint8_t(k + 1);
    }
  }
  write_png(t.path / "masks" / "a.tif", labels);  // OpenCV's TIFF writer (libtiff), 8-bit
  ASSERT_EQ(detect_layout(t.path.string()), Layout::kLabelImages);
  const Listing l = list_images(t.path.string(), Layout::kLabelImages, ErrorPolicy::kStrict);
  ASSERT_EQ(l.images.size(), 1u);
  EXPECT_EQ(l.images[0].labels, "masks/a.tif");
  const ImportedImage got = import_image(t.path.string(), l.images[0], {});
  ASSERT_EQ(got.instances.size(), reference.instances.size());
  for (size_t k = 0; k < got.instances.size(); ++k) EXPECT_EQ(got.instances[k].rle, reference.instances[k].rle);

  // A label image of another size, and a colour one: named, and the image
  // left out under skip.
  ImportOptions skip;
  skip.policy = ErrorPolicy::kSkip;
  cv::Mat small;
  labels(cv::Rect(0, 0, labels.cols - 1, labels.rows)).copyTo(small);
  write_png(t.path / "masks" / "a.tif", small);
  std::string msg = expect_error([&] { import_image(t.path.string(), l.images[0], {}); }, "mask_size_mismatch");
  EXPECT_NE(msg.find("a.tif"), std::string::npos) << msg;
  EXPECT_EQ(import_image(t.path.string(), l.images[0], skip).skipped.count("mask_size_mismatch"), 1u);
  cv::Mat colour;
  cv::merge(std::vector<cv::Mat>{labels, labels, labels}, colour);
  write_png(t.path / "masks" / "a.tif", colour);
  msg = expect_error([&] { import_image(t.path.string(), l.images[0], {}); }, "unsupported_label_image");
  EXPECT_NE(msg.find("a.tif"), std::string::npos) << msg;
  const ImportedImage skipped = import_image(t.path.string(), l.images[0], skip);
  EXPECT_FALSE(skipped.ok);
  EXPECT_EQ(skipped.skipped.count("unsupported_label_image"), 1u);
}

TEST(ImportLabelImages, ValueMapGivesCategoriesAndRefusesUnmappedValues) {
  const Listing listing = list_images(kClean, Layout::kInstancePngs, ErrorPolicy::kStrict);
  const std::vector<ImportedImage> reference = import_all(kClean, listing);
  TempDir t("valuemap");
  make_label_dataset(t.path, listing, reference);  // ids 1000+ in PNGs, 1+ in the TIFF
  const Listing l = list_images(t.path.string(), Layout::kLabelImages, ErrorPolicy::kStrict);
  ImportOptions options;
  options.value_map = parse_value_map("1-999=small_id,1000-1999=big_id");
  ASSERT_EQ(options.value_map.size(), 2u);
  const std::vector<ImportedImage> got = import_all(t.path.string(), l, options);
  for (size_t i = 0; i < got.size(); ++i) {
    for (const Instance& inst : got[i].instances) {
      EXPECT_EQ(inst.category, i == 1 ? "small_id" : "big_id") << inst.source;
      EXPECT_EQ(inst.source, l.images[i].labels + ":" + std::to_string(inst.value));
    }
  }
  const auto categories = category_names(got);
  EXPECT_EQ(categories, (std::vector<std::string>{"big_id", "small_id"}));
  std::vector<size_t> all{0, 1, 2};
  const io::CocoDataset ds = to_coco(l.images, got, all, categories, "nucleus");
  EXPECT_EQ(ds.categories.size(), 2u);
  // Only the PNGs' values mapped: the TIFF is named.
  options.value_map = parse_value_map("1000-1999=big_id");
  const std::string msg = expect_error([&] { import_image(t.path.string(), l.images[1], options); },
                                       "unmapped_label_value");
  EXPECT_NE(msg.find(".tif"), std::string::npos) << msg;
  EXPECT_NE(msg.find("label value 1 "), std::string::npos) << msg;
  for (const char* bad : {"", "1-5", "=x", "0=x", "70000=x", "5-3=x", "1-10=a,10=b", "1=", "a=b"}) {
    EXPECT_THROW(parse_value_map(bad), ConfigError) << bad;
  }
  EXPECT_EQ(parse_value_map("7=m")[0].hi, 7u);
}

TEST(ImportInstancePngs, SixteenBitGreyImageIsReferencedWithItsSizeAndDepth) {
  TempDir t("sixteen");
  const std::string id = copy_one_folder(t.path);
  const fs::path image = t.path / id / "images" / (id + ".png");
  const cv::Mat rgba = cv::imread(image.string(), cv::IMREAD_UNCHANGED);
  std::vector<cv::Mat> planes;
  cv::split(rgba, planes);
  cv::Mat sixteen;
  planes[0].convertTo(sixteen, CV_16U, 257.0);
  fs::remove(image);
  const fs::path tif = t.path / id / "images" / (id + ".tif");
  write_png(tif, sixteen);  // 16-bit grey TIFF (OpenCV's libtiff writer)
  const std::string before = [&] {
    std::ifstream in(tif, std::ios::binary);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }();
  const Listing l = list_images(t.path.string(), Layout::kInstancePngs, ErrorPolicy::kStrict);
  ASSERT_EQ(l.images.size(), 1u);
  EXPECT_EQ(l.images[0].image, id + "/images/" + id + ".tif");
  const ImportedImage got = import_image(t.path.string(), l.images[0], {});
  ASSERT_TRUE(got.ok);
  EXPECT_EQ(got.width, rgba.cols);
  EXPECT_EQ(got.height, rgba.rows);
  EXPECT_EQ(got.bit_depth, 16);
  EXPECT_EQ(got.channels, 1);
  // The 8-bit plane it was made from has the same modality: depth does not change it.
  EXPECT_EQ(got.modality, modality_of(planes[0]));
  EXPECT_NE(got.modality, "colour");
  EXPECT_EQ(got.instances.size(), l.images[0].masks.size());
  // Referenced, never rewritten.
  std::ifstream in(tif, std::ios::binary);
  EXPECT_EQ(std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>()), before);
}
