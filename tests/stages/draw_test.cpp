// Drawing objects so that small ones stay visible (stages/draw.hpp; issue 12
// section 4): pixel-level checks of the outline (outside the object, its
// pixels untouched, anti-aliased by coverage), the fill, labels only where
// they fit, and the preview cell on a real sample image with its real masks.
#include "pasteflow/stages/draw.hpp"

#include <gtest/gtest.h>

#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>
#include <opencv2/imgproc.hpp>

#include "pasteflow/core/error.hpp"
#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"

namespace pasteflow::stages {
namespace {

const cv::Scalar kRed(255, 0, 0);

/// A 24 x 24 image whose pixel (x, y) is (x * 10, y * 10, 77): every pixel differs.
cv::Mat gradient(int size = 24) {
  cv::Mat m(size, size, CV_8UC3);
  for (int y = 0; y < size; ++y) {
    for (int x = 0; x < size; ++x) m.at<cv::Vec3b>(y, x) = cv::Vec3b(x * 10, y * 10, 77);
  }
  return m;
}

cv::Mat square_mask(int w, int h) { return cv::Mat(h, w, CV_8U, cv::Scalar(1)); }

TEST(DrawOutline, OutsideTheObjectItsPixelsUntouched) {
  const cv::Mat before = gradient();
  cv::Mat img = before.clone();
  // A 6 x 6 object at (8, 8): pixels 8..13.
  draw_outline(img, square_mask(6, 6), cv::Point(8, 8), kRed);
  for (int y = 0; y < img.rows; ++y) {
    for (int x = 0; x < img.cols; ++x) {
      const bool inside = x >= 8 && x <= 13 && y >= 8 && y <= 13;
      const bool ring = !inside && x >= 7 && x <= 14 && y >= 7 && y <= 14;
      const cv::Vec3b got = img.at<cv::Vec3b>(y, x);
      if (ring) {
        EXPECT_EQ(got, cv::Vec3b(255, 0, 0)) << x << "," << y;  // the outline: the colour, 1 px wide
      } else {
        EXPECT_EQ(got, before.at<cv::Vec3b>(y, x)) << x << "," << y;  // inside and far: the image's own value
      }
    }
  }
}

TEST(DrawOutline, ATwoPixelObjectKeepsItsPixelsAndPartialCoverageBlends) {
  const cv::Mat before = gradient();
  cv::Mat img = before.clone();
  draw_outline(img, square_mask(2, 1), cv::Point(5, 5), kRed);
  EXPECT_EQ(img.at<cv::Vec3b>(5, 5), before.at<cv::Vec3b>(5, 5));
  EXPECT_EQ(img.at<cv::Vec3b>(5, 6), before.at<cv::Vec3b>(5, 6));
  EXPECT_EQ(img.at<cv::Vec3b>(4, 4), cv::Vec3b(255, 0, 0));
  EXPECT_EQ(img.at<cv::Vec3b>(6, 7), cv::Vec3b(255, 0, 0));
  EXPECT_EQ(img.at<cv::Vec3b>(5, 8), before.at<cv::Vec3b>(5, 8));

  // Coverage: a pixel covered 0.25 next to a full one is 0.75 outline.
  cv::Mat cov(1, 2, CV_32F);
  cov.at<float>(0, 0) = 1.0f;
  cov.at<float>(0, 1) = 0.25f;
  cv::Mat grey(3, 4, CV_8UC3, cv::Scalar(100, 100, 100));
  draw_outline(grey, cov, cv::Point(1, 1), cv::Scalar(200, 0, 0));
  EXPECT_EQ(grey.at<cv::Vec3b>(1, 1), cv::Vec3b(100, 100, 100));
  EXPECT_EQ(grey.at<cv::Vec3b>(1, 2), cv::Vec3b(175, 25, 25));  // 100 * 0.25 + {200, 0, 0} * 0.75
  EXPECT_EQ(grey.at<cv::Vec3b>(1, 0), cv::Vec3b(200, 0, 0));
}

TEST(DrawOutline, ClippedAtTheImageBorderAndNonBinaryMasks) {
  cv::Mat img(10, 10, CV_8UC3, cv::Scalar(0, 0, 0));
  cv::Mat m(4, 4, CV_8U, cv::Scalar(255));  // 0/255 counts as 0/1
  draw_outline(img, m, cv::Point(-2, -2), kRed);  // covers (0..1, 0..1), ring at x or y = 2
  EXPECT_EQ(img.at<cv::Vec3b>(0, 0), cv::Vec3b(0, 0, 0));
  EXPECT_EQ(img.at<cv::Vec3b>(2, 2), cv::Vec3b(255, 0, 0));
  EXPECT_EQ(img.at<cv::Vec3b>(0, 2), cv::Vec3b(255, 0, 0));
  EXPECT_EQ(img.at<cv::Vec3b>(3, 3), cv::Vec3b(0, 0, 0));
  draw_outline(img, m, cv::Point(50, 50), kRed);  // wholly outside: nothing, no error
  cv::Mat grey(4, 4, CV_8U);
  EXPECT_THROW(draw_outline(grey, m, cv::Point(0, 0), kRed), Error);
}

TEST(DrawFill, TintsByOpacityTimesCoverage) {
  cv::Mat img(4, 4, CV_8UC3, cv::Scalar(100, 100, 100));
  draw_fill(img, square_mask(2, 2), cv::Point(1, 1), cv::Scalar(200, 0, 0), 0.5);
  EXPECT_EQ(img.at<cv::Vec3b>(1, 1), cv::Vec3b(150, 50, 50));
  EXPECT_EQ(img.at<cv::Vec3b>(2, 2), cv::Vec3b(150, 50, 50));
  EXPECT_EQ(img.at<cv::Vec3b>(0, 0), cv::Vec3b(100, 100, 100));
  EXPECT_EQ(img.at<cv::Vec3b>(3, 3), cv::Vec3b(100, 100, 100));
}

TEST(DrawLabel, OnlyWhereItFitsAndNeverOnAnotherLabel) {
  const cv::Mat before(120, 200, CV_8UC3, cv::Scalar(10, 20, 30));
  cv::Mat img = before.clone();
  std::vector<cv::Rect> taken;
  // A 6-px object: the text is wider than it: no label, no pixel changed.
  EXPECT_FALSE(draw_label(img, "nucleus 0.93", cv::Rect(50, 50, 6, 6), kRed, taken));
  EXPECT_EQ(cv::norm(img, before, cv::NORM_INF), 0.0);
  EXPECT_TRUE(taken.empty());
  // A 120-px object: drawn above it, inside its width.
  ASSERT_TRUE(draw_label(img, "nucleus 0.93", cv::Rect(40, 60, 120, 40), kRed, taken));
  ASSERT_EQ(taken.size(), 1u);
  const cv::Rect r = taken[0];
  EXPECT_EQ(r.x, 40);
  EXPECT_EQ(r.y + r.height, 60);
  EXPECT_LE(r.width, 120);
  cv::Mat diff;
  cv::absdiff(img, before, diff);
  cv::Mat changed;
  cv::cvtColor(diff, changed, cv::COLOR_RGB2GRAY);
  EXPECT_EQ(cv::countNonZero(changed(r)), cv::countNonZero(changed));  // nothing outside its rectangle
  EXPECT_GT(cv::countNonZero(changed), 0);
  // The same place again: taken (above) -> below the box.
  ASSERT_TRUE(draw_label(img, "nucleus 0.90", cv::Rect(40, 60, 120, 40), kRed, taken));
  EXPECT_EQ(taken[1].y, 100);
  // And a third time: both places taken: none.
  EXPECT_FALSE(draw_label(img, "nucleus 0.80", cv::Rect(40, 60, 120, 40), kRed, taken));
  // A box at the top edge gets its label below it.
  ASSERT_TRUE(draw_label(img, "x 0.5", cv::Rect(0, 0, 60, 10), kRed, taken));
  EXPECT_EQ(taken.back().y, 10);
  // A medium box gets the smaller font when the larger does not fit.
  std::vector<cv::Rect> t2;
  int base = 0;
  const int w04 = cv::getTextSize("cell 0.93", cv::FONT_HERSHEY_SIMPLEX, 0.4, 1, &base).width + 2;
  const int w03 = cv::getTextSize("cell 0.93", cv::FONT_HERSHEY_SIMPLEX, 0.3, 1, &base).width + 2;
  ASSERT_LT(w03, w04);
  ASSERT_TRUE(draw_label(img, "cell 0.93", cv::Rect(10, 80, w03, 20), kRed, t2));
  EXPECT_EQ(t2[0].width, w03);
}

TEST(OverlayStyleNames, RoundTripAndUnknownIsAConfigError) {
  for (const char* s : {"outline", "fill", "masks-only"}) EXPECT_STREQ(to_string(parse_overlay_style(s)), s);
  try {
    parse_overlay_style("blobs");
    FAIL() << "no error";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.reason(), "bad_value");
    EXPECT_NE(std::string(e.what()).find("blobs"), std::string::npos);
  }
}

// ---------------------------------------------------------------- preview cell on real data

/// The sample image with the most small objects and its instances (polygon masks rasterised).
Sample real_sample(size_t& small_objects) {
  const std::string dir = PASTEFLOW_SAMPLE_DATA;
  const io::CocoDataset ds = io::load_coco(dir + "/annotations.json");
  size_t best = 0;
  size_t best_count = 0;
  for (size_t i = 0; i < ds.images.size(); ++i) {
    size_t n = 0;
    for (const auto& a : ds.annotations) n += (a.image_id == ds.images[i].id && a.area < 32 * 32) ? 1 : 0;
    if (n > best_count) {
      best_count = n;
      best = i;
    }
  }
  const io::ImageRecord& im = ds.images[best];
  Sample s;
  s.image_id = im.id;
  s.augment = true;
  cv::Mat bgr = cv::imread(dir + "/images/" + std::string(ds.str(im.file_name)));
  cv::cvtColor(bgr, s.image, cv::COLOR_BGR2RGB);
  small_objects = best_count;
  for (size_t k = 0; k < ds.annotations.size(); ++k) {
    const auto& a = ds.annotations[k];
    if (a.image_id != im.id) continue;
    Instance inst;
    inst.id = a.id;
    inst.has_mask = true;
    inst.mask = mask::annotation_rle(ds, a, static_cast<uint32_t>(im.height), static_cast<uint32_t>(im.width));
    inst.bbox = {a.bbox[0], a.bbox[1], a.bbox[2], a.bbox[3]};
    inst.area = a.area;
    inst.pasted = a.area < 32 * 32;  // stand-ins for pasted objects: the small ones
    s.instances.push_back(inst);
  }
  return s;
}

TEST(PreviewCell, RealImageObjectsKeepTheirPixelsInsideGreenAndMagentaOutlines) {
  size_t small = 0;
  const Sample s = real_sample(small);
  ASSERT_GT(small, 3u);
  // The cell at the image's own scale (1:1): the thumbnail is the image.
  const int cell_size = std::max(s.image.cols, s.image.rows) + 8;
  cv::Mat cell(cell_size, cell_size, CV_8UC3, cv::Scalar(32, 32, 32));
  const double scale = render_preview_cell(cell, s);
  ASSERT_DOUBLE_EQ(scale, 1.0);
  const cv::Point offset((cell_size - s.image.cols) / 2, (cell_size - s.image.rows) / 2);
  const cv::Mat view = cell(cv::Rect(offset, s.image.size()));
  // Every pixel that no object's ring touches (inside objects, or far from
  // them) and that is below the caption keeps the image's own value.
  cv::Mat any_ring(s.image.size(), CV_8U, cv::Scalar(0));
  size_t magenta_rings = 0;
  size_t green_rings = 0;
  for (const Instance& inst : s.instances) {
    cv::Mat m(s.image.rows, s.image.cols, CV_8U);
    mask::decode_into(inst.mask, m.data, m.step[0]);
    cv::Mat grown;
    cv::dilate(m, grown, cv::Mat::ones(3, 3, CV_8U));
    cv::Mat ring = grown & (m == 0);
    any_ring |= ring;
    // The ring of the object drawn last over it is its colour (pasted ones are drawn last).
    if (inst.pasted) {
      const cv::Vec3b want(255, 0, 255);
      for (int y = 0; y < ring.rows; ++y) {
        for (int x = 0; x < ring.cols; ++x) {
          if (ring.at<uint8_t>(y, x) && view.at<cv::Vec3b>(y, x) == want) ++magenta_rings;
        }
      }
    } else {
      for (int y = 0; y < ring.rows; ++y) {
        for (int x = 0; x < ring.cols; ++x) {
          if (ring.at<uint8_t>(y, x) && view.at<cv::Vec3b>(y, x) == cv::Vec3b(0, 255, 0)) ++green_rings;
        }
      }
    }
  }
  EXPECT_GT(magenta_rings, 8 * small);  // each small object has its outline
  EXPECT_GT(green_rings, 0u);
  size_t checked = 0;
  for (int y = 24; y < view.rows; ++y) {  // below the caption
    for (int x = 0; x < view.cols; ++x) {
      if (any_ring.at<uint8_t>(y, x)) continue;
      ASSERT_EQ(view.at<cv::Vec3b>(y, x), s.image.at<cv::Vec3b>(y, x)) << x << "," << y;
      ++checked;
    }
  }
  EXPECT_GT(checked, static_cast<size_t>(view.total() / 2));

  // --fill: the objects' pixels are tinted.
  cv::Mat filled(cell_size, cell_size, CV_8UC3, cv::Scalar(32, 32, 32));
  PreviewStyle fill;
  fill.fill = true;
  render_preview_cell(filled, s, fill);
  const cv::Mat fview = filled(cv::Rect(offset, s.image.size()));
  cv::Mat m(s.image.rows, s.image.cols, CV_8U);
  mask::decode_into(s.instances.front().mask, m.data, m.step[0]);
  cv::Mat inner;
  cv::erode(m, inner, cv::Mat::ones(3, 3, CV_8U));
  cv::Mat diff;
  cv::absdiff(fview, view, diff);
  cv::Mat changed;
  cv::cvtColor(diff, changed, cv::COLOR_RGB2GRAY);
  EXPECT_GT(cv::countNonZero(changed & inner), cv::countNonZero(inner) / 2);
}

TEST(PreviewCell, DownScaledSmallObjectsStillGetAnOutlineAndBoxesOnlyARectangle) {
  size_t small = 0;
  Sample s = real_sample(small);
  cv::Mat cell(128, 128, CV_8UC3, cv::Scalar(32, 32, 32));
  const double scale = render_preview_cell(cell, s);
  EXPECT_LT(scale, 0.3);
  cv::Mat magenta;
  cv::inRange(cell, cv::Scalar(250, 0, 250), cv::Scalar(255, 5, 255), magenta);
  EXPECT_GT(cv::countNonZero(magenta), static_cast<int>(small));  // every tiny object: at least a pixel
  // Boxes-only objects: a 1-px rectangle.
  for (Instance& inst : s.instances) inst.has_mask = false;
  cv::Mat boxes(128, 128, CV_8UC3, cv::Scalar(32, 32, 32));
  render_preview_cell(boxes, s);
  cv::inRange(boxes, cv::Scalar(250, 0, 250), cv::Scalar(255, 5, 255), magenta);
  EXPECT_GT(cv::countNonZero(magenta), 0);
}

}  // namespace
}  // namespace pasteflow::stages
