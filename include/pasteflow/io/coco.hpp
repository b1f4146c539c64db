// COCO instance annotations in memory: flat arrays, no allocation per record.
//
// Layout: images, categories and annotations are arrays of fixed-size
// records. Variable-size data lives in shared pools:
//   - polygon coordinates: `coords` (x0, y0, x1, y1, ...) split into parts by
//     `part_offsets` (part p spans coords[part_offsets[p], part_offsets[p+1]));
//     an annotation owns parts [seg_begin, seg_begin + seg_count).
//   - uncompressed RLE counts: `rle_counts`, an annotation owns
//     rle_counts[seg_begin, seg_begin + seg_count).
//   - strings (file names, compressed RLE strings, raw JSON of unknown
//     fields): `strings`, addressed by (begin, size).
// `image_annotations` lists annotation indices grouped by image (in file
// order within an image); ImageRecord::ann_begin/ann_count address it.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/core/span.hpp"

namespace pasteflow::io {

/// A (begin, size) slice of CocoDataset::strings.
struct StrRef {
  uint64_t begin = 0;
  uint32_t size = 0;
};

enum class SegmentationKind : uint8_t {
  kNone,       ///< no "segmentation" field (boxes-only datasets)
  kPolygons,   ///< list of polygons, each [x0, y0, x1, y1, ...]
  kRleCounts,  ///< {"size": [h, w], "counts": [n0, n1, ...]} (uncompressed)
  kRleString,  ///< {"size": [h, w], "counts": "..."} (compressed)
};

struct ImageRecord {
  int64_t id = 0;
  int32_t width = 0;
  int32_t height = 0;
  StrRef file_name;
  uint32_t ann_begin = 0;  ///< into CocoDataset::image_annotations
  uint32_t ann_count = 0;
  StrRef extra;  ///< raw JSON members not understood (`"k":v,"k2":v2`), if kept
};

struct CategoryRecord {
  int64_t id = 0;
  StrRef name;
  StrRef supercategory;
  StrRef extra;
};

struct AnnotationRecord {
  int64_t id = 0;
  int64_t image_id = 0;
  int64_t category_id = 0;
  uint32_t image_index = 0;     ///< index into CocoDataset::images
  uint32_t category_index = 0;  ///< index into CocoDataset::categories
  double area = 0.0;            ///< the file's "area" field (0 when absent)
  std::array<double, 4> bbox{};  ///< the file's [x, y, w, h]
  bool has_area = false;
  bool has_bbox = false;
  uint8_t iscrowd = 0;
  SegmentationKind seg_kind = SegmentationKind::kNone;
  uint32_t rle_height = 0;  ///< "size"[0] of an RLE segmentation
  uint32_t rle_width = 0;   ///< "size"[1] of an RLE segmentation
  uint64_t seg_begin = 0;   ///< first part / first count / string begin
  uint32_t seg_count = 0;   ///< number of parts / counts / string bytes
  StrRef extra;
};

/// Options of the loader.
struct LoadOptions {
  ErrorPolicy policy = ErrorPolicy::kStrict;
  /// Keep unknown members (images' coco_url, top-level info/licenses, ...) as
  /// raw JSON so that the writer reproduces them. Off: they are skipped.
  bool keep_extra_fields = false;
  /// Root that image file names resolve against (stored, not checked here).
  std::string image_root;
};

class CocoDataset {
 public:
  std::string source_path;  ///< file it was loaded from ("" if built in memory)
  std::string image_root;

  std::vector<ImageRecord> images;
  std::vector<CategoryRecord> categories;
  std::vector<AnnotationRecord> annotations;
  std::vector<uint32_t> image_annotations;

  std::vector<double> coords;
  std::vector<uint64_t> part_offsets{0};
  std::vector<uint32_t> rle_counts;
  std::string strings;
  StrRef top_level_extra;  ///< raw top-level members other than the 3 arrays

  /// Records dropped under ErrorPolicy::kSkip, by reason.
  SkipReport skipped;

  // --- lookups --------------------------------------------------------------
  std::string_view str(StrRef r) const { return std::string_view(strings).substr(r.begin, r.size); }
  std::string_view file_name(const ImageRecord& im) const { return str(im.file_name); }
  /// image_root joined with the image's file_name.
  std::string image_path(const ImageRecord& im) const;

  size_t num_parts(const AnnotationRecord& a) const {
    return a.seg_kind == SegmentationKind::kPolygons ? a.seg_count : 0;
  }
  /// Coordinates of polygon part `k` of annotation `a` (kPolygons only).
  Span<const double> polygon(const AnnotationRecord& a, size_t k) const {
    const uint64_t p = a.seg_begin + k;
    return Span<const double>(coords.data() + part_offsets[p], part_offsets[p + 1] - part_offsets[p]);
  }
  /// Uncompressed counts (kRleCounts only).
  Span<const uint32_t> counts(const AnnotationRecord& a) const {
    return Span<const uint32_t>(rle_counts.data() + a.seg_begin, a.seg_count);
  }
  /// Compressed counts string (kRleString only).
  std::string_view rle_string(const AnnotationRecord& a) const {
    return std::string_view(strings).substr(a.seg_begin, a.seg_count);
  }
  /// Annotation indices of image `image_index`.
  Span<const uint32_t> annotations_of(size_t image_index) const {
    const ImageRecord& im = images[image_index];
    return Span<const uint32_t>(image_annotations.data() + im.ann_begin, im.ann_count);
  }

  /// Index lookups by id (built by the loader; call build_index() after
  /// editing records by hand). Return -1 when absent.
  int64_t image_index(int64_t image_id) const;
  int64_t category_index(int64_t category_id) const;
  void build_index();

  // --- building (used by the loader, tests and augmentation export) ---------
  StrRef add_string(std::string_view s);
  /// Appends one polygon part; returns its part index.
  uint64_t add_part(Span<const double> xy);

 private:
  std::unordered_map<int64_t, uint32_t> image_by_id_;
  std::unordered_map<int64_t, uint32_t> category_by_id_;
};

/// Loads a COCO instances file. Throws InputError naming the file, the JSON
/// path / byte offset and the record id for any problem (kStrict), or skips
/// and counts bad records in `skipped` (kSkip). Problems that make the whole
/// file unreadable (I/O error, malformed JSON) always throw.
CocoDataset load_coco(const std::string& path, const LoadOptions& options = {});

/// Parses COCO JSON from memory (`name` is used in error messages).
CocoDataset parse_coco(std::string_view json, const std::string& name, const LoadOptions& options = {});

}  // namespace pasteflow::io
