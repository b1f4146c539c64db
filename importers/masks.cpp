// Instance masks (instance PNGs, label images) -> COCO. See masks.hpp.
#include "pasteflow/importers/masks.hpp"

#include <algorithm>
#include <cctype>
#include <limits>
#include <cmath>
#include <filesystem>
#include <map>
#include <set>
#include <system_error>
#include <unordered_map>

#include <opencv2/core.hpp>

#include "pasteflow/core/hash.hpp"
#include "pasteflow/core/json_writer.hpp"
#include "pasteflow/core/random.hpp"
#include "pasteflow/stages/decode.hpp"

namespace fs = std::filesystem;

namespace pasteflow::importers {

namespace {

const std::set<std::string> kImageExtensions = {".png", ".tif", ".tiff", ".jpg", ".jpeg"};
const std::set<std::string> kLabelExtensions = {".png", ".tif", ".tiff"};
const char* const kLabelSuffixes[] = {"", "_masks", "_cp_masks", "_label", "_labels"};

std::string lower(std::string s) {
  for (char& c : s) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return s;
}

bool has_extension(const fs::path& p, const std::set<std::string>& exts) {
  return exts.count(lower(p.extension().string())) != 0;
}

Location at_file(const std::string& file, const std::string& record = {}) {
  Location loc;
  loc.file = file;
  loc.record = record;
  return loc;
}

std::string join(const std::string& dir, const std::string& rel) { return (fs::path(dir) / rel).string(); }

bool is_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec);
}
bool is_file(const fs::path& p) {
  std::error_code ec;
  return fs::is_regular_file(p, ec);
}

/// Entries of `dir` (not recursive), sorted by name; errors -> "unreadable_image".
std::vector<fs::path> sorted_entries(const fs::path& dir) {
  std::vector<fs::path> out;
  std::error_code ec;
  fs::directory_iterator it(dir, ec), end;
  if (ec) throw InputError("unreadable_image", "cannot list the directory: " + ec.message(), at_file(dir.string()));
  for (; it != end; it.increment(ec)) {
    if (ec) throw InputError("unreadable_image", "cannot list the directory: " + ec.message(), at_file(dir.string()));
    out.push_back(it->path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<fs::path> files_with(const fs::path& dir, const std::set<std::string>& exts) {
  std::vector<fs::path> out;
  for (const fs::path& p : sorted_entries(dir)) {
    if (p.filename().string().rfind('.', 0) == 0) continue;  // hidden files (.DS_Store, ...)
    if (is_file(p) && has_extension(p, exts)) out.push_back(p);
  }
  return out;
}

bool has_files(const fs::path& dir) {
  for (const fs::path& p : sorted_entries(dir)) {
    if (is_file(p)) return true;
  }
  return false;
}

std::string rel(const fs::path& p, const fs::path& root) { return p.lexically_relative(root).generic_string(); }

bool is_label_stem(const std::string& stem) {
  for (const char* s : {"_masks", "_cp_masks", "_label", "_labels"}) {
    const std::string suf(s);
    if (stem.size() > suf.size() && stem.compare(stem.size() - suf.size(), suf.size(), suf) == 0) return true;
  }
  return false;
}

void report(ErrorPolicy policy, SkipReport& skipped, const InputError& e) {
  if (policy == ErrorPolicy::kStrict) throw e;
  skipped.add(e);
}

/// Instance-pngs: the masks of one folder, recursively by category folder.
void collect_masks(const fs::path& masks_dir, const fs::path& root, std::vector<MaskFile>& out) {
  for (const fs::path& p : sorted_entries(masks_dir)) {
    const std::string name = p.filename().string();
    if (name.rfind('.', 0) == 0) continue;
    if (is_file(p) && lower(p.extension().string()) == ".png") {
      out.push_back(MaskFile{rel(p, root), ""});
    } else if (is_dir(p)) {
      for (const fs::path& q : files_with(p, {".png"})) out.push_back(MaskFile{rel(q, root), name});
    }
  }
  std::sort(out.begin(), out.end(), [](const MaskFile& a, const MaskFile& b) { return a.path < b.path; });
}

Listing list_instance_pngs(const fs::path& root, ErrorPolicy policy) {
  Listing listing;
  for (const fs::path& folder : sorted_entries(root)) {
    if (!is_dir(folder) || folder.filename().string().rfind('.', 0) == 0) continue;
    const fs::path images = folder / "images";
    if (!is_dir(images)) continue;  // not an image folder (README, licence, ...)
    const std::vector<fs::path> found = files_with(images, kImageExtensions);
    try {
      if (found.empty()) {
        throw InputError("missing_image", "no image (.png, .tif, .tiff, .jpg, .jpeg) in the folder",
                         at_file(images.string()));
      }
      if (found.size() > 1) {
        throw InputError("ambiguous_image",
                         std::to_string(found.size()) + " images in the folder (" + found[0].filename().string() +
                             ", " + found[1].filename().string() + ", ...); instance-pngs holds one per folder",
                         at_file(images.string()));
      }
    } catch (const InputError& e) {
      report(policy, listing.skipped, e);
      continue;
    }
    ImageEntry entry;
    entry.image = rel(found[0], root);
    if (is_dir(folder / "masks")) collect_masks(folder / "masks", root, entry.masks);
    listing.images.push_back(std::move(entry));
  }
  return listing;
}

/// The label image of `stem` in `labels_dir`, "" when none.
std::string find_label(const fs::path& labels_dir, const std::string& stem, const fs::path& exclude) {
  for (const char* suffix : kLabelSuffixes) {
    for (const char* ext : {".png", ".tif", ".tiff", ".PNG", ".TIF", ".TIFF"}) {
      const fs::path p = labels_dir / (stem + suffix + ext);
      if (p != exclude && is_file(p)) return p.string();
    }
  }
  return {};
}

Listing list_label_images(const fs::path& root, ErrorPolicy policy) {
  Listing listing;
  fs::path images_dir = root / "images";
  fs::path labels_dir;
  const bool split_dirs = is_dir(images_dir);
  if (split_dirs) {
    labels_dir = is_dir(root / "labels") ? root / "labels" : root / "masks";
    if (!is_dir(labels_dir)) {
      throw InputError("unknown_layout", "label-images: images/ has no sibling labels/ or masks/ folder",
                       at_file(root.string()));
    }
  } else {
    images_dir = root;
    labels_dir = root;
  }
  std::set<std::string> used_labels;
  for (const fs::path& p : files_with(images_dir, kImageExtensions)) {
    const std::string stem = p.stem().string();
    if (!split_dirs && is_label_stem(stem)) continue;  // a label image of the side-by-side layout
    const std::string label = find_label(labels_dir, stem, split_dirs ? fs::path() : p);
    if (label.empty()) {
      report(policy, listing.skipped,
             InputError("missing_labels",
                        "no label image for it: looked for " + rel(labels_dir / stem, root) +
                            "{,_masks,_cp_masks,_label,_labels}.{png,tif,tiff}",
                        at_file(p.string())));
      continue;
    }
    used_labels.insert(label);
    listing.images.push_back(ImageEntry{rel(p, root), {}, rel(label, root)});
  }
  // Label images whose image is missing.
  for (const fs::path& p : files_with(labels_dir, kLabelExtensions)) {
    if (used_labels.count(p.string()) != 0) continue;
    if (!split_dirs && !is_label_stem(p.stem().string())) continue;  // an image of the side-by-side layout
    report(policy, listing.skipped,
           InputError("missing_image", "a label image without an image of the same name", at_file(p.string())));
  }
  return listing;
}

stages::Decoder make_decoder(const ImportOptions& options) {
  stages::DecodeConfig cfg;
  cfg.max_pixels = options.max_pixels;
  cfg.color = "keep";
  cfg.keep_16bit = true;
  return stages::Decoder(cfg);
}

std::string size_text(int64_t w, int64_t h) { return std::to_string(w) + "x" + std::to_string(h); }

/// Reads and header-checks one mask / label file against the image's size.
cv::Mat read_mask_file(const stages::Decoder& decoder, const std::string& path, int64_t width, int64_t height,
                       stages::ImageHeader* header_out) {
  const std::vector<uint8_t> bytes = stages::read_file_bytes(path);
  const stages::ImageHeader h = stages::parse_image_header(Span<const uint8_t>(bytes.data(), bytes.size()), path);
  if (h.width != width || h.height != height) {
    throw InputError("mask_size_mismatch",
                     "mask is " + size_text(h.width, h.height) + " but its image is " + size_text(width, height),
                     at_file(path));
  }
  if (header_out != nullptr) *header_out = h;
  return decoder.decode_bytes(Span<const uint8_t>(bytes.data(), bytes.size()), path);
}

template <class T>
void label_runs(const cv::Mat& labels, std::vector<Instance>& out, std::vector<int64_t>& index_of) {
  // One column-major pass: a run of value v ends where the next pixel (in
  // column-major order) differs. Per label: the end of its last run of ones.
  const uint32_t h = static_cast<uint32_t>(labels.rows), w = static_cast<uint32_t>(labels.cols);
  std::vector<uint64_t> last_end(out.size(), 0);
  uint64_t p = 0;
  T prev = 0;
  uint64_t run_start = 0;
  auto close_run = [&](T value, uint64_t start, uint64_t end) {
    if (value == 0) return;
    const size_t k = static_cast<size_t>(index_of[value]);
    std::vector<uint32_t>& c = out[k].rle.counts;
    c.push_back(static_cast<uint32_t>(start - last_end[k]));
    c.push_back(static_cast<uint32_t>(end - start));
    last_end[k] = end;
  };
  for (uint32_t x = 0; x < w; ++x) {
    for (uint32_t y = 0; y < h; ++y, ++p) {
      const T v = labels.ptr<T>(static_cast<int>(y))[x];
      if (v != prev) {
        close_run(prev, run_start, p);
        prev = v;
        run_start = p;
      }
    }
  }
  close_run(prev, run_start, p);
  for (size_t k = 0; k < out.size(); ++k) {
    std::vector<uint32_t>& c = out[k].rle.counts;
    if (p > last_end[k]) c.push_back(static_cast<uint32_t>(p - last_end[k]));
  }
}

template <class T>
std::vector<Instance> labels_impl(const cv::Mat& labels, const std::string& name) {
  std::vector<uint8_t> present(size_t(std::numeric_limits<T>::max()) + 1, 0);
  for (int y = 0; y < labels.rows; ++y) {
    const T* row = labels.ptr<T>(y);
    for (int x = 0; x < labels.cols; ++x) present[row[x]] = 1;
  }
  std::vector<Instance> out;
  std::vector<int64_t> index_of(present.size(), -1);
  for (size_t v = 1; v < present.size(); ++v) {
    if (!present[v]) continue;
    index_of[v] = static_cast<int64_t>(out.size());
    Instance inst;
    inst.rle.h = static_cast<uint32_t>(labels.rows);
    inst.rle.w = static_cast<uint32_t>(labels.cols);
    inst.source = name + ":" + std::to_string(v);
    inst.value = static_cast<uint32_t>(v);
    out.push_back(std::move(inst));
  }
  if (!out.empty()) label_runs<T>(labels, out, index_of);
  for (Instance& inst : out) {
    inst.area = mask::area(inst.rle);
    inst.bbox = mask::bbox(inst.rle);
  }
  return out;
}

}  // namespace

const char* to_string(Layout layout) noexcept {
  return layout == Layout::kInstancePngs ? "instance-pngs" : "label-images";
}

Layout parse_layout(const std::string& text) {
  if (text == "instance-pngs") return Layout::kInstancePngs;
  if (text == "label-images") return Layout::kLabelImages;
  Location where;
  where.key = "layout";
  throw ConfigError("bad_value", "layout must be 'instance-pngs' or 'label-images', got '" + text + "'", where);
}

std::vector<ValueRange> parse_value_map(const std::string& text) {
  Location where;
  where.key = "value-map";
  auto bad = [&](const std::string& why) {
    return ConfigError("bad_value", "value map '" + text + "': " + why + " (expected LO-HI=NAME,V=NAME,...)", where);
  };
  auto number = [&](const std::string& s) {
    if (s.empty() || s.size() > 5 || s.find_first_not_of("0123456789") != std::string::npos) {
      throw bad("'" + s + "' is not a label value");
    }
    const unsigned long v = std::stoul(s);
    if (v < 1 || v > 65535) throw bad("label values are 1..65535, got " + s);
    return static_cast<uint32_t>(v);
  };
  std::vector<ValueRange> out;
  size_t start = 0;
  while (start <= text.size()) {
    const size_t end = std::min(text.find(',', start), text.size());
    const std::string item = text.substr(start, end - start);
    const size_t eq = item.find('=');
    if (eq == std::string::npos) throw bad("'" + item + "' has no '='");
    ValueRange r;
    r.category = item.substr(eq + 1);
    if (r.category.empty()) throw bad("empty category name in '" + item + "'");
    const std::string range = item.substr(0, eq);
    const size_t dash = range.find('-');
    r.lo = number(range.substr(0, dash));
    r.hi = dash == std::string::npos ? r.lo : number(range.substr(dash + 1));
    if (r.lo > r.hi) throw bad("range " + range + " is empty");
    for (const ValueRange& o : out) {
      if (r.lo <= o.hi && o.lo <= r.hi) throw bad("ranges " + range + " and " + std::to_string(o.lo) + "-" +
                                                  std::to_string(o.hi) + " overlap");
    }
    out.push_back(std::move(r));
    start = end + 1;
  }
  return out;
}

Layout detect_layout(const std::string& dir) {
  const fs::path root(dir);
  if (!is_dir(root)) throw InputError("missing_image", "not a directory", at_file(dir));
  if (is_dir(root / "images") &&
      ((is_dir(root / "labels") && has_files(root / "labels")) || (is_dir(root / "masks") && has_files(root / "masks")))) {
    return Layout::kLabelImages;
  }
  size_t folders = 0;
  for (const fs::path& p : sorted_entries(root)) {
    if (is_dir(p) && is_dir(p / "images")) return Layout::kInstancePngs;
    if (is_dir(p)) ++folders;
    if (is_file(p) && has_extension(p, kLabelExtensions) && is_label_stem(p.stem().string())) {
      return Layout::kLabelImages;
    }
  }
  throw InputError("unknown_layout",
                   "neither instance-pngs (<id>/images/ + <id>/masks/*.png) nor label-images (images/ + labels/ or "
                   "masks/, or NAME + NAME_masks.png side by side); " +
                       std::to_string(folders) + " subfolder(s), none with images/; give --layout",
                   at_file(dir));
}

Listing list_images(const std::string& dir, Layout layout, ErrorPolicy policy) {
  const fs::path root(dir);
  if (!is_dir(root)) throw InputError("missing_image", "not a directory", at_file(dir));
  return layout == Layout::kInstancePngs ? list_instance_pngs(root, policy) : list_label_images(root, policy);
}

std::vector<Instance> instances_from_labels(const cv::Mat& labels, const std::string& name) {
  if (labels.channels() != 1 || (labels.depth() != CV_8U && labels.depth() != CV_16U)) {
    throw InputError("unsupported_label_image", "label image must be 8- or 16-bit with one channel", at_file(name));
  }
  if (uint64_t(labels.rows) * uint64_t(labels.cols) > mask::kMaxPixels) {
    throw InputError("mask_too_large", "label image above 2^32-1 pixels", at_file(name));
  }
  return labels.depth() == CV_8U ? labels_impl<uint8_t>(labels, name) : labels_impl<uint16_t>(labels, name);
}

Instance instance_from_mask(const cv::Mat& m, const std::string& name) {
  if (m.empty()) throw InputError("empty_mask", "mask has no pixels", at_file(name));
  if (m.depth() != CV_8U && m.depth() != CV_16U) {
    throw InputError("unsupported_image", "mask must be 8- or 16-bit", at_file(name));
  }
  if (uint64_t(m.rows) * uint64_t(m.cols) > mask::kMaxPixels) {
    throw InputError("mask_too_large", "mask above 2^32-1 pixels", at_file(name));
  }
  // Reduce the channels: a pixel's value is its largest channel, and it must
  // equal every other non-zero pixel's (binary: 0 and one value).
  cv::Mat one;
  if (m.channels() == 1) {
    one = m;
  } else {
    std::vector<cv::Mat> planes;
    cv::split(m, planes);
    one = planes[0].clone();
    for (size_t c = 1; c < planes.size(); ++c) one = cv::max(one, planes[c]);
  }
  cv::Mat bin(one.rows, one.cols, CV_8U);
  uint32_t value = 0;
  for (int y = 0; y < one.rows; ++y) {
    uint8_t* out = bin.ptr<uint8_t>(y);
    for (int x = 0; x < one.cols; ++x) {
      const uint32_t v = one.depth() == CV_8U ? one.ptr<uint8_t>(y)[x] : one.ptr<uint16_t>(y)[x];
      out[x] = v != 0;
      if (v == 0) continue;
      if (value == 0) {
        value = v;
      } else if (v != value) {
        throw InputError("non_binary_mask",
                         "mask is not binary: pixel values " + std::to_string(value) + " and " + std::to_string(v),
                         at_file(name, "pixel (" + std::to_string(x) + ", " + std::to_string(y) + ")"));
      }
    }
  }
  if (value == 0) throw InputError("empty_mask", "mask has no non-zero pixel", at_file(name));
  Instance inst;
  inst.rle = mask::encode(bin.data, static_cast<uint32_t>(bin.rows), static_cast<uint32_t>(bin.cols), bin.step[0]);
  inst.area = mask::area(inst.rle);
  inst.bbox = mask::bbox(inst.rle);
  inst.source = name;
  return inst;
}

std::string modality_of(const cv::Mat& image) {
  if (image.empty()) return "fluorescence";
  cv::Mat f;
  image.convertTo(f, CV_64F, image.depth() == CV_16U ? 255.0 / 65535.0 : 1.0);
  bool grey = f.channels() == 1;
  if (!grey) {
    std::vector<cv::Mat> planes;
    cv::split(f, planes);
    double diff = 0.0;
    for (size_t c = 1; c < planes.size(); ++c) diff += cv::mean(cv::abs(planes[c] - planes[0]))[0];
    grey = diff / double(planes.size() - 1) <= 2.0;
  }
  if (!grey) return "colour";
  const cv::Scalar mean = cv::mean(f);
  double m = 0.0;
  for (int c = 0; c < f.channels(); ++c) m += mean[c];
  m /= f.channels();
  return m < 127.5 ? "fluorescence" : "brightfield";
}

ImportedImage import_image(const std::string& dir, const ImageEntry& entry, const ImportOptions& options) {
  ImportedImage out;
  const stages::Decoder decoder = make_decoder(options);
  const std::string image_path = join(dir, entry.image);
  try {
    const std::vector<uint8_t> bytes = stages::read_file_bytes(image_path);
    const Span<const uint8_t> span(bytes.data(), bytes.size());
    const stages::ImageHeader h = stages::parse_image_header(span, image_path);
    const cv::Mat pixels = decoder.decode_bytes(span, image_path);
    out.width = pixels.cols;
    out.height = pixels.rows;
    out.channels = h.channels > 0 ? h.channels : pixels.channels();
    out.bit_depth = h.bit_depth > 0 ? h.bit_depth : (pixels.depth() == CV_16U ? 16 : 8);
    out.modality = modality_of(pixels);

    if (!entry.labels.empty()) {
      const std::string label_path = join(dir, entry.labels);
      stages::ImageHeader lh;
      const cv::Mat labels = read_mask_file(decoder, label_path, out.width, out.height, &lh);
      if (lh.channels > 1 || (lh.bit_depth != 0 && lh.bit_depth != 8 && lh.bit_depth != 16) ||
          labels.channels() != 1 || (lh.bit_depth == 16 && labels.depth() != CV_16U)) {
        throw InputError("unsupported_label_image",
                         "label image must be 8- or 16-bit unsigned with one channel; it has " +
                             std::to_string(lh.channels) + " channel(s) of " + std::to_string(lh.bit_depth) + " bit",
                         at_file(label_path));
      }
      out.instances = instances_from_labels(labels, entry.labels);
      if (!options.value_map.empty()) {
        for (Instance& inst : out.instances) {
          const ValueRange* found = nullptr;
          for (const ValueRange& r : options.value_map) {
            if (inst.value >= r.lo && inst.value <= r.hi) found = &r;
          }
          if (found == nullptr) {
            throw InputError("unmapped_label_value",
                             "label value " + std::to_string(inst.value) + " is in no --value-map range",
                             at_file(label_path));
          }
          inst.category = found->category;
        }
      }
    }

    // Instance masks: decoded one by one; `owner` holds the first mask of
    // each pixel, to count (or refuse) overlaps.
    std::vector<int32_t> owner;
    if (!entry.masks.empty()) owner.assign(size_t(out.width) * size_t(out.height), -1);
    std::map<std::pair<int32_t, int32_t>, uint64_t> shared;  // (first, second) -> pixels
    for (const MaskFile& mf : entry.masks) {
      const std::string mask_path = join(dir, mf.path);
      Instance inst;
      try {
        const cv::Mat m = read_mask_file(decoder, mask_path, out.width, out.height, nullptr);
        inst = instance_from_mask(m, mf.path);
      } catch (const InputError& e) {
        if (e.reason() != "empty_mask") throw;
        // An empty mask holds no object: under skip only it is left out.
        if (options.policy == ErrorPolicy::kStrict) {
          throw InputError("empty_mask", e.detail(), at_file(mask_path));
        }
        out.skipped.add(InputError("empty_mask", e.detail(), at_file(mask_path)));
        continue;
      }
      inst.category = mf.category;
      const int32_t k = static_cast<int32_t>(out.instances.size());
      // Walk the runs of ones: `owner` is column-major like the runs.
      uint64_t pos = 0;
      for (size_t r = 0; r < inst.rle.counts.size(); ++r) {
        const uint64_t n = inst.rle.counts[r];
        if (r % 2 == 1) {
          for (uint64_t i = pos; i < pos + n; ++i) {
            if (owner[i] < 0) {
              owner[i] = k;
              continue;
            }
            if (options.overlap_is_error) {
              const uint64_t h = uint64_t(out.height);
              throw InputError("overlapping_masks", "shares pixels with " + out.instances[size_t(owner[i])].source,
                               at_file(mask_path, "pixel (" + std::to_string(i / h) + ", " + std::to_string(i % h) + ")"));
            }
            ++shared[{owner[i], k}];
            ++out.overlapping_pixels;
          }
        }
        pos += n;
      }
      out.instances.push_back(std::move(inst));
    }
    out.overlapping_pairs = shared.size();
    if (!shared.empty()) {
      const auto& [pair, n] = *shared.begin();
      out.first_overlap = out.instances[size_t(pair.first)].source + " and " +
                          out.instances[size_t(pair.second)].source + " share " + std::to_string(n) + " pixel(s)";
    }
    out.ok = true;
  } catch (const InputError& e) {
    if (options.policy == ErrorPolicy::kStrict) throw;
    out.skipped.add(e);
    out.ok = false;
    out.instances.clear();
  }
  return out;
}

std::vector<std::string> category_names(const std::vector<ImportedImage>& imported) {
  std::set<std::string> named;
  bool has_default = false;
  for (const ImportedImage& im : imported) {
    if (!im.ok) continue;
    for (const Instance& inst : im.instances) {
      if (inst.category.empty()) {
        has_default = true;
      } else {
        named.insert(inst.category);
      }
    }
  }
  std::vector<std::string> out;
  if (has_default || named.empty()) out.emplace_back();
  out.insert(out.end(), named.begin(), named.end());
  return out;
}

io::CocoDataset to_coco(const std::vector<ImageEntry>& entries, const std::vector<ImportedImage>& imported,
                        const std::vector<size_t>& which, const std::vector<std::string>& categories,
                        const std::string& default_category) {
  io::CocoDataset ds;
  std::unordered_map<std::string, int64_t> category_id;
  for (size_t c = 0; c < categories.size(); ++c) {
    io::CategoryRecord rec;
    rec.id = static_cast<int64_t>(c) + 1;
    rec.name = ds.add_string(categories[c].empty() ? default_category : categories[c]);
    ds.categories.push_back(rec);
    category_id[categories[c]] = rec.id;
  }
  int64_t ann_id = 0;
  for (size_t n = 0; n < which.size(); ++n) {
    const ImageEntry& entry = entries[which[n]];
    const ImportedImage& im = imported[which[n]];
    io::ImageRecord rec;
    rec.id = static_cast<int64_t>(n) + 1;
    rec.width = static_cast<int32_t>(im.width);
    rec.height = static_cast<int32_t>(im.height);
    rec.file_name = ds.add_string(entry.image);
    JsonWriter extra;
    extra.raw("\"channels\":" + std::to_string(im.channels) + ",\"bit_depth\":" + std::to_string(im.bit_depth) +
              ",\"modality\":");
    extra.value(im.modality);
    rec.extra = ds.add_string(extra.str());
    ds.images.push_back(rec);
    for (const Instance& inst : im.instances) {
      io::AnnotationRecord a;
      a.id = ++ann_id;
      a.image_id = rec.id;
      const auto it = category_id.find(inst.category);
      if (it == category_id.end()) {
        throw Error("unknown_category", "category '" + inst.category + "' is not in the category list",
                    at_file(entry.image));
      }
      a.category_id = it->second;
      const io::StrRef counts = ds.add_string(mask::to_string(inst.rle));
      a.seg_kind = io::SegmentationKind::kRleString;
      a.seg_begin = counts.begin;
      a.seg_count = counts.size;
      a.rle_height = inst.rle.h;
      a.rle_width = inst.rle.w;
      a.area = static_cast<double>(inst.area);
      a.bbox = inst.bbox;
      a.has_area = true;
      a.has_bbox = true;
      a.has_iscrowd = true;
      a.iscrowd = 0;
      JsonWriter src;
      src.raw("\"source\":");
      src.value(inst.source);
      a.extra = ds.add_string(src.str());
      ds.annotations.push_back(a);
    }
  }
  ds.rebuild_index();
  return ds;
}

std::string stratum_of(const ImportedImage& image, const std::string& key) {
  if (key == "none" || key.empty()) return {};
  if (key == "size") return size_text(image.width, image.height);
  if (key == "modality") return image.modality;
  Location where;
  where.key = "stratify-by";
  throw ConfigError("bad_value", "stratify key must be 'none', 'size' or 'modality', got '" + key + "'", where);
}

uint64_t name_hash(const std::string& text) noexcept { return fnv1a(text); }

std::vector<uint8_t> split_validation(const std::vector<std::string>& names, const std::vector<std::string>& strata,
                                      double fraction, uint64_t seed) {
  if (!(fraction >= 0.0 && fraction <= 1.0) || names.size() != strata.size()) {
    Location where;
    where.key = "split";
    throw ConfigError("bad_value", "validation fraction must be in [0, 1], got " + std::to_string(fraction), where);
  }
  std::map<std::string, std::vector<size_t>> groups;
  for (size_t i = 0; i < names.size(); ++i) groups[strata[i]].push_back(i);
  std::vector<uint8_t> val(names.size(), 0);
  for (auto& [stratum, members] : groups) {
    std::vector<std::pair<uint64_t, size_t>> keyed;
    keyed.reserve(members.size());
    for (size_t i : members) keyed.emplace_back(derive_seed(seed, {name_hash(names[i])}), i);
    std::sort(keyed.begin(), keyed.end(), [&](const auto& a, const auto& b) {
      return a.first != b.first ? a.first < b.first : names[a.second] < names[b.second];
    });
    const size_t take = static_cast<size_t>(std::llround(fraction * double(members.size())));
    for (size_t k = 0; k < take && k < keyed.size(); ++k) val[keyed[k].second] = 1;
  }
  return val;
}

}  // namespace pasteflow::importers
