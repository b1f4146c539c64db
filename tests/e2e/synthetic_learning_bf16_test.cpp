// The synthetic learning test's run under bf16 autocast (issue 14, label
// slow): the same data (generate shapes, seed 1), config, seed and
// iterations as synthetic_learning_test.cpp, with solver.amp=bf16. It must
// learn (bbox AP50 >= 0.5); its numbers go to the fixture e2e_shapes, and
// synthetic_learning_compare_test.cpp compares them with the fp32 run's. The
// two runs are separate tests so that ctest runs them side by side.
#include "e2e/synthetic_learning.hpp"

namespace {

using namespace pasteflow::testing::e2e;

TEST(SyntheticLearningBf16, SameRunUnderBf16AutocastLearns) {
  forget_run("bf16");
  if (const std::string why = bf16_skip_reason(); !why.empty()) GTEST_SKIP() << why;
  const fs::path dir = scratch("bf16");
  generate_shapes(dir);
  ASSERT_FALSE(::testing::Test::HasFatalFailure());
  const LearningRun bf16 = train_shapes(dir, "bf16");
  std::printf("synthetic shapes, bf16: bbox AP50 %.3f, bbox AP %.3f, segm AP50 %.3f after %lld iterations; "
              "train + evaluate %.1f min\n",
              bf16.ap50, bf16.ap, bf16.segm_ap50, static_cast<long long>(bf16.iter), bf16.seconds / 60.0);
  EXPECT_GE(bf16.ap50, 0.5);
  EXPECT_GE(bf16.segm_ap50, 0.3);
  if (bf16.iter > 0) save_run("bf16", bf16);
  fs::remove_all(dir);
}

}  // namespace
