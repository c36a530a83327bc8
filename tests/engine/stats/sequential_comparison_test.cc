#include "server/engine/stats/sequential_comparison.h"

#include <gtest/gtest.h>

#include <cmath>

namespace gemserve::stats {
namespace {

constexpr VerdictRule kLowerIsBetterRatio{1, Verdict::kBetter, Verdict::kWorse};
constexpr VerdictRule kOnlyWorseBelowOne{1, Verdict::kWorse, Verdict::kNoDifferenceYet};

TEST(SequentialComparisonTest, StartsUnknown) {
  const SequentialComparison comparison(kLowerIsBetterRatio);
  EXPECT_TRUE(std::isinf(comparison.interval().lower));
  EXPECT_TRUE(std::isinf(comparison.interval().upper));
  EXPECT_EQ(comparison.verdict(), Verdict::kNoDifferenceYet);
}

TEST(SequentialComparisonTest, ReportsTheLatestInterval) {
  SequentialComparison comparison(kLowerIsBetterRatio);
  comparison.Update({1.0, 0.8, 1.3});
  comparison.Update({1.1, 0.9, 1.4});
  EXPECT_EQ(comparison.interval().estimate, 1.1);
  EXPECT_EQ(comparison.interval().lower, 0.9);
  EXPECT_EQ(comparison.interval().upper, 1.4);
  EXPECT_EQ(comparison.verdict(), Verdict::kNoDifferenceYet);
}

TEST(SequentialComparisonTest, DecidesOnceTheNoDifferenceValueIsExcludedAndStays) {
  SequentialComparison comparison(kLowerIsBetterRatio);
  comparison.Update({1.1, 0.99, 1.2});
  EXPECT_EQ(comparison.verdict(), Verdict::kNoDifferenceYet);
  comparison.Update({1.1, 1.01, 1.2});
  EXPECT_EQ(comparison.verdict(), Verdict::kWorse);
  // A later, wider or contrary interval cannot undo it; the interval is the latest.
  comparison.Update({1.0, 0.5, 2.0});
  EXPECT_EQ(comparison.verdict(), Verdict::kWorse);
  comparison.Update({0.9, 0.8, 0.95});
  EXPECT_EQ(comparison.verdict(), Verdict::kWorse);
  EXPECT_EQ(comparison.interval().lower, 0.8);
  EXPECT_EQ(comparison.interval().upper, 0.95);

  SequentialComparison faster(kLowerIsBetterRatio);
  faster.Update({0.9, 0.85, 0.95});
  EXPECT_EQ(faster.verdict(), Verdict::kBetter);
}

TEST(SequentialComparisonTest, ASideWithoutAVerdictNeverDecides) {
  SequentialComparison agreement(kOnlyWorseBelowOne);
  agreement.Update({1.0, 1.0, 1.0});  // a shadow that always agrees
  EXPECT_EQ(agreement.verdict(), Verdict::kNoDifferenceYet);
  SequentialComparison disagreeing(kOnlyWorseBelowOne);
  disagreeing.Update({0.9, 0.85, 0.95});
  EXPECT_EQ(disagreeing.verdict(), Verdict::kWorse);
  const VerdictRule only_worse_above{0, Verdict::kNoDifferenceYet, Verdict::kWorse};
  SequentialComparison kl(only_worse_above);
  kl.Update({-0.1, -0.2, -0.05});
  EXPECT_EQ(kl.verdict(), Verdict::kNoDifferenceYet);
}

TEST(SequentialComparisonTest, VerdictNames) {
  EXPECT_STREQ(VerdictName(Verdict::kNoDifferenceYet), "no difference yet");
  EXPECT_STREQ(VerdictName(Verdict::kBetter), "better");
  EXPECT_STREQ(VerdictName(Verdict::kWorse), "worse");
}

}  // namespace
}  // namespace gemserve::stats
