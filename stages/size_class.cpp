#include "pasteflow/stages/size_class.hpp"

namespace pasteflow::stages {

SizeClassifier::SizeClassifier(SizeClassConfig config) : config_(config) { config_.validate(); }

double SizeClassifier::area(const io::CocoDataset& dataset, const io::AnnotationRecord& ann) const {
  return stats::object_area(dataset, ann, config_.source);
}

SizeClass SizeClassifier::operator()(const io::CocoDataset& dataset, const io::AnnotationRecord& ann) const {
  return classify(area(dataset, ann));
}

std::vector<SizeClass> SizeClassifier::classify_all(const io::CocoDataset& dataset) const {
  std::vector<SizeClass> out;
  out.reserve(dataset.annotations.size());
  for (const io::AnnotationRecord& ann : dataset.annotations) out.push_back((*this)(dataset, ann));
  return out;
}

}  // namespace pasteflow::stages
