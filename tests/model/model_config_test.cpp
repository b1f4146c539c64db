// ModelConfig: the shipped YAML equals the defaults, every hyper-parameter is
// a key, validation names the key. (The defaults themselves are checked
// against torchvision's modules in mask_rcnn_parity_test.cpp.)
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <string>
#include <vector>

#include "pasteflow/config/config.hpp"
#include "pasteflow/core/error.hpp"
#include "pasteflow/model/config.hpp"

namespace pasteflow::model {
namespace {

const std::string kYaml = std::string(PASTEFLOW_SOURCE_DIR) + "/configs/models/maskrcnn_r50_fpn.yaml";

TEST(ModelConfig, ShippedYamlEqualsDefaults) {
  const ModelConfig loaded = config::load_config<ModelConfig>(kYaml);
  EXPECT_TRUE(config::config_diff(loaded, ModelConfig{}).empty());
  // Every key is spelled out in the file: dropping none of them changes nothing,
  // and a changed value is picked up.
  const ModelConfig changed = config::load_config<ModelConfig>(kYaml, {"rpn.nms_thresh=0.6", "backbone.depth=101"});
  const std::vector<std::string> diff = config::config_diff(changed, ModelConfig{});
  EXPECT_EQ(diff, (std::vector<std::string>{"backbone.depth", "rpn.nms_thresh"}));
}

TEST(ModelConfig, EveryHyperParameterIsAKey) {
  std::set<std::string> keys;
  for (const config::KeyInfo& k : config::schema_keys<ModelConfig>()) keys.insert(k.path);
  for (const char* k :
       {"num_classes", "backbone.depth", "backbone.norm", "backbone.norm_eps", "backbone.trainable_layers",
        "backbone.fpn_channels", "anchors.sizes", "anchors.aspect_ratios", "rpn.pre_nms_top_n_train",
        "rpn.pre_nms_top_n_test", "rpn.post_nms_top_n_train", "rpn.post_nms_top_n_test", "rpn.nms_thresh",
        "rpn.fg_iou_thresh", "rpn.bg_iou_thresh", "rpn.batch_size_per_image", "rpn.positive_fraction",
        "box.roi_pool_size", "box.representation_size", "box.score_thresh", "box.nms_thresh",
        "box.detections_per_img", "box.fg_iou_thresh", "box.bg_iou_thresh", "box.batch_size_per_image",
        "box.positive_fraction", "box.bbox_reg_weights", "mask.roi_pool_size", "mask.layers", "transform.min_size",
        "transform.max_size", "transform.image_mean", "transform.image_std", "device", "weights", "sampler"}) {
    EXPECT_TRUE(keys.count(k)) << k;
  }
}

ConfigError validate_error(const std::vector<std::string>& overrides) {
  const ModelConfig c = config::parse_config_string<ModelConfig>("", "<defaults>", overrides);
  try {
    validate(c);
  } catch (const ConfigError& e) {
    return e;
  }
  ADD_FAILURE() << "no error for " << overrides.front();
  return ConfigError("none", "none");
}

TEST(ModelConfig, ValidateNamesTheKey) {
  EXPECT_NO_THROW(validate(ModelConfig{}));
  EXPECT_EQ(validate_error({"backbone.depth=42"}).where().key, "model.backbone.depth");
  EXPECT_EQ(validate_error({"rpn.bg_iou_thresh=0.8"}).where().key, "model.rpn.bg_iou_thresh");
  EXPECT_EQ(validate_error({"box.bg_iou_thresh=0.6"}).where().key, "model.box.bg_iou_thresh");
  EXPECT_EQ(validate_error({"anchors.sizes=[32, 64]"}).where().key, "model.anchors.sizes");
  EXPECT_EQ(validate_error({"anchors.aspect_ratios=[]"}).where().key, "model.anchors.aspect_ratios");
  EXPECT_EQ(validate_error({"transform.image_mean=[0.5]"}).where().key, "model.transform.image_mean");
  EXPECT_EQ(validate_error({"transform.min_size=[]"}).where().key, "model.transform.min_size");
  EXPECT_EQ(validate_error({"backbone.norm=group_norm", "backbone.group_norm_groups=48"}).where().key,
            "model.backbone.group_norm_groups");
  EXPECT_EQ(validate_error({"mask.layers=[]"}).where().key, "model.mask.layers");
  // Schema-level checks come from the config layer.
  EXPECT_THROW(config::parse_config_string<ModelConfig>("", "<defaults>", {"backbone.norm=batch_norm"}), ConfigError);
  EXPECT_THROW(config::parse_config_string<ModelConfig>("", "<defaults>", {"sampler=sometimes"}), ConfigError);
  EXPECT_THROW(config::parse_config_string<ModelConfig>("", "<defaults>", {"backbone.trainable_layers=6"}),
               ConfigError);
}

TEST(ModelConfig, LevelSizes) {
  AnchorConfig a;
  a.octave_scales = {1.0, 2.0};
  const auto levels = a.level_sizes();
  ASSERT_EQ(levels.size(), 5u);
  EXPECT_EQ(levels[0], (std::vector<double>{32.0, 64.0}));
  EXPECT_EQ(levels[4], (std::vector<double>{512.0, 1024.0}));
  EXPECT_EQ(a.anchors_per_location(), 6);
}

}  // namespace
}  // namespace pasteflow::model
