// The whole copy-paste augmentation on real samples: strategies pick what
// they say, invariants hold for many seeds, results are deterministic and
// independent of threads, failures are counted, occlusion trims and drops.
#include "pasteflow/stages/paste.hpp"

#include <gtest/gtest.h>

#include <algorithm>
#include <map>
#include <set>
#include <thread>

#include "paste_fixture.hpp"

using namespace pasteflow;
using namespace pasteflow::stages;
using namespace paste_test;

namespace {

bool same_pixels(const cv::Mat& a, const cv::Mat& b) {
  if (a.size() != b.size() || a.type() != b.type()) return false;
  cv::Mat d;
  cv::absdiff(a, b, d);
  return cv::countNonZero(d.reshape(1)) == 0;
}

bool same_instance(const Instance& a, const Instance& b) {
  return a.id == b.id && a.category_id == b.category_id && a.mask == b.mask && a.bbox == b.bbox &&
         a.area == b.area && a.pasted == b.pasted && a.source_id == b.source_id && a.has_mask == b.has_mask;
}

bool same_sample(const Sample& a, const Sample& b) {
  if (!same_pixels(a.image, b.image) || a.instances.size() != b.instances.size()) return false;
  for (size_t i = 0; i < a.instances.size(); ++i)
    if (!same_instance(a.instances[i], b.instances[i])) return false;
  return a.paste.requested == b.paste.requested && a.paste.placed == b.paste.placed &&
         a.paste.failed == b.paste.failed && a.paste.tries == b.paste.tries &&
         a.paste.dropped_occluded == b.paste.dropped_occluded;
}

/// CV_8U 0/1 map of pixels where two images differ (any channel).
cv::Mat changed_pixels(const cv::Mat& a, const cv::Mat& b) {
  cv::Mat d;
  cv::absdiff(a, b, d);
  d = d.reshape(1, d.rows * d.cols);  // one row per pixel
  cv::Mat any;
  cv::reduce(d, any, 1, cv::REDUCE_MAX);
  return (any.reshape(1, a.rows) != 0) / 255;
}

/// Union of the decoded masks of the pasted instances.
cv::Mat pasted_union(const Sample& s) {
  cv::Mat u = cv::Mat::zeros(s.image.rows, s.image.cols, CV_8UC1);
  for (const Instance& inst : s.instances)
    if (inst.pasted) u |= decode_mat(inst.mask);
  return u;
}

/// Invariants of a paste run without allow_overlap, checked against the
/// sample before augmentation.
void check_no_overlap_run(const Sample& before, const Sample& after, const PasteConfig& cfg) {
  const PasteCounters& c = after.paste;
  ASSERT_EQ(c.requested, c.placed + c.failed);
  EXPECT_LE(c.tries, c.requested * static_cast<uint32_t>(cfg.placement.max_tries));
  EXPECT_GE(c.tries, c.placed);
  EXPECT_EQ(c.dropped_occluded, 0u);
  // Each successful paste adds exactly one annotation; the old ones are untouched.
  ASSERT_EQ(after.instances.size(), before.instances.size() + c.placed);
  for (size_t i = 0; i < before.instances.size(); ++i)
    EXPECT_TRUE(same_instance(before.instances[i], after.instances[i]));
  std::set<int64_t> eligible_ids;
  for (uint32_t i : Extractor(cfg.extract).eligible(before)) eligible_ids.insert(before.instances[i].id);
  std::set<int64_t> ids;
  for (const Instance& inst : before.instances) ids.insert(inst.id);
  const int W = after.image.cols, H = after.image.rows, b = cfg.placement.border;
  std::vector<cv::Mat> masks;
  for (const Instance& inst : after.instances) masks.push_back(decode_mat(inst.mask));
  for (size_t i = before.instances.size(); i < after.instances.size(); ++i) {
    const Instance& p = after.instances[i];
    EXPECT_TRUE(p.pasted);
    EXPECT_TRUE(eligible_ids.count(p.source_id)) << "pasted copy of a non-eligible object " << p.source_id;
    EXPECT_TRUE(ids.insert(p.id).second) << "duplicate id " << p.id;
    EXPECT_GT(p.id, cfg.composite.id_base);
    EXPECT_EQ(p.bbox, mask::bbox(p.mask));
    EXPECT_EQ(p.area, static_cast<double>(mask::area(p.mask)));
    // Border margin.
    const cv::Rect box = cv::boundingRect(masks[i]);
    EXPECT_GE(box.x, b);
    EXPECT_GE(box.y, b);
    EXPECT_LE(box.x + box.width, W - b);
    EXPECT_LE(box.y + box.height, H - b);
    // No overlap with any other object, original or pasted.
    for (size_t j = 0; j < masks.size(); ++j) {
      if (j == i) continue;
      EXPECT_EQ(cv::countNonZero(masks[i] & masks[j]), 0) << p.id << " overlaps " << after.instances[j].id;
    }
  }
  // Pixels outside the pasted masks are unchanged (hard paste).
  EXPECT_EQ(cv::countNonZero(changed_pixels(before.image, after.image) & ~pasted_union(after) & 1), 0);
}

PasteConfig config(const std::string& strategy, int copies, int k = 2) {
  PasteConfig c;
  c.strategy = strategy;
  c.copies = copies;
  c.num_objects = k;
  c.seed = 2024;
  c.composite.id_base = 10000000;
  return c;
}

std::vector<int64_t> pasted_sources(const Sample& s) {
  std::vector<int64_t> v;
  for (const Instance& inst : s.instances)
    if (inst.pasted) v.push_back(inst.source_id);
  return v;
}

}  // namespace

TEST(Paste, LeavesNonAugmentedSamplesAlone) {
  const Sample before = copy_of(kTable, 0, 0, /*augment=*/false);
  Sample s = copy_of(kTable, 0, 0, false);
  Paster{config("all", 3)}(s);
  EXPECT_TRUE(same_sample(before, s));
  EXPECT_EQ(s.paste.requested, 0u);
}

TEST(Paste, ChooseFollowsTheStrategy) {
  Rng rng(1);
  // one: a single position, N times.
  for (uint64_t seed = 0; seed < 50; ++seed) {
    Rng r(seed);
    const auto o = Paster(config("one", 4)).choose(9, r);
    ASSERT_EQ(o.size(), 4u);
    EXPECT_TRUE(std::all_of(o.begin(), o.end(), [&](uint32_t x) { return x == o[0] && x < 9; }));
  }
  // several: k distinct, round-robin N times.
  std::set<uint32_t> seen;
  for (uint64_t seed = 0; seed < 200; ++seed) {
    Rng r(seed);
    const auto o = Paster(config("several", 2, 3)).choose(7, r);
    ASSERT_EQ(o.size(), 6u);
    const std::set<uint32_t> distinct(o.begin(), o.end());
    EXPECT_EQ(distinct.size(), 3u);
    EXPECT_EQ(std::vector<uint32_t>(o.begin(), o.begin() + 3), std::vector<uint32_t>(o.begin() + 3, o.end()));
    seen.insert(distinct.begin(), distinct.end());
  }
  EXPECT_EQ(seen.size(), 7u) << "every object gets chosen sometimes";
  // several with fewer eligible objects than k: all of them.
  const auto few = Paster(config("several", 2, 5)).choose(3, rng);
  EXPECT_EQ(std::set<uint32_t>(few.begin(), few.end()), (std::set<uint32_t>{0, 1, 2}));
  EXPECT_EQ(few.size(), 6u);
  // all: every object, round-robin.
  EXPECT_EQ(Paster(config("all", 2)).choose(3, rng), (std::vector<uint32_t>{0, 1, 2, 0, 1, 2}));
  EXPECT_TRUE(Paster(config("all", 2)).choose(0, rng).empty());
}

TEST(Paste, StrategiesOnRealImages) {
  for (int64_t id : {kTable, kStreet}) {
    const Sample before = copy_of(id);
    const size_t eligible = Extractor().eligible(before).size();
    ASSERT_GE(eligible, 3u);
    for (uint64_t seq = 0; seq < 12; ++seq) {
      {  // one, N = 3: all pastes share one source
        const PasteConfig cfg = config("one", 3);
        Sample s = copy_of(id, seq);
        Paster{cfg}(s);
        check_no_overlap_run(before, s, cfg);
        EXPECT_EQ(s.paste.requested, 3u);
        const auto src = pasted_sources(s);
        EXPECT_EQ(std::set<int64_t>(src.begin(), src.end()).size(), src.empty() ? 0u : 1u);
      }
      {  // several, k = 3, N = 2
        const PasteConfig cfg = config("several", 2, 3);
        Sample s = copy_of(id, seq);
        Paster{cfg}(s);
        check_no_overlap_run(before, s, cfg);
        EXPECT_EQ(s.paste.requested, 6u);
        const auto src = pasted_sources(s);
        std::map<int64_t, int> n;
        for (int64_t x : src) ++n[x];
        EXPECT_LE(n.size(), 3u);
        for (const auto& kv : n) EXPECT_LE(kv.second, 2);
        if (s.paste.failed == 0) {
          EXPECT_EQ(n.size(), 3u);
        }
      }
      {  // all, N = 2
        const PasteConfig cfg = config("all", 2);
        Sample s = copy_of(id, seq);
        Paster{cfg}(s);
        check_no_overlap_run(before, s, cfg);
        EXPECT_EQ(s.paste.requested, 2 * eligible);
        std::map<int64_t, int> n;
        for (int64_t x : pasted_sources(s)) ++n[x];
        for (const auto& kv : n) EXPECT_LE(kv.second, 2);
        if (s.paste.failed == 0) {
          EXPECT_EQ(n.size(), eligible);
        }
      }
    }
  }
}

TEST(Paste, AnnotationIdsFollowThePasteOrder) {
  const PasteConfig cfg = config("all", 1);
  Sample s = copy_of(kTable, /*seq=*/5);
  const size_t n0 = s.instances.size();
  Paster{cfg}(s);
  ASSERT_GT(s.paste.placed, 0u);
  int64_t last = 0;
  for (size_t i = n0; i < s.instances.size(); ++i) {
    const int64_t id = s.instances[i].id;
    EXPECT_GE(id, pasted_annotation_id(cfg.composite, 5, 0));
    EXPECT_LT(id, pasted_annotation_id(cfg.composite, 6, 0));
    EXPECT_GT(id, last);
    last = id;
  }
  if (s.paste.failed == 0) {
    EXPECT_EQ(last, pasted_annotation_id(cfg.composite, 5, static_cast<uint32_t>(s.paste.requested - 1)));
  }
}

TEST(Paste, DeterministicAndIndependentOfThreadsAndOrder) {
  const PasteConfig cfg = config("several", 3, 3);
  const Paster paster(cfg);
  std::vector<Sample> serial, reversed, threaded;
  for (uint64_t seq = 0; seq < 8; ++seq) {
    const int64_t id = seq % 2 ? kStreet : kTable;
    serial.push_back(copy_of(id, seq, /*epoch=*/3));
    reversed.push_back(copy_of(id, seq, 3));
    threaded.push_back(copy_of(id, seq, 3));
  }
  for (Sample& s : serial) paster(s);
  for (auto it = reversed.rbegin(); it != reversed.rend(); ++it) paster(*it);
  std::thread t1([&] {
    for (size_t i = 0; i < threaded.size(); i += 2) paster(threaded[i]);
  });
  std::thread t2([&] {
    for (size_t i = 1; i < threaded.size(); i += 2) paster(threaded[i]);
  });
  t1.join();
  t2.join();
  for (size_t i = 0; i < serial.size(); ++i) {
    EXPECT_TRUE(same_sample(serial[i], reversed[i])) << i;
    EXPECT_TRUE(same_sample(serial[i], threaded[i])) << i;
  }
  // Same image at another seq, epoch or seed: a different augmentation.
  EXPECT_FALSE(same_sample(serial[0], serial[2])) << "seq 0 vs seq 2, both the table image";
  Sample other_epoch = copy_of(kTable, 0, 4);
  paster(other_epoch);
  EXPECT_FALSE(same_pixels(other_epoch.image, serial[0].image));
  PasteConfig cfg2 = cfg;
  cfg2.seed = cfg.seed + 1;
  Sample other_seed = copy_of(kTable, 0, 3);
  Paster{cfg2}(other_seed);
  EXPECT_FALSE(same_pixels(other_seed.image, serial[0].image));
  // By-value form.
  const Sample moved = paster(copy_of(kTable, 0, 3));
  EXPECT_TRUE(same_sample(moved, serial[0]));
}

TEST(Paste, FailuresAreCountedWhenTheImageIsFull) {
  // 60 x 60: a 5 x 5 small object A under a large object B covering every
  // pixel (occlusion check off so that A may still be copied).
  Sample s;
  s.augment = true;
  s.image = cv::Mat(60, 60, CV_8UC3, cv::Scalar(10, 20, 30));
  cv::Mat a = cv::Mat::zeros(60, 60, CV_8UC1);
  a(cv::Rect(20, 20, 5, 5)).setTo(1);
  s.instances = {mask_instance(1, a, 0), mask_instance(2, cv::Mat::ones(60, 60, CV_8UC1), 2)};
  const Sample before = s;
  PasteConfig cfg = config("all", 3);
  cfg.extract.occlusion = "none";
  cfg.transform.scale = 0.0;
  cfg.transform.rotation = 0.0;
  Paster{cfg}(s);
  EXPECT_EQ(s.paste.requested, 3u);
  EXPECT_EQ(s.paste.placed, 0u);
  EXPECT_EQ(s.paste.failed, 3u);
  EXPECT_EQ(s.paste.tries, 3u * 10u);
  EXPECT_EQ(s.instances.size(), 2u);
  EXPECT_TRUE(same_pixels(s.image, before.image));

  // Free half of the image: the pastes land there, counters add up.
  Sample t = before;
  t.image = before.image.clone();
  cv::Mat b = cv::Mat::ones(60, 60, CV_8UC1);
  b(cv::Rect(30, 0, 30, 60)).setTo(0);
  t.instances[1] = mask_instance(2, b, 2);
  const Sample t0 = t;
  Paster{cfg}(t);
  check_no_overlap_run(t0, t, cfg);
  EXPECT_GT(t.paste.placed, 0u);
}

TEST(Paste, AllowOverlapTrimsAndDropsOccludedObjects) {
  uint32_t total_dropped = 0, total_placed = 0, exact_runs = 0, dropped_in_exact = 0;
  for (int64_t id : {kTable, kStreet}) {
    for (uint64_t seq = 0; seq < 10; ++seq) {
      PasteConfig cfg = config("all", 3);
      cfg.placement.allow_overlap = true;
      cfg.placement.min_visible = 0.3;
      cfg.placement.border = 0;
      const Sample before = copy_of(id, seq);
      Sample s = copy_of(id, seq);
      Paster{cfg}(s);
      const PasteCounters& c = s.paste;
      ASSERT_EQ(c.requested, c.placed + c.failed);
      EXPECT_EQ(c.tries, c.placed + c.failed) << "one draw per paste";
      EXPECT_EQ(s.instances.size() + c.dropped_occluded, before.instances.size() + c.placed);
      total_dropped += c.dropped_occluded;
      total_placed += c.placed;
      // U = the union of the pasted objects still annotated. When none of
      // them was dropped, U is exactly the union of all placed regions (later
      // pastes only trim earlier ones) and the originals can be checked
      // exactly; otherwise only the weaker inclusions hold.
      const cv::Mat U = pasted_union(s);
      uint32_t pasted_left = 0;
      for (const Instance& inst : s.instances) pasted_left += inst.pasted;
      const bool exact = pasted_left == c.placed;
      exact_runs += exact;
      if (exact) {
        EXPECT_EQ(cv::countNonZero(changed_pixels(before.image, s.image) & ~U & 1), 0);
      }
      std::map<int64_t, const Instance*> after_by_id;
      for (const Instance& inst : s.instances) after_by_id[inst.id] = &inst;
      for (const Instance& orig : before.instances) {
        const cv::Mat m = decode_mat(orig.mask);
        const auto it = after_by_id.find(orig.id);
        if (!exact) {
          if (it == after_by_id.end()) continue;
          const cv::Mat kept = decode_mat(it->second->mask);
          EXPECT_EQ(cv::countNonZero(kept & ~m & 1), 0);
          EXPECT_EQ(cv::countNonZero(kept & U), 0);
          EXPECT_GE(double(cv::countNonZero(kept)) / cv::countNonZero(m), cfg.placement.min_visible);
          continue;
        }
        // Kept iff visible fraction >= min_visible, then trimmed exactly.
        const cv::Mat left = m & ~U & 1;
        const double frac = double(cv::countNonZero(left)) / cv::countNonZero(m);
        const bool keep = cv::countNonZero(left) > 0 && frac >= cfg.placement.min_visible;
        ASSERT_EQ(it != after_by_id.end(), keep) << "annotation " << orig.id << " visible " << frac;
        if (!keep) {
          dropped_in_exact += 1;
          continue;
        }
        EXPECT_EQ(it->second->mask, encode_mat(left));
        if (cv::countNonZero(left) == cv::countNonZero(m)) {
          EXPECT_TRUE(same_instance(*it->second, orig)) << "untouched objects keep their fields";
        } else {
          EXPECT_EQ(it->second->bbox, mask::bbox(it->second->mask));
          EXPECT_EQ(it->second->area, static_cast<double>(cv::countNonZero(left)));
        }
      }
      // Pasted objects are pairwise disjoint (each later one trimmed the earlier).
      std::vector<cv::Mat> pasted;
      for (const Instance& inst : s.instances)
        if (inst.pasted) pasted.push_back(decode_mat(inst.mask));
      for (size_t i = 0; i < pasted.size(); ++i)
        for (size_t j = i + 1; j < pasted.size(); ++j) EXPECT_EQ(cv::countNonZero(pasted[i] & pasted[j]), 0);
    }
  }
  EXPECT_GT(total_placed, 100u);
  EXPECT_GT(total_dropped, 0u) << "pasting 3x every object anywhere occludes some objects";
  EXPECT_GE(exact_runs, 5u);
  EXPECT_GT(dropped_in_exact, 0u);
}

TEST(Paste, BlurOnlyChangesPixelsInsideThePastedMasks) {
  PasteConfig hard_cfg = config("all", 1);
  PasteConfig soft_cfg = hard_cfg;
  soft_cfg.composite.blur_kernel = 5;
  const Sample before = copy_of(kStreet, 1);
  Sample hard = copy_of(kStreet, 1), soft = copy_of(kStreet, 1);
  Paster{hard_cfg}(hard);
  Paster{soft_cfg}(soft);
  ASSERT_EQ(hard.instances.size(), soft.instances.size());
  for (size_t i = 0; i < hard.instances.size(); ++i) EXPECT_TRUE(same_instance(hard.instances[i], soft.instances[i]));
  const cv::Mat U = pasted_union(soft);
  EXPECT_EQ(cv::countNonZero(changed_pixels(before.image, soft.image) & ~U & 1), 0);
  cv::Mat interior;
  cv::erode(U, interior, cv::Mat::ones(5, 5, CV_8UC1), cv::Point(-1, -1), 1, cv::BORDER_CONSTANT, cv::Scalar(0));
  const cv::Mat diff = changed_pixels(hard.image, soft.image);
  EXPECT_EQ(cv::countNonZero(diff & interior), 0);
  EXPECT_GT(cv::countNonZero(diff), 0);
}

TEST(Paste, SixteenBitAndGreyImagesGetTheSameGeometry) {
  const PasteConfig cfg = config("several", 2, 4);
  Sample rgb8 = copy_of(kTable, 7);
  Sample grey16 = copy_of(kTable, 7);
  cv::Mat g;
  cv::cvtColor(grey16.image, g, cv::COLOR_RGB2GRAY);
  g.convertTo(grey16.image, CV_16UC1, 257.0);
  const cv::Mat grey16_pixels = grey16.image.clone();
  Paster{cfg}(rgb8);
  Paster{cfg}(grey16);
  ASSERT_EQ(rgb8.instances.size(), grey16.instances.size());
  for (size_t i = 0; i < rgb8.instances.size(); ++i) EXPECT_TRUE(same_instance(rgb8.instances[i], grey16.instances[i]));
  EXPECT_EQ(grey16.image.type(), CV_16UC1);
  EXPECT_GT(grey16.paste.placed, 0u);
  EXPECT_EQ(cv::countNonZero(changed_pixels(grey16_pixels, grey16.image) & ~pasted_union(grey16) & 1), 0);
  EXPECT_GT(cv::countNonZero(changed_pixels(grey16_pixels, grey16.image)), 0);
  // Pasted 16-bit pixels come from the 16-bit image (multiples of 257 at
  // an identity transform are kept; here just check they use the full range).
  double mx = 0;
  cv::minMaxLoc(grey16.image, nullptr, &mx, nullptr, nullptr, pasted_union(grey16));
  EXPECT_GT(mx, 255.0);
}

TEST(Paste, BoxesOnlyDatasets) {
  Sample s = copy_of(kTable, 2);
  for (Instance& inst : s.instances) {
    inst.has_mask = false;
    inst.mask = mask::Rle{};
  }
  const Sample before = s;
  PasteConfig cfg = config("all", 1);
  Paster{cfg}(s);
  ASSERT_GT(s.paste.placed, 0u);
  ASSERT_EQ(s.instances.size(), before.instances.size() + s.paste.placed);
  cv::Mat boxes = cv::Mat::zeros(s.image.rows, s.image.cols, CV_8UC1);
  for (const Instance& inst : before.instances) boxes(box_pixels(inst.bbox, boxes.cols, boxes.rows)).setTo(1);
  for (size_t i = before.instances.size(); i < s.instances.size(); ++i) {
    const Instance& p = s.instances[i];
    EXPECT_FALSE(p.has_mask);
    EXPECT_TRUE(p.pasted);
    const cv::Mat written = decode_mat(p.mask);
    EXPECT_EQ(cv::countNonZero(written & boxes), 0) << "pasted box region overlaps an existing box";
    EXPECT_EQ(p.bbox, mask::bbox(p.mask));
  }
}

TEST(Paste, ConfigErrors) {
  PasteConfig c;
  c.strategy = "some";
  try {
    Paster{c};
    FAIL();
  } catch (const ConfigError& e) {
    EXPECT_EQ(e.where().key, "augment.strategy");
  }
  c = PasteConfig{};
  c.copies = 0;
  EXPECT_THROW(Paster{c}, ConfigError);
  c = PasteConfig{};
  c.placement.max_tries = 0;
  EXPECT_THROW(Paster{c}, ConfigError);
  // More pastes than the id block of a sample.
  c = config("all", 4);
  c.composite.ids_per_sample = 8;
  Sample s = copy_of(kTable);
  try {
    Paster{c}(s);
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.reason(), "paste_id_overflow");
  }
}
