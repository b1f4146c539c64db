// Synthetic shapes benchmark: exact masks (the written annotation rasterises
// to the painted pixels), COCO fields, placement, sizes, determinism.
// Oracle for mask semantics: pasteflow::mask (pycocotools-exact, golden-tested
// in tests/mask) — annotation_rle is what pycocotools annToRLE returns.
#include <gtest/gtest.h>

#include <opencv2/imgcodecs.hpp>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <set>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/synth/shapes.hpp"
#include "common/file.hpp"

namespace fs = std::filesystem;
using namespace pasteflow;
using synth::ShapeClass;

namespace {

using pasteflow::testing::read_file;

const std::string kBackgrounds = std::string(PASTEFLOW_SAMPLE_DATA) + "/images";

synth::ShapesOptions small_options() {
  synth::ShapesOptions o;
  o.image_size = 160;
  o.min_size = 6;
  o.max_size = 28;
  o.min_objects = 8;
  o.max_objects = 20;
  o.seed = 7;
  return o;
}

class TempDir {
 public:
  explicit TempDir(const std::string& tag) {
    path_ = fs::temp_directory_path() /
            ("pasteflow_synth_" + tag + "_" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
             "_" + std::to_string(reinterpret_cast<uintptr_t>(this)));
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    fs::remove_all(path_, ec);
  }
  const fs::path& path() const { return path_; }

 private:
  fs::path path_;
};

/// Checks every object of `img` against its painted pixels and the others.
void check_image(const synth::SynthImage& img, const synth::ShapesOptions& o) {
  const uint32_t S = static_cast<uint32_t>(o.image_size);
  ASSERT_EQ(img.image.rows, o.image_size);
  ASSERT_EQ(img.image.cols, o.image_size);
  ASSERT_EQ(img.image.type(), CV_8UC3);
  ASSERT_EQ(img.background.type(), CV_8UC3);
  std::vector<uint8_t> covered(size_t(S) * S, 0);
  for (const synth::SynthObject& obj : img.objects) {
    ASSERT_EQ(obj.mask.h, S);
    ASSERT_EQ(obj.mask.w, S);
    EXPECT_EQ(obj.area, mask::area(obj.mask));
    EXPECT_GT(obj.area, 0u);
    EXPECT_EQ(obj.bbox, mask::bbox(obj.mask));
    if (!obj.polygon.empty()) {
      // The polygon rasterises to exactly the mask.
      EXPECT_EQ(mask::from_polygon(obj.polygon.data(), obj.polygon.size(), S, S), obj.mask);
    } else if (o.max_overlap == 0.0) {
      EXPECT_EQ(obj.shape, ShapeClass::kRing);  // only rings need RLE when nothing is covered
    }
    const std::vector<uint8_t> px = mask::decode(obj.mask);
    for (size_t i = 0; i < px.size(); ++i) {
      if (!px[i]) continue;
      EXPECT_EQ(covered[i], 0) << "two masks share pixel " << i;
      covered[i] = 1;
    }
  }
  // Painted pixels = union of masks: inside, every pixel differs from the
  // background crop; outside, every pixel is the background crop.
  size_t inside_same = 0, outside_diff = 0;
  for (int y = 0; y < img.image.rows; ++y) {
    for (int x = 0; x < img.image.cols; ++x) {
      const bool same = img.image.at<cv::Vec3b>(y, x) == img.background.at<cv::Vec3b>(y, x);
      if (covered[size_t(y) * S + x]) {
        inside_same += same;
      } else {
        outside_diff += !same;
      }
    }
  }
  EXPECT_EQ(inside_same, 0u);
  EXPECT_EQ(outside_diff, 0u);
}

}  // namespace

TEST(SynthShapes, BackgroundsFromDirectory) {
  const synth::Backgrounds bgs = synth::Backgrounds::from_directory(kBackgrounds);
  EXPECT_EQ(bgs.size(), 16u);
  for (size_t i = 1; i < bgs.size(); ++i) EXPECT_LT(bgs.path(i - 1), bgs.path(i));
  EXPECT_FALSE(bgs.load(0).empty());

  TempDir tmp("empty");
  try {
    synth::Backgrounds::from_directory(tmp.path().string());
    FAIL() << "expected no_backgrounds";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "no_backgrounds");
  }
  try {
    synth::Backgrounds::from_directory((tmp.path() / "missing").string());
    FAIL() << "expected io_error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "io_error");
  }
  std::ofstream(tmp.path() / "broken.jpg") << "not a jpeg";
  const synth::Backgrounds broken = synth::Backgrounds::from_directory(tmp.path().string());
  ASSERT_EQ(broken.size(), 1u);
  try {
    broken.load(0);
    FAIL() << "expected unreadable_image";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "unreadable_image");
    EXPECT_NE(std::string(e.what()).find("broken.jpg"), std::string::npos);
  }
}

TEST(SynthShapes, OptionsValidate) {
  synth::ShapesOptions o = small_options();
  EXPECT_NO_THROW(o.validate());
  auto expect_key = [](synth::ShapesOptions bad, const std::string& key) {
    try {
      bad.validate();
      ADD_FAILURE() << "expected ConfigError for " << key;
    } catch (const ConfigError& e) {
      EXPECT_EQ(e.reason(), "out_of_range");
      EXPECT_EQ(e.where().key, key);
    }
  };
  o = small_options(); o.max_size = 4; expect_key(o, "max_size");
  o = small_options(); o.min_size = 2; expect_key(o, "min_size");
  o = small_options(); o.max_size = 81; expect_key(o, "max_size");
  o = small_options(); o.max_objects = 3; expect_key(o, "max_objects");
  o = small_options(); o.max_overlap = 0.95; expect_key(o, "max_overlap");
  o = small_options(); o.min_crop_fraction = 0.0; expect_key(o, "min_crop_fraction");
}

TEST(SynthShapes, ImagesAreExactAndDisjoint) {
  const synth::Backgrounds bgs = synth::Backgrounds::from_directory(kBackgrounds);
  const synth::ShapesOptions o = small_options();
  std::set<int> classes;
  size_t objects = 0, rings = 0;
  for (uint64_t i = 0; i < 12; ++i) {
    const synth::SynthImage img = synth::generate_image(bgs, o, synth::Split::kTrain, i);
    SCOPED_TRACE("image " + std::to_string(i));
    check_image(img, o);
    EXPECT_GE(img.objects.size(), 1u);
    EXPECT_LE(img.objects.size(), size_t(o.max_objects));
    for (const auto& obj : img.objects) {
      classes.insert(int(obj.shape));
      EXPECT_GE(obj.size, o.min_size);
      EXPECT_LE(obj.size, o.max_size);
      EXPECT_EQ(obj.size, int(std::max(obj.bbox[2], obj.bbox[3])));  // nothing covered in disjoint mode
      if (obj.shape == ShapeClass::kRing) {
        ++rings;
        // A ring has a hole: its mask is less than its filled outline, i.e.
        // some pixel inside the bbox on the centre row/column is empty.
        const auto px = mask::decode(obj.mask);
        const int S = o.image_size, cx = int(obj.bbox[0] + obj.bbox[2] / 2), cy = int(obj.bbox[1] + obj.bbox[3] / 2);
        bool hole = false;
        for (int dy = -1; dy <= 1; ++dy) {
          for (int dx = -1; dx <= 1; ++dx) hole |= px[size_t(cy + dy) * S + cx + dx] == 0;
        }
        EXPECT_TRUE(hole) << "ring without a hole at " << cx << "," << cy;
      }
    }
    objects += img.objects.size();
    // Gap: the masks dilated by 1 px still do not overlap each other.
    const uint32_t S = uint32_t(o.image_size);
    std::vector<int> owner(size_t(S) * S, -1);
    for (size_t k = 0; k < img.objects.size(); ++k) {
      const auto px = mask::decode(img.objects[k].mask);
      for (size_t p = 0; p < px.size(); ++p) {
        if (px[p]) owner[p] = int(k);
      }
    }
    for (uint32_t y = 0; y < S; ++y) {
      for (uint32_t x = 0; x + 1 < S; ++x) {
        const int a = owner[y * S + x], b = owner[y * S + x + 1];
        EXPECT_FALSE(a >= 0 && b >= 0 && a != b) << "masks touch at " << x << "," << y;
        if (y + 1 < S) {
          const int c = owner[(y + 1) * S + x + 1], d = owner[(y + 1) * S + x];
          EXPECT_FALSE(a >= 0 && c >= 0 && a != c) << "masks touch diagonally at " << x << "," << y;
          EXPECT_FALSE(a >= 0 && d >= 0 && a != d) << "masks touch at " << x << "," << y;
        }
      }
    }
  }
  EXPECT_EQ(classes.size(), size_t(synth::kNumShapeClasses));
  EXPECT_GT(rings, 0u);
  EXPECT_GE(objects, 12u * 8u);  // the sample leaves plenty of room at 160 px
}

TEST(SynthShapes, OverlapModeWritesVisiblePixels) {
  const synth::Backgrounds bgs = synth::Backgrounds::from_directory(kBackgrounds);
  synth::ShapesOptions o = small_options();
  o.max_overlap = 0.5;
  o.min_objects = o.max_objects = 40;
  o.image_size = 96;
  size_t covered_objects = 0;
  for (uint64_t i = 0; i < 6; ++i) {
    const synth::SynthImage img = synth::generate_image(bgs, o, synth::Split::kVal, i);
    SCOPED_TRACE("image " + std::to_string(i));
    check_image(img, o);
    for (const auto& obj : img.objects) {
      if (obj.polygon.empty() && obj.shape != ShapeClass::kRing) {
        ++covered_objects;
        EXPECT_LT(obj.size, 2 * int(std::max(obj.bbox[2], obj.bbox[3])) + 2);
      }
    }
  }
  EXPECT_GT(covered_objects, 0u) << "40 objects on 96x96 with 50% overlap allowed: some must be covered";
}

TEST(SynthShapes, DeterministicPerImage) {
  const synth::Backgrounds bgs = synth::Backgrounds::from_directory(kBackgrounds);
  const synth::ShapesOptions o = small_options();
  const synth::SynthImage a = synth::generate_image(bgs, o, synth::Split::kTrain, 3);
  const synth::SynthImage b = synth::generate_image(bgs, o, synth::Split::kTrain, 3);
  ASSERT_EQ(a.objects.size(), b.objects.size());
  EXPECT_EQ(cv::norm(a.image, b.image, cv::NORM_INF), 0.0);
  for (size_t k = 0; k < a.objects.size(); ++k) {
    EXPECT_EQ(a.objects[k].mask, b.objects[k].mask);
    EXPECT_EQ(a.objects[k].polygon, b.objects[k].polygon);
  }
  // Other split, other index, other seed: other content.
  const synth::SynthImage c = synth::generate_image(bgs, o, synth::Split::kVal, 3);
  synth::ShapesOptions o2 = o;
  o2.seed = 8;
  const synth::SynthImage d = synth::generate_image(bgs, o2, synth::Split::kTrain, 3);
  EXPECT_GT(cv::norm(a.image, c.image, cv::NORM_INF), 0.0);
  EXPECT_GT(cv::norm(a.image, d.image, cv::NORM_INF), 0.0);
}

namespace {

void check_split(const fs::path& dir, const synth::ShapesOptions& o, size_t n_images, bool png) {
  const io::CocoDataset ds = io::load_coco((dir / "annotations.json").string());
  ASSERT_EQ(ds.images.size(), n_images);
  ASSERT_EQ(ds.categories.size(), size_t(synth::kNumShapeClasses));
  for (size_t c = 0; c < ds.categories.size(); ++c) {
    EXPECT_EQ(ds.categories[c].id, int64_t(c) + 1);
    EXPECT_EQ(ds.str(ds.categories[c].name), synth::shape_name(ShapeClass(c)));
  }
  const uint32_t S = uint32_t(o.image_size);
  std::set<int64_t> ann_ids;
  for (size_t i = 0; i < ds.images.size(); ++i) {
    const io::ImageRecord& im = ds.images[i];
    EXPECT_EQ(im.id, int64_t(i) + 1);
    EXPECT_EQ(im.width, o.image_size);
    EXPECT_EQ(im.height, o.image_size);
    const fs::path file = dir / "images" / std::string(ds.file_name(im));
    EXPECT_EQ(file.extension(), png ? ".png" : ".jpg");
    const cv::Mat pixels = cv::imread(file.string(), cv::IMREAD_COLOR);
    ASSERT_FALSE(pixels.empty()) << file;
    EXPECT_EQ(pixels.rows, o.image_size);
    EXPECT_EQ(pixels.cols, o.image_size);

    std::vector<uint8_t> covered(size_t(S) * S, 0);
    for (const uint32_t ai : ds.annotations_of(i)) {
      const io::AnnotationRecord& a = ds.annotations[ai];
      EXPECT_TRUE(ann_ids.insert(a.id).second);
      EXPECT_TRUE(a.has_iscrowd);
      EXPECT_EQ(a.iscrowd, 0);
      EXPECT_GE(a.category_id, 1);
      EXPECT_LE(a.category_id, synth::kNumShapeClasses);
      if (a.seg_kind == io::SegmentationKind::kRleString) {
        EXPECT_EQ(a.category_id, int64_t(ShapeClass::kRing) + 1);
      } else {
        EXPECT_EQ(a.seg_kind, io::SegmentationKind::kPolygons);
      }
      const mask::Rle rle = mask::annotation_rle(ds, a, S, S);
      EXPECT_EQ(double(mask::area(rle)), a.area);
      EXPECT_EQ(mask::bbox(rle), a.bbox);
      const int extent = int(std::max(a.bbox[2], a.bbox[3]));
      EXPECT_GE(extent, o.min_size);
      EXPECT_LE(extent, o.max_size);
      EXPECT_LT(a.area, 32.0 * 32.0);  // COCO small
      const std::vector<uint8_t> px = mask::decode(rle);
      for (size_t p = 0; p < px.size(); ++p) {
        if (!px[p]) continue;
        EXPECT_EQ(covered[p], 0) << "annotations overlap in image " << im.id;
        covered[p] = 1;
      }
    }
  }
}

}  // namespace

TEST(SynthShapes, DatasetFilesAndThreadIndependence) {
  const synth::Backgrounds bgs = synth::Backgrounds::from_directory(kBackgrounds);
  TempDir tmp("dataset");
  synth::DatasetOptions opt;
  opt.shapes = small_options();
  opt.train_images = 6;
  opt.val_images = 3;
  size_t last_done = 0, calls = 0;
  opt.progress = [&](size_t done, size_t total) {
    EXPECT_EQ(total, 9u);
    EXPECT_GT(done, last_done);
    last_done = done;
    ++calls;
  };
  opt.threads = 1;
  const synth::DatasetSummary s1 = synth::generate_dataset(bgs, (tmp.path() / "t1").string(), opt);
  EXPECT_EQ(last_done, 9u);
  EXPECT_GE(calls, 2u);  // one per split at least
  opt.progress = nullptr;
  opt.threads = 2;
  const synth::DatasetSummary s2 = synth::generate_dataset(bgs, (tmp.path() / "t2").string(), opt);
  EXPECT_EQ(s1.train.images, 6u);
  EXPECT_EQ(s1.val.images, 3u);
  EXPECT_EQ(s1.train.annotations, s2.train.annotations);
  EXPECT_GT(s1.train.annotations, 0u);

  check_split(tmp.path() / "t1" / "train", opt.shapes, 6, false);
  check_split(tmp.path() / "t1" / "val", opt.shapes, 3, false);

  // Byte-identical output for 1 and 2 threads.
  size_t files = 0;
  for (const char* split : {"train", "val"}) {
    const fs::path a = tmp.path() / "t1" / split, b = tmp.path() / "t2" / split;
    EXPECT_EQ(read_file(a / "annotations.json"), read_file(b / "annotations.json"));
    for (const auto& entry : fs::directory_iterator(a / "images")) {
      const std::string name = entry.path().filename().string();
      EXPECT_EQ(read_file(entry.path()), read_file(b / "images" / name)) << name;
      ++files;
    }
  }
  EXPECT_EQ(files, 9u);
  EXPECT_FALSE(fs::exists(tmp.path() / "t1" / "train" / "annotations.json.tmp"));

  // PNG output is lossless: the files hold exactly generate_image's pixels.
  opt.format = synth::ImageFormat::kPng;
  opt.train_images = 2;
  opt.val_images = 0;
  const synth::DatasetSummary s3 = synth::generate_dataset(bgs, (tmp.path() / "png").string(), opt);
  EXPECT_EQ(s3.val.images, 0u);
  EXPECT_FALSE(fs::exists(tmp.path() / "png" / "val"));
  check_split(tmp.path() / "png" / "train", opt.shapes, 2, true);
  const synth::SynthImage img = synth::generate_image(bgs, opt.shapes, synth::Split::kTrain, 1);
  const cv::Mat file = cv::imread((tmp.path() / "png" / "train" / "images" / "000002.png").string());
  EXPECT_EQ(cv::norm(file, img.image, cv::NORM_INF), 0.0);
}

TEST(SynthShapes, Cli) {
  TempDir tmp("cli");
  const std::string out = (tmp.path() / "out").string();
  const std::string cmd = std::string(PASTEFLOW_BIN) + " --log-level warn generate shapes --backgrounds " +
                          kBackgrounds + " --out " + out +
                          " --train 3 --val 2 --image-size 128 --min-size 8 --max-size 20 --objects 5..9 --seed 3"
                          " --threads 2";
  ASSERT_EQ(std::system(cmd.c_str()), 0) << cmd;
  synth::ShapesOptions o;
  o.image_size = 128;
  o.min_size = 8;
  o.max_size = 20;
  check_split(fs::path(out) / "train", o, 3, false);
  check_split(fs::path(out) / "val", o, 2, false);
  const io::CocoDataset ds = io::load_coco(out + "/train/annotations.json");
  for (size_t i = 0; i < ds.images.size(); ++i) {
    EXPECT_GE(ds.annotations_of(i).size(), 1u);
    EXPECT_LE(ds.annotations_of(i).size(), 9u);
  }
  // Bad arguments fail without writing.
  const std::string bad = std::string(PASTEFLOW_BIN) + " --log-level off generate shapes --backgrounds " +
                          kBackgrounds + " --out " + (tmp.path() / "bad").string() +
                          " --train 1 --val 0 --objects 9..5 2>/dev/null";
  EXPECT_NE(std::system(bad.c_str()), 0);
  EXPECT_FALSE(fs::exists(tmp.path() / "bad" / "train" / "annotations.json"));
}
