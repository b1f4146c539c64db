// Drawing objects so that a person can see small ones (issue 12, section 4):
// used by `pasteflow preview` (contact sheets of augmented samples) and by
// `pasteflow predict`'s overlays.
//
// An object is given as a coverage map: a CV_32F map of values in [0, 1]
// (the fraction of each pixel the object covers, e.g. a mask resized with
// INTER_AREA) or a CV_8U 0/1 mask, whose top-left pixel lies at `origin`
// of the RGB image; parts outside the image are ignored.
//
//  - draw_outline: a 1-pixel, anti-aliased outline just OUTSIDE the object:
//    each pixel's opacity is max(coverage of its 3x3 neighbourhood) - its
//    own coverage. A pixel the object covers fully keeps its own value, so
//    the object's pixels stay visible inside the outline however small it
//    is; a pixel it does not touch next to one it covers fully becomes the
//    colour; boundary pixels blend by the part they do not cover.
//  - draw_fill: the object tinted, colour * opacity * coverage (the older,
//    filled look; `preview --fill`, `predict --overlay-style fill`).
//  - draw_label: "text" on a box of `colour`, only where it fits: its width
//    at most the object's box width (font scale 0.4, else 0.3), inside the
//    image (above the box, else below it), and not on any label drawn
//    before (`taken`); else nothing is drawn and it returns false.
//
// render_preview_cell draws one sample of a contact sheet (see
// tools/cli/cmd_preview.cpp); PreviewStyle chooses outlines or fill.
#pragma once

#include <string>
#include <vector>

#include <opencv2/core.hpp>

#include "pasteflow/stages/sample.hpp"

namespace pasteflow::stages {

/// How `pasteflow predict` draws detections on its overlays.
enum class OverlayStyle {
  kOutline,    ///< 1-px outline outside each mask (box for mask-less detections), labels where they fit
  kFill,       ///< tinted masks, outlines, 1-px boxes, labels where they fit
  kMasksOnly,  ///< tinted masks and their outlines only: no boxes, no labels
};
/// "outline" | "fill" | "masks-only"; anything else: ConfigError "bad_value".
OverlayStyle parse_overlay_style(const std::string& name);
const char* to_string(OverlayStyle style);

/// 1-px anti-aliased outline just outside the object (see above). `rgb` is CV_8UC3.
void draw_outline(cv::Mat& rgb, const cv::Mat& coverage, cv::Point origin, const cv::Scalar& colour);

/// The object tinted: pixel = pixel * (1 - a) + colour * a, a = opacity * coverage.
void draw_fill(cv::Mat& rgb, const cv::Mat& coverage, cv::Point origin, const cv::Scalar& colour, double opacity);

/// Draws `text` (black on `colour`) for the object whose box is `box` where
/// it fits (see above); its rectangle is added to `taken`. Returns whether it was drawn.
bool draw_label(cv::Mat& rgb, const std::string& text, const cv::Rect& box, const cv::Scalar& colour,
                std::vector<cv::Rect>& taken);

/// The preview sheet's colours (RGB).
inline const cv::Scalar kPastedColour(255, 0, 255);   // magenta
inline const cv::Scalar kOriginalColour(0, 255, 0);   // green

struct PreviewStyle {
  bool fill = false;          ///< tint objects (opacity below) under their outlines
  double fill_opacity = 0.4;  ///< of the tint with fill
};

/// Renders sample `s` into `cell` (CV_8UC3 RGB, e.g. a cell of the sheet):
/// the image scaled to fit the cell less a 4-px margin (aspect kept,
/// centred), each object's outline (originals green, then pasted magenta on
/// top; boxes-only objects as 1-px rectangles), the tint with style.fill,
/// and a caption "id <image id> +<pasted objects>". Returns the scale used.
double render_preview_cell(cv::Mat cell, const Sample& s, const PreviewStyle& style = {});

}  // namespace pasteflow::stages
