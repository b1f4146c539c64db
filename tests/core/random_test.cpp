#include "pasteflow/core/random.hpp"

#include <gtest/gtest.h>

#include <vector>

namespace pasteflow {

TEST(Rng, SameKeySameStreamDifferentKeyDifferentStream) {
  Rng a(42, {7, 1}), b(42, {7, 1}), c(42, {7, 2}), d(43, {7, 1});
  for (int i = 0; i < 100; ++i) {
    const uint64_t x = a.next();
    EXPECT_EQ(x, b.next());
    EXPECT_NE(x, c.next());
    EXPECT_NE(x, d.next());
  }
}

TEST(Rng, UniformStaysInRangeAndCoversIt) {
  Rng r(1);
  double lo = 1, hi = 0, sum = 0;
  const int n = 100000;
  for (int i = 0; i < n; ++i) {
    const double u = r.uniform();
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    lo = std::min(lo, u);
    hi = std::max(hi, u);
    sum += u;
  }
  EXPECT_LT(lo, 1e-3);
  EXPECT_GT(hi, 1 - 1e-3);
  EXPECT_NEAR(sum / n, 0.5, 0.01);
}

TEST(Rng, BelowIsUnbiasedOverSmallRange) {
  Rng r(3);
  std::vector<int> hist(7, 0);
  for (int i = 0; i < 70000; ++i) ++hist[r.below(7)];
  for (int h : hist) EXPECT_NEAR(h, 10000, 400);
  for (int i = 0; i < 1000; ++i) {
    const int64_t v = r.range(-3, 3);
    ASSERT_GE(v, -3);
    ASSERT_LE(v, 3);
  }
}

TEST(Rng, StateRoundTripResumesTheStream) {
  Rng r(9);
  for (int i = 0; i < 10; ++i) r.next();
  const Rng::State st = r.state();
  const uint64_t expect = r.next();
  Rng other(0);
  other.set_state(st);
  EXPECT_EQ(other.next(), expect);
}

TEST(Rng, NormalHasUnitVariance) {
  Rng r(5);
  double s = 0, s2 = 0;
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double x = r.normal();
    s += x;
    s2 += x * x;
  }
  EXPECT_NEAR(s / n, 0.0, 0.01);
  EXPECT_NEAR(s2 / n, 1.0, 0.02);
}

}  // namespace pasteflow
