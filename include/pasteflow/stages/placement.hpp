// Copy-paste stage 3 of 4: where a (transformed) object goes (Kisantal et
// al., sec. 4: "the newly pasted object does not overlap with any existing
// object and is at least five pixels away from the image boundaries").
//
// Without overlap (default): an occupancy mask holds the union of every
// object's pixels (masks; the box of a boxes-only instance; crowd regions
// count as occupied; earlier pastes are added as they land). A position is
// the top-left pixel (x, y) of the patch's tight box; it is drawn uniformly
// from border <= x <= W - border - w, border <= y <= H - border - h (so at
// least `border` pixel rows / columns separate the object's box from every
// image edge), and accepted when no mask pixel of the patch lands on an
// occupied pixel. At most max_tries draws; then the paste fails (counted in
// Sample::paste.failed by the paste stage). When the object does not fit
// between the borders at all, the paste fails after 0 tries.
//
// With allow_overlap: one draw (same border rule), accepted whatever it
// covers. Every existing object then loses the pixels the paste covers:
//   visible fraction = remaining mask area / reference mask area
// where the reference area is the object's mask pixel area when the
// augmentation of this sample began (for an earlier paste: when it was
// pasted), so repeated partial occlusions accumulate. An object whose
// visible fraction falls below min_visible, or which has no pixel left, is
// removed from the sample (Sample::paste.dropped_occluded); the others keep
// their trimmed mask with bbox = mask::bbox and area = mask::area
// recomputed. Boxes-only objects: the fraction is computed on their box
// pixels; they are dropped by the same rule but their box is not changed.
// Crowd regions are trimmed and dropped like any other object.
#pragma once

#include <cstdint>
#include <vector>

#include <opencv2/core.hpp>

#include "pasteflow/core/random.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/stages/sample.hpp"

namespace pasteflow::stages {

struct PlacementConfig {
  int border = 5;       ///< minimum distance (pixels) between the pasted box and the image edges
  int max_tries = 10;   ///< random positions tried per paste (the paper's author's script: 10)
  bool allow_overlap = false;
  double min_visible = 0.3;  ///< allow_overlap only; in [0, 1]

  /// Throws ConfigError with key "augment.placement.<field>".
  void validate() const;

  /// Config keys under "augment.placement.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("border", &PlacementConfig::border, "minimum distance in px between a pasted object's box and the image edges (paper: 5)")
        .range(0, 100000);
    d.field("max_tries", &PlacementConfig::max_tries, "random positions tried per paste before it fails")
        .range(1, 100000);
    d.field("allow_overlap", &PlacementConfig::allow_overlap,
            "paste anywhere, occluding existing objects (Table 8 'overlapping'); off: never overlap (paper)");
    d.field("min_visible", &PlacementConfig::min_visible,
            "allow_overlap: an occluded object keeping less than this fraction of its area is removed")
        .range(0.0, 1.0);
  }
};

/// Occupied pixels of one frame (CV_8U, 0 free / 1 occupied).
class Occupancy {
 public:
  Occupancy(int height, int width);
  /// Every instance of the sample (masks, boxes of boxes-only instances, crowd).
  static Occupancy of(const Sample& sample);

  void add(const Instance& inst);
  /// A 0/1 patch mask with its top-left pixel at `tl` (clipped to the frame).
  void add(const cv::Mat& mask, cv::Point tl);
  /// Does any mask pixel of the patch at `tl` land on an occupied pixel?
  /// Pixels outside the frame count as occupied.
  bool overlaps(const cv::Mat& mask, cv::Point tl) const;

  const cv::Mat& map() const noexcept { return map_; }
  int width() const noexcept { return map_.cols; }
  int height() const noexcept { return map_.rows; }

 private:
  cv::Mat map_;
};

struct PlacementResult {
  bool placed = false;
  cv::Point tl;        ///< top-left of the patch when placed
  uint32_t tries = 0;  ///< positions drawn
};

class Placer {
 public:
  explicit Placer(PlacementConfig config = {});

  /// Range of valid top-left positions for a w x h patch in the frame:
  /// x in [lo.x, hi.x], y in [lo.y, hi.y]; false when empty.
  bool position_range(cv::Size patch, cv::Size frame, cv::Point& lo, cv::Point& hi) const;

  /// Finds a position for the 0/1 mask `mask` (see the header comment).
  /// Draws x then y (Rng::range) per try. With allow_overlap the occupancy
  /// is not consulted.
  PlacementResult find(const cv::Mat& mask, const Occupancy& occupancy, Rng& rng) const;
  /// allow_overlap only (throws Error "needs_occupancy" otherwise): one
  /// position in a frame of size `frame`, no occupancy needed.
  PlacementResult find(const cv::Mat& mask, cv::Size frame, Rng& rng) const;

  /// allow_overlap update after pasting `placed` (a full-frame mask): trims
  /// `instances` and drops those below min_visible. `reference_area` runs
  /// parallel to `instances` (see the header comment) and is kept parallel.
  /// Returns the number of instances dropped.
  uint32_t occlude(std::vector<Instance>& instances, std::vector<uint64_t>& reference_area,
                   const mask::Rle& placed) const;

  const PlacementConfig& config() const noexcept { return config_; }

 private:
  PlacementResult search(const cv::Mat& mask, cv::Size frame, const Occupancy* occupancy, Rng& rng) const;
  PlacementConfig config_;
};

/// Pixels of `a` not in `b` (same size), computed on runs.
mask::Rle rle_subtract(const mask::Rle& a, const mask::Rle& b);

/// The reference area occlude() uses for an instance: its mask pixel area,
/// or its box pixel area for a boxes-only instance.
uint64_t occupied_area(const Instance& inst, int width, int height);

}  // namespace pasteflow::stages
