// Golden test of the batching stage against torchvision itself.
// oracle: Debian python3-torchvision 0.14.1 / python3-torch 1.13.1, run by
// tools/parity/rcnn_transform_parity.py: references/detection's
// ConvertCocoPolysToMask + RandomHorizontalFlip + PILToTensor +
// ConvertImageDtype, then GeneralizedRCNNTransform.forward.
//
// The JPEGs are decoded here with OpenCV and handed to Python as raw RGB
// bytes, so the JPEG decoder is not part of the comparison. Boxes and masks
// are drawn by this test (ellipse, triangle, fractional rectangle, a box
// reaching past the border, a crowd instance, a zero-width box).
#include <gtest/gtest.h>

#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <opencv2/core.hpp>
#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pasteflow/mask/rle.hpp"
#include "pasteflow/stages/batch.hpp"

#include "common/command.hpp"

namespace pasteflow::stages {
namespace {

using pasteflow::testing::CommandResult;
using pasteflow::testing::run_command;
using pasteflow::testing::torchvision_unavailable;

namespace fs = std::filesystem;

const char* const kPython = pasteflow::testing::python();



cv::Mat load_rgb(const std::string& path) {
  cv::Mat bgr = cv::imread(path, cv::IMREAD_COLOR);
  if (bgr.empty()) return bgr;
  cv::Mat rgb;
  cv::cvtColor(bgr, rgb, cv::COLOR_BGR2RGB);
  return rgb;
}

Instance from_mask(const cv::Mat& m, int64_t id, int64_t category) {
  Instance inst;
  inst.id = id;
  inst.category_id = category;
  inst.has_mask = true;
  inst.mask = mask::encode(m.data, static_cast<uint32_t>(m.rows), static_cast<uint32_t>(m.cols), m.step[0]);
  inst.bbox = mask::bbox(inst.mask);
  inst.area = static_cast<double>(mask::area(inst.mask));
  return inst;
}

/// Instances drawn relative to the image size.
std::vector<Instance> draw_instances(int h, int w) {
  std::vector<Instance> out;
  cv::Mat m(h, w, CV_8UC1, cv::Scalar(0));
  cv::ellipse(m, cv::Point(w * 3 / 10, h * 4 / 10), cv::Size(w * 15 / 100, h / 5), 20.0, 0, 360, cv::Scalar(1), -1);
  out.push_back(from_mask(m, 1, 1));

  m.setTo(0);
  std::vector<cv::Point> tri{{w * 6 / 10, h / 10}, {w * 6 / 10 + 12, h / 10 + 3}, {w * 6 / 10 + 4, h / 10 + 10}};
  cv::fillConvexPoly(m, tri, cv::Scalar(1));
  out.push_back(from_mask(m, 2, 3));  // a small object

  m.setTo(0);
  m(cv::Rect(w / 2, h / 2, 34, std::min(21, h / 2 - 1))).setTo(1);
  Instance frac = from_mask(m, 3, 7);
  frac.bbox = {w / 2 + 0.25, h / 2 + 0.5, 33.3, std::min(20.7, h / 2 - 1.5)};  // fractional box
  out.push_back(frac);

  m.setTo(0);
  m(cv::Rect(w - 15, h - 12, 15, 12)).setTo(1);
  Instance border = from_mask(m, 4, 1);
  border.bbox = {w - 15.0, h - 12.0, 40.0, 30.0};  // reaches past the border: clamped
  out.push_back(border);

  m.setTo(0);
  m(cv::Rect(5, 5, 30, 20)).setTo(1);
  Instance crowd = from_mask(m, 5, 3);
  crowd.iscrowd = 1;  // dropped on both sides
  out.push_back(crowd);

  m.setTo(0);
  Instance flat = from_mask(m, 6, 7);
  flat.bbox = {10.0, 10.0, 0.0, 8.0};  // zero width: dropped on both sides
  out.push_back(flat);
  return out;
}

Sample make_sample(const cv::Mat& image, uint64_t seq, int64_t image_id) {
  Sample s;
  s.seq = seq;
  s.image_id = image_id;
  s.image = image;
  s.instances = draw_instances(image.rows, image.cols);
  return s;
}

void write_bytes(const fs::path& path, const void* data, size_t n) {
  std::ofstream f(path, std::ios::binary);
  f.write(static_cast<const char*>(data), static_cast<std::streamsize>(n));
}

template <typename T>
std::vector<T> read_raw(const fs::path& path) {
  std::ifstream f(path, std::ios::binary | std::ios::ate);
  if (!f) return {};
  const auto size = static_cast<size_t>(f.tellg());
  std::vector<T> v(size / sizeof(T));
  f.seekg(0);
  f.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(v.size() * sizeof(T)));
  return v;
}

std::string json_list(const std::vector<double>& v) {
  std::ostringstream o;
  o.precision(17);
  o << '[';
  for (size_t i = 0; i < v.size(); ++i) o << (i ? ", " : "") << v[i];
  o << ']';
  return o.str();
}

/// Writes the inputs of `samples` as prepared into `dir` (manifest.json).
void write_manifest(const fs::path& dir, const std::vector<Sample>& samples,
                    const std::vector<PreparedImage>& prepared, const BatchConfig& cfg) {
  const bool training = !cfg.train_min_sizes.empty();
  std::vector<double> min_sizes;
  for (int s : training ? cfg.train_min_sizes : std::vector<int>{cfg.min_size}) min_sizes.push_back(s);
  std::vector<double> chosen;
  for (const PreparedImage& p : prepared) chosen.push_back(p.min_size);
  std::ostringstream j;
  j.precision(17);
  j << "{\"training\": " << (training ? "true" : "false") << ", \"min_size\": " << json_list(min_sizes)
    << ", \"chosen_min_sizes\": " << json_list(training ? chosen : std::vector<double>{})
    << ", \"max_size\": " << cfg.max_size << ", \"mean\": " << json_list(cfg.mean)
    << ", \"std\": " << json_list(cfg.std) << ", \"size_divisible\": " << cfg.size_divisible
    << ", \"images\": [";
  for (size_t i = 0; i < samples.size(); ++i) {
    const Sample& s = samples[i];
    const cv::Mat img = s.image.isContinuous() ? s.image : s.image.clone();
    const std::string pix = "img" + std::to_string(i) + ".u8";
    write_bytes(dir / pix, img.data, img.total() * img.elemSize());
    std::string masks = "null";
    if (cfg.keep_masks) {
      std::vector<uint8_t> all;
      for (const Instance& inst : s.instances) {
        const std::vector<uint8_t> d = mask::decode(inst.mask);
        all.insert(all.end(), d.begin(), d.end());
      }
      masks = "\"masks" + std::to_string(i) + ".u8\"";
      write_bytes(dir / ("masks" + std::to_string(i) + ".u8"), all.data(), all.size());
    }
    j << (i ? ", " : "") << "{\"pixels\": \"" << pix << "\", \"height\": " << img.rows
      << ", \"width\": " << img.cols << ", \"channels\": " << img.channels()
      << ", \"flip\": " << (prepared[i].flipped ? "true" : "false") << ", \"bbox\": [";
    for (size_t k = 0; k < s.instances.size(); ++k) {
      const auto& b = s.instances[k].bbox;
      j << (k ? ", " : "") << json_list({b[0], b[1], b[2], b[3]});
    }
    j << "], \"iscrowd\": [";
    for (size_t k = 0; k < s.instances.size(); ++k) j << (k ? ", " : "") << int(s.instances[k].iscrowd);
    j << "], \"masks\": " << masks << "}";
  }
  j << "]}\n";
  std::ofstream(dir / "manifest.json") << j.str();
}

float max_abs_diff(const float* a, const float* b, size_t n) {
  float m = 0.0f;
  for (size_t i = 0; i < n; ++i) m = std::max(m, std::fabs(a[i] - b[i]));
  return m;
}

/// Runs pasteflow and torchvision on `samples` and compares everything.
void check_parity(const std::string& name, std::vector<Sample> samples, const BatchConfig& cfg, uint64_t seed) {
  const CategoryMap map({1, 3, 7});
  std::vector<PreparedImage> prepared;
  for (const Sample& s : samples) prepared.push_back(prepare(s, cfg, map, batch_rng(seed, s)));

  char tmpl[] = "/tmp/pasteflow_batch_parity_XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const fs::path dir(tmpl);
  fs::create_directories(dir / "in");
  write_manifest(dir / "in", samples, prepared, cfg);

  std::vector<PreparedImage> copy = prepared;  // collate consumes its input
  const Batch batch = collate(std::move(copy), cfg, 0);

  const std::string script = std::string(PASTEFLOW_SOURCE_DIR) + "/tools/parity/rcnn_transform_parity.py";
  const CommandResult r = run_command(std::string(kPython) + " " + script + " " + (dir / "in").string() + " " +
                                      (dir / "out").string());
  ASSERT_EQ(r.status, 0) << name << ": torchvision oracle failed:\n" << r.output;

  std::ifstream meta(dir / "out" / "meta.txt");
  std::vector<int64_t> shape(4);
  for (auto& v : shape) meta >> v;
  ASSERT_EQ(batch.images.sizes().vec(), shape) << name;

  const at::Tensor ours = batch.images.contiguous();
  const auto n_values = static_cast<size_t>(ours.numel());
  const std::vector<float> ref = read_raw<float>(dir / "out" / "images.f32");
  const std::vector<float> ref_pil = read_raw<float>(dir / "out" / "images_pil.f32");
  ASSERT_EQ(ref.size(), n_values);
  ASSERT_EQ(ref_pil.size(), n_values);
  const float diff = max_abs_diff(ours.data_ptr<float>(), ref.data(), n_values);
  const float diff_pil = max_abs_diff(ours.data_ptr<float>(), ref_pil.data(), n_values);
  std::printf("[%s] images %lld values: max |ours - torchvision| = %.3g (contiguous CHW), %.3g (PILToTensor layout)\n",
              name.c_str(), static_cast<long long>(n_values), double(diff), double(diff_pil));
  EXPECT_LE(diff, 1e-5f) << name;
  EXPECT_LE(diff_pil, 1e-5f) << name;

  for (size_t i = 0; i < samples.size(); ++i) {
    int64_t h = 0, w = 0, n = 0, has_masks = 0;
    meta >> h >> w >> n >> has_masks;
    const Target& t = batch.targets[i];
    EXPECT_EQ(batch.image_sizes[i], (rcnn::Size2{h, w})) << name << " image " << i;
    ASSERT_EQ(t.boxes.size(0), n) << name << " image " << i;
    const std::vector<float> boxes = read_raw<float>(dir / "out" / ("boxes" + std::to_string(i) + ".f32"));
    ASSERT_EQ(boxes.size(), static_cast<size_t>(4 * n));
    const at::Tensor b = t.boxes.contiguous();
    const float box_diff = max_abs_diff(b.data_ptr<float>(), boxes.data(), boxes.size());
    EXPECT_LE(box_diff, 1e-4f) << name << " image " << i;
    EXPECT_EQ(has_masks != 0, cfg.keep_masks);
    EXPECT_EQ(t.masks.defined(), cfg.keep_masks);
    if (cfg.keep_masks && has_masks) {
      const std::vector<uint8_t> masks = read_raw<uint8_t>(dir / "out" / ("masks" + std::to_string(i) + ".u8"));
      const at::Tensor m = t.masks.contiguous();
      ASSERT_EQ(masks.size(), static_cast<size_t>(m.numel())) << name << " image " << i;
      size_t differing = 0;
      for (size_t k = 0; k < masks.size(); ++k) differing += masks[k] != m.data_ptr<uint8_t>()[k];
      EXPECT_EQ(differing, 0u) << name << " image " << i;
      EXPECT_GT(m.sum().item<int64_t>(), 0);
    }
    std::printf("[%s] image %zu: %lldx%lld -> %lldx%lld, %lld boxes (max diff %.3g), flipped %d, min_size %d\n",
                name.c_str(), i, static_cast<long long>(samples[i].image.rows),
                static_cast<long long>(samples[i].image.cols), static_cast<long long>(h),
                static_cast<long long>(w), static_cast<long long>(n), double(box_diff), int(prepared[i].flipped),
                prepared[i].min_size);
  }
  std::error_code ec;
  fs::remove_all(dir, ec);
}

class BatchParity : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string why = torchvision_unavailable();
    if (!why.empty()) GTEST_SKIP() << "torchvision oracle unavailable: " << why;
    coco_ = load_rgb(std::string(PASTEFLOW_TEST_DATA) + "/batch/000000215657.jpg");
    voc_ = load_rgb(std::string(PASTEFLOW_TEST_DATA) + "/labelme_voc3/JPEGImages/2011_000003.jpg");
    ASSERT_EQ(coco_.size(), cv::Size(640, 480));
    ASSERT_FALSE(voc_.empty());
  }
  cv::Mat coco_, voc_;
};

TEST_F(BatchParity, EvalDefaults) {
  // min 800 / max 1333: 640x480 -> 800x1066; 500x338; grey; one batch (padding).
  cv::Mat grey;
  cv::cvtColor(voc_, grey, cv::COLOR_RGB2GRAY);
  check_parity("eval", {make_sample(coco_, 0, 1), make_sample(voc_, 1, 2), make_sample(grey, 2, 3)}, BatchConfig{},
               1);
}

TEST_F(BatchParity, TrainingMultiScaleFlipAndCap) {
  BatchConfig cfg;
  cfg.train_min_sizes = {480, 576, 688, 864, 1000};
  cfg.max_size = 1000;
  cfg.hflip = true;
  const cv::Mat wide = coco_(cv::Rect(0, 100, 640, 150));  // a view (row step 640*3): longer side capped
  std::vector<Sample> samples{make_sample(coco_, 0, 1), make_sample(voc_, 1, 2), make_sample(wide, 2, 3),
                              make_sample(voc_, 3, 4)};
  // A seed whose draws flip some images but not all and use several sizes.
  const CategoryMap map({1, 3, 7});
  uint64_t seed = 1;
  for (;; ++seed) {
    ASSERT_LT(seed, 1000u);
    int flips = 0;
    std::set<int> sizes;
    for (const Sample& s : samples) {
      const PreparedImage p = prepare(s, cfg, map, batch_rng(seed, s));
      flips += p.flipped;
      sizes.insert(p.min_size);
    }
    if (flips > 0 && flips < 4 && sizes.size() >= 3) break;
  }
  check_parity("train", samples, cfg, seed);
}

TEST_F(BatchParity, BoxesOnlyOtherNormalisation) {
  BatchConfig cfg;
  cfg.keep_masks = false;
  cfg.min_size = 600;
  cfg.max_size = 1000;
  cfg.size_divisible = 16;
  cfg.mean = {0.5, 0.25, 0.125};
  cfg.std = {0.3, 0.2, 0.1};
  check_parity("boxes-only", {make_sample(voc_, 0, 1), make_sample(coco_, 1, 2)}, cfg, 1);
}

}  // namespace
}  // namespace pasteflow::stages
