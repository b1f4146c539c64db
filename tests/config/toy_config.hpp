// A realistic stand-in for the pipeline's root config, used by the config tests.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "pasteflow/config/describe.hpp"

namespace toy {

using pasteflow::config::Describer;

enum class Interp { kNearest, kLinear, kCubic };

struct PlacementConfig {
  int border = 5;
  int max_tries = 10;
  bool allow_overlap = false;
  std::string mode = "mask";

  static void describe(Describer<PlacementConfig>& d) {
    d.field("border", &PlacementConfig::border, "minimum distance in px from every image edge")
        .range(0, 100000);
    d.field("max_tries", &PlacementConfig::max_tries, "placement attempts per pasted object")
        .range(1, 1000);
    d.field("allow_overlap", &PlacementConfig::allow_overlap, "allow pasted objects to overlap others");
    d.field("mode", &PlacementConfig::mode, "occupancy test").one_of({"mask", "box"});
  }
};

struct AugmentConfig {
  double paste_prob = 0.5;
  int copies = 3;
  Interp interp = Interp::kLinear;
  std::vector<double> scale_range{0.8, 1.2};
  std::vector<std::string> categories;
  PlacementConfig placement;

  static void describe(Describer<AugmentConfig>& d) {
    d.field("paste_prob", &AugmentConfig::paste_prob, "probability that an image gets pasted objects")
        .range(0.0, 1.0);
    d.field("copies", &AugmentConfig::copies, "copies of each small object").range(0, 100);
    d.field("interp", &AugmentConfig::interp, "interpolation used when rescaling pasted objects")
        .one_of({{"nearest", Interp::kNearest}, {"linear", Interp::kLinear}, {"cubic", Interp::kCubic}});
    d.field("scale_range", &AugmentConfig::scale_range, "scale factors drawn for pasted objects").min(0.0);
    d.field("categories", &AugmentConfig::categories, "category names to paste (empty: all)");
    d.field("placement", &AugmentConfig::placement, "where pasted objects may go");
  }
};

struct DataConfig {
  std::string train_json = "annotations/instances_train.json";
  std::string image_root = "images";
  std::int64_t max_images = -1;
  std::uint64_t seed = 42;
  std::vector<int> category_ids;
  std::vector<std::string> splits{"train"};
  std::array<double, 3> mean{0.485, 0.456, 0.406};

  static void describe(Describer<DataConfig>& d) {
    d.field("train_json", &DataConfig::train_json, "COCO annotation file of the training set");
    d.field("image_root", &DataConfig::image_root, "directory the file names are relative to");
    d.field("max_images", &DataConfig::max_images, "use only the first N images (-1: all)").min(-1);
    d.field("seed", &DataConfig::seed, "random seed");
    d.field("category_ids", &DataConfig::category_ids, "keep only these category ids (empty: all)")
        .min(1);
    d.field("splits", &DataConfig::splits, "splits to load").one_of({"train", "val", "test"});
    d.field("mean", &DataConfig::mean, "per-channel RGB mean in [0, 1]").range(0.0, 1.0);
  }
};

struct RootConfig {
  DataConfig data;
  AugmentConfig augment;
  int num_workers = 2;
  std::string error_policy = "strict";

  static void describe(Describer<RootConfig>& d) {
    d.field("data", &RootConfig::data, "input dataset");
    d.field("augment", &RootConfig::augment, "copy-paste augmentation");
    d.field("num_workers", &RootConfig::num_workers, "worker threads").range(1, 64);
    d.field("error_policy", &RootConfig::error_policy, "what to do with bad records")
        .one_of({"strict", "skip"});
  }
};

// Hand-written equality, independent of the schema code under test.
inline bool operator==(const PlacementConfig& a, const PlacementConfig& b) {
  return a.border == b.border && a.max_tries == b.max_tries && a.allow_overlap == b.allow_overlap &&
         a.mode == b.mode;
}
inline bool operator==(const AugmentConfig& a, const AugmentConfig& b) {
  return a.paste_prob == b.paste_prob && a.copies == b.copies && a.interp == b.interp &&
         a.scale_range == b.scale_range && a.categories == b.categories && a.placement == b.placement;
}
inline bool operator==(const DataConfig& a, const DataConfig& b) {
  return a.train_json == b.train_json && a.image_root == b.image_root && a.max_images == b.max_images &&
         a.seed == b.seed && a.category_ids == b.category_ids && a.splits == b.splits && a.mean == b.mean;
}
inline bool operator==(const RootConfig& a, const RootConfig& b) {
  return a.data == b.data && a.augment == b.augment && a.num_workers == b.num_workers &&
         a.error_policy == b.error_policy;
}

}  // namespace toy
