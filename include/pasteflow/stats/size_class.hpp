// COCO object size classes (paper Table 1): small / medium / large by area.
//
// Boundaries: small: area < 32^2, medium: 32^2 <= area < 96^2, large:
// area >= 96^2. COCOeval's areaRng ([0, 32^2], [32^2, 96^2], [96^2, 1e5^2])
// is closed at both ends, so an object of area exactly 32^2 (or 96^2) falls
// in two evaluation ranges there; a partition has to pick one side and the
// lower bound is inclusive here (the paper's Table 1 "32x32 .. 96x96").
// The Table 2 oracle has no area exactly on a boundary, so it cannot tell
// the conventions apart.
#pragma once

#include <cstdint>
#include <string>

#include "pasteflow/io/coco.hpp"

namespace pasteflow::stats {

/// Which number is the "area" of an object.
enum class AreaSource {
  kAreaField,  ///< the annotation's "area" field (what COCOeval uses)
  kMaskArea,   ///< pixel count of the rasterised segmentation (pycocotools)
  kBboxArea,   ///< bbox w * h (paper Table 1 "32x32")
};

enum class SizeClass : uint8_t { kSmall, kMedium, kLarge };
inline constexpr int kNumSizeClasses = 3;

struct SizeClassConfig {
  double small_max_area = 32.0 * 32.0;   ///< small: area < this
  double medium_max_area = 96.0 * 96.0;  ///< medium: small_max_area <= area < this
  AreaSource source = AreaSource::kAreaField;
  /// Throws ConfigError unless 0 <= small_max_area <= medium_max_area (finite).
  void validate() const;

  template <class Describer>
  static void describe(Describer& d) {
    d.field("small_max_area", &SizeClassConfig::small_max_area, "an object is small when its area is below this (COCO: 32^2)")
        .range(0.0, 1e12);
    d.field("medium_max_area", &SizeClassConfig::medium_max_area,
            "an object is medium when small_max_area <= area < this, large above (COCO: 96^2)")
        .range(0.0, 1e12);
    d.field("source", &SizeClassConfig::source,
            "which area decides the class: the annotation's area field (COCOeval), the rasterised mask, or the bbox w*h")
        .one_of({{"area", AreaSource::kAreaField}, {"mask", AreaSource::kMaskArea}, {"bbox", AreaSource::kBboxArea}});
  }
};

/// "small" / "medium" / "large".
const char* to_string(SizeClass c) noexcept;
/// "area" / "mask" / "bbox".
const char* to_string(AreaSource s) noexcept;
/// Parses to_string() output; throws ConfigError otherwise.
SizeClass parse_size_class(const std::string& text);
AreaSource parse_area_source(const std::string& text);

/// Size class of an area (no validation; NaN counts as large).
inline SizeClass classify_area(double area, const SizeClassConfig& config) noexcept {
  if (area < config.small_max_area) return SizeClass::kSmall;
  if (area < config.medium_max_area) return SizeClass::kMedium;
  return SizeClass::kLarge;
}

/// The area of annotation `ann` of `dataset` by `source`. Throws InputError
/// ("missing_area" / "missing_bbox" / the mask layer's reasons) naming the
/// annotation when the needed field is absent or the segmentation is bad.
double object_area(const io::CocoDataset& dataset, const io::AnnotationRecord& ann, AreaSource source);

}  // namespace pasteflow::stats
