// Composite: hard paste and edge blur write only mask pixels, every image
// type, and the new annotation (id scheme, full-frame mask, box, area).
#include "pasteflow/stages/composite.hpp"

#include <gtest/gtest.h>

#include <limits>

#include "paste_fixture.hpp"
#include "pasteflow/stages/transform.hpp"

using namespace pasteflow;
using namespace pasteflow::stages;
using namespace paste_test;

namespace {

/// Image of the given type filled with a deterministic pattern.
cv::Mat pattern(int rows, int cols, int type, int salt) {
  cv::Mat m(rows, cols, type);
  cv::RNG rng(static_cast<uint64_t>(salt) + 1);
  rng.fill(m, cv::RNG::UNIFORM, cv::Scalar::all(0), cv::Scalar::all(CV_MAT_DEPTH(type) == CV_16U ? 65536 : 256));
  return m;
}

/// Pixels (as a CV_8U 0/1 map) where two images of one type differ.
cv::Mat differs(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(a, b, d);
  if (d.channels() > 1) {
    std::vector<cv::Mat> ch;
    cv::split(d, ch);
    d = ch[0] | ch[1] | ch[2];
  }
  return (d != 0) / 255;
}

/// A real object, transformed, converted to the image type.
ObjectPatch real_patch(int type) {
  const Sample& s = samples().at(kTable);
  const Extractor ex;
  ObjectPatch p = Transformer::apply(ex.extract(s, ex.eligible(s)[2]), TransformParams{1.1, 12.0, true});
  cv::Mat px = p.pixels;
  if (CV_MAT_DEPTH(type) == CV_16U) px.convertTo(px, CV_MAKETYPE(CV_16U, px.channels()), 257.0);
  if (CV_MAT_CN(type) == 1) cv::cvtColor(px, px, cv::COLOR_RGB2GRAY);
  p.pixels = px;
  return p;
}

}  // namespace

TEST(Composite, HardPasteWritesExactlyTheMaskPixelsInEveryType) {
  for (int type : {CV_8UC1, CV_8UC3, CV_16UC1, CV_16UC3}) {
    const ObjectPatch p = real_patch(type);
    ASSERT_EQ(p.pixels.type(), type);
    const cv::Mat before = pattern(120, 90, type, type);
    cv::Mat img = before.clone();
    const cv::Point tl(17, 33);
    Compositor().blend(img, p, tl);
    cv::Mat placed = cv::Mat::zeros(img.size(), CV_8UC1);
    p.mask.copyTo(placed(cv::Rect(tl, p.mask.size())));
    // Outside the mask: unchanged. Inside: the patch's pixels.
    EXPECT_EQ(cv::countNonZero(differs(img, before) & ~placed & 1), 0) << type;
    cv::Mat expect = before.clone();
    p.pixels.copyTo(expect(cv::Rect(tl, p.mask.size())), p.mask);
    EXPECT_EQ(cv::countNonZero(differs(img, expect)), 0) << type;
  }
}

TEST(Composite, BlurChangesOnlyMaskPixelsNearTheEdge) {
  for (int k : {3, 5}) {
    for (int type : {CV_8UC3, CV_16UC1}) {
      const ObjectPatch p = real_patch(type);
      const cv::Mat before = pattern(120, 90, type, 7);
      cv::Mat hard = before.clone(), soft = before.clone();
      const cv::Point tl(20, 30);
      Compositor().blend(hard, p, tl);
      CompositeConfig c;
      c.blur_kernel = k;
      Compositor(c).blend(soft, p, tl);
      cv::Mat placed = cv::Mat::zeros(before.size(), CV_8UC1);
      p.mask.copyTo(placed(cv::Rect(tl, p.mask.size())));
      // Mask pixels whose k x k neighbourhood is all mask: the interior.
      cv::Mat interior;
      cv::erode(placed, interior, cv::Mat::ones(k, k, CV_8UC1), cv::Point(-1, -1), 1, cv::BORDER_CONSTANT,
                cv::Scalar(0));
      const cv::Mat edge = placed & ~interior & 1;
      EXPECT_EQ(cv::countNonZero(differs(soft, before) & ~placed & 1), 0) << "outside the mask untouched";
      EXPECT_EQ(cv::countNonZero(differs(soft, hard) & interior), 0) << "interior copied exactly";
      const cv::Mat changed = differs(soft, hard);
      EXPECT_EQ(cv::countNonZero(changed & ~edge & 1), 0);
      EXPECT_GT(cv::countNonZero(changed), cv::countNonZero(edge) / 2) << "the edge really is blended, k " << k;
    }
  }
}

TEST(Composite, AlphaIsTheBlurredMaskInsideTheMask) {
  cv::Mat m = cv::Mat::zeros(9, 9, CV_8UC1);
  m(cv::Rect(1, 1, 7, 7)).setTo(1);
  CompositeConfig c;
  c.blur_kernel = 3;
  c.blur_sigma = 1.0;
  const cv::Mat a = Compositor(c).alpha(m);
  ASSERT_EQ(a.type(), CV_64F);
  EXPECT_EQ(a.at<double>(0, 0), 0.0);
  EXPECT_EQ(a.at<double>(4, 4), 1.0);
  EXPECT_EQ(a.at<double>(2, 2), 1.0) << "3 x 3 neighbourhood inside";
  // Corner (1, 1): 3x3 Gaussian with sigma 1, weights g = (e^-0.5, 1, e^-0.5)
  // normalised per axis; the corner sees the 2 x 2 lower-right part.
  const double g0 = std::exp(-0.5), g1 = 1.0, sum = 2 * g0 + g1;
  const double axis = (g1 + g0) / sum;
  EXPECT_NEAR(a.at<double>(1, 1), axis * axis, 1e-12);
  EXPECT_NEAR(a.at<double>(1, 4), axis, 1e-12) << "edge middle";
  cv::Mat m64;
  m.convertTo(m64, CV_64F);
  EXPECT_EQ(cv::countNonZero(Compositor().alpha(m) != m64), 0) << "hard paste: alpha is the mask";
}

TEST(Composite, NewAnnotation) {
  Sample s = copy_of(kTable, /*seq=*/3);
  const size_t n = s.instances.size();
  const ObjectPatch p = real_patch(CV_8UC3);
  CompositeConfig c;
  c.id_base = 1000;
  c.ids_per_sample = 16;
  const cv::Point tl(300, 20);
  const Instance& inst = Compositor(c)(s, p, tl, 2);
  ASSERT_EQ(s.instances.size(), n + 1);
  EXPECT_EQ(inst.id, 1000 + 1 + 3 * 16 + 2);
  EXPECT_TRUE(inst.pasted);
  EXPECT_EQ(inst.source_id, p.source_id);
  EXPECT_EQ(inst.category_id, p.category_id);
  EXPECT_TRUE(inst.has_mask);
  EXPECT_EQ(inst.iscrowd, 0);
  cv::Mat frame = cv::Mat::zeros(s.image.size(), CV_8UC1);
  p.mask.copyTo(frame(cv::Rect(tl, p.mask.size())));
  EXPECT_EQ(inst.mask, encode_mat(frame));
  EXPECT_EQ(inst.bbox, (std::array<double, 4>{300, 20, double(p.mask.cols), double(p.mask.rows)}));
  EXPECT_EQ(inst.area, static_cast<double>(p.area));
  EXPECT_EQ(inst.size_class, inst.area < 1024 ? 0 : 1);
}

TEST(Composite, PlacedRleClipsToTheFrame) {
  cv::Mat m = cv::Mat::ones(4, 4, CV_8UC1);
  const mask::Rle r = placed_rle(m, cv::Point(8, -1), 10, 10);
  cv::Mat frame = cv::Mat::zeros(10, 10, CV_8UC1);
  frame(cv::Rect(8, 0, 2, 3)).setTo(1);
  EXPECT_EQ(r, encode_mat(frame));
}

TEST(Composite, IdScheme) {
  CompositeConfig c;
  c.id_base = 908800;  // e.g. the largest annotation id of a dataset
  EXPECT_EQ(pasted_annotation_id(c, 0, 0), 908801);
  EXPECT_EQ(pasted_annotation_id(c, 0, 1023), 908801 + 1023);
  EXPECT_EQ(pasted_annotation_id(c, 1, 0), 908801 + 1024);
  try {
    pasted_annotation_id(c, 0, 1024);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), "paste_id_overflow");
  }
  EXPECT_THROW(pasted_annotation_id(c, uint64_t{1} << 60, 0), Error);
}

// id_base = INT64_MAX made base - limit wrap around: the check passed and
// the id came out negative.
TEST(CompositeRegression, IdBaseAtInt64MaxIsRefusedNotNegative) {
  CompositeConfig c;
  c.id_base = std::numeric_limits<int64_t>::max();
  EXPECT_THROW(pasted_annotation_id(c, 0, 0), Error);
  c.id_base = std::numeric_limits<int64_t>::max() - 10;
  EXPECT_EQ(pasted_annotation_id(c, 0, 9), std::numeric_limits<int64_t>::max());
  EXPECT_THROW(pasted_annotation_id(c, 0, 10), Error);
  EXPECT_THROW(pasted_annotation_id(c, 1, 0), Error);
}

TEST(Composite, BoxSourceKeepsBoxesOnlyFlag) {
  Sample s;
  s.image = cv::Mat(30, 30, CV_8UC1, cv::Scalar(0));
  ObjectPatch p;
  p.from_box = true;
  p.source_id = 77;
  p.mask = cv::Mat::ones(3, 4, CV_8UC1);
  p.pixels = cv::Mat(3, 4, CV_8UC1, cv::Scalar(200));
  p.area = 12;
  const Instance& inst = Compositor()(s, p, cv::Point(10, 11), 0);
  EXPECT_FALSE(inst.has_mask);
  EXPECT_EQ(inst.bbox, (std::array<double, 4>{10, 11, 4, 3}));
  EXPECT_EQ(inst.area, 12.0);
  EXPECT_EQ(cv::countNonZero(s.image), 12);
}

TEST(Composite, Errors) {
  CompositeConfig c;
  c.blur_kernel = 4;
  try {
    Compositor{c};
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "augment.composite.blur_kernel");
  }
  cv::Mat img(10, 10, CV_8UC3, cv::Scalar(0));
  ObjectPatch p;
  p.mask = cv::Mat::ones(3, 3, CV_8UC1);
  p.pixels = cv::Mat(3, 3, CV_8UC1, cv::Scalar(1));
  p.area = 9;
  EXPECT_THROW(Compositor().blend(img, p, cv::Point(0, 0)), Error) << "type mismatch";
  p.pixels = cv::Mat(3, 3, CV_8UC3, cv::Scalar(1, 2, 3));
  EXPECT_THROW(Compositor().blend(img, p, cv::Point(8, 8)), Error) << "outside";
  cv::Mat f(10, 10, CV_32FC3);
  p.pixels = cv::Mat(3, 3, CV_32FC3);
  EXPECT_THROW(Compositor().blend(f, p, cv::Point(0, 0)), Error) << "float images are not supported";
}
