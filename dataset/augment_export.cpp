// AugmentExporter: `pasteflow augment`'s samples -> COCO records and image
// files through the DatasetWriter (scheme in the header).
#include "pasteflow/dataset/augment_export.hpp"

#include <filesystem>
#include <limits>
#include <set>
#include <unordered_map>
#include <utility>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>
#include <simdjson.h>

#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/stages/decode.hpp"

namespace pasteflow::dataset {

namespace {

using fs_path = std::filesystem::path;

constexpr uint64_t kMaxId = static_cast<uint64_t>(std::numeric_limits<int64_t>::max());

/// Keys this export writes into records' extras; an input that already
/// has them (an augmented dataset augmented again) gets them replaced.
const std::set<std::string>& own_keys() {
  static const std::set<std::string> keys = {"pasted", "source_id", "source_image_id"};
  return keys;
}

/// A record's raw extras (`"k":v,...`) without own_keys(), then `more`.
io::StrRef extend_extra(io::CocoDataset& out, io::StrRef extra, const std::string& more) {
  std::string text(out.str(extra));
  bool has_own = false;
  for (const std::string& k : own_keys()) has_own = has_own || text.find("\"" + k + "\"") != std::string::npos;
  if (has_own) {
    simdjson::dom::parser parser;
    const simdjson::padded_string json("{" + text + "}");
    simdjson::dom::object obj;
    if (parser.parse(json).get(obj) != simdjson::SUCCESS) throw Error("bad_extra", "unparsable extra members: " + text);
    text.clear();
    for (auto field : obj) {
      if (own_keys().count(std::string(field.key)) > 0) continue;
      if (!text.empty()) text += ',';
      JsonWriter::escape(field.key, text);
      text += ':';
      text += simdjson::minify(field.value);
    }
  }
  if (!text.empty()) text += ',';
  text += more;
  return out.add_string(text);
}

InputError id_overflow(const io::CocoDataset& ds, const std::string& record, const std::string& why) {
  Location loc;
  loc.file = ds.source_path;
  loc.record = record;
  return InputError("id_overflow", why + " (ids must stay <= " + std::to_string(kMaxId) + ")", loc);
}

}  // namespace

void check_augment_ids(const io::CocoDataset& ds, const std::vector<stages::SampleTicket>& tickets,
                       uint64_t ids_per_sample) {
  // Every image with a non-augmented copy keeps its id once (the original);
  // every other copy is a new image whose objects get new annotation ids.
  std::vector<bool> has_original(ds.images.size(), false);
  uint64_t new_images = 0, copied_annotations = 0;
  bool pastes = false;
  for (const stages::SampleTicket& t : tickets) {
    pastes = pastes || t.augment;
    if (!t.augment && !has_original[t.image_index]) {
      has_original[t.image_index] = true;
      continue;
    }
    ++new_images;
    copied_annotations += ds.images[t.image_index].ann_count;
  }
  int64_t max_image = 0, max_ann = 0;
  for (const auto& im : ds.images) max_image = std::max(max_image, im.id);
  for (const auto& a : ds.annotations) max_ann = std::max(max_ann, a.id);
  if (new_images > kMaxId - static_cast<uint64_t>(max_image)) {
    throw id_overflow(ds, "image id " + std::to_string(max_image),
                      "the largest image id leaves no room for the " + std::to_string(new_images) +
                          " new image ids of this run");
  }
  if (!pastes && copied_annotations == 0) return;
  const uint64_t room = kMaxId - static_cast<uint64_t>(max_ann);
  const bool span_overflows = ids_per_sample != 0 && tickets.size() > room / ids_per_sample;
  const uint64_t span = span_overflows ? 0 : tickets.size() * ids_per_sample;
  if (span_overflows || copied_annotations > room - span) {
    throw id_overflow(ds, "annotation id " + std::to_string(max_ann),
                      "the largest annotation id leaves no room for the new annotation ids of this run (" +
                          std::to_string(tickets.size()) + " samples x " + std::to_string(ids_per_sample) +
                          " pasted ids each, then " + std::to_string(copied_annotations) + " copied objects)");
  }
}

AugmentExporter::AugmentExporter(DatasetWriter& writer, const io::CocoDataset& ds, AugmentExportConfig config,
                                 const std::vector<stages::SampleTicket>& tickets)
    : writer_(writer), ds_(ds), cfg_(std::move(config)), out_(ds), builder_(ds, cfg_.size, cfg_.instances) {
  check_augment_ids(ds, tickets, cfg_.ids_per_sample);
  out_.images.clear();
  out_.annotations.clear();
  out_.image_annotations.clear();
  if (!cfg_.windows.empty() && cfg_.windows.size() != ds.images.size()) {
    throw Error("bad_windows", std::to_string(cfg_.windows.size()) + " windows for " +
                                   std::to_string(ds.images.size()) + " images");
  }
  int64_t max_image = 0, max_ann = 0;
  // A view's original is named after its window: <stem>_<x>_<y>_<w>_<h>.png.
  std::vector<std::string> window_names(ds.images.size());
  std::vector<std::string_view> file_names;
  file_names.reserve(ds.images.size());
  for (size_t i = 0; i < ds.images.size(); ++i) {
    const io::ImageRecord& im = ds.images[i];
    max_image = std::max(max_image, im.id);
    if (windowed(static_cast<uint32_t>(i))) {
      const std::array<int64_t, 4>& w = cfg_.windows[i];
      const fs_path source(std::string(ds.file_name(im)));
      window_names[i] = (source.parent_path() / (source.stem().string() + "_" + std::to_string(w[0]) + "_" +
                                                 std::to_string(w[1]) + "_" + std::to_string(w[2]) + "_" +
                                                 std::to_string(w[3]) + ".png"))
                            .generic_string();
      file_names.push_back(window_names[i]);
    } else {
      file_names.push_back(ds.file_name(im));
    }
  }
  for (const auto& a : ds.annotations) max_ann = std::max(max_ann, a.id);
  names_ = writer_.reserve_input_names(file_names);
  // check_augment_ids() bounds both sums.
  next_image_id_ = static_cast<uint64_t>(max_image) + 1;
  next_ann_id_ = static_cast<uint64_t>(max_ann) + 1 + tickets.size() * cfg_.ids_per_sample;
  original_done_.assign(ds.images.size(), false);
  copy_counter_.assign(ds.images.size(), 0);
}

bool AugmentExporter::windowed(uint32_t image_index) const {
  return !cfg_.windows.empty() && cfg_.windows[image_index][2] > 0;
}

int64_t AugmentExporter::next_id(uint64_t& next, const char* what) {
  if (next > kMaxId) throw id_overflow(ds_, std::string("new ") + what, std::string("no ") + what + " id left");
  return static_cast<int64_t>(next++);
}

void AugmentExporter::add(const stages::Sample& s) {
  counters_.requested += s.paste.requested;
  counters_.placed += s.paste.placed;
  counters_.failed += s.paste.failed;
  counters_.tries += s.paste.tries;
  counters_.dropped_occluded += s.paste.dropped_occluded;

  const io::ImageRecord& src = ds_.images[s.image_index];
  const std::string& original_name = names_[s.image_index];
  if (original_name.empty()) {
    Location loc;
    loc.file = ds_.source_path;
    loc.record = "image id " + std::to_string(src.id);
    throw InputError("bad_file_name",
                     "file_name \"" + std::string(ds_.file_name(src)) + "\" names no file below the output's images directory",
                     loc);
  }
  const bool original = !s.augment && !original_done_[s.image_index];
  const bool unchanged = s.paste.placed == 0;
  const bool window = windowed(s.image_index);
  if (original) {
    original_done_[s.image_index] = true;
    if (window) {
      encode(s.image, original_name);  // the window's pixels, lossless PNG
    } else {
      copy_file(s.path, original_name);
    }
    io::ImageRecord im = src;
    if (original_name != ds_.file_name(src)) im.file_name = out_.add_string(original_name);
    out_.images.push_back(im);
    for (const uint32_t a : ds_.annotations_of(s.image_index)) out_.annotations.push_back(ds_.annotations[a]);
    ++originals_;
    return;
  }
  const int64_t image_id = next_id(next_image_id_, "image");
  const std::string name = new_name(s.image_index, unchanged, s.image);
  if (unchanged && !window) {
    copy_file(s.path, name);
  } else {
    encode(s.image, name);
  }
  io::ImageRecord im = src;
  im.id = image_id;
  im.width = s.image.cols;
  im.height = s.image.rows;
  im.file_name = out_.add_string(name);
  im.extra = extend_extra(out_, src.extra, "\"source_image_id\":" + std::to_string(src.id));
  out_.images.push_back(im);
  if (s.augment) ++augmented_; else ++extra_;
  add_copy_annotations(s, image_id);
}

void AugmentExporter::finish() {
  out_.source_path.clear();
  out_.rebuild_index();
  writer_.commit(out_);
}

std::string AugmentExporter::new_name(uint32_t image_index, bool unchanged, const cv::Mat& image) {
  const fs_path original(names_[image_index]);
  std::string ext = original.extension().string();
  if (!unchanged) ext = (cfg_.format == "png" || image.depth() != CV_8U) ? ".png" : ".jpg";
  const fs_path dir = original.parent_path();
  while (true) {
    const uint32_t k = ++copy_counter_[image_index];
    const std::string stem = original.stem().string() + "_pf" + std::to_string(k) + ext;
    const std::string name = (dir / stem).generic_string();
    if (writer_.try_reserve(name)) return name;
  }
}

void AugmentExporter::copy_file(const std::string& from, const std::string& name) {
  const std::vector<uint8_t> bytes = stages::read_file_bytes(from);
  writer_.write_image(name, bytes.data(), bytes.size());
}

void AugmentExporter::encode(const cv::Mat& image, const std::string& name) {
  cv::Mat bgr;
  if (image.channels() == 3) {
    cv::cvtColor(image, bgr, cv::COLOR_RGB2BGR);
  } else {
    bgr = image;
  }
  std::vector<uint8_t> buf;
  const std::string ext = fs_path(name).extension().string();
  std::vector<int> params;
  if (ext == ".jpg") params = {cv::IMWRITE_JPEG_QUALITY, cfg_.quality};
  if (!cv::imencode(ext, bgr, buf, params)) throw Error("io_error", "cannot encode " + name);
  writer_.write_image(name, buf.data(), buf.size());
}

void AugmentExporter::set_rle(io::AnnotationRecord& rec, const mask::Rle& m) {
  const io::StrRef counts = out_.add_string(mask::to_string(m));
  rec.seg_kind = io::SegmentationKind::kRleString;
  rec.seg_begin = counts.begin;
  rec.seg_count = counts.size;
  rec.rle_height = m.h;
  rec.rle_width = m.w;
  rec.area = static_cast<double>(mask::area(m));
  rec.bbox = mask::bbox(m);
  rec.has_area = true;
  rec.has_bbox = true;
}

void AugmentExporter::add_copy_annotations(const stages::Sample& s, int64_t image_id) {
  const io::ImageRecord& src = ds_.images[s.image_index];
  std::unordered_map<int64_t, const stages::Instance*> present;
  for (const auto& inst : s.instances) {
    if (!inst.pasted) present[inst.id] = &inst;
  }
  // Objects may have lost pixels only to an overlapping paste.
  const bool may_trim = cfg_.allow_overlap && s.paste.placed > 0;
  for (const uint32_t a : ds_.annotations_of(s.image_index)) {
    const io::AnnotationRecord& ann = ds_.annotations[a];
    const auto it = present.find(ann.id);
    if (it == present.end()) {
      const bool never_instance = ann.iscrowd && !cfg_.instances.keep_crowd;
      if (!never_instance) continue;  // removed as occluded
    }
    io::AnnotationRecord rec = ann;
    rec.id = next_id(next_ann_id_, "annotation");
    rec.image_id = image_id;
    rec.extra = extend_extra(out_, ann.extra, "\"source_id\":" + std::to_string(ann.id));
    if (it != present.end() && may_trim && it->second->has_mask) {
      const stages::Instance before = builder_.build(ann, static_cast<uint32_t>(src.height),
                                                     static_cast<uint32_t>(src.width));
      if (before.mask != it->second->mask) {
        set_rle(rec, it->second->mask);
        ++trimmed_;
      }
    }
    out_.annotations.push_back(rec);
  }
  for (const auto& inst : s.instances) {
    if (!inst.pasted) continue;
    io::AnnotationRecord rec;
    rec.id = inst.id;
    rec.image_id = image_id;
    rec.category_id = inst.category_id;
    rec.has_iscrowd = true;
    rec.iscrowd = 0;
    if (inst.has_mask) {
      set_rle(rec, inst.mask);
    } else {  // boxes-only dataset: the pasted box
      rec.seg_kind = io::SegmentationKind::kNone;
      rec.bbox = inst.bbox;
      rec.area = inst.area;
      rec.has_bbox = true;
      rec.has_area = true;
    }
    rec.extra = out_.add_string("\"pasted\":true,\"source_id\":" + std::to_string(inst.source_id));
    out_.annotations.push_back(rec);
    ++pasted_;
  }
}

}  // namespace pasteflow::dataset
