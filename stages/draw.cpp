#include "pasteflow/stages/draw.hpp"

#include <algorithm>
#include <cmath>

#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pasteflow::stages {

namespace {

constexpr int kMargin = 4;

/// `coverage` as CV_32F in [0, 1] (a CV_8U mask counts any non-zero as 1).
cv::Mat as_float_coverage(const cv::Mat& coverage) {
  cv::Mat f;
  if (coverage.depth() == CV_32F) {
    f = coverage;
  } else {
    cv::Mat binary = coverage != 0;  // 0 / 255
    binary.convertTo(f, CV_32F, 1.0 / 255.0);
  }
  return f;
}

/// Blends `colour` into rgb(region) by the CV_32F opacity map `alpha` (region's size).
void blend(cv::Mat& rgb, const cv::Rect& region, const cv::Mat& alpha, const cv::Scalar& colour) {
  for (int y = 0; y < region.height; ++y) {
    const float* a = alpha.ptr<float>(y);
    cv::Vec3b* px = rgb.ptr<cv::Vec3b>(region.y + y) + region.x;
    for (int x = 0; x < region.width; ++x) {
      const float t = std::min(1.0f, std::max(0.0f, a[x]));
      if (t <= 0.0f) continue;
      for (int c = 0; c < 3; ++c) {
        const double v = px[x][c] * (1.0 - t) + colour[c] * t;
        px[x][c] = cv::saturate_cast<uchar>(v);
      }
    }
  }
}

void check_rgb(const cv::Mat& rgb) {
  if (rgb.type() != CV_8UC3) throw Error("bad_image", "drawing needs an 8-bit RGB image");
}

}  // namespace

OverlayStyle parse_overlay_style(const std::string& name) {
  if (name == "outline") return OverlayStyle::kOutline;
  if (name == "fill") return OverlayStyle::kFill;
  if (name == "masks-only") return OverlayStyle::kMasksOnly;
  Location where;
  where.key = "overlay_style";
  throw ConfigError("bad_value", "overlay style '" + name + "' is not one of outline, fill, masks-only", where);
}

const char* to_string(OverlayStyle style) {
  switch (style) {
    case OverlayStyle::kOutline: return "outline";
    case OverlayStyle::kFill: return "fill";
    case OverlayStyle::kMasksOnly: return "masks-only";
  }
  return "?";
}

void draw_outline(cv::Mat& rgb, const cv::Mat& coverage, cv::Point origin, const cv::Scalar& colour) {
  check_rgb(rgb);
  if (coverage.empty()) return;
  const cv::Rect canvas(0, 0, rgb.cols, rgb.rows);
  // The object's rectangle grown by the outline's pixel on every side.
  const cv::Rect grown(origin.x - 1, origin.y - 1, coverage.cols + 2, coverage.rows + 2);
  const cv::Rect region = grown & canvas;
  if (region.area() == 0) return;
  cv::Mat padded(grown.size(), CV_32F, cv::Scalar(0));
  as_float_coverage(coverage).copyTo(padded(cv::Rect(1, 1, coverage.cols, coverage.rows)));
  cv::Mat around;
  cv::dilate(padded, around, cv::Mat::ones(3, 3, CV_8U), cv::Point(-1, -1), 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  const cv::Mat alpha = around - padded;  // >= 0: the dilation is a maximum that includes the pixel
  const cv::Rect local(region.x - grown.x, region.y - grown.y, region.width, region.height);
  blend(rgb, region, alpha(local), colour);
}

void draw_fill(cv::Mat& rgb, const cv::Mat& coverage, cv::Point origin, const cv::Scalar& colour, double opacity) {
  check_rgb(rgb);
  if (coverage.empty()) return;
  const cv::Rect canvas(0, 0, rgb.cols, rgb.rows);
  const cv::Rect object(origin, coverage.size());
  const cv::Rect region = object & canvas;
  if (region.area() == 0) return;
  cv::Mat alpha = as_float_coverage(coverage)(cv::Rect(region.x - object.x, region.y - object.y, region.width,
                                                       region.height)) *
                  opacity;
  blend(rgb, region, alpha, colour);
}

bool draw_label(cv::Mat& rgb, const std::string& text, const cv::Rect& box, const cv::Scalar& colour,
                std::vector<cv::Rect>& taken) {
  check_rgb(rgb);
  if (text.empty() || box.width <= 0 || box.height <= 0) return false;
  const cv::Rect canvas(0, 0, rgb.cols, rgb.rows);
  for (const double scale : {0.4, 0.3}) {
    int base = 0;
    const cv::Size ts = cv::getTextSize(text, cv::FONT_HERSHEY_SIMPLEX, scale, 1, &base);
    const int w = ts.width + 2;
    const int h = ts.height + base + 2;
    if (w > box.width) continue;  // wider than its object: try smaller, else no label
    // Above the box, else below it; wholly inside the image and on no other label.
    for (const int top : {box.y - h, box.y + box.height}) {
      const cv::Rect r(box.x, top, w, h);
      if ((r & canvas) != r) continue;
      if (std::any_of(taken.begin(), taken.end(), [&](const cv::Rect& t) { return (t & r).area() > 0; })) continue;
      cv::rectangle(rgb, r, colour, cv::FILLED);
      cv::putText(rgb, text, cv::Point(r.x + 1, r.y + ts.height + 1), cv::FONT_HERSHEY_SIMPLEX, scale,
                  cv::Scalar(0, 0, 0), 1, cv::LINE_AA);
      taken.push_back(r);
      return true;
    }
    return false;  // it fits the object but has no free place
  }
  return false;
}

double render_preview_cell(cv::Mat cell, const Sample& s, const PreviewStyle& style) {
  check_rgb(cell);
  cv::Mat rgb = s.image;
  if (rgb.depth() == CV_16U) rgb.convertTo(rgb, CV_8U, 1.0 / 257.0);
  if (rgb.channels() == 1) cv::cvtColor(rgb, rgb, cv::COLOR_GRAY2RGB);
  if (rgb.empty()) return 0.0;
  const int inner = std::max(1, cell.cols - 2 * kMargin);
  const int inner_h = std::max(1, cell.rows - 2 * kMargin);
  const double scale =
      std::min(static_cast<double>(inner) / rgb.cols, static_cast<double>(inner_h) / rgb.rows);
  const cv::Size size(std::max(1, static_cast<int>(std::lround(rgb.cols * scale))),
                      std::max(1, static_cast<int>(std::lround(rgb.rows * scale))));
  const cv::Point offset((cell.cols - size.width) / 2, (cell.rows - size.height) / 2);
  cv::Mat thumb;
  cv::resize(rgb, thumb, size, 0, 0, scale < 1.0 ? cv::INTER_AREA : cv::INTER_NEAREST);
  cv::Mat view = cell(cv::Rect(offset, size));
  thumb.copyTo(view);

  // Originals first, so pasted outlines stay on top; fills under all outlines.
  std::vector<const Instance*> order;
  for (const Instance& inst : s.instances) {
    if (!inst.pasted) order.push_back(&inst);
  }
  for (const Instance& inst : s.instances) {
    if (inst.pasted) order.push_back(&inst);
  }
  struct Drawn {
    cv::Mat coverage;
    cv::Point origin;
    cv::Scalar colour;
    cv::Rect box;  // boxes-only objects
  };
  std::vector<Drawn> drawn;
  const cv::Rect thumb_rect(0, 0, size.width, size.height);
  cv::Mat full;
  cv::Mat small;
  for (const Instance* inst : order) {
    Drawn d;
    d.colour = inst->pasted ? kPastedColour : kOriginalColour;
    const auto& b = inst->bbox;
    const cv::Rect box(static_cast<int>(std::floor(b[0] * scale)), static_cast<int>(std::floor(b[1] * scale)),
                       std::max(1, static_cast<int>(std::ceil((b[0] + b[2]) * scale) - std::floor(b[0] * scale))),
                       std::max(1, static_cast<int>(std::ceil((b[1] + b[3]) * scale) - std::floor(b[1] * scale))));
    if (!inst->has_mask || inst->mask.h == 0 || inst->mask.w == 0) {
      d.box = box;
      drawn.push_back(d);
      continue;
    }
    if (static_cast<int>(inst->mask.h) != rgb.rows || static_cast<int>(inst->mask.w) != rgb.cols) continue;
    full.create(rgb.rows, rgb.cols, CV_8U);
    mask::decode_into(inst->mask, full.data, full.step[0]);
    full *= 255;
    // The mask resized exactly as the image: each thumbnail pixel's coverage.
    cv::resize(full, small, size, 0, 0, scale < 1.0 ? cv::INTER_AREA : cv::INTER_NEAREST);
    const cv::Rect roi = cv::Rect(box.x - 2, box.y - 2, box.width + 4, box.height + 4) & thumb_rect;
    if (roi.area() == 0) continue;
    small(roi).convertTo(d.coverage, CV_32F, 1.0 / 255.0);
    d.origin = roi.tl();
    drawn.push_back(d);
  }
  if (style.fill) {
    for (const Drawn& d : drawn) {
      if (!d.coverage.empty()) draw_fill(view, d.coverage, d.origin, d.colour, style.fill_opacity);
    }
  }
  for (const Drawn& d : drawn) {
    if (d.coverage.empty()) {
      cv::rectangle(view, d.box, d.colour, 1);
    } else {
      draw_outline(view, d.coverage, d.origin, d.colour);
    }
  }

  uint32_t pasted = 0;
  for (const Instance& inst : s.instances) pasted += inst.pasted ? 1 : 0;
  const std::string caption = "id " + std::to_string(s.image_id) + (s.augment ? " +" + std::to_string(pasted) : "");
  cv::putText(cell, caption, cv::Point(kMargin + 2, kMargin + 14), cv::FONT_HERSHEY_SIMPLEX, 0.45,
              cv::Scalar(0, 0, 0), 3, cv::LINE_AA);
  cv::putText(cell, caption, cv::Point(kMargin + 2, kMargin + 14), cv::FONT_HERSHEY_SIMPLEX, 0.45,
              cv::Scalar(255, 255, 255), 1, cv::LINE_AA);
  return scale;
}

}  // namespace pasteflow::stages
