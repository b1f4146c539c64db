// Annotation stage: turns a dataset image's annotation records into the
// sample's instances (full-frame pycocotools masks, boxes, size classes).
// A pure function object; reads the dataset, never modifies it.
#pragma once

#include "pasteflow/io/coco.hpp"
#include "pasteflow/stages/sample.hpp"
#include "pasteflow/stages/size_class.hpp"

namespace pasteflow::stages {

struct InstancesConfig {
  /// Rasterise segmentations into masks. Off (or a boxes-only dataset):
  /// instances carry boxes only and pasting copies the box region.
  bool use_masks = true;
  /// Keep crowd regions as instances (they count as occupied for placement
  /// and are never pasted); off drops them.
  bool keep_crowd = true;

  /// Config keys under "instances.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("use_masks", &InstancesConfig::use_masks,
            "rasterise segmentations into masks (off: boxes only, pasting copies box regions)");
    d.field("keep_crowd", &InstancesConfig::keep_crowd,
            "keep crowd regions as instances (occupied for placement, never pasted); off drops them");
  }
};

class InstanceBuilder {
 public:
  /// `dataset` must outlive the builder.
  InstanceBuilder(const io::CocoDataset& dataset, SizeClassConfig size = {}, InstancesConfig config = {});

  /// Fills sample.image_id, sample.path and sample.instances for
  /// sample.image_index. Throws InputError naming the annotation on a bad
  /// segmentation (the pipeline's error policy decides fail or skip).
  void operator()(Sample& sample) const;

  /// The instance of one annotation record at the given image size.
  Instance build(const io::AnnotationRecord& ann, uint32_t img_h, uint32_t img_w) const;

 private:
  const io::CocoDataset* dataset_;
  SizeClassifier classify_;
  InstancesConfig config_;
};

}  // namespace pasteflow::stages
