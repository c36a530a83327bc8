#include "server/engine/stats/running_mean.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>
#include <vector>

namespace gemserve::stats {
namespace {

TEST(RunningMeanTest, MatchesTwoPassMeanAndVariance) {
  std::mt19937_64 rng(11);
  // A large offset is where a naive sum-of-squares formula loses every digit.
  std::normal_distribution<double> value(1e6, 0.5);
  RunningMean running;
  std::vector<double> values;
  for (int i = 0; i < 10000; ++i) {
    values.push_back(value(rng));
    running.Add(values.back());
  }
  double sum = 0;
  for (const double x : values) sum += x;
  const double mean = sum / static_cast<double>(values.size());
  double squares = 0;
  for (const double x : values) squares += (x - mean) * (x - mean);
  const double variance = squares / static_cast<double>(values.size() - 1);

  EXPECT_EQ(running.count(), values.size());
  EXPECT_NEAR(running.mean(), mean, 1e-9 * std::abs(mean));
  EXPECT_NEAR(running.variance(), variance, 1e-7 * variance);
  const SampleSummary summary = running.summary();
  EXPECT_EQ(summary.count, running.count());
  EXPECT_EQ(summary.mean, running.mean());
  EXPECT_EQ(summary.variance, running.variance());
}

TEST(RunningMeanTest, EmptyAndSingleValue) {
  RunningMean running;
  EXPECT_EQ(running.count(), 0u);
  EXPECT_EQ(running.mean(), 0);
  EXPECT_EQ(running.variance(), 0);
  running.Add(4.5);
  EXPECT_EQ(running.count(), 1u);
  EXPECT_EQ(running.mean(), 4.5);
  EXPECT_EQ(running.variance(), 0);
}

TEST(RunningMeanTest, ConfidenceSequenceIsInfiniteUntilTheMinimumCount) {
  RunningMean running;
  for (uint64_t i = 0; i + 1 < kMinCount; ++i) running.Add(static_cast<double>(i % 3));
  Interval interval = running.ConfidenceSequence();
  EXPECT_TRUE(std::isinf(interval.lower) && interval.lower < 0);
  EXPECT_TRUE(std::isinf(interval.upper) && interval.upper > 0);
  EXPECT_EQ(interval.estimate, running.mean());

  running.Add(1);
  interval = running.ConfidenceSequence();
  ASSERT_TRUE(std::isfinite(interval.lower) && std::isfinite(interval.upper));
  const double radius = std::sqrt(running.variance() / kMinCount) * BoundaryMultiplier(kMinCount);
  EXPECT_DOUBLE_EQ(interval.upper - interval.estimate, radius);
  EXPECT_DOUBLE_EQ(interval.estimate - interval.lower, radius);
}

}  // namespace
}  // namespace gemserve::stats
