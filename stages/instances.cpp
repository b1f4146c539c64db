#include "pasteflow/stages/instances.hpp"

#include "pasteflow/mask/coco_mask.hpp"

namespace pasteflow::stages {

InstanceBuilder::InstanceBuilder(const io::CocoDataset& dataset, SizeClassConfig size, InstancesConfig config)
    : dataset_(&dataset), classify_(size), config_(config) {}

Instance InstanceBuilder::build(const io::AnnotationRecord& ann, uint32_t img_h, uint32_t img_w) const {
  Instance inst;
  inst.id = ann.id;
  inst.category_id = ann.category_id;
  inst.iscrowd = ann.iscrowd;
  inst.size_class = static_cast<uint8_t>(classify_(*dataset_, ann));
  inst.bbox = ann.bbox;
  inst.area = ann.area;
  if (config_.use_masks && ann.seg_kind != io::SegmentationKind::kNone) {
    inst.mask = mask::annotation_rle(*dataset_, ann, img_h, img_w);
    if (inst.mask.h != img_h || inst.mask.w != img_w) {  // the loader refuses these; datasets built in memory
      const Location where = dataset_->annotation_location(ann, ".segmentation.size");
      throw InputError("rle_size_mismatch",
                       "RLE size " + std::to_string(inst.mask.h) + "x" + std::to_string(inst.mask.w) +
                           " differs from its image's " + std::to_string(img_h) + "x" + std::to_string(img_w),
                       where);
    }
    inst.has_mask = true;
    if (!ann.has_bbox) inst.bbox = mask::bbox(inst.mask);
    if (!ann.has_area) inst.area = static_cast<double>(mask::area(inst.mask));
  } else if (!ann.has_bbox) {
    const Location where = dataset_->annotation_location(ann);
    throw InputError("missing_field", "annotation has neither a usable segmentation nor a bbox", where);
  }
  return inst;
}

void InstanceBuilder::operator()(Sample& sample) const {
  const io::ImageRecord& im = dataset_->images.at(sample.image_index);
  sample.image_id = im.id;
  sample.path = dataset_->image_path(im);
  sample.instances.clear();
  const auto anns = dataset_->annotations_of(sample.image_index);
  sample.instances.reserve(anns.size());
  for (const uint32_t a : anns) {
    const io::AnnotationRecord& ann = dataset_->annotations[a];
    if (ann.iscrowd && !config_.keep_crowd) continue;
    sample.instances.push_back(build(ann, static_cast<uint32_t>(im.height), static_cast<uint32_t>(im.width)));
  }
}

}  // namespace pasteflow::stages
