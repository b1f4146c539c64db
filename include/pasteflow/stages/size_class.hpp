// Size classification stage: a pure function object giving an annotation its
// COCO size class (small / medium / large). No threads, no state besides the
// config: safe to call concurrently.
//
// Boundaries (see stats/size_class.hpp): small: area < small_max_area (32^2),
// medium: small_max_area <= area < medium_max_area (96^2), large: the rest.
#pragma once

#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/stats/size_class.hpp"

namespace pasteflow::stages {

using AreaSource = stats::AreaSource;
using SizeClass = stats::SizeClass;
using SizeClassConfig = stats::SizeClassConfig;

class SizeClassifier {
 public:
  /// Throws ConfigError for bad thresholds.
  explicit SizeClassifier(SizeClassConfig config = {});

  const SizeClassConfig& config() const noexcept { return config_; }

  /// The class of `ann` (an annotation of `dataset`). kMaskArea rasterises
  /// the segmentation at the image's size. Throws InputError naming the
  /// annotation when its area cannot be determined.
  SizeClass operator()(const io::CocoDataset& dataset, const io::AnnotationRecord& ann) const;

  /// The class of an area value.
  SizeClass classify(double area) const noexcept { return stats::classify_area(area, config_); }

  /// The area `ann` is classified by (per config().source).
  double area(const io::CocoDataset& dataset, const io::AnnotationRecord& ann) const;

  /// Every annotation of `dataset`, in dataset.annotations order.
  std::vector<SizeClass> classify_all(const io::CocoDataset& dataset) const;

 private:
  SizeClassConfig config_;
};

}  // namespace pasteflow::stages
