// Golden test of pasteflow::model::ops against torchvision itself.
// oracle: Debian python3-torchvision 0.14.1 / python3-torch 1.13.1, run by
// tools/parity/ops_parity.py (torchvision.ops.roi_align forward + backward,
// nms, batched_nms and its two strategies, box_area, box_iou,
// clip_boxes_to_image, remove_small_boxes, detection._utils.BoxCoder,
// roi_heads.paste_masks_in_image) on seeded random inputs with ties,
// duplicates, degenerate and out-of-image boxes. Inputs and outputs come back
// in the PFTENSOR format (tests/model/ops_tensor_file.hpp).
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <string>

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <torch/autograd.h>

#include "ops_tensor_file.hpp"
#include "pasteflow/model/ops.hpp"

namespace pasteflow::model::ops {
namespace {

namespace fs = std::filesystem;
using testing::max_abs_diff;

class OpsParity : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    skip_reason_ = new std::string(testing::torchvision_unavailable());
    data_ = new std::map<std::string, at::Tensor>();
    if (!skip_reason_->empty()) return;
    char tmpl[] = "/tmp/pasteflow_ops_parity_XXXXXX";
    const char* dir = mkdtemp(tmpl);
    if (dir == nullptr) {
      *error_ = "mkdtemp failed";
      return;
    }
    const std::string file = std::string(dir) + "/ops.bin";
    const std::string cmd = std::string(testing::python()) + " " PASTEFLOW_SOURCE_DIR "/tools/parity/ops_parity.py " +
                            file;
    const testing::CommandResult r = testing::run_command(cmd);
    if (r.status != 0) {
      *error_ = "oracle failed: " + cmd + "\n" + r.output;
    } else {
      *data_ = testing::read_tensor_file(file);
    }
    std::error_code ec;
    fs::remove_all(dir, ec);
  }
  static void TearDownTestSuite() {
    delete data_;
    delete skip_reason_;
    data_ = nullptr;
    skip_reason_ = nullptr;
  }
  void SetUp() override {
    if (!skip_reason_->empty()) GTEST_SKIP() << *skip_reason_;
    ASSERT_TRUE(error_->empty()) << *error_;
  }
  static const at::Tensor& get(const std::string& name) {
    auto it = data_->find(name);
    if (it == data_->end()) throw std::runtime_error("missing tensor " + name);
    return it->second;
  }
  static double param(const std::string& name, int64_t i) { return get(name)[i].item<double>(); }
  static int64_t count(int64_t family) { return static_cast<int64_t>(param("counts", family)); }

  static std::string* skip_reason_;
  static std::string* error_;
  static std::map<std::string, at::Tensor>* data_;
};
std::string* OpsParity::skip_reason_ = nullptr;
std::string* OpsParity::error_ = new std::string();
std::map<std::string, at::Tensor>* OpsParity::data_ = nullptr;

TEST_F(OpsParity, RoiAlignForwardBackward) {
  const int64_t n = count(0);
  ASSERT_GE(n, 8);
  for (int64_t k = 0; k < n; ++k) {
    const std::string name = "roi_align/" + std::to_string(k);
    const std::string p = name + "/params";
    const double scale = param(p, 0);
    const int64_t ph = static_cast<int64_t>(param(p, 1));
    const int64_t pw = static_cast<int64_t>(param(p, 2));
    const int64_t sr = static_cast<int64_t>(param(p, 3));
    const bool aligned = param(p, 4) != 0;
    at::Tensor input = get(name + "/input").clone().requires_grad_(true);
    const at::Tensor& rois = get(name + "/rois");
    // Odd cases run on one thread, even ones on two (the parallel split).
    const int before = at::get_num_threads();
    at::set_num_threads(k % 2 == 0 ? 2 : 1);
    const at::Tensor out = roi_align(input, rois, ph, pw, scale, sr, aligned);
    const double tol = input.scalar_type() == at::kFloat ? 1e-5 : 1e-12;
    EXPECT_LE(max_abs_diff(out, get(name + "/output")), tol) << name;
    out.backward(get(name + "/grad_output"));
    at::set_num_threads(before);
    ASSERT_TRUE(input.grad().defined());
    EXPECT_LE(max_abs_diff(input.grad(), get(name + "/grad_input")), tol) << name;
    // Same arithmetic, same per-element summation order: bit-identical.
    EXPECT_TRUE(at::equal(out, get(name + "/output"))) << name;
    EXPECT_TRUE(at::equal(input.grad(), get(name + "/grad_input"))) << name;
  }
}

TEST_F(OpsParity, Nms) {
  const int64_t n = count(1);
  ASSERT_GE(n, 5);
  for (int64_t k = 0; k < n; ++k) {
    const std::string name = "nms/" + std::to_string(k);
    const at::Tensor keep = nms(get(name + "/boxes"), get(name + "/scores"), param(name + "/params", 0));
    EXPECT_EQ(keep.scalar_type(), at::kLong);
    EXPECT_TRUE(at::equal(keep, get(name + "/keep"))) << name << "\nours " << keep << "\ntorchvision "
                                                      << get(name + "/keep");
  }
}

TEST_F(OpsParity, BatchedNms) {
  const int64_t n = count(2);
  ASSERT_GE(n, 4);
  for (int64_t k = 0; k < n; ++k) {
    const std::string name = "batched_nms/" + std::to_string(k);
    const at::Tensor& boxes = get(name + "/boxes");
    const at::Tensor& scores = get(name + "/scores");
    const at::Tensor& idxs = get(name + "/idxs");
    const double thr = param(name + "/params", 0);
    EXPECT_TRUE(at::equal(batched_nms(boxes, scores, idxs, thr), get(name + "/keep"))) << name;
    EXPECT_TRUE(at::equal(batched_nms_coordinate_trick(boxes, scores, idxs, thr), get(name + "/keep_trick")))
        << name;
    if (boxes.size(0) > 0) {
      EXPECT_TRUE(at::equal(batched_nms_vanilla(boxes, scores, idxs, thr), get(name + "/keep_vanilla"))) << name;
    }
  }
}

TEST_F(OpsParity, BoxUtilities) {
  const at::Tensor& b1 = get("boxes/b1");
  const at::Tensor& b2 = get("boxes/b2");
  EXPECT_TRUE(at::equal(box_area(b1), get("boxes/area")));
  EXPECT_TRUE(at::equal(box_iou(b1, b2), get("boxes/iou")));
  const int64_t h = static_cast<int64_t>(param("boxes/params", 0));
  const int64_t w = static_cast<int64_t>(param("boxes/params", 1));
  EXPECT_TRUE(at::equal(clip_boxes_to_image(get("boxes/big"), h, w), get("boxes/clipped")));
  EXPECT_TRUE(at::equal(remove_small_boxes(b1, param("boxes/params", 2)), get("boxes/small_keep")));
}

TEST_F(OpsParity, BoxCoder) {
  for (int k = 0; k < 2; ++k) {
    const std::string name = "coder/" + std::to_string(k);
    const std::string p = name + "/params";
    const BoxCoder coder({param(p, 0), param(p, 1), param(p, 2), param(p, 3)});
    const at::Tensor codes = coder.encode_single(get(name + "/gt"), get(name + "/anchors"));
    EXPECT_TRUE(at::equal(codes, get(name + "/codes"))) << name << " max diff "
                                                        << max_abs_diff(codes, get(name + "/codes"));
    const at::Tensor dec = coder.decode_single(get(name + "/rel"), get(name + "/anchors"));
    EXPECT_TRUE(at::equal(dec, get(name + "/decoded"))) << name << " max diff "
                                                        << max_abs_diff(dec, get(name + "/decoded"));
    const at::Tensor& anchors = get(name + "/anchors");
    const at::Tensor dec_list = coder.decode(get(name + "/rel"), {anchors.slice(0, 0, 20), anchors.slice(0, 20)});
    EXPECT_TRUE(at::equal(dec_list, get(name + "/decoded_list"))) << name;
  }
}

TEST_F(OpsParity, PasteMasksInImage) {
  const int64_t n = count(4);
  ASSERT_GE(n, 3);
  for (int64_t k = 0; k < n; ++k) {
    const std::string name = "paste/" + std::to_string(k);
    const std::string p = name + "/params";
    const at::Tensor out =
        paste_masks_in_image(get(name + "/masks"), get(name + "/boxes"), static_cast<int64_t>(param(p, 0)),
                             static_cast<int64_t>(param(p, 1)), static_cast<int64_t>(param(p, 2)));
    EXPECT_TRUE(at::equal(out, get(name + "/out"))) << name << " max diff " << max_abs_diff(out, get(name + "/out"));
    // The autograd path (torchvision's serial loop) gives the same result.
    at::Tensor masks = get(name + "/masks").clone().requires_grad_(true);
    const at::Tensor out_grad =
        paste_masks_in_image(masks, get(name + "/boxes"), static_cast<int64_t>(param(p, 0)),
                             static_cast<int64_t>(param(p, 1)), static_cast<int64_t>(param(p, 2)));
    EXPECT_TRUE(at::equal(out_grad.detach(), get(name + "/out"))) << name;
  }
}

}  // namespace
}  // namespace pasteflow::model::ops
