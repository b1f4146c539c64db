// Copy-paste stage 2 of 4: random per-object transform (Kisantal et al.,
// sec. 4: "we scale the objects by changing the object size +-20% and rotate
// it +-15 degrees"), plus an optional horizontal flip.
//
// Geometry: one similarity transform about the patch centre,
//   q = c_out + s * R(angle) * F * (p - c_in)
// with p, q pixel centres (pixel (x, y) has its centre at (x, y)), F the
// mirror x -> -x when flipped, R a counter-clockwise rotation as seen on
// screen (y down), and c_out chosen so the whole transformed patch fits in
// the output canvas. Both images are warped by the inverse map (each output
// pixel centre looks up its source point):
//   - pixels: bilinear (cv::INTER_LINEAR), replicating the patch's border
//     pixels outside it (no black fringe);
//   - mask: the 0/1 mask is interpolated bilinearly with zeros outside the
//     patch and thresholded: an output pixel is in the mask iff the
//     interpolated value is >= 0.5. Along straight edges this reproduces
//     the scaled edge exactly; corners are rounded slightly (about 0.1 px^2
//     each). The result is cropped to the tight box of the thresholded mask,
//     so `mask` is exactly the set of pixels the composite stage may write and
//     `area` is counted from it, never estimated from scale^2.
// With scale 1 and angle 0 the transform is exact: the mask is reproduced
// pixel for pixel (mirrored when flipped), and so are the pixels.
//
// A very small object may vanish (no interpolated value reaches 0.5); the
// result is then empty() and the paste is counted as failed.
#pragma once

#include "pasteflow/core/random.hpp"
#include "pasteflow/stages/extract.hpp"

namespace pasteflow::stages {

struct TransformConfig {
  double scale = 0.2;     ///< scale factor drawn uniformly from [1 - scale, 1 + scale]; in [0, 1)
  double rotation = 15.0; ///< angle in degrees drawn uniformly from [-rotation, rotation]; in [0, 180]
  bool hflip = false;     ///< flip horizontally with probability 0.5

  /// Throws ConfigError with key "augment.transform.<field>".
  void validate() const;

  /// Config keys under "augment.transform.".
  template <class Describer>
  static void describe(Describer& d) {
    d.field("scale", &TransformConfig::scale, "scale factor uniform in [1 - scale, 1 + scale] (paper: 0.2, i.e. +-20%)")
        .range(0.0, 0.99);
    d.field("rotation", &TransformConfig::rotation, "rotation in degrees uniform in [-rotation, rotation] (paper: 15)")
        .range(0.0, 180.0);
    d.field("hflip", &TransformConfig::hflip, "mirror each pasted object with probability 0.5 (not in the paper)");
  }
};

/// The random choice for one paste.
struct TransformParams {
  double scale = 1.0;
  double angle = 0.0;  ///< degrees
  bool flip = false;
};

class Transformer {
 public:
  explicit Transformer(TransformConfig config = {});

  /// Draws, in this order: scale (one uniform), angle (one uniform), flip
  /// (one uniform, only when hflip is on).
  TransformParams draw(Rng& rng) const;

  /// Applies `params` to a patch (pure, deterministic).
  static ObjectPatch apply(const ObjectPatch& patch, const TransformParams& params);

  /// apply(patch, draw(rng)).
  ObjectPatch operator()(const ObjectPatch& patch, Rng& rng) const { return apply(patch, draw(rng)); }

  const TransformConfig& config() const noexcept { return config_; }

 private:
  TransformConfig config_;
};

}  // namespace pasteflow::stages
