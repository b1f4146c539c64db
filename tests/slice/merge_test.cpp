// Merging of overlapping slices' detections (slice/merge.hpp): NMS and
// SAHI's greedy non-maximum merging on hand-made boxes, and on a real COCO
// object cut by two overlapping windows (issue 11, section 4: "sliced
// prediction merges an object cut by a slice edge into one detection").
#include <gtest/gtest.h>

#include <algorithm>
#include <string>
#include <vector>

#include "pasteflow/io/coco.hpp"
#include "pasteflow/mask/coco_mask.hpp"
#include "pasteflow/mask/rle.hpp"
#include "pasteflow/slice/merge.hpp"

using namespace pasteflow;
using slice::MergeMethod;
using slice::MergeMetric;
using slice::SliceDetection;

namespace {

SliceDetection box(int64_t cat, double score, double x, double y, double w, double h) {
  SliceDetection d;
  d.category_id = cat;
  d.score = score;
  d.bbox = {x, y, w, h};
  return d;
}

/// A local mask: a filled rectangle of rw x rh at (rx, ry) inside a w x h region at (x, y).
SliceDetection with_mask(SliceDetection d, int64_t x, int64_t y, uint32_t w, uint32_t h, int rx, int ry, int rw,
                         int rh) {
  std::vector<uint8_t> px(size_t(w) * h, 0);
  for (int r = ry; r < ry + rh; ++r)
    for (int c = rx; c < rx + rw; ++c) px[size_t(r) * w + size_t(c)] = 1;
  d.has_mask = true;
  d.mask = mask::encode(px.data(), h, w, w);
  d.mask_x = x;
  d.mask_y = y;
  return d;
}

}  // namespace

TEST(SliceMerge, BoxOverlapIsSahis) {
  const std::array<double, 4> a{0, 0, 10, 10}, b{5, 0, 10, 10}, small{2, 2, 4, 4}, far{50, 50, 3, 3};
  EXPECT_DOUBLE_EQ(slice::box_overlap(a, b, MergeMetric::kIou), 50.0 / 150.0);
  EXPECT_DOUBLE_EQ(slice::box_overlap(a, b, MergeMetric::kIos), 50.0 / 100.0);
  EXPECT_DOUBLE_EQ(slice::box_overlap(a, small, MergeMetric::kIou), 16.0 / 100.0);
  EXPECT_DOUBLE_EQ(slice::box_overlap(a, small, MergeMetric::kIos), 1.0);  // inside: IoS 1
  EXPECT_DOUBLE_EQ(slice::box_overlap(a, far, MergeMetric::kIou), 0.0);
  // A zero-area box matches nothing (SAHI would divide by zero).
  EXPECT_DOUBLE_EQ(slice::box_overlap(a, {3, 3, 0, 5}, MergeMetric::kIos), 0.0);
}

TEST(SliceMerge, ParsesMethodsAndMetricDefaults) {
  EXPECT_EQ(slice::parse_merge_method("nms"), MergeMethod::kNms);
  EXPECT_EQ(slice::parse_merge_method("greedy_nmm"), MergeMethod::kGreedyNmm);
  EXPECT_EQ(slice::parse_merge_metric("", MergeMethod::kNms), MergeMetric::kIou);
  EXPECT_EQ(slice::parse_merge_metric("", MergeMethod::kGreedyNmm), MergeMetric::kIos);
  EXPECT_EQ(slice::parse_merge_metric("iou", MergeMethod::kGreedyNmm), MergeMetric::kIou);
  try {
    slice::parse_merge_method("wbf");
    FAIL() << "no ConfigError";
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.reason(), "bad_value");
    EXPECT_EQ(e.where().key, "merge.method");
  }
  slice::MergeConfig c;
  c.threshold = 1.5;
  EXPECT_THROW(slice::validate(c), ConfigError);
}

TEST(SliceMerge, NmsIsClassWiseAndSuppressesAtThreshold) {
  std::vector<SliceDetection> d = {
      box(1, 0.7, 20, 20, 10, 10),  // 0: alone
      box(1, 0.9, 0, 0, 10, 10),    // 1: best
      box(1, 0.8, 1, 0, 10, 10),    // 2: IoU 90/110 with 1 -> suppressed
      box(2, 0.75, 1, 0, 10, 10),   // 3: same box, other category -> kept
      box(1, 0.6, 5, 0, 10, 10),    // 4: IoU 50/150 with 1, 60/140 with 2 (gone) -> kept at 0.4
  };
  EXPECT_EQ(slice::nms(d, MergeMetric::kIou, 0.5), (std::vector<size_t>{1, 3, 0, 4}));
  // Exactly at the threshold is suppressed (SAHI keeps only overlap < threshold).
  EXPECT_EQ(slice::nms(d, MergeMetric::kIou, 1.0 / 3.0), (std::vector<size_t>{1, 3, 0}));
  // IoS: 4 vs 1 = 0.5.
  EXPECT_EQ(slice::nms(d, MergeMetric::kIos, 0.6), (std::vector<size_t>{1, 3, 0, 4}));
  EXPECT_EQ(slice::nms(d, MergeMetric::kIos, 0.5), (std::vector<size_t>{1, 3, 0}));
  slice::MergeCounts c;
  const auto out = slice::merge(d, MergeMethod::kNms, MergeMetric::kIou, 0.5, &c);
  ASSERT_EQ(out.size(), 4u);
  EXPECT_EQ(out[0].score, 0.9);
  EXPECT_EQ(c.input, 5u);
  EXPECT_EQ(c.output, 4u);
  EXPECT_EQ(c.suppressed, 1u);
  EXPECT_EQ(c.merged, 0u);
}

TEST(SliceMerge, GreedyNmmAbsorbsMatchesIntoUnionBox) {
  std::vector<SliceDetection> d = {
      box(1, 0.8, 2, 1, 10, 10),    // 0: IoS with 1 = 72/100 -> merged into 1
      box(1, 0.9, 0, 0, 10, 10),    // 1: keeper
      box(2, 0.85, 0, 0, 10, 10),   // 2: other category: its own keeper
      box(1, 0.3, 40, 40, 5, 5),    // 3: alone
  };
  const auto plan = slice::greedy_nmm_plan(d, MergeMetric::kIos, 0.5);
  ASSERT_EQ(plan.size(), 3u);
  EXPECT_EQ(plan[0].first, 1u);
  EXPECT_EQ(plan[0].second, (std::vector<size_t>{0}));
  slice::MergeCounts c;
  const auto out = slice::merge(d, MergeMethod::kGreedyNmm, MergeMetric::kIos, 0.5, &c);
  ASSERT_EQ(out.size(), 3u);
  EXPECT_EQ(out[0].category_id, 1);
  EXPECT_EQ(out[0].score, 0.9);  // max
  EXPECT_EQ(out[0].bbox, (std::array<double, 4>{0, 0, 12, 11}));  // union box
  EXPECT_EQ(out[0].merged, 2u);
  EXPECT_EQ(out[1].category_id, 2);
  EXPECT_EQ(out[2].score, 0.3);
  EXPECT_EQ(c.merged, 1u);
  EXPECT_EQ(c.output, 3u);
}

TEST(SliceMerge, GreedyNmmRecheckIsStrictAndDropsTheFailedMatch) {
  // IoU exactly 0.5: matched by the plan (>=) but SAHI's has_match wants > 0.5,
  // so the match is neither merged nor kept.
  std::vector<SliceDetection> d = {box(1, 0.9, 0, 0, 10, 10), box(1, 0.8, 0, 0, 10, 20)};
  slice::MergeCounts c;
  const auto out = slice::merge(d, MergeMethod::kGreedyNmm, MergeMetric::kIou, 0.5, &c);
  ASSERT_EQ(out.size(), 1u);
  EXPECT_EQ(out[0].bbox, (std::array<double, 4>{0, 0, 10, 10}));
  EXPECT_EQ(c.rejected, 1u);
  EXPECT_EQ(c.merged, 0u);
  // The re-check is against the keeper as it grows: K absorbs T1 (grows to
  // 0..10 x 0..16), then T2 (IoU 0.6 with K's first box, 60/160 with the grown one) is dropped.
  std::vector<SliceDetection> e = {box(1, 0.9, 0, 0, 10, 10), box(1, 0.8, 0, 0, 10, 16), box(1, 0.7, 0, 4, 10, 6)};
  slice::MergeCounts c2;
  const auto out2 = slice::merge(e, MergeMethod::kGreedyNmm, MergeMetric::kIou, 0.55, &c2);
  ASSERT_EQ(out2.size(), 1u);
  EXPECT_EQ(out2[0].bbox, (std::array<double, 4>{0, 0, 10, 16}));
  EXPECT_EQ(c2.merged, 1u);
  EXPECT_EQ(c2.rejected, 1u);
}

TEST(SliceMerge, MergePairUnionsLocalMasksAtTheirOffsets) {
  // Two 4x4 squares, the second shifted by (2, 3): union 30 pixels (2 shared), region 7x8.
  const SliceDetection a = with_mask(box(1, 0.9, 10, 20, 4, 4), 10, 20, 4, 4, 0, 0, 4, 4);
  const SliceDetection b = with_mask(box(1, 0.5, 12, 23, 4, 4), 11, 22, 6, 6, 1, 1, 4, 4);
  const SliceDetection m = slice::merge_pair(a, b);
  EXPECT_EQ(m.mask_x, 10);
  EXPECT_EQ(m.mask_y, 20);
  EXPECT_EQ(m.mask.w, 7u);
  EXPECT_EQ(m.mask.h, 8u);
  EXPECT_EQ(mask::area(m.mask), 30u);
  const mask::Rle full = slice::full_mask(m, 40, 30);
  const mask::Rle expect =
      mask::merge({slice::full_mask(a, 40, 30), slice::full_mask(b, 40, 30)}, false);
  EXPECT_EQ(full, expect);
  EXPECT_EQ(mask::bbox(full), (std::array<double, 4>{10, 20, 6, 7}));
  EXPECT_EQ(m.bbox, (std::array<double, 4>{10, 20, 6, 7}));
}

TEST(SliceMerge, FullMaskRefusesImagesBeyond32BitRuns) {
  const SliceDetection a = with_mask(box(1, 0.9, 0, 0, 2, 2), 0, 0, 2, 2, 0, 0, 2, 2);
  try {
    slice::full_mask(a, 100000, 100000);
    FAIL() << "no InputError";
  } catch (const InputError& e) {
    EXPECT_EQ(e.reason(), "mask_too_large");
  }
}

TEST(SliceMerge, ObjectCutBySliceEdgeMergesIntoOneDetection) {
  // Real annotations: for the largest objects of coco_mini's val images, two
  // full-height windows overlap across the middle 60% of the object's box
  // (one ends 30% of the box past its centre, the other starts 30% before),
  // as a slice edge crossing the object does. Each window "detects" its piece
  // (the crop of the object's mask, translated back to full-image pixels).
  const io::CocoDataset ds = io::load_coco(std::string(PASTEFLOW_TEST_DATA) + "/coco_mini/instances_val2017.json");
  std::vector<size_t> order;
  for (size_t i = 0; i < ds.annotations.size(); ++i) {
    const io::AnnotationRecord& a = ds.annotations[i];
    if (a.iscrowd == 0 && a.seg_kind != io::SegmentationKind::kNone && a.bbox[2] >= 64) order.push_back(i);
  }
  std::stable_sort(order.begin(), order.end(),
                   [&](size_t a, size_t b) { return ds.annotations[a].area > ds.annotations[b].area; });
  ASSERT_GE(order.size(), 3u);
  int tested = 0;
  for (size_t k = 0; k < order.size() && tested < 3; ++k) {
    const io::AnnotationRecord& ann = ds.annotations[order[k]];
    const io::ImageRecord& im = ds.images[ann.image_index];
    const auto H = static_cast<uint32_t>(im.height), W = static_cast<uint32_t>(im.width);
    const mask::Rle full = mask::annotation_rle(ds, ann, H, W);
    const std::array<double, 4> fb = mask::bbox(full);
    const int cx = static_cast<int>(fb[0] + fb[2] / 2), ov = static_cast<int>(0.3 * fb[2]);
    const int a_w = cx + ov;          // window A: [0, cx + ov) x [0, H)
    const int b_x = cx - ov;          // window B: [cx - ov, W) x [0, H)
    ASSERT_GT(a_w, 0);
    ASSERT_LT(b_x, static_cast<int>(W));
    const mask::Rle piece_a = mask::crop(full, 0, 0, static_cast<uint32_t>(a_w), H);
    const mask::Rle piece_b = mask::crop(full, b_x, 0, W - static_cast<uint32_t>(b_x), H);
    std::vector<SliceDetection> dets = {
        slice::from_window(ann.category_id, 0.9, mask::bbox(piece_a), &piece_a, 0, 0, 0),
        slice::from_window(ann.category_id, 0.8, mask::bbox(piece_b), &piece_b, b_x, 0, 1),
    };
    // Each piece is a proper part of the object, kept as a small local mask.
    ASSERT_LT(mask::area(piece_a), mask::area(full));
    ASSERT_LT(mask::area(piece_b), mask::area(full));
    EXPECT_LE(uint64_t(dets[1].mask.w) * dets[1].mask.h, uint64_t(fb[2] + 1) * uint64_t(fb[3] + 1));
    // The pieces' boxes overlap enough for both metrics at 0.5 (else the object is not a test case).
    const double ios = slice::box_overlap(dets[0].bbox, dets[1].bbox, MergeMetric::kIos);
    const double iou = slice::box_overlap(dets[0].bbox, dets[1].bbox, MergeMetric::kIou);
    if (!(ios > 0.5 && iou > 0.5)) continue;
    SCOPED_TRACE("annotation " + std::to_string(ann.id));

    slice::MergeCounts c;
    const auto merged = slice::merge(dets, MergeMethod::kGreedyNmm, MergeMetric::kIos, 0.5, &c);
    ASSERT_EQ(merged.size(), 1u);
    EXPECT_EQ(c.merged, 1u);
    // Mask: the union of the pieces, which is the full mask (the windows cover the image).
    EXPECT_EQ(slice::full_mask(merged[0], H, W), full);
    EXPECT_EQ(mask::area(merged[0].mask), mask::area(full));
    // Box: the union of the pieces' boxes = the object's mask box.
    const auto& p = dets[0].bbox;
    const auto& q = dets[1].bbox;
    const double x1 = std::min(p[0], q[0]), y1 = std::min(p[1], q[1]);
    const double x2 = std::max(p[0] + p[2], q[0] + q[2]), y2 = std::max(p[1] + p[3], q[1] + q[3]);
    EXPECT_EQ(merged[0].bbox, (std::array<double, 4>{x1, y1, x2 - x1, y2 - y1}));
    EXPECT_EQ(merged[0].bbox, fb);
    EXPECT_EQ(merged[0].score, 0.9);
    EXPECT_EQ(merged[0].category_id, ann.category_id);

    // NMS at IoU 0.5: one detection kept, the better piece as it is.
    const auto kept = slice::merge(dets, MergeMethod::kNms, MergeMetric::kIou, 0.5);
    ASSERT_EQ(kept.size(), 1u);
    EXPECT_EQ(kept[0].score, 0.9);
    EXPECT_EQ(slice::full_mask(kept[0], H, W), mask::translate(piece_a, 0, 0, H, W));
    ++tested;
  }
  EXPECT_EQ(tested, 3) << "fewer than 3 large objects of coco_mini make a test case";
}

TEST(SliceMerge, FullMaskEqualsTranslateOfTheLocalMask) {
  // Random local masks (blobs, noise, full and empty columns, edge-touching)
  // placed at every kind of position: the direct run construction equals
  // mask::translate run for run.
  uint64_t state = 12345;
  auto next = [&] {
    state = state * 6364136223846793005ULL + 1442695040888963407ULL;
    return static_cast<uint32_t>(state >> 33);
  };
  for (int trial = 0; trial < 300; ++trial) {
    const uint32_t w = 1 + next() % 12, h = 1 + next() % 12;
    std::vector<uint8_t> px(size_t(w) * h);
    const uint32_t density = next() % 4;  // 0: empty, 3: dense
    for (auto& p : px) p = (next() % 4) < density ? 1 : 0;
    SliceDetection d;
    d.has_mask = true;
    d.mask = mask::encode(px.data(), h, w, w);
    const uint32_t W = w + next() % 10, H = h + next() % 10;
    d.mask_x = next() % (W - w + 1);
    d.mask_y = next() % (H - h + 1);
    const mask::Rle expect = mask::translate(d.mask, static_cast<int>(d.mask_x), static_cast<int>(d.mask_y), H, W);
    ASSERT_EQ(slice::full_mask(d, H, W), expect) << "trial " << trial;
  }
  // A region reaching beyond the canvas takes mask::translate (clipped).
  SliceDetection d = with_mask(box(1, 0.5, 0, 0, 4, 4), -2, 3, 4, 4, 0, 0, 4, 4);
  EXPECT_EQ(slice::full_mask(d, 5, 5), mask::translate(d.mask, -2, 3, 5, 5));
  EXPECT_EQ(mask::area(slice::full_mask(d, 5, 5)), 4u);
}
