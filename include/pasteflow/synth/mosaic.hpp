// A huge annotated test image from real pixels (`pasteflow generate mosaic`).
//
// The images of a COCO dataset are tiled, each at its own size, into one
// width x height image on a grey background: row packing ("shelves") from
// the top-left, `gap` px between images and around the border; the images
// are taken in a seeded order (a fresh shuffle of the dataset per cycle,
// Rng(seed, {cycle})) and the dataset is cycled until the next image does not
// fit below the last shelf. An image wider or taller than the mosaic (minus
// the border gaps) is skipped.
//
// Ground truth, exact: every annotation of each placed copy is moved into
// full-image coordinates — polygons and bbox shifted by the placement's
// (x, y), RLE sources (uncompressed or compressed) translated with
// mask::translate to the full size and written as compressed RLE; area,
// iscrowd and category kept. The mosaic is image id 1; annotation ids are
// 1..N in placement order; categories are copied. Each placement (source
// image id, x, y, width, height) is recorded, and written as the
// top-level member "placements" of annotations.json.
//
// Exactness: RLE sources are translated run by run (exact). Polygons are
// shifted by whole pixels; pycocotools' rasteriser rounds 5x-upsampled
// coordinates, so a vertex whose coordinate sits on a rounding boundary may
// rasterise one pixel differently after the shift (floating point) — the
// shifted polygon is still the source's outline, moved.
//
// Pixels: a tiled pyramidal BigTIFF (raster::TiffWriter): level k is composed
// band by band directly from the sources resized (INTER_AREA) to
// ceil(w / 2^k) x ceil(h / 2^k) at (x >> k, y >> k), so no level is read back
// to build the next; decoded and resized sources are kept in a cache of
// `cache_mb` (least recently used out first). Memory: one band (level width
// x tile x 3 bytes) plus the cache.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/raster/tiff_writer.hpp"

namespace pasteflow::synth {

struct MosaicConfig {
  int64_t width = 0;
  int64_t height = 0;
  int64_t gap = 8;          ///< px between images and around the border
  int background = 128;     ///< grey level of the background
  raster::TiffCompression compression = raster::TiffCompression::kJpeg;
  int quality = 90;         ///< JPEG quality
  int64_t tile = 512;       ///< TIFF tile size (multiple of 16)
  bool pyramid = true;      ///< reduced-resolution levels until one tile
  uint64_t seed = 0;
  int64_t cache_mb = 256;   ///< decoded / resized source images kept
  std::string file_name = "mosaic.tif";  ///< the mosaic's image file name

  /// ConfigError (key "mosaic.<field>") for values out of range.
  void validate() const;
};

/// One copy of a source image in the mosaic (level-0 pixels).
struct MosaicPlacement {
  uint32_t source_image_index = 0;  ///< into the source dataset's images
  int64_t source_image_id = 0;
  int64_t x = 0;
  int64_t y = 0;
  int64_t width = 0;
  int64_t height = 0;
};

struct MosaicPlan {
  io::CocoDataset dataset;  ///< one image (id 1), the moved annotations, the categories
  std::vector<MosaicPlacement> placements;
  std::vector<uint32_t> annotation_source;     ///< source annotation index of each annotation
  std::vector<uint32_t> annotation_placement;  ///< placement index of each annotation
  uint64_t skipped_images = 0;  ///< source images larger than the mosaic (never placed)
};

/// Places the images and moves the annotations (no pixel is read). Throws
/// ConfigError (bad config; "mosaic.width": RLE sources and width * height
/// >= 2^32, which RLE counts cannot hold), InputError "no_images" (no image
/// fits), and the annotation errors of mask::annotation_rle for bad RLEs.
MosaicPlan plan_mosaic(const io::CocoDataset& source, const MosaicConfig& config);

/// "placements":[{"image_id":..,"file_name":..,"x":..,"y":..,"width":..,"height":..},...]
/// plus "mosaic":{"width","height","gap","seed","source"} as top-level JSON
/// members (no braces), the text plan.dataset.top_level_extra holds.
std::string mosaic_extra_json(const io::CocoDataset& source, const MosaicPlan& plan, const MosaicConfig& config);

/// Progress: (bands written, bands in all levels); return false to stop.
using MosaicProgress = std::function<bool(uint64_t done, uint64_t total)>;

struct MosaicPixelStats {
  uint64_t bands = 0;
  uint64_t decoded = 0;        ///< source images decoded (cache misses at full size)
  uint64_t resized = 0;        ///< resized copies made for reduced levels
  uint64_t cache_hits = 0;
  size_t cache_peak_bytes = 0;
  int levels = 0;
  bool completed = false;      ///< false: stopped by the progress callback (the file is removed)
};

/// Writes the mosaic's pixels to `tiff_path` (a new or empty file) with
/// raster::TiffWriter. Source images are decoded from source.image_path()
/// (stages::Decoder: RGB, 8 bit, size checked against the record). Throws
/// the decoder's InputError naming the image, and the writer's errors.
MosaicPixelStats write_mosaic_pixels(const io::CocoDataset& source, const MosaicPlan& plan,
                                     const MosaicConfig& config, const std::string& tiff_path,
                                     const MosaicProgress& progress = {});

struct MosaicSummary {
  std::string annotations_path;
  std::string image_path;
  uint64_t placements = 0;
  uint64_t annotations = 0;
  uint64_t skipped_images = 0;
  uint64_t file_bytes = 0;
  MosaicPixelStats pixels;
};

struct MosaicOutputOptions {
  bool overwrite = false;
  std::vector<std::string> inputs;  ///< files that must never be replaced (DatasetWriter)
  MosaicProgress progress;
};

/// plan_mosaic + write_mosaic_pixels through a dataset::DatasetWriter:
/// OUT/images/<file_name> and OUT/annotations.json (with the placements),
/// published together, or nothing (a stop leaves OUT as it was; summary
/// .pixels.completed is false then).
MosaicSummary generate_mosaic(const io::CocoDataset& source, const std::string& out_dir,
                              const MosaicConfig& config, const MosaicOutputOptions& options = {});

}  // namespace pasteflow::synth
