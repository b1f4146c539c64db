#include "pasteflow/io/select.hpp"

#include <algorithm>
#include <cmath>
#include <string>
#include <string_view>
#include <utility>

#include "pasteflow/core/error.hpp"
#include "pasteflow/core/hash.hpp"
#include "pasteflow/core/random.hpp"

namespace pasteflow::io {


std::vector<size_t> fraction_indices(const CocoDataset& dataset, double fraction, uint64_t seed, const char* key) {
  if (!(fraction > 0.0 && fraction <= 1.0)) {
    Location where;
    where.key = key;
    throw ConfigError("bad_value", "the fraction of images must be in (0, 1], got " + std::to_string(fraction),
                      where);
  }
  const size_t n = dataset.images.size();
  std::vector<size_t> all(n);
  for (size_t i = 0; i < n; ++i) all[i] = i;
  if (n == 0 || fraction >= 1.0) return all;
  std::vector<std::pair<uint64_t, size_t>> keyed;
  keyed.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    keyed.emplace_back(derive_seed(seed, {fnv1a(dataset.file_name(dataset.images[i]))}), i);
  }
  std::sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
    if (a.first != b.first) return a.first < b.first;
    const std::string_view na = dataset.file_name(dataset.images[a.second]);
    const std::string_view nb = dataset.file_name(dataset.images[b.second]);
    return na != nb ? na < nb : a.second < b.second;
  });
  const size_t take =
      std::min(n, std::max<size_t>(1, static_cast<size_t>(std::llround(fraction * static_cast<double>(n)))));
  std::vector<size_t> out;
  out.reserve(take);
  for (size_t k = 0; k < take; ++k) out.push_back(keyed[k].second);
  std::sort(out.begin(), out.end());
  return out;
}

CocoDataset keep_images(const CocoDataset& dataset, const std::vector<size_t>& keep) {
  CocoDataset out = dataset;
  out.images.clear();
  out.annotations.clear();
  out.annotation_sources.clear();
  std::vector<uint8_t> kept(dataset.images.size(), 0);
  for (size_t i : keep) {
    if (i >= dataset.images.size()) {
      throw Error("bad_index", "image index " + std::to_string(i) + " is beyond the dataset's " +
                                   std::to_string(dataset.images.size()) + " images");
    }
    if (!kept[i]) out.images.push_back(dataset.images[i]);
    kept[i] = 1;
  }
  const bool sources = dataset.annotation_sources.size() == dataset.annotations.size();
  for (size_t a = 0; a < dataset.annotations.size(); ++a) {
    if (!kept[dataset.annotations[a].image_index]) continue;
    out.annotations.push_back(dataset.annotations[a]);
    if (sources) out.annotation_sources.push_back(dataset.annotation_sources[a]);
  }
  out.rebuild_index();
  return out;
}

void copy_categories(const CocoDataset& from, CocoDataset& to, bool keep_extra) {
  for (const CategoryRecord& c : from.categories) {
    CategoryRecord r = c;
    r.name = to.add_string(from.str(c.name));
    r.supercategory = to.add_string(from.str(c.supercategory));
    r.extra = keep_extra ? to.add_string(from.str(c.extra)) : StrRef{};
    to.categories.push_back(r);
  }
}

}  // namespace pasteflow::io
