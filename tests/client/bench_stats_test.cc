#include "client/bench_stats.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

namespace gemserve::client {
namespace {

TEST(ParseDurationTest, AcceptsMillisecondsSecondsMinutes) {
  double s = 0;
  ASSERT_TRUE(ParseDuration("500ms", &s));
  EXPECT_DOUBLE_EQ(s, 0.5);
  ASSERT_TRUE(ParseDuration("10s", &s));
  EXPECT_DOUBLE_EQ(s, 10);
  ASSERT_TRUE(ParseDuration("1.5m", &s));
  EXPECT_DOUBLE_EQ(s, 90);
}

TEST(ParseDurationTest, RejectsMissingUnitZeroNegativeAndUnknownUnits) {
  double s = 0;
  EXPECT_FALSE(ParseDuration("10", &s));
  EXPECT_FALSE(ParseDuration("0s", &s));
  EXPECT_FALSE(ParseDuration("-1s", &s));
  EXPECT_FALSE(ParseDuration("2h", &s));
  EXPECT_FALSE(ParseDuration("99999999999m", &s));  // past kMaxDurationSeconds
  EXPECT_TRUE(ParseDuration("1440m", &s));
  EXPECT_FALSE(ParseDuration("s", &s));
}

// Gaps of the schedule: the differences between successive arrival times.
std::vector<double> Gaps(double rate, uint64_t seed, size_t n) {
  PoissonArrivals arrivals(rate, seed);
  std::vector<double> gaps;
  double last = 0;
  for (size_t i = 0; i < n; ++i) {
    const double t = arrivals.Next();
    gaps.push_back(t - last);
    last = t;
  }
  return gaps;
}

// n = 200000 exponential gaps of mean 1/rate: the sample mean has relative standard error
// 1/sqrt(n) = 0.0022 and the sample E[gap^2] * rate^2 (2 for an exponential) has standard
// error sqrt(20/n) = 0.01; the bounds below are 5 standard errors.
TEST(PoissonArrivalsTest, MeanRateWithinFiveStandardErrors) {
  const double rate = 250;
  const size_t n = 200000;
  const std::vector<double> gaps = Gaps(rate, 1, n);
  const double mean = std::accumulate(gaps.begin(), gaps.end(), 0.0) / n;
  EXPECT_NEAR(mean * rate, 1.0, 5 / std::sqrt(static_cast<double>(n)));
}

TEST(PoissonArrivalsTest, GapsAreExponentialNotEvenlySpaced) {
  const double rate = 250;
  const size_t n = 200000;
  const std::vector<double> gaps = Gaps(rate, 1, n);
  double second_moment = 0;
  size_t above_mean = 0;
  for (double g : gaps) {
    EXPECT_GE(g, 0);
    second_moment += g * g * rate * rate;
    above_mean += g * rate > 1;
  }
  second_moment /= n;
  EXPECT_NEAR(second_moment, 2.0, 0.05);  // evenly spaced gaps give 1
  // P(gap > mean) = exp(-1) = 0.368; standard error sqrt(0.368 * 0.632 / n) = 0.0011.
  EXPECT_NEAR(static_cast<double>(above_mean) / n, std::exp(-1.0), 0.0055);
}

TEST(PoissonArrivalsTest, CountInAnIntervalMatchesTheRate) {
  // Arrivals in [0, 400 s) at 250/s: Poisson of mean 100000, standard deviation 316.
  PoissonArrivals arrivals(250, 7);
  size_t count = 0;
  while (arrivals.Next() < 400) ++count;
  EXPECT_NEAR(static_cast<double>(count), 100000, 5 * 316);
}

TEST(PoissonArrivalsTest, SameSeedSameScheduleOtherSeedOtherSchedule) {
  PoissonArrivals a(100, 42), b(100, 42), c(100, 43);
  bool differs = false;
  double last = 0;
  for (int i = 0; i < 100; ++i) {
    const double ta = a.Next();
    EXPECT_EQ(ta, b.Next());
    differs |= ta != c.Next();
    EXPECT_GE(ta, last);
    last = ta;
  }
  EXPECT_TRUE(differs);
}

TEST(PercentileTest, NearestRankOfOneToHundred) {
  std::vector<double> values(100);
  std::iota(values.begin(), values.end(), 1.0);
  std::shuffle(values.begin(), values.end(), std::mt19937(3));
  EXPECT_EQ(Percentile(values, 0.5), 50);
  EXPECT_EQ(Percentile(values, 0.9), 90);
  EXPECT_EQ(Percentile(values, 0.99), 99);
  EXPECT_EQ(Percentile(values, 1.0), 100);
  const Distribution d = Summarize(values);
  EXPECT_EQ(d.p50, 50);
  EXPECT_EQ(d.p90, 90);
  EXPECT_EQ(d.p99, 99);
  EXPECT_EQ(d.max, 100);
}

TEST(PercentileTest, SmallAndEmpty) {
  EXPECT_EQ(Percentile({}, 0.5), 0);
  EXPECT_EQ(Percentile({7}, 0.99), 7);
  // Ten values: p90 is the 9th smallest, p99 the 10th.
  const Distribution d = Summarize({10, 1, 9, 2, 8, 3, 7, 4, 6, 5});
  EXPECT_EQ(d.p50, 5);
  EXPECT_EQ(d.p90, 9);
  EXPECT_EQ(d.p99, 10);
  const Distribution none = Summarize({});
  EXPECT_EQ(none.p50, 0);
  EXPECT_EQ(none.max, 0);
}

TEST(ErrorTallyTest, CountsByCodeAndKeepsTheFirstMessage) {
  ErrorTally tally;
  EXPECT_TRUE(tally.Add("RESOURCE_EXHAUSTED", "queue full (1)", 0.5));
  EXPECT_FALSE(tally.Add("RESOURCE_EXHAUSTED", "queue full (2)", 0.7));
  EXPECT_TRUE(tally.Add("NOT_FOUND", "no variant \"x\"", 2.0));
  EXPECT_FALSE(tally.Add("RESOURCE_EXHAUSTED", "queue full (3)", 0.6));
  EXPECT_EQ(tally.latencies_ms(), (std::vector<double>{0.5, 0.7, 2.0, 0.6}));
  EXPECT_EQ(tally.total(), 4u);
  EXPECT_EQ(tally.by_code().at("RESOURCE_EXHAUSTED"), 3u);
  EXPECT_EQ(tally.by_code().at("NOT_FOUND"), 1u);
  EXPECT_EQ(tally.first_messages().at("RESOURCE_EXHAUSTED"), "queue full (1)");
  EXPECT_EQ(tally.first_messages().at("NOT_FOUND"), "no variant \"x\"");
  EXPECT_EQ(tally.Describe(), "NOT_FOUND 1, RESOURCE_EXHAUSTED 3");
  EXPECT_EQ(ErrorTally().Describe(), "");
}

RequestSample Stream(int tokens, double latency_ms, double ttft_ms) {
  RequestSample s;
  s.variant = "v";
  s.tokens = tokens;
  s.latency_ms = latency_ms;
  s.ttft_ms = ttft_ms;
  return s;
}

TEST(GenerationRatesTest, AggregateOverWallTimePerStreamIsTheMeanOfEachRequestsRate) {
  // 10 tokens in 0.1 s (100 tokens/s) and 30 in 1 s (30 tokens/s), in a 1 s run.
  const std::vector<RequestSample> samples = {Stream(10, 100, 10), Stream(30, 1000, 100)};
  const GenerationRates rates = ComputeGenerationRates(samples, 1.0);
  EXPECT_DOUBLE_EQ(rates.tokens_per_s, 40);             // 40 tokens / 1 s
  EXPECT_DOUBLE_EQ(rates.tokens_per_s_per_stream, 65);  // (100 + 30) / 2, not 40 / 1.1 s
  // Twice the wall time halves the aggregate, not what each stream saw.
  const GenerationRates slower = ComputeGenerationRates(samples, 2.0);
  EXPECT_DOUBLE_EQ(slower.tokens_per_s, 20);
  EXPECT_DOUBLE_EQ(slower.tokens_per_s_per_stream, 65);
  EXPECT_EQ(ComputeGenerationRates({}, 1.0).tokens_per_s_per_stream, 0);
}

TEST(GenerationRatesTest, InterTokenIsTheTimeAfterTheFirstTokenOverTheGaps) {
  const std::vector<double> gaps =
      InterTokenMs({Stream(5, 100, 20), Stream(1, 50, 50), Stream(3, 40, 10)});
  ASSERT_EQ(gaps.size(), 2u);  // one token: no gap
  EXPECT_DOUBLE_EQ(gaps[0], 20);  // (100 - 20) / 4
  EXPECT_DOUBLE_EQ(gaps[1], 15);  // (40 - 10) / 2
}

TEST(ShouldGiveUpTest, OnlyWhenEverythingFailedAfterTheGrace) {
  EXPECT_FALSE(ShouldGiveUp(0, 0, 10));                    // nothing finished yet
  EXPECT_FALSE(ShouldGiveUp(0, kGiveUpFailures - 1, 1));   // still in the grace
  EXPECT_TRUE(ShouldGiveUp(0, kGiveUpFailures, 0.1));      // 20 failures come first
  EXPECT_TRUE(ShouldGiveUp(0, 1, kGiveUpSeconds));         // 2 s come first
  EXPECT_FALSE(ShouldGiveUp(1, 1000, 60));                 // one success: keep going
}

}  // namespace
}  // namespace gemserve::client
