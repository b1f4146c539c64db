// bf16 learns as fp32 does (issue 14, label slow; runs after the two
// synthetic learning tests, ctest fixture e2e_shapes): the bf16 run's bbox
// AP50 must not fall more than 0.03 below the fp32 run's at the same
// iteration count and seed. One-sided: another rounding is another training
// trajectory, and the trajectories of fp32 itself differ by 0.03 in bbox
// AP50 between pipeline seeds 0 and 1; bf16 came out 0.048 (seed 0) and
// 0.087 (seed 1) above fp32 (README, "Mixed precision").
#include "e2e/synthetic_learning.hpp"

namespace {

using namespace pasteflow::testing::e2e;

TEST(SyntheticLearningBf16, LearnsAsFp32AtTheSameIterationsAndSeed) {
  if (const std::string why = bf16_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const std::optional<LearningRun> fp32 = load_run("off"), bf16 = load_run("bf16");
  ASSERT_TRUE(fp32.has_value()) << "no fp32 result in " << results_file("off") << " (did SyntheticLearning run?)";
  ASSERT_TRUE(bf16.has_value()) << "no bf16 result in " << results_file("bf16");
  std::printf("synthetic shapes: bbox AP50 fp32 %.3f, bf16 %.3f (difference %+.3f); segm AP50 fp32 %.3f, bf16 "
              "%.3f; train + evaluate fp32 %.1f min, bf16 %.1f min (run side by side)\n",
              fp32->ap50, bf16->ap50, bf16->ap50 - fp32->ap50, fp32->segm_ap50, bf16->segm_ap50,
              fp32->seconds / 60.0, bf16->seconds / 60.0);
  EXPECT_EQ(bf16->iter, fp32->iter);
  EXPECT_GE(bf16->ap50, fp32->ap50 - 0.03) << "bf16 autocast learns worse than fp32";
}

}  // namespace
