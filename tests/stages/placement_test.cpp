// Placement: occupancy, mask-exact non-overlap, border margin, try counting,
// and the allow_overlap occlusion update.
#include "pasteflow/stages/placement.hpp"

#include <gtest/gtest.h>

#include "paste_fixture.hpp"
#include "pasteflow/stages/composite.hpp"
#include "pasteflow/stages/extract.hpp"
#include "pasteflow/stages/transform.hpp"

using namespace pasteflow;
using namespace pasteflow::stages;
using namespace paste_test;

namespace {

/// Oracle occupancy: union of the decoded masks (boxes for boxes-only).
cv::Mat decoded_union(const Sample& s) {
  cv::Mat u = cv::Mat::zeros(s.image.rows, s.image.cols, CV_8UC1);
  for (const Instance& inst : s.instances) {
    if (inst.has_mask) u |= decode_mat(inst.mask);
    else u(box_pixels(inst.bbox, u.cols, u.rows)).setTo(1);
  }
  return u;
}

cv::Mat square(int n) { return cv::Mat(n, n, CV_8UC1, cv::Scalar(1)); }

}  // namespace

TEST(Placement, PositionRangeKeepsTheBorder) {
  PlacementConfig c;  // border 5
  const Placer p(c);
  cv::Point lo, hi;
  ASSERT_TRUE(p.position_range(cv::Size(10, 20), cv::Size(100, 50), lo, hi));
  EXPECT_EQ(lo, cv::Point(5, 5));
  EXPECT_EQ(hi, cv::Point(85, 25));  // 85 + 10 + 5 = 100, 25 + 20 + 5 = 50
  EXPECT_TRUE(p.position_range(cv::Size(90, 40), cv::Size(100, 50), lo, hi)) << "exactly fits";
  EXPECT_EQ(lo, hi);
  EXPECT_FALSE(p.position_range(cv::Size(91, 40), cv::Size(100, 50), lo, hi));
}

TEST(Placement, OccupancyIsTheUnionOfAllObjectsIncludingCrowd) {
  for (int64_t id : {kTable, kStreet}) {
    const Sample& s = samples().at(id);
    const Occupancy occ = Occupancy::of(s);
    EXPECT_EQ(cv::countNonZero(occ.map() != decoded_union(s)), 0);
  }
  // The crowd region of the street image is occupied.
  const Sample& s = samples().at(kStreet);
  int crowd = 0;
  for (const Instance& inst : s.instances) {
    if (!inst.iscrowd) continue;
    ++crowd;
    EXPECT_EQ(cv::countNonZero(decode_mat(inst.mask) & ~Occupancy::of(s).map()), 0);
  }
  EXPECT_EQ(crowd, 1);
}

TEST(Placement, OverlapIsMaskExact) {
  Occupancy occ(20, 20);
  cv::Mat dot = cv::Mat::zeros(20, 20, CV_8UC1);
  Instance inst = mask_instance(1, [&] {
    dot.at<uint8_t>(5, 5) = 1;
    return dot;
  }());
  occ.add(inst);
  cv::Mat ring = square(3);
  ring.at<uint8_t>(1, 1) = 0;
  EXPECT_FALSE(occ.overlaps(ring, cv::Point(4, 4))) << "the hole of the ring sits on the occupied pixel";
  EXPECT_TRUE(occ.overlaps(square(3), cv::Point(4, 4)));
  EXPECT_TRUE(occ.overlaps(ring, cv::Point(3, 4))) << "the ring's right column hits (5, 5)";
  EXPECT_FALSE(occ.overlaps(square(3), cv::Point(6, 6)));
  EXPECT_TRUE(occ.overlaps(square(3), cv::Point(18, 0))) << "outside the frame counts as occupied";
  occ.add(ring, cv::Point(10, 10));
  EXPECT_EQ(cv::countNonZero(occ.map()), 1 + 8);
}

TEST(Placement, PlacedObjectsNeverOverlapAndKeepTheBorder) {
  const Extractor ex;
  const Transformer tr;
  PlacementConfig pc;
  const Placer placer(pc);
  int placed = 0, failed = 0;
  for (int64_t id : {kTable, kStreet}) {
    const Sample& s = samples().at(id);
    const cv::Mat oracle = decoded_union(s);
    const Occupancy occ = Occupancy::of(s);
    for (uint32_t i : ex.eligible(s)) {
      const ObjectPatch src = ex.extract(s, i);
      for (uint64_t seed = 0; seed < 25; ++seed) {
        Rng trng(seed, {1, i}), prng(seed, {2, i});
        const ObjectPatch p = tr(src, trng);
        const PlacementResult r = placer.find(p.mask, occ, prng);
        EXPECT_LE(r.tries, static_cast<uint32_t>(pc.max_tries));
        if (!r.placed) {
          EXPECT_EQ(r.tries, static_cast<uint32_t>(pc.max_tries));
          ++failed;
          continue;
        }
        ++placed;
        EXPECT_GE(r.tl.x, pc.border);
        EXPECT_GE(r.tl.y, pc.border);
        EXPECT_LE(r.tl.x + p.mask.cols, s.image.cols - pc.border);
        EXPECT_LE(r.tl.y + p.mask.rows, s.image.rows - pc.border);
        const cv::Mat here = oracle(cv::Rect(r.tl, p.mask.size()));
        EXPECT_EQ(cv::countNonZero(here & p.mask), 0) << "object " << src.source_id << " seed " << seed;
      }
    }
  }
  EXPECT_GT(placed, 200);
  EXPECT_LT(failed, placed);
}

TEST(Placement, PositionsCoverTheWholeRange) {
  const Placer placer;
  const Occupancy empty(60, 40);
  cv::Point lo(1000, 1000), hi(-1, -1);
  for (uint64_t seed = 0; seed < 2000; ++seed) {
    Rng rng(seed);
    const PlacementResult r = placer.find(square(10), empty, rng);
    ASSERT_TRUE(r.placed);
    EXPECT_EQ(r.tries, 1u);
    lo.x = std::min(lo.x, r.tl.x), lo.y = std::min(lo.y, r.tl.y);
    hi.x = std::max(hi.x, r.tl.x), hi.y = std::max(hi.y, r.tl.y);
  }
  EXPECT_EQ(lo, cv::Point(5, 5));
  EXPECT_EQ(hi, cv::Point(40 - 5 - 10, 60 - 5 - 10));
}

TEST(Placement, FullImageFailsAfterMaxTries) {
  Occupancy full(50, 50);
  full.add(square(50), cv::Point(0, 0));
  PlacementConfig pc;
  pc.max_tries = 7;
  Rng rng(1);
  const PlacementResult r = Placer(pc).find(square(3), full, rng);
  EXPECT_FALSE(r.placed);
  EXPECT_EQ(r.tries, 7u);
  // Too large to fit between the borders: no try at all.
  const PlacementResult big = Placer(pc).find(square(41), Occupancy(50, 50), rng);
  EXPECT_FALSE(big.placed);
  EXPECT_EQ(big.tries, 0u);
  // Border 0: an image-sized object fits at (0, 0).
  pc.border = 0;
  const PlacementResult whole = Placer(pc).find(square(50), Occupancy(50, 50), rng);
  EXPECT_TRUE(whole.placed);
  EXPECT_EQ(whole.tl, cv::Point(0, 0));
}

TEST(Placement, AllowOverlapIgnoresOccupancy) {
  Occupancy full(50, 50);
  full.add(square(50), cv::Point(0, 0));
  PlacementConfig pc;
  pc.allow_overlap = true;
  Rng a(5), b(5);
  const PlacementResult r = Placer(pc).find(square(3), full, a);
  EXPECT_TRUE(r.placed);
  EXPECT_EQ(r.tries, 1u);
  const PlacementResult r2 = Placer(pc).find(square(3), cv::Size(50, 50), b);
  EXPECT_EQ(r2.tl, r.tl);
  pc.allow_overlap = false;
  try {
    Placer(pc).find(square(3), cv::Size(50, 50), b);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), "needs_occupancy");
  }
}

TEST(Placement, RleSubtractMatchesDecodedOracle) {
  const Sample& s = samples().at(kStreet);
  const uint32_t h = static_cast<uint32_t>(s.image.rows), w = static_cast<uint32_t>(s.image.cols);
  int checked = 0;
  for (size_t i = 0; i < s.instances.size(); ++i) {
    for (size_t j = 0; j < s.instances.size(); j += 3) {
      // b = instance j shifted so that it lands on instance i's box.
      const cv::Rect bi = tight_box(s.instances[i].mask), bj = tight_box(s.instances[j].mask);
      const mask::Rle b = mask::translate(s.instances[j].mask, bi.x - bj.x + 2, bi.y - bj.y + 1, h, w);
      const mask::Rle d = rle_subtract(s.instances[i].mask, b);
      const mask::Rle oracle = encode_mat(decode_mat(s.instances[i].mask) & ~decode_mat(b));
      EXPECT_EQ(d, oracle) << i << " - " << j;
      ++checked;
    }
  }
  EXPECT_GT(checked, 300);
  const mask::Rle a = s.instances[0].mask;
  EXPECT_EQ(rle_subtract(a, a), mask::empty(h, w));
  EXPECT_EQ(rle_subtract(a, mask::empty(h, w)), a);
  EXPECT_THROW(rle_subtract(a, mask::empty(3, 3)), InputError);
}

TEST(Placement, OcclusionTrimsAndDropsByVisibleFraction) {
  // 40 x 40 frame. A: 10 x 10 at (0, 0); B: 10 x 10 at (20, 0); C: 4 x 4 at
  // (30, 30), untouched; D: boxes-only 10 x 10 at (0, 20).
  const int H = 40, W = 40;
  cv::Mat ma = cv::Mat::zeros(H, W, CV_8UC1), mb = ma.clone(), mc = ma.clone();
  ma(cv::Rect(0, 0, 10, 10)).setTo(1);
  mb(cv::Rect(20, 0, 10, 10)).setTo(1);
  mc(cv::Rect(30, 30, 4, 4)).setTo(1);
  std::vector<Instance> inst = {mask_instance(1, ma), mask_instance(2, mb), mask_instance(3, mc)};
  Instance d;
  d.id = 4;
  d.bbox = {0, 20, 10, 10};
  inst.push_back(d);
  std::vector<uint64_t> ref;
  for (const Instance& i : inst) ref.push_back(occupied_area(i, W, H));
  EXPECT_EQ(ref, (std::vector<uint64_t>{100, 100, 16, 100}));

  // The paste covers 75 px of A (visible 0.25 < 0.3: dropped), 50 px of B
  // (visible 0.5: kept, trimmed), and 60 px of D (visible 0.4: kept).
  cv::Mat paste = cv::Mat::zeros(H, W, CV_8UC1);
  paste(cv::Rect(0, 0, 10, 7)).setTo(1);
  paste(cv::Rect(0, 7, 5, 1)).setTo(1);   // 70 + 5 = 75 px of A
  paste(cv::Rect(20, 0, 5, 10)).setTo(1); // 50 px of B
  paste(cv::Rect(0, 20, 6, 10)).setTo(1); // 60 px of D
  PlacementConfig pc;
  pc.allow_overlap = true;
  const Placer placer(pc);
  const uint32_t dropped = placer.occlude(inst, ref, encode_mat(paste));
  EXPECT_EQ(dropped, 1u);
  ASSERT_EQ(inst.size(), 3u);
  EXPECT_EQ(inst[0].id, 2);
  EXPECT_EQ(inst[1].id, 3);
  EXPECT_EQ(inst[2].id, 4);
  EXPECT_EQ(ref, (std::vector<uint64_t>{100, 16, 100})) << "kept parallel";
  EXPECT_EQ(inst[0].mask, encode_mat(mb & ~paste));
  EXPECT_EQ(inst[0].area, 50.0);
  EXPECT_EQ(inst[0].bbox, (std::array<double, 4>{25, 0, 5, 10}));
  EXPECT_EQ(inst[1].mask, encode_mat(mc)) << "untouched";
  EXPECT_EQ(inst[2].bbox, (std::array<double, 4>{0, 20, 10, 10})) << "a box is kept as is";

  // A second paste takes 20 more px of B: 30 / 100 = 0.3 is not below 0.3
  // (kept); then one more pixel drops it (visible fraction of the ORIGINAL area).
  cv::Mat p2 = cv::Mat::zeros(H, W, CV_8UC1);
  p2(cv::Rect(25, 0, 2, 10)).setTo(1);
  EXPECT_EQ(placer.occlude(inst, ref, encode_mat(p2)), 0u);
  EXPECT_EQ(inst[0].area, 30.0);
  cv::Mat p3 = cv::Mat::zeros(H, W, CV_8UC1);
  p3.at<uint8_t>(0, 27) = 1;
  EXPECT_EQ(placer.occlude(inst, ref, encode_mat(p3)), 1u);
  EXPECT_EQ(inst.front().id, 3);

  // min_visible 0 still drops an object with no pixel left.
  pc.min_visible = 0.0;
  std::vector<Instance> one = {mask_instance(9, mc)};
  std::vector<uint64_t> r1 = {16};
  EXPECT_EQ(Placer(pc).occlude(one, r1, encode_mat(mc)), 1u);
  EXPECT_TRUE(one.empty());
}

TEST(Placement, ConfigValidation) {
  PlacementConfig c;
  c.max_tries = 0;
  EXPECT_THROW(Placer{c}, ConfigError);
  c = PlacementConfig{};
  c.min_visible = 1.5;
  try {
    Placer{c};
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "augment.placement.min_visible");
  }
  c = PlacementConfig{};
  c.border = -1;
  EXPECT_THROW(Placer{c}, ConfigError);
}
