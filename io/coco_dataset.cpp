#include <limits>

#include "id_table.hpp"
#include "pasteflow/io/coco.hpp"

namespace pasteflow::io {

namespace detail {
// Counting sort of annotation indices by image_index, stable (file order
// within an image); sets each image's ann_begin/ann_count.
void group_by_image(CocoDataset& ds) {
  std::vector<ImageRecord>& images = ds.images;
  for (ImageRecord& im : images) im.ann_count = 0;
  for (const AnnotationRecord& a : ds.annotations) ++images[a.image_index].ann_count;
  uint32_t begin = 0;
  for (ImageRecord& im : images) {
    im.ann_begin = begin;
    begin += im.ann_count;
  }
  ds.image_annotations.assign(ds.annotations.size(), 0);
  std::vector<uint32_t> fill(images.size(), 0);
  for (size_t i = 0; i < ds.annotations.size(); ++i) {
    const uint32_t im = ds.annotations[i].image_index;
    ds.image_annotations[images[im].ann_begin + fill[im]++] = static_cast<uint32_t>(i);
  }
}
}  // namespace detail

std::string CocoDataset::image_path(const ImageRecord& im) const {
  const std::string_view name = file_name(im);
  if (image_root.empty() || (!name.empty() && name.front() == '/')) return std::string(name);
  std::string out = image_root;
  if (out.back() != '/') out += '/';
  out.append(name);
  return out;
}

int64_t CocoDataset::image_index(int64_t image_id) const {
  return detail::slots_find(image_slots_, image_id, [this](uint32_t i) { return images[i].id; });
}

int64_t CocoDataset::category_index(int64_t category_id) const {
  return detail::slots_find(category_slots_, category_id, [this](uint32_t i) { return categories[i].id; });
}

void CocoDataset::build_index() {
  detail::reset_slots(image_slots_, images.size());
  for (size_t i = 0; i < images.size(); ++i) {
    detail::slots_insert(image_slots_, images[i].id, static_cast<uint32_t>(i),
                         [this](uint32_t k) { return images[k].id; });
  }
  detail::reset_slots(category_slots_, categories.size());
  for (size_t i = 0; i < categories.size(); ++i) {
    detail::slots_insert(category_slots_, categories[i].id, static_cast<uint32_t>(i),
                         [this](uint32_t k) { return categories[k].id; });
  }
}

void CocoDataset::rebuild_image_index() {
  for (size_t i = 0; i < annotations.size(); ++i) {
    AnnotationRecord& a = annotations[i];
    const int64_t im = image_index(a.image_id);
    const int64_t cat = category_index(a.category_id);
    if (im < 0 || cat < 0) {
      Location where{source_path, "annotations[" + std::to_string(i) + "]", -1,
                     "annotation id " + std::to_string(a.id), ""};
      if (im < 0) {
        throw InputError("unknown_image", "image_id " + std::to_string(a.image_id) + " names no image", where);
      }
      throw InputError("unknown_category", "category_id " + std::to_string(a.category_id) + " names no category",
                       where);
    }
    a.image_index = static_cast<uint32_t>(im);
    a.category_index = static_cast<uint32_t>(cat);
  }
  detail::group_by_image(*this);
}

StrRef CocoDataset::add_string(std::string_view s) {
  if (s.size() > std::numeric_limits<uint32_t>::max()) {
    throw Error("bad_value", "string of " + std::to_string(s.size()) + " bytes is too long for the string pool");
  }
  StrRef r{strings.size(), static_cast<uint32_t>(s.size())};
  strings.append(s.data(), s.size());
  return r;
}

uint64_t CocoDataset::add_part(Span<const double> xy) {
  if (part_offsets.empty()) part_offsets.push_back(coords.size());
  coords.insert(coords.end(), xy.begin(), xy.end());
  part_offsets.push_back(coords.size());
  return part_offsets.size() - 2;
}

uint64_t CocoDataset::add_counts(Span<const uint32_t> counts) {
  const uint64_t first = rle_counts.size();
  rle_counts.insert(rle_counts.end(), counts.begin(), counts.end());
  return first;
}

}  // namespace pasteflow::io
