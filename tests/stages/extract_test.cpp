// Object extraction: eligibility rules and the cut-out patches, on the two
// real COCO images of tests/data/paste and on hand-made cases.
#include "pasteflow/stages/extract.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <set>

#include "paste_fixture.hpp"

using namespace pasteflow;
using namespace pasteflow::stages;
using namespace paste_test;

namespace {

bool contains(const std::vector<uint32_t>& v, uint32_t x) { return std::find(v.begin(), v.end(), x) != v.end(); }

/// Oracle for occlusion "mask", by full-frame decoding: does any other
/// instance share a pixel with instance i?
bool mask_occluded(const Sample& s, size_t i) {
  const cv::Mat mi = decode_mat(s.instances[i].mask);
  for (size_t j = 0; j < s.instances.size(); ++j) {
    if (j == i) continue;
    const cv::Mat mj = decode_mat(s.instances[j].mask);
    if (cv::countNonZero(mi & mj) > 0) return true;
  }
  return false;
}

}  // namespace

TEST(Extract, DefaultEligibilityMatchesDecodedOracleOnRealImages) {
  for (int64_t id : {kTable, kStreet}) {
    const Sample& s = samples().at(id);
    const std::vector<uint32_t> el = Extractor().eligible(s);
    size_t expected = 0;
    for (size_t i = 0; i < s.instances.size(); ++i) {
      const Instance& inst = s.instances[i];
      const bool want = inst.area < 1024.0 && !inst.iscrowd && mask::area(inst.mask) > 0 && !mask_occluded(s, i);
      EXPECT_EQ(contains(el, static_cast<uint32_t>(i)), want) << "image " << id << " annotation " << inst.id;
      expected += want;
    }
    EXPECT_EQ(el.size(), expected);
    EXPECT_TRUE(std::is_sorted(el.begin(), el.end()));
    EXPECT_GT(el.size(), 5u) << "the test images were chosen for their many free small objects";
  }
}

TEST(Extract, PatchIsTheTightMaskBoxAndCopiesThePixels) {
  for (int64_t id : {kTable, kStreet}) {
    const Sample& s = samples().at(id);
    const Extractor ex;
    for (uint32_t i = 0; i < s.instances.size(); ++i) {
      const Instance& inst = s.instances[i];
      const ObjectPatch p = ex.extract(s, i);
      const cv::Mat full = decode_mat(inst.mask);
      if (cv::countNonZero(full) == 0) {
        EXPECT_TRUE(p.empty());
        continue;
      }
      EXPECT_EQ(p.box, cv::boundingRect(full)) << inst.id;
      EXPECT_EQ(p.source_id, inst.id);
      EXPECT_EQ(p.category_id, inst.category_id);
      EXPECT_FALSE(p.from_box);
      EXPECT_EQ(p.area, mask::area(inst.mask));
      ASSERT_EQ(p.mask.type(), CV_8UC1);
      EXPECT_EQ(cv::countNonZero(p.mask != full(p.box)), 0);
      EXPECT_EQ(cv::countNonZero(p.mask > 1), 0) << "mask is 0/1";
      ASSERT_EQ(p.pixels.type(), s.image.type());
      cv::Mat diff;
      cv::absdiff(p.pixels, s.image(p.box), diff);
      EXPECT_EQ(cv::countNonZero(diff.reshape(1)), 0);
      EXPECT_NE(p.pixels.data, s.image(p.box).data) << "an owned copy";
    }
  }
}

TEST(Extract, CrowdIsExcludedUnlessAsked) {
  const Sample& s = samples().at(kStreet);
  uint32_t crowd = 0;
  for (uint32_t i = 0; i < s.instances.size(); ++i)
    if (s.instances[i].iscrowd) crowd = i;
  ASSERT_TRUE(s.instances[crowd].iscrowd);
  ASSERT_EQ(s.instances[crowd].size_class, 0) << "the crowd region (area 799) is small";
  EXPECT_FALSE(contains(Extractor().eligible(s), crowd));
  ExtractConfig c;
  c.exclude_crowd = false;
  c.occlusion = "none";
  EXPECT_TRUE(contains(Extractor(c).eligible(s), crowd));
}

TEST(Extract, OcclusionModesAreNested) {
  for (int64_t id : {kTable, kStreet}) {
    const Sample& s = samples().at(id);
    ExtractConfig c;
    c.occlusion = "box";
    const auto by_box = Extractor(c).eligible(s);
    c.occlusion = "mask";
    const auto by_mask = Extractor(c).eligible(s);
    c.occlusion = "none";
    const auto none = Extractor(c).eligible(s);
    for (uint32_t i : by_box) EXPECT_TRUE(contains(by_mask, i));
    for (uint32_t i : by_mask) EXPECT_TRUE(contains(none, i));
    // "box" oracle: no other box intersects with positive area.
    for (uint32_t i : none) {
      bool hit = false;
      const auto& a = s.instances[i].bbox;
      for (size_t j = 0; j < s.instances.size(); ++j) {
        if (j == i) continue;
        const auto& b = s.instances[j].bbox;
        hit = hit || (std::min(a[0] + a[2], b[0] + b[2]) > std::max(a[0], b[0]) &&
                      std::min(a[1] + a[3], b[1] + b[3]) > std::max(a[1], b[1]));
      }
      EXPECT_EQ(contains(by_box, i), !hit) << s.instances[i].id;
    }
  }
  // The street image has small objects whose masks are free but boxes touch.
  ExtractConfig c;
  c.occlusion = "box";
  EXPECT_LT(Extractor(c).eligible(samples().at(kStreet)).size(), Extractor().eligible(samples().at(kStreet)).size());
}

TEST(Extract, MultipartObjectsCanBeExcluded) {
  const Sample& s = samples().at(kStreet);
  ExtractConfig c;
  c.occlusion = "none";
  const auto all = Extractor(c).eligible(s);
  c.allow_multipart = false;
  const auto single = Extractor(c).eligible(s);
  size_t multipart = 0;
  for (uint32_t i : all) {
    const int n = components8(decode_mat(s.instances[i].mask));
    EXPECT_EQ(contains(single, i), n == 1) << s.instances[i].id << " has " << n << " components";
    multipart += n > 1;
  }
  EXPECT_GT(multipart, 0u) << "image 159269 has small objects drawn in several parts";
}

TEST(Extract, SizeClassesSelect) {
  const Sample& s = samples().at(kStreet);
  ExtractConfig c;
  c.occlusion = "none";
  c.size_classes = {"medium"};
  const auto med = Extractor(c).eligible(s);
  ASSERT_FALSE(med.empty());
  for (uint32_t i : med) EXPECT_EQ(s.instances[i].size_class, 1);
  c.size_classes = {"small", "medium", "large"};
  EXPECT_EQ(Extractor(c).eligible(s).size(), s.instances.size() - 1) << "all but the crowd region";
}

TEST(Extract, HandMadeOverlapsAndBoxesOnly) {
  // 20 x 30 grey image with pixel value x + 10 y.
  Sample s;
  s.image = cv::Mat(20, 30, CV_8UC1);
  for (int y = 0; y < 20; ++y)
    for (int x = 0; x < 30; ++x) s.image.at<uint8_t>(y, x) = static_cast<uint8_t>(x + 10 * y);
  cv::Mat a = cv::Mat::zeros(20, 30, CV_8UC1), b = a.clone(), c = a.clone();
  a(cv::Rect(1, 1, 3, 3)).setTo(1);   // A: free
  b(cv::Rect(10, 10, 4, 4)).setTo(1); // B and C share pixel (13, 13)
  c(cv::Rect(13, 13, 3, 3)).setTo(1);
  s.instances = {mask_instance(1, a), mask_instance(2, b), mask_instance(3, c)};
  Instance box;  // boxes-only D at [20.4, 2.6, 4.2, 3.0] -> pixels x 20..24, y 3..5
  box.id = 4;
  box.bbox = {20.4, 2.6, 4.2, 3.0};
  s.instances.push_back(box);
  EXPECT_EQ(Extractor().eligible(s), (std::vector<uint32_t>{0, 3}));

  const ObjectPatch d = Extractor().extract(s, 3);
  EXPECT_TRUE(d.from_box);
  EXPECT_EQ(d.box, cv::Rect(20, 3, 5, 3));
  EXPECT_EQ(d.area, 15u);
  EXPECT_EQ(cv::countNonZero(d.mask), 15);
  EXPECT_EQ(d.pixels.at<uint8_t>(0, 0), 20 + 30);

  // A box overlapping a mask occludes it (and is occluded by it).
  Instance box2 = box;
  box2.id = 5;
  box2.bbox = {2.0, 2.0, 2.0, 2.0};
  s.instances.push_back(box2);
  EXPECT_EQ(Extractor().eligible(s), (std::vector<uint32_t>{3}));
}

TEST(Extract, BoxPixelsRule) {
  EXPECT_EQ(box_pixels({0.4, 0.6, 2.2, 2.0}, 10, 10), cv::Rect(0, 1, 3, 2));
  EXPECT_EQ(box_pixels({3.2, 3.2, 0.2, 0.2}, 10, 10), cv::Rect(3, 3, 1, 1)) << "widened to one pixel";
  EXPECT_EQ(box_pixels({8.0, 8.0, 5.0, 5.0}, 10, 10), cv::Rect(8, 8, 2, 2)) << "clipped";
  EXPECT_TRUE(box_pixels({12.0, 1.0, 5.0, 5.0}, 10, 10).empty());
  EXPECT_TRUE(box_pixels({1.0, 1.0, 0.0, 5.0}, 10, 10).empty());
}

TEST(Extract, TightBoxIgnoresColumnWrap) {
  // Ones at (x=0, y=9) and (x=1, y=0) form one run across the column
  // boundary; the box must still be exactly x 0..1, y 0..9.
  cv::Mat m = cv::Mat::zeros(10, 5, CV_8UC1);
  m.at<uint8_t>(9, 0) = 1;
  m.at<uint8_t>(0, 1) = 1;
  EXPECT_EQ(tight_box(encode_mat(m)), cv::Rect(0, 0, 2, 10));
  cv::Mat n = cv::Mat::zeros(10, 5, CV_8UC1);
  n(cv::Rect(2, 3, 2, 4)).setTo(1);
  EXPECT_EQ(tight_box(encode_mat(n)), cv::Rect(2, 3, 2, 4));
  EXPECT_TRUE(tight_box(encode_mat(cv::Mat::zeros(4, 4, CV_8UC1))).empty());
}

TEST(Extract, ConfigErrorsNameTheKey) {
  ExtractConfig c;
  c.occlusion = "pixels";
  try {
    Extractor{c};
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "augment.extract.occlusion");
  }
  c = ExtractConfig{};
  c.size_classes = {"tiny"};
  EXPECT_THROW(Extractor{c}, ConfigError);
  c.size_classes = {};
  EXPECT_THROW(Extractor{c}, ConfigError);
}

TEST(Extract, WrongMaskSizeIsAnInputError) {
  Sample s = copy_of(kTable);
  s.instances[0].mask = mask::empty(10, 10);
  s.instances[0].size_class = 0;
  try {
    Extractor().eligible(s);
    FAIL();
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "mask_size");
  }
}
