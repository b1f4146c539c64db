// Checkpoints: save/load round trip, strict name and shape checks naming the
// tensor, FrozenBatchNorm2d's ignored counters, atomic failure, bad files.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <ATen/ATen.h>
#include <torch/torch.h>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/mask_rcnn.hpp"
#include "pasteflow/model/weights.hpp"

namespace pasteflow::model {
namespace {

namespace fs = std::filesystem;

ModelConfig tiny_weights_config() {
  ModelConfig c;
  c.backbone.depth = 18;
  c.backbone.fpn_channels = 16;
  c.box.representation_size = 32;
  c.mask.layers = {16, 16};
  c.mask.dim_reduced = 16;
  c.num_classes = 5;
  return c;
}

class Weights : public ::testing::Test {
 protected:
  void SetUp() override {
    char tmpl[] = "/tmp/pasteflow_weights_XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    std::error_code ec;
    fs::remove_all(dir_, ec);
  }
  std::string path(const std::string& name) const { return (dir_ / name).string(); }
  fs::path dir_;
};

InputError load_error(torch::nn::Module& m, const std::map<std::string, at::Tensor>& tensors) {
  try {
    load_state_dict(m, tensors);
  } catch (const InputError& e) {
    return e;
  }
  ADD_FAILURE() << "no error";
  return InputError("none", "none");
}

TEST_F(Weights, SaveLoadRoundTrip) {
  torch::manual_seed(1);
  MaskRCNN a(tiny_weights_config());
  torch::manual_seed(2);
  MaskRCNN b(tiny_weights_config());
  const auto sa = state_dict(*a);
  ASSERT_FALSE(at::equal(sa.at("roi_heads.box_head.fc6.weight"), state_dict(*b).at("roi_heads.box_head.fc6.weight")));
  save_weights(*a, path("a.pt"));
  EXPECT_FALSE(fs::exists(path("a.pt.tmp")));
  load_weights(*b, path("a.pt"));
  const auto sb = state_dict(*b);
  ASSERT_EQ(sa.size(), sb.size());
  for (const auto& [k, v] : sa) EXPECT_TRUE(at::equal(v, sb.at(k))) << k;
  // Buffers (FrozenBatchNorm2d statistics) travel too.
  EXPECT_TRUE(sa.count("backbone.body.bn1.running_var"));
  // The file is a plain dict of the state_dict names.
  const auto file = read_checkpoint(path("a.pt"));
  EXPECT_EQ(file.size(), sa.size());
  EXPECT_TRUE(file.count("roi_heads.mask_predictor.mask_fcn_logits.weight"));
  // load_model reads config.weights.
  ModelConfig c = tiny_weights_config();
  c.weights = path("a.pt");
  MaskRCNN d = load_model(c);
  EXPECT_TRUE(at::equal(state_dict(*d).at("rpn.head.cls_logits.weight"), sa.at("rpn.head.cls_logits.weight")));
}

TEST_F(Weights, StrictNamesAndShapes) {
  MaskRCNN net(tiny_weights_config());
  const auto good = state_dict(*net);
  std::map<std::string, at::Tensor> t;
  for (const auto& [k, v] : good) t[k] = v.clone() + 1;  // distinguishable values

  auto missing = t;
  missing.erase("roi_heads.box_predictor.bbox_pred.bias");
  InputError e = load_error(*net, missing);
  EXPECT_EQ(e.reason(), "missing_weight");
  EXPECT_EQ(e.where().key, "roi_heads.box_predictor.bbox_pred.bias");
  EXPECT_NE(std::string(e.what()).find("roi_heads.box_predictor.bbox_pred.bias"), std::string::npos);

  auto extra = t;
  extra["roi_heads.keypoint_head.0.weight"] = at::zeros({3});
  e = load_error(*net, extra);
  EXPECT_EQ(e.reason(), "unexpected_weight");
  EXPECT_EQ(e.where().key, "roi_heads.keypoint_head.0.weight");

  auto shape = t;
  shape["roi_heads.box_predictor.cls_score.weight"] = at::zeros({91, 32});
  e = load_error(*net, shape);
  EXPECT_EQ(e.reason(), "weight_shape_mismatch");
  EXPECT_EQ(e.where().key, "roi_heads.box_predictor.cls_score.weight");
  EXPECT_NE(std::string(e.what()).find("[91, 32]"), std::string::npos);

  // Nothing was copied by the failed loads.
  for (const auto& [k, v] : state_dict(*net)) EXPECT_TRUE(at::equal(v, good.at(k))) << k;

  // BatchNorm counters (a torchvision model built with nn.BatchNorm2d) are ignored.
  auto counters = t;
  counters["backbone.body.bn1.num_batches_tracked"] = at::zeros({}, at::kLong);
  load_state_dict(*net, counters);
  EXPECT_TRUE(at::equal(state_dict(*net).at("backbone.body.bn1.weight"), t.at("backbone.body.bn1.weight")));
}

TEST_F(Weights, FileErrorsNameTheFile) {
  MaskRCNN net(tiny_weights_config());
  try {
    load_weights(*net, path("absent.pt"));
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "cannot_open");
    EXPECT_EQ(e.where().file, path("absent.pt"));
  }
  std::ofstream(path("junk.pt")) << "not a checkpoint";
  try {
    load_weights(*net, path("junk.pt"));
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "not_a_torch_archive");
  }
  // A pickled tensor is not a dict.
  const std::vector<char> bytes = torch::pickle_save(c10::IValue(at::zeros({2})));
  std::ofstream(path("tensor.pt"), std::ios::binary).write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  try {
    load_weights(*net, path("tensor.pt"));
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "bad_weights_file");
  }
  // A mismatch found while loading a file names the file and the tensor.
  std::map<std::string, at::Tensor> partial = state_dict(*net);
  partial.erase("rpn.head.bbox_pred.weight");
  write_checkpoint(partial, path("partial.pt"));
  try {
    load_weights(*net, path("partial.pt"));
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "missing_weight");
    EXPECT_EQ(e.where().file, path("partial.pt"));
    EXPECT_EQ(e.where().key, "rpn.head.bbox_pred.weight");
  }
  EXPECT_THROW(write_checkpoint(partial, path("no/such/dir/x.pt")), Error);
}

}  // namespace
}  // namespace pasteflow::model
