// Synthetic small-object benchmark: textured shapes scattered over crops of
// real background photos, with exact instance masks.
//
// Exactness: every object's mask is rasterised first with the pycocotools-
// exact codec (mask::from_polygon at the full image size), then exactly those
// pixels are painted. The annotation written for it (polygon, or compressed
// RLE for rings and partly covered objects) rasterises back to the painted
// pixels bit for bit (mask::annotation_rle, as pycocotools annToRLE would);
// area = mask area, bbox = mask::bbox.
//
// Determinism: image `index` of split `split` draws all its random numbers
// from Rng(seed, {split, index}); results never depend on the thread count
// or on the order in which images are made.
#pragma once

#include <opencv2/core.hpp>

#include <array>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pasteflow::synth {

/// The object classes; category id = class + 1.
enum class ShapeClass : uint8_t { kCircle = 0, kTriangle, kSquare, kStar, kRing, kCross };
constexpr int kNumShapeClasses = 6;
/// "circle", "triangle", "square", "star", "ring", "cross".
const char* shape_name(ShapeClass shape) noexcept;

enum class Texture : uint8_t { kNoise = 0, kStripes, kGradient };
constexpr int kNumTextures = 3;
const char* texture_name(Texture texture) noexcept;

enum class Split : uint8_t { kTrain = 0, kVal = 1 };
const char* split_name(Split split) noexcept;

/// How one image is made. Sizes are the object's extent: max(w, h) of its
/// (unoccluded) mask bbox, always within [min_size, max_size].
struct ShapesOptions {
  int image_size = 320;          ///< output images are image_size x image_size
  int min_size = 6;              ///< smallest object extent, px (>= 4)
  int max_size = 28;             ///< largest object extent, px (<= image_size / 2)
  int min_objects = 8;           ///< objects per image: uniform in [min_objects, max_objects]
  int max_objects = 30;          ///< (fewer when no free place is found in max_tries)
  int gap = 1;                   ///< no-overlap mode: free pixels kept between masks (>= 0)
  /// 0: masks never overlap (and keep `gap` apart). > 0: a later object may
  /// cover up to this fraction of an earlier object's mask; covered objects
  /// are written as compressed RLE of their visible pixels. In [0, 0.9].
  double max_overlap = 0.0;
  int max_tries = 40;            ///< placement attempts per object
  double min_crop_fraction = 0.4;  ///< background crop side / shorter background side, in [0.05, 1]
  double min_alpha = 0.8;        ///< object opacity drawn in [min_alpha, 1], min_alpha in (0, 1]
  double blur_probability = 0.3;   ///< texture blurred inside the mask (edges stay exact)
  double shading_probability = 0.5;  ///< linear lighting ramp across the object
  double soft_edge_probability = 0.5;  ///< mask border pixels half blended with what is below
  uint64_t seed = 0;

  /// Throws ConfigError ("out_of_range") naming the key.
  void validate() const;
};

/// A set of background photos (never modified; decoded on demand).
class Backgrounds {
 public:
  explicit Backgrounds(std::vector<std::string> paths);
  /// Every *.jpg, *.jpeg, *.png, *.bmp, *.tif, *.tiff, *.webp directly in
  /// `dir` (case-insensitive), sorted by file name. Throws InputError
  /// "io_error" (not a directory) or "no_backgrounds".
  static Backgrounds from_directory(const std::string& dir);

  size_t size() const noexcept { return paths_.size(); }
  const std::string& path(size_t i) const { return paths_[i]; }
  /// 8-bit BGR pixels of background i. Throws InputError "unreadable_image".
  cv::Mat load(size_t i) const;

 private:
  std::vector<std::string> paths_;
};

/// One object of a generated image.
struct SynthObject {
  ShapeClass shape = ShapeClass::kCircle;
  Texture texture = Texture::kNoise;
  /// Visible pixels at image size (exactly the pixels painted for it and not
  /// painted over by later objects).
  mask::Rle mask;
  /// x0, y0, x1, y1, ... of a polygon that rasterises to `mask`; empty when
  /// the mask is not one polygon (rings, partly covered objects): then the
  /// annotation is compressed RLE.
  std::vector<double> polygon;
  uint64_t area = 0;              ///< mask::area(mask)
  std::array<double, 4> bbox{};   ///< mask::bbox(mask)
  int size = 0;                   ///< extent of the unoccluded mask, px
};

struct SynthImage {
  cv::Mat background;  ///< CV_8UC3 image_size^2: the background crop before painting
  cv::Mat image;       ///< CV_8UC3: the background with the objects painted
  size_t background_index = 0;
  std::vector<SynthObject> objects;
};

/// Makes image `index` of `split`. Pure: same arguments, same result.
/// Throws what Backgrounds::load and ShapesOptions::validate throw.
SynthImage generate_image(const Backgrounds& backgrounds, const ShapesOptions& options, Split split,
                          uint64_t index);

/// The categories (id 1..kNumShapeClasses, supercategory "shape") and, for
/// each image, its record and its objects' annotations, as a COCO dataset.
/// `file_names[i]` names image i (id i + 1); annotation ids count from 1 in
/// image order. Polygon objects get polygons, the others compressed RLE;
/// iscrowd 0.
io::CocoDataset make_coco(const std::vector<std::vector<SynthObject>>& objects,
                          const std::vector<std::string>& file_names, int image_size);

enum class ImageFormat : uint8_t { kJpeg, kPng };

struct DatasetOptions {
  ShapesOptions shapes;
  size_t train_images = 0;
  size_t val_images = 0;
  ImageFormat format = ImageFormat::kJpeg;
  int jpeg_quality = 95;
  int threads = 0;  ///< 0 = all cores; never changes the output
  /// Called from the calling thread after each batch of images with
  /// (images done, images total) over both splits. Optional.
  std::function<void(size_t, size_t)> progress;
};

struct SplitSummary {
  size_t images = 0;
  size_t annotations = 0;
  size_t rle_annotations = 0;    ///< annotations written as compressed RLE
  std::array<size_t, kNumShapeClasses> per_class{};
  std::string annotations_path;  ///< OUT/<split>/annotations.json
  std::string images_dir;        ///< OUT/<split>/images
};

struct DatasetSummary {
  SplitSummary train, val;
};

/// Writes OUT/train/images/NNNNNN.jpg|png + OUT/train/annotations.json and
/// the same for val (a split with 0 images is skipped). Image files are
/// written first, each COCO file last and atomically (io::write_coco).
/// Throws ConfigError for bad options, InputError for bad backgrounds, Error
/// "io_error" when a file cannot be written.
DatasetSummary generate_dataset(const Backgrounds& backgrounds, const std::string& out_dir,
                                const DatasetOptions& options);

}  // namespace pasteflow::synth
