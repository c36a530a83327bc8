#include "server/engine/stats/confidence_sequence.h"

#include <gtest/gtest.h>

#include <cmath>

namespace gemserve::stats {
namespace {

TEST(ConfidenceSequenceTest, RhoMakesTheBoundaryNarrowestAtTheTarget) {
  const double rho = MixtureRho(kTargetCount, kAlpha);
  EXPECT_NEAR(rho, 121.8, 0.1);
  const double at_rho = BoundaryMultiplier(kTargetCount, rho, kAlpha);
  for (const double factor : {0.5, 0.9, 0.99, 1.01, 1.1, 2.0}) {
    EXPECT_GT(BoundaryMultiplier(kTargetCount, rho * factor, kAlpha), at_rho) << factor;
  }
  EXPECT_DOUBLE_EQ(BoundaryMultiplier(kTargetCount), at_rho);
  // The multiplier is the sequential price for peeking: about 3 where it is tightest,
  // against 1.96 for a single look, and wider early.
  EXPECT_NEAR(at_rho, 3.0, 0.05);
  EXPECT_GT(BoundaryMultiplier(20), 6.0);
}

// An independent recomputation in the parametrization of Waudby-Smith et al.'s
// Gaussian-mixture asymptotic confidence sequence,
//   mean +- sigma sqrt(2 (t r^2 + 1) / (t^2 r^2) ln(sqrt(t r^2 + 1) / alpha)),
// which is ours with r^2 = 1 / rho.
TEST(ConfidenceSequenceTest, MeanMatchesTheAsymptoticConfidenceSequenceOfTheLiterature) {
  const double r2 = 1 / MixtureRho(kTargetCount, kAlpha);
  for (const uint64_t n : {20u, 100u, 1000u, 123456u}) {
    const SampleSummary summary{n, 3.0, 4.0};
    const double t = static_cast<double>(n);
    const double radius =
        2.0 * std::sqrt(2 * (t * r2 + 1) / (t * t * r2) * std::log(std::sqrt(t * r2 + 1) / kAlpha));
    const Interval interval = MeanConfidenceSequence(summary);
    EXPECT_DOUBLE_EQ(interval.estimate, 3.0);
    EXPECT_NEAR(interval.upper - 3.0, radius, 1e-12 * radius) << n;
    EXPECT_NEAR(3.0 - interval.lower, radius, 1e-12 * radius) << n;
  }
}

TEST(ConfidenceSequenceTest, EqualCountsGiveTheSequenceOfThePairedDifferences) {
  // n pairs (x_c - x_b) have variance var_c + var_b: the one-sample sequence of them.
  const SampleSummary candidate{400, 1.5, 2.0};
  const SampleSummary baseline{400, 1.0, 3.0};
  const Interval difference = DifferenceConfidenceSequence(candidate, baseline, kAlpha);
  const Interval paired = MeanConfidenceSequence({400, 0.5, 5.0});
  EXPECT_DOUBLE_EQ(difference.estimate, 0.5);
  EXPECT_DOUBLE_EQ(difference.lower, paired.lower);
  EXPECT_DOUBLE_EQ(difference.upper, paired.upper);
}

TEST(ConfidenceSequenceTest, UnequalCountsUseTheVarianceWeightedHarmonicMeanAsTime) {
  const SampleSummary candidate{100, 0, 1.0};
  const SampleSummary baseline{900, 0, 3.0};
  const double variance = 1.0 / 100 + 3.0 / 900;
  const double t_eff = (1.0 + 3.0) / variance;  // 300: between the counts
  const Interval interval = DifferenceConfidenceSequence(candidate, baseline, kAlpha);
  EXPECT_NEAR(interval.upper, std::sqrt(variance) * BoundaryMultiplier(t_eff), 1e-12);
  // Symmetric in the arms, up to the sign of the difference.
  const Interval swapped = DifferenceConfidenceSequence(baseline, candidate, kAlpha);
  EXPECT_DOUBLE_EQ(swapped.upper, interval.upper);
}

TEST(ConfidenceSequenceTest, DifferenceNeedsTheMinimumCountInBothArms) {
  const SampleSummary enough{kMinCount, 1, 1};
  const SampleSummary few{kMinCount - 1, 2, 1};
  for (const Interval& interval :
       {DifferenceConfidenceSequence(enough, few), DifferenceConfidenceSequence(few, enough)}) {
    EXPECT_TRUE(std::isinf(interval.lower) && std::isinf(interval.upper));
  }
  EXPECT_DOUBLE_EQ(DifferenceConfidenceSequence(few, enough).estimate, 1);
  const Interval both = DifferenceConfidenceSequence(enough, enough);
  EXPECT_TRUE(std::isfinite(both.lower) && std::isfinite(both.upper));
}

TEST(ConfidenceSequenceTest, ConstantSamplesGiveAPoint) {
  const Interval interval = DifferenceConfidenceSequence({50, 2, 0}, {50, 1, 0});
  EXPECT_EQ(interval.lower, 1);
  EXPECT_EQ(interval.upper, 1);
}

TEST(ConfidenceSequenceTest, UnitIntervalPriorKeepsNoErrorsYetFromClaimingCertainty) {
  const SampleSummary no_errors{200, 0, 0};
  const SampleSummary regularized = WithUnitIntervalPrior(no_errors);
  EXPECT_DOUBLE_EQ(regularized.variance, 0.25 / 200);
  EXPECT_EQ(regularized.count, 200u);
  EXPECT_EQ(regularized.mean, 0);
  EXPECT_GT(MeanConfidenceSequence(regularized).upper, 0);
  // With data the pseudo-observation fades: (199 * 0.09 + 0.25) / 200 vs 0.09.
  EXPECT_NEAR(WithUnitIntervalPrior({200, 0.1, 0.09}).variance, 0.09, 0.001);
  EXPECT_EQ(WithUnitIntervalPrior({}).variance, 0);
}

TEST(ConfidenceSequenceTest, ExpIntervalMapsLogBoundsToRatios) {
  const Interval ratio = ExpInterval({std::log(1.05), std::log(1.01), std::log(1.1)});
  EXPECT_DOUBLE_EQ(ratio.estimate, 1.05);
  EXPECT_DOUBLE_EQ(ratio.lower, 1.01);
  EXPECT_DOUBLE_EQ(ratio.upper, 1.1);
  const Interval unknown = ExpInterval(Interval{});
  EXPECT_EQ(unknown.lower, 0);
  EXPECT_TRUE(std::isinf(unknown.upper));
}

}  // namespace
}  // namespace gemserve::stats
