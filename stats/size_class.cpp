#include "pasteflow/stats/size_class.hpp"

#include <cmath>

#include "pasteflow/core/error.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pasteflow::stats {

void SizeClassConfig::validate() const {
  if (!std::isfinite(small_max_area) || !std::isfinite(medium_max_area) || small_max_area < 0.0 ||
      small_max_area > medium_max_area) {
    throw ConfigError("bad_size_thresholds",
                      "size thresholds need 0 <= small_max_area <= medium_max_area, got " +
                          std::to_string(small_max_area) + " and " + std::to_string(medium_max_area));
  }
}

const char* to_string(SizeClass c) noexcept {
  switch (c) {
    case SizeClass::kSmall:
      return "small";
    case SizeClass::kMedium:
      return "medium";
    case SizeClass::kLarge:
      return "large";
  }
  return "?";
}

const char* to_string(AreaSource s) noexcept {
  switch (s) {
    case AreaSource::kAreaField:
      return "area";
    case AreaSource::kMaskArea:
      return "mask";
    case AreaSource::kBboxArea:
      return "bbox";
  }
  return "?";
}

SizeClass parse_size_class(const std::string& text) {
  if (text == "small") return SizeClass::kSmall;
  if (text == "medium") return SizeClass::kMedium;
  if (text == "large") return SizeClass::kLarge;
  throw ConfigError("bad_size_class", "unknown size class '" + text + "' (small, medium, large)");
}

AreaSource parse_area_source(const std::string& text) {
  if (text == "area") return AreaSource::kAreaField;
  if (text == "mask") return AreaSource::kMaskArea;
  if (text == "bbox") return AreaSource::kBboxArea;
  throw ConfigError("bad_area_source", "unknown area source '" + text + "' (area, mask, bbox)");
}

namespace {

Location where(const io::CocoDataset& dataset, const io::AnnotationRecord& ann) {
  return dataset.annotation_location(ann);
}

}  // namespace

double object_area(const io::CocoDataset& dataset, const io::AnnotationRecord& ann, AreaSource source) {
  switch (source) {
    case AreaSource::kAreaField:
      if (!ann.has_area) throw InputError("missing_area", "annotation has no \"area\" field", where(dataset, ann));
      return ann.area;
    case AreaSource::kBboxArea:
      if (!ann.has_bbox) throw InputError("missing_bbox", "annotation has no \"bbox\" field", where(dataset, ann));
      return ann.bbox[2] * ann.bbox[3];
    case AreaSource::kMaskArea: {
      if (ann.image_index >= dataset.images.size()) {
        throw InputError("unknown_image", "annotation refers to no loaded image", where(dataset, ann));
      }
      const io::ImageRecord& im = dataset.images[ann.image_index];
      if (im.height <= 0 || im.width <= 0) {
        throw InputError("bad_image_size", "image of the annotation has no positive size", where(dataset, ann));
      }
      const mask::Rle rle =
          mask::annotation_rle(dataset, ann, static_cast<uint32_t>(im.height), static_cast<uint32_t>(im.width));
      return static_cast<double>(mask::area(rle));
    }
  }
  throw ConfigError("bad_area_source", "unknown area source");
}

}  // namespace pasteflow::stats
