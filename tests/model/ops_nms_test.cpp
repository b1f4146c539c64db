// Unit tests of NMS and batched NMS against a brute-force reference written
// here from the definition (greedy in decreasing score order, ties by lower
// index, IoU > threshold suppresses, float IoU like torchvision's kernel),
// on random integer-grid boxes with many equal scores and duplicate boxes.
// Parity with torchvision itself: ops_parity_test.cpp.
#include <gtest/gtest.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <map>
#include <numeric>
#include <random>
#include <set>
#include <vector>

#include "pasteflow/core/error.hpp"
#include "pasteflow/model/ops.hpp"

namespace pasteflow::model::ops {
namespace {

struct Box {
  float x1, y1, x2, y2;
};

std::vector<int64_t> reference_nms(const std::vector<Box>& b, const std::vector<float>& s, double thr) {
  std::vector<int64_t> order(b.size());
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t c) { return s[a] > s[c]; });
  std::vector<bool> removed(b.size(), false);
  std::vector<int64_t> keep;
  for (size_t oi = 0; oi < order.size(); ++oi) {
    const int64_t i = order[oi];
    if (removed[i]) continue;
    keep.push_back(i);
    const float ai = (b[i].x2 - b[i].x1) * (b[i].y2 - b[i].y1);
    for (size_t oj = oi + 1; oj < order.size(); ++oj) {
      const int64_t j = order[oj];
      const float aj = (b[j].x2 - b[j].x1) * (b[j].y2 - b[j].y1);
      const float w = std::max(0.f, std::min(b[i].x2, b[j].x2) - std::max(b[i].x1, b[j].x1));
      const float h = std::max(0.f, std::min(b[i].y2, b[j].y2) - std::max(b[i].y1, b[j].y1));
      const float inter = w * h;
      const float iou = inter / (ai + aj - inter);
      if (iou > thr) removed[j] = true;
    }
  }
  return keep;
}

struct Problem {
  std::vector<Box> boxes;
  std::vector<float> scores;
  std::vector<int64_t> classes;
  at::Tensor tboxes, tscores, tidxs;
};

Problem random_problem(std::mt19937& rng, int n, int score_levels, int n_classes) {
  Problem p;
  std::uniform_int_distribution<int> pos(0, 60), size(1, 30), level(0, score_levels - 1), cls(0, n_classes - 1);
  for (int i = 0; i < n; ++i) {
    if (i > 3 && i % 7 == 0) {
      p.boxes.push_back(p.boxes[static_cast<size_t>(i / 2)]);  // exact duplicate
    } else {
      const float x = static_cast<float>(pos(rng)), y = static_cast<float>(pos(rng));
      p.boxes.push_back({x, y, x + static_cast<float>(size(rng)), y + static_cast<float>(size(rng))});
    }
    p.scores.push_back(static_cast<float>(level(rng)) / static_cast<float>(score_levels));
    p.classes.push_back(cls(rng));
  }
  p.tboxes = at::empty({n, 4}, at::kFloat);
  for (int i = 0; i < n; ++i) {
    p.tboxes[i][0] = p.boxes[i].x1;
    p.tboxes[i][1] = p.boxes[i].y1;
    p.tboxes[i][2] = p.boxes[i].x2;
    p.tboxes[i][3] = p.boxes[i].y2;
  }
  p.tscores = at::tensor(p.scores, at::kFloat);
  p.tidxs = at::tensor(p.classes, at::kLong);
  return p;
}

std::vector<int64_t> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

TEST(OpsNms, MatchesBruteForceWithTiesAndDuplicates) {
  std::mt19937 rng(5);
  int total_kept = 0, total = 0;
  for (int round = 0; round < 60; ++round) {
    const int n = 1 + round * 5;
    const int levels = round % 3 == 0 ? 1000000 : 1 + round % 5;  // 1 level: every score equal
    const Problem p = random_problem(rng, n, levels, 1);
    for (double thr : {0.0, 0.3, 0.5, 0.7, 1.0}) {
      const std::vector<int64_t> want = reference_nms(p.boxes, p.scores, thr);
      const std::vector<int64_t> got = to_vector(nms(p.tboxes, p.tscores, thr));
      ASSERT_EQ(got, want) << "round " << round << " thr " << thr;
      total_kept += static_cast<int>(got.size());
      total += n;
    }
  }
  // Suppression actually happened, but not everywhere.
  EXPECT_LT(total_kept, total);
  EXPECT_GT(total_kept, total / 10);
}

TEST(OpsNms, FloatIouAtTheThreshold) {
  // IoU = 30 / 100 exactly; in float32 that is 0.300000012 > 0.3 (double), so
  // torchvision's kernel suppresses the second box at threshold 0.3.
  const at::Tensor boxes = at::tensor(std::vector<float>{0, 0, 10, 10, 0, 0, 10, 3}, at::kFloat).reshape({2, 4});
  const at::Tensor scores = at::tensor(std::vector<float>{0.9f, 0.8f}, at::kFloat);
  EXPECT_EQ(to_vector(nms(boxes, scores, 0.3)), (std::vector<int64_t>{0}));
  EXPECT_EQ(to_vector(nms(boxes.to(at::kDouble), scores.to(at::kDouble), 0.3)), (std::vector<int64_t>{0, 1}));
  // Equal scores: the lower index wins, identical boxes are suppressed.
  const at::Tensor same = at::tensor(std::vector<float>{5, 5, 9, 9, 0, 0, 1, 1, 5, 5, 9, 9}, at::kFloat).reshape({3, 4});
  const at::Tensor equal = at::full({3}, 0.5f, at::kFloat);
  EXPECT_EQ(to_vector(nms(same, equal, 0.5)), (std::vector<int64_t>{0, 1}));
}

TEST(OpsNms, BatchedMatchesPerClassBruteForce) {
  std::mt19937 rng(9);
  for (int round = 0; round < 12; ++round) {
    // Rounds >= 6 have more than 1000 boxes: numel > 4000 selects the vanilla strategy.
    const int n = round < 6 ? 20 + 40 * round : 1001 + 150 * round;
    const Problem p = random_problem(rng, n, round % 2 == 0 ? 1000000 : 4, 1 + round % 4);
    for (double thr : {0.3, 0.6}) {
      std::set<int64_t> want;
      std::map<int64_t, std::vector<int64_t>> members;
      for (int i = 0; i < n; ++i) members[p.classes[i]].push_back(i);
      for (const auto& [cls, idx] : members) {
        std::vector<Box> b;
        std::vector<float> s;
        for (int64_t i : idx) {
          b.push_back(p.boxes[i]);
          s.push_back(p.scores[i]);
        }
        for (int64_t k : reference_nms(b, s, thr)) want.insert(idx[k]);
      }
      for (const at::Tensor& keep :
           {batched_nms(p.tboxes, p.tscores, p.tidxs, thr), batched_nms_vanilla(p.tboxes, p.tscores, p.tidxs, thr),
            batched_nms_coordinate_trick(p.tboxes, p.tscores, p.tidxs, thr)}) {
        const std::vector<int64_t> got = to_vector(keep);
        EXPECT_EQ(std::set<int64_t>(got.begin(), got.end()), want) << "round " << round;
        EXPECT_EQ(got.size(), want.size());
        for (size_t i = 1; i < got.size(); ++i) ASSERT_GE(p.scores[got[i - 1]], p.scores[got[i]]);
      }
    }
  }
}

TEST(OpsNms, EmptyInputsAndErrors) {
  const at::Tensor none = at::zeros({0, 4}, at::kFloat);
  const at::Tensor ns = at::zeros({0}, at::kFloat);
  EXPECT_EQ(nms(none, ns, 0.5).numel(), 0);
  EXPECT_EQ(nms(none, ns, 0.5).scalar_type(), at::kLong);
  EXPECT_EQ(batched_nms(none, ns, at::zeros({0}, at::kLong), 0.5).numel(), 0);
  EXPECT_THROW(nms(at::zeros({3, 5}), at::zeros({3}), 0.5), pasteflow::Error);
  EXPECT_THROW(nms(at::zeros({3, 4}), at::zeros({2}), 0.5), pasteflow::Error);
  EXPECT_THROW(nms(at::zeros({3, 4}, at::kFloat), at::zeros({3}, at::kDouble), 0.5), pasteflow::Error);
}

}  // namespace
}  // namespace pasteflow::model::ops
