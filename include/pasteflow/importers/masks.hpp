// Importers: instance masks of microscopy tools -> COCO instances.
//
// Two layouts (import_masks / `pasteflow import masks DIR`):
//
//  - instance-pngs (Data Science Bowl 2018, BBBC038): a folder per image,
//        DIR/<id>/images/<one image>.(png|tif|tiff|jpg|jpeg)
//        DIR/<id>/masks/*.png                one binary mask per instance
//        DIR/<id>/masks/<category>/*.png     (optional) a category per folder
//    Masks directly in masks/ get the default category; masks in a
//    subfolder of masks/ get the category named by that subfolder.
//
//  - label-images (Cellpose, StarDist, CellProfiler): one image whose pixel
//    values are instance ids (0 = background), 8- or 16-bit, one channel,
//    PNG or TIFF, paired with its image by name:
//        DIR/images/NAME.ext  +  DIR/labels/NAME[SUFFIX].(png|tif|tiff)
//        (or DIR/masks/ instead of DIR/labels/: StarDist's train/{images,masks})
//        DIR/NAME.ext  +  DIR/NAME_masks.png / NAME_cp_masks.png  (Cellpose's
//        training folder: images and labels side by side)
//    SUFFIX is tried in the order "", "_masks", "_cp_masks", "_label",
//    "_labels"; the first file that exists is NAME's label image.
//
// Masks and label images are validated: a mask must be binary (0 and one
// other value), have its image's size and not be empty; masks of one image
// may overlap (kept both, as COCO allows, and counted) unless
// ImportOptions::overlap_is_error. Every problem is an InputError naming the
// file (and the pixel where it applies) with a stable reason code:
//   "missing_image"      a folder without an image, a label image without one
//   "ambiguous_image"    a folder whose images/ holds more than one image
//   "missing_labels"     an image without a label image
//   "unreadable_image", "corrupt_image", "unsupported_image", "pixel_limit"
//                        (the decode stage's, for images, masks and labels)
//   "unsupported_label_image"  a label image that is not 8/16-bit one-channel
//   "mask_size_mismatch" a mask or label image of another size than its image
//   "non_binary_mask"    an instance mask with two different non-zero values
//   "empty_mask"         an instance mask without a non-zero pixel
//   "overlapping_masks"  (overlap_is_error) two masks sharing a pixel
//   "unmapped_label_value" (ImportOptions::value_map) a label value in no range
// Under ErrorPolicy::kSkip an image with any problem is left out whole (its
// objects would otherwise become unlabelled background), except an empty
// mask, which holds no object and is left out alone; each is counted.
//
// Output (to_coco): one image record per imported image, file_name relative
// to DIR ('/'-separated), width and height of the image as stored (RGBA and
// 16-bit images are referenced, not rewritten), plus "channels",
// "bit_depth" and "modality"; one annotation per instance with compressed
// RLE (pycocotools-exact), area = its pixel count, bbox from the mask
// (rleToBbox), iscrowd 0 and "source" (the mask file, or the label image
// and value). Ids follow the sorted file names, so they never depend on
// directory listing order or thread count.
//
// The functions here are free of threads; the command runs import_image in
// parallel.
#pragma once

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pasteflow::importers {

enum class Layout : uint8_t { kInstancePngs, kLabelImages };
/// "instance-pngs" / "label-images".
const char* to_string(Layout layout) noexcept;
/// Parses "instance-pngs" / "label-images"; ConfigError "bad_value" (key "layout") otherwise.
Layout parse_layout(const std::string& text);

/// The layout of DIR: instance-pngs when a subfolder holds images/ (and
/// masks/); label-images when DIR holds images/ with labels/ or masks/ of
/// files, or files named NAME_masks / NAME_cp_masks. Throws InputError
/// "unknown_layout" (naming DIR and what it holds) otherwise, "missing_image"
/// when DIR is not a directory.
Layout detect_layout(const std::string& dir);

/// One instance mask file (relative to DIR) and its category ("" = default).
struct MaskFile {
  std::string path;
  std::string category;
};

/// One image to import; paths are relative to DIR with '/' separators.
struct ImageEntry {
  std::string image;
  std::vector<MaskFile> masks;  ///< instance-pngs: sorted by path
  std::string labels;           ///< label-images: the label image
};

struct Listing {
  std::vector<ImageEntry> images;  ///< sorted by image path
  SkipReport skipped;              ///< entries left out under kSkip
};

/// The images of DIR in `layout`, sorted by path. Folder-level problems
/// ("missing_image", "ambiguous_image", "missing_labels") throw under
/// kStrict and are counted in Listing::skipped under kSkip.
Listing list_images(const std::string& dir, Layout layout, ErrorPolicy policy);

/// Label values lo..hi (inclusive) are instances of `category`.
struct ValueRange {
  uint32_t lo = 0;
  uint32_t hi = 0;
  std::string category;
};

/// Parses "LO-HI=NAME,V=NAME,...": ranges of label values (1..65535) and
/// their category. ConfigError "bad_value" (key "value-map") on a syntax
/// error, an empty name, a value outside 1..65535, lo > hi or two ranges
/// sharing a value.
std::vector<ValueRange> parse_value_map(const std::string& text);

struct ImportOptions {
  ErrorPolicy policy = ErrorPolicy::kStrict;
  /// Two masks of one image sharing a pixel: an error ("overlapping_masks")
  /// instead of kept and counted.
  bool overlap_is_error = false;
  /// Largest width * height decoded (decode.max_pixels); 0 = no limit.
  int64_t max_pixels = 178956970;
  /// Label images: the category of each label value (empty: every instance
  /// gets the default category). A value in no range is bad input
  /// ("unmapped_label_value", naming the label image and the value).
  std::vector<ValueRange> value_map;
};

struct Instance {
  mask::Rle rle;
  uint64_t area = 0;
  std::array<double, 4> bbox{};
  std::string category;  ///< "" = the default category
  std::string source;    ///< "DIR-relative mask file", or "labels file:value"
  uint32_t value = 0;    ///< label images: the instance's label value (0 for mask files)
};

struct ImportedImage {
  bool ok = false;  ///< false: left out (skip) — see skipped
  int64_t width = 0;
  int64_t height = 0;
  int channels = 0;   ///< as stored (4 for RGBA)
  int bit_depth = 0;  ///< as stored (8, 16)
  std::string modality;  ///< "fluorescence", "brightfield" or "colour" (see modality_of)
  std::vector<Instance> instances;
  uint64_t overlapping_pairs = 0;   ///< pairs of masks sharing pixels
  uint64_t overlapping_pixels = 0;  ///< pixels in more than one mask
  std::string first_overlap;        ///< the first pair, for the report
  SkipReport skipped;               ///< problems counted under kSkip
};

/// Reads and validates one image and its masks (files below `dir`).
/// kStrict: throws the first problem; kSkip: counts it in `skipped` and
/// returns ok = false (or drops an empty mask alone).
ImportedImage import_image(const std::string& dir, const ImageEntry& entry, const ImportOptions& options);

/// The instances of a label image (CV_8UC1 or CV_16UC1): one per distinct
/// non-zero value, in increasing value order; `name` is the source prefix
/// ("name:value"). Built in one column-major pass.
std::vector<Instance> instances_from_labels(const cv::Mat& labels, const std::string& name);

/// One instance mask (CV_8U or CV_16U, 1, 3 or 4 channels: a pixel is set
/// when any channel is non-zero) checked to be binary ("non_binary_mask",
/// naming `name` and the pixel) and non-empty ("empty_mask").
Instance instance_from_mask(const cv::Mat& mask, const std::string& name);

/// "fluorescence" (grey, dark background), "brightfield" (grey, bright) or
/// "colour" (stained, e.g. H&E): grey when every pixel's channels differ by
/// at most 2 levels on average, dark when the mean is below the middle of
/// the range. A heuristic for stratifying splits, stored on each image.
std::string modality_of(const cv::Mat& image);

/// COCO of the images `which` (indices into entries / imported, all ok).
/// `categories` lists every category name used (the default one as ""),
/// in id order from 1; `default_category` names "". Image and annotation
/// ids count from 1 in the order of `which`.
io::CocoDataset to_coco(const std::vector<ImageEntry>& entries, const std::vector<ImportedImage>& imported,
                        const std::vector<size_t>& which, const std::vector<std::string>& categories,
                        const std::string& default_category);

/// Category names of the imported images: "" (the default) first when
/// used, then the folder categories sorted.
std::vector<std::string> category_names(const std::vector<ImportedImage>& imported);

/// The stratum of an image for a split: "" (key "none"), "WxH" ("size") or
/// its modality ("modality"). ConfigError "bad_value" for another key.
std::string stratum_of(const ImportedImage& image, const std::string& key);

/// Deterministic split by image: within each stratum, images are ordered by
/// a key hashed from (seed, name) and the first round(fraction * n) are
/// validation. Returns 1 for validation, 0 for training, per name. Depends
/// on the names, strata, fraction and seed only (never on their order).
std::vector<uint8_t> split_validation(const std::vector<std::string>& names, const std::vector<std::string>& strata,
                                      double fraction, uint64_t seed);

/// 64-bit FNV-1a of `text` (the name part of the split key).
uint64_t name_hash(const std::string& text) noexcept;

}  // namespace pasteflow::importers
