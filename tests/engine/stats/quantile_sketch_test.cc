#include "server/engine/stats/quantile_sketch.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <vector>

namespace gemserve::stats {
namespace {

// The element of rank floor(q (n - 1)): the quantile the sketch promises to approximate.
double ExactQuantile(const std::vector<double>& sorted, double q) {
  return sorted[static_cast<size_t>(std::floor(q * static_cast<double>(sorted.size() - 1)))];
}

constexpr double kQuantiles[] = {0, 0.001, 0.01, 0.1, 0.25, 0.5, 0.75, 0.9, 0.95, 0.99, 0.999, 1};

TEST(QuantileSketchTest, WithinOnePercentOfExactQuantilesOnLogNormalLatencies) {
  std::mt19937_64 rng(7);
  std::lognormal_distribution<double> latency(std::log(0.010), 0.5);
  QuantileSketch sketch;
  std::vector<double> values;
  for (int i = 0; i < 100000; ++i) {
    values.push_back(latency(rng));
    sketch.Add(values.back());
  }
  std::sort(values.begin(), values.end());
  EXPECT_EQ(sketch.count(), values.size());
  for (const double q : kQuantiles) {
    const double exact = ExactQuantile(values, q);
    EXPECT_LE(std::abs(sketch.Quantile(q) - exact) / exact, 0.01 + 1e-12) << "q=" << q;
  }
}

TEST(QuantileSketchTest, CoarserAccuracyUsesFewerBuckets) {
  std::mt19937_64 rng(8);
  std::lognormal_distribution<double> latency(std::log(0.010), 1.0);
  QuantileSketch fine(0.01), coarse(0.05);
  std::vector<double> values;
  for (int i = 0; i < 20000; ++i) {
    values.push_back(latency(rng));
    fine.Add(values.back());
    coarse.Add(values.back());
  }
  std::sort(values.begin(), values.end());
  for (const double q : kQuantiles) {
    const double exact = ExactQuantile(values, q);
    EXPECT_LE(std::abs(coarse.Quantile(q) - exact) / exact, 0.05 + 1e-12) << "q=" << q;
  }
  EXPECT_LT(coarse.bucket_count() * 4, fine.bucket_count());
}

TEST(QuantileSketchTest, MemoryStaysBoundedOverAHugeDynamicRange) {
  // Values from 1e-300 to 1e300: about 69,000 buckets at 1% without the cap.
  std::mt19937_64 rng(9);
  std::uniform_real_distribution<double> exponent(-300, 300);
  QuantileSketch sketch(0.01, 2048);
  std::vector<double> values;
  for (int i = 0; i < 200000; ++i) {
    values.push_back(std::pow(10.0, exponent(rng)));
    sketch.Add(values.back());
    ASSERT_LE(sketch.bucket_count(), 2048u);
  }
  EXPECT_EQ(sketch.bucket_count(), 2048u);
  std::sort(values.begin(), values.end());
  // The lowest buckets were merged; the top ~10^17 of the range keeps 1% accuracy.
  for (const double q : {0.99, 0.999, 1.0}) {
    const double exact = ExactQuantile(values, q);
    EXPECT_LE(std::abs(sketch.Quantile(q) - exact) / exact, 0.01 + 1e-12) << "q=" << q;
  }
  // A low quantile lands in the merged bucket and reads high, never below the truth.
  EXPECT_GE(sketch.Quantile(0.01), ExactQuantile(values, 0.01));
}

TEST(QuantileSketchTest, ATinyCapStillAnswersTheTop) {
  QuantileSketch sketch(0.01, 4);
  for (int i = 1; i <= 1000; ++i) sketch.Add(i);
  EXPECT_LE(sketch.bucket_count(), 4u);
  EXPECT_NEAR(sketch.Quantile(1), 1000, 10);
  for (int i = 1; i <= 1000; ++i) sketch.Add(1e-6 * i);  // below everything: lowest bucket
  EXPECT_LE(sketch.bucket_count(), 4u);
  EXPECT_EQ(sketch.count(), 2000u);
  EXPECT_NEAR(sketch.Quantile(1), 1000, 10);
}

TEST(QuantileSketchTest, EmptyReadsZero) {
  QuantileSketch sketch;
  EXPECT_EQ(sketch.count(), 0u);
  for (const double q : kQuantiles) EXPECT_EQ(sketch.Quantile(q), 0) << q;
}

TEST(QuantileSketchTest, ZeroAndNegativeValuesReadZeroAndNonFiniteAreIgnored) {
  QuantileSketch sketch;
  sketch.Add(0);
  sketch.Add(-3);
  sketch.Add(std::numeric_limits<double>::quiet_NaN());
  sketch.Add(std::numeric_limits<double>::infinity());
  sketch.Add(2);
  EXPECT_EQ(sketch.count(), 3u);
  EXPECT_EQ(sketch.Quantile(0), 0);
  EXPECT_EQ(sketch.Quantile(0.5), 0);  // rank 1 of {0, 0, 2}
  EXPECT_NEAR(sketch.Quantile(1), 2, 0.02);
  // q outside [0, 1] is clamped; NaN reads as 0.
  EXPECT_EQ(sketch.Quantile(7), sketch.Quantile(1));
  EXPECT_EQ(sketch.Quantile(-1), 0);
  EXPECT_EQ(sketch.Quantile(std::numeric_limits<double>::quiet_NaN()), 0);
}

TEST(QuantileSketchTest, InvalidAccuracyFallsBackToOnePercent) {
  for (const double accuracy : {0.0, -1.0, 1.0, std::numeric_limits<double>::quiet_NaN()}) {
    QuantileSketch sketch(accuracy, 0);  // max_buckets 0 reads as 1
    sketch.Add(5);
    EXPECT_NEAR(sketch.Quantile(0.5), 5, 0.05) << accuracy;
    EXPECT_EQ(sketch.bucket_count(), 1u);
  }
}

}  // namespace
}  // namespace gemserve::stats
