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
//     fields): `strings`, addressed by (begin, size). Names and RLE strings
//     are stored unescaped; extras are stored as raw JSON text.
// `image_annotations` lists annotation indices grouped by image (in file
// order within an image); ImageRecord::ann_begin/ann_count address it.
//
// Appending records by hand (augmentation export): push_back records, put
// their variable data in the pools with add_string()/add_part()/add_counts(),
// then call rebuild_index() (id lookups + image_index/category_index of every
// annotation + image_annotations).
#pragma once

#include <array>
#include <cstdint>
#include <functional>
#include <string>
#include <string_view>
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
  bool has_supercategory = false;  ///< "supercategory" was a string
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
  bool has_iscrowd = false;  ///< "iscrowd" present in the file (written back only then)
  uint8_t iscrowd = 0;
  SegmentationKind seg_kind = SegmentationKind::kNone;
  uint32_t rle_height = 0;  ///< "size"[0] of an RLE segmentation
  uint32_t rle_width = 0;   ///< "size"[1] of an RLE segmentation
  uint64_t seg_begin = 0;   ///< first part / first count / string begin
  uint32_t seg_count = 0;   ///< number of parts / counts / string bytes
  StrRef extra;
};

/// Default of LoadOptions::max_pixels: the decode stage's default
/// decode.max_pixels (PIL's decompression-bomb limit), so that a file the
/// loader accepts never names an image the pipeline refuses by its size.
inline constexpr int64_t kDefaultMaxPixels = 178956970;

/// Largest magnitude of a polygon coordinate or bbox number the loader
/// accepts (mask::kMaxPolygonCoordinate, the rasteriser's limit).
inline constexpr double kMaxCoordinate = 1e8;

/// Options of the loader.
struct LoadOptions {
  ErrorPolicy policy = ErrorPolicy::kStrict;
  /// Largest width * height of an image record ("pixel_limit"); 0 = no
  /// limit. Default: kDefaultMaxPixels.
  int64_t max_pixels = kDefaultMaxPixels;
  /// Keep unknown members (images' coco_url, top-level info/licenses, ...) as
  /// raw JSON so that the writer reproduces them. Off: they are skipped.
  bool keep_extra_fields = false;
  /// Root that image file names resolve against (stored, not checked here).
  std::string image_root;
  /// Bytes read per block. The file is streamed block by block; a record
  /// larger than a block grows the buffer. Tests use tiny values to exercise
  /// records split across blocks; results never depend on it. (Measured with
  /// bench_parse: 4-64 MiB load equally fast, bigger blocks only cost memory.)
  size_t block_size = size_t(8) << 20;
  /// Bytes of complete records handed to one simdjson On-Demand iterate()
  /// call (batches of 64 KiB-1 MiB stay in the CPU caches and measure the
  /// same; 4 MiB is ~10% slower). Results never depend on it.
  size_t batch_size = size_t(512) << 10;
};

/// Compressed RLE that replaces an annotation's segmentation when writing.
struct CompressedRle {
  uint32_t height = 0;
  uint32_t width = 0;
  std::string counts;  ///< pycocotools compressed counts string (unescaped)
};

class CocoDataset;

/// Where a record starts in the file it was loaded from.
struct RecordSource {
  uint64_t offset = 0;   ///< byte offset of the record's first character
  uint32_t element = 0;  ///< index in the file's array ("annotations[element]")
  int64_t id = 0;        ///< the record's id (checked on lookup)
};

/// Called once per annotation by the writer. Return true after filling `out`
/// to write {"size":[h,w],"counts":"..."} instead of the stored segmentation;
/// false to keep the stored one. `out` is reused between calls.
using SegmentationOverride =
    std::function<bool(const CocoDataset& dataset, size_t annotation_index, CompressedRle& out)>;

struct WriteOptions {
  /// Write the kept raw extras (record members and top-level info/licenses).
  bool write_extra_fields = true;
  /// Optional per-annotation segmentation replacement (see SegmentationOverride).
  SegmentationOverride segmentation_override;
  /// fsync the temporary file before renaming it over the target.
  bool fsync = true;
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

  /// Where each annotation of `annotations` starts in source_path (set by
  /// the loader, empty for datasets built in memory). Entries whose id does
  /// not match the annotation's (records edited after loading) are ignored.
  std::vector<RecordSource> annotation_sources;
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
  /// Where annotation `a` (a record of `annotations`) is: the file, its
  /// byte offset and "annotations[i]" + `subpath` when it came from the
  /// loaded file, and "annotation id N". For errors found after loading
  /// (rasterising, evaluating).
  Location annotation_location(const AnnotationRecord& a, std::string_view subpath = {}) const {
    Location loc;
    loc.file = source_path;
    loc.record = "annotation id " + std::to_string(a.id);
    if (!annotations.empty() && &a >= annotations.data() && &a < annotations.data() + annotations.size()) {
      const size_t i = static_cast<size_t>(&a - annotations.data());
      if (i < annotation_sources.size() && annotation_sources[i].id == a.id) {
        loc.byte_offset = static_cast<int64_t>(annotation_sources[i].offset);
        loc.path = "annotations[" + std::to_string(annotation_sources[i].element) + "]" + std::string(subpath);
      }
    }
    return loc;
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
  /// Rebuilds the id -> index tables of images and categories. With
  /// duplicate ids the first record wins.
  void build_index();
  /// Recomputes every annotation's image_index/category_index from its ids
  /// (throws InputError "unknown_image"/"unknown_category" when one is
  /// absent) and rebuilds image_annotations and each image's ann_begin/count.
  void rebuild_image_index();
  /// build_index() followed by rebuild_image_index().
  void rebuild_index() {
    build_index();
    rebuild_image_index();
  }

  // --- building (used by the loader, tests and augmentation export) ---------
  StrRef add_string(std::string_view s);
  /// Appends one polygon part; returns its part index.
  uint64_t add_part(Span<const double> xy);
  /// Appends uncompressed RLE counts; returns the index of the first one.
  uint64_t add_counts(Span<const uint32_t> counts);

 private:
  // Open-addressing tables of record indices + 1 (0 = empty slot), keyed by
  // the record's id; sized to a power of two >= 2 x records.
  std::vector<uint32_t> image_slots_;
  std::vector<uint32_t> category_slots_;
};

/// Loads a COCO instances file. Throws InputError naming the file, the JSON
/// path / byte offset and the record id for any problem (kStrict), or skips
/// and counts bad records in `skipped` (kSkip). Problems that make the whole
/// file unreadable (I/O error, malformed JSON) always throw.
///
/// Reason codes: "io_error", "malformed_json", "missing_field", "wrong_type",
/// "bad_value", "duplicate_id", "duplicate_field", "unknown_image",
/// "unknown_category", "odd_polygon", "short_polygon", "polygon_range" (a
/// coordinate beyond +-kMaxCoordinate), "rle_sum", "bad_image_size" (width
/// or height not a positive 32-bit integer), "pixel_limit" (width * height
/// above LoadOptions::max_pixels), "rle_size_mismatch" (an RLE "size" that
/// is not its image's [height, width]), "image_skipped" (under kSkip: an
/// annotation of an image that was dropped), "too_many_records" (an array of
/// 2^32-1 records or more: indices are 32-bit).
CocoDataset load_coco(const std::string& path, const LoadOptions& options = {});

/// Parses COCO JSON from memory (`name` is used in error messages).
CocoDataset parse_coco(std::string_view json, const std::string& name, const LoadOptions& options = {});

/// Writes `dataset` as COCO JSON to `path` atomically: the text goes to
/// path + ".tmp", is flushed (and fsync'ed), then renamed over `path`. On any
/// error the temporary file is removed and Error "io_error" (or the
/// exception thrown by the override callback) propagates.
void write_coco(const CocoDataset& dataset, const std::string& path, const WriteOptions& options = {});

/// Same output as write_coco, into a string.
std::string write_coco_string(const CocoDataset& dataset, const WriteOptions& options = {});

}  // namespace pasteflow::io
