#include "server/engine/stats/experiment_statistics.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "server/engine/stats/confidence_sequence.h"

namespace gemserve::stats {
namespace {

std::vector<std::string> ArmNames(const ExperimentReport& report) {
  std::vector<std::string> names;
  for (const ArmReport& arm : report.arms) names.push_back(arm.variant);
  return names;
}

std::vector<std::string> MetricNames(const PairReport& pair) {
  std::vector<std::string> names;
  for (const ComparisonReport& comparison : pair.comparisons) names.push_back(comparison.metric);
  return names;
}

const ComparisonReport& Comparison(const PairReport& pair, const std::string& metric) {
  for (const ComparisonReport& comparison : pair.comparisons) {
    if (comparison.metric == metric) return comparison;
  }
  ADD_FAILURE() << "no " << metric;
  static const ComparisonReport missing;
  return missing;
}

bool Finite(const Interval& interval) {
  return std::isfinite(interval.lower) && std::isfinite(interval.upper);
}

TEST(ExperimentStatisticsTest, ArmsInInsertionOrderComparedWithTheFirst) {
  ExperimentStatistics stats({"gelu", "gem-n1", "gelu", "relu"});
  stats.AddArm("gem-n1");  // present: a no-op
  stats.AddArm("segem");
  const ExperimentReport report = stats.Report();
  EXPECT_EQ(ArmNames(report), (std::vector<std::string>{"gelu", "gem-n1", "relu", "segem"}));
  // Nothing recorded: a difference reads 0 (-inf, +inf), a ratio 1 [0, +inf).
  const Interval ratio = Comparison(report.pairs[0], "latency_ratio").value;
  EXPECT_EQ(ratio.estimate, 1);
  EXPECT_EQ(ratio.lower, 0);
  EXPECT_TRUE(std::isinf(ratio.upper));
  const Interval errors = Comparison(report.pairs[0], "error_rate_diff").value;
  EXPECT_EQ(errors.estimate, 0);
  EXPECT_TRUE(std::isinf(errors.lower) && errors.lower < 0);
  ASSERT_EQ(report.pairs.size(), 3u);
  for (size_t i = 0; i < report.pairs.size(); ++i) {
    EXPECT_EQ(report.pairs[i].baseline, "gelu");
    EXPECT_EQ(report.pairs[i].candidate, report.arms[i + 1].variant);
    EXPECT_FALSE(report.pairs[i].shadow);
    // Without feedback only the two request metrics are listed.
    EXPECT_EQ(MetricNames(report.pairs[i]),
              (std::vector<std::string>{"latency_ratio", "error_rate_diff"}));
  }
  EXPECT_EQ(report.shadow_dropped, 0u);
}

TEST(ExperimentStatisticsTest, UnknownArmsAreAddedOnTheFlyButShadowsAreNotArms) {
  ExperimentStatistics stats({});
  stats.RecordRequest("first", 0.01, true);  // becomes the baseline
  stats.RecordLabel("second", true);
  stats.RecordReward("third", 0.5);
  stats.RecordShadow("fourth", "fifth", 1, 0, 1);
  const ExperimentReport report = stats.Report();
  EXPECT_EQ(ArmNames(report), (std::vector<std::string>{"first", "second", "third"}));
  ASSERT_EQ(report.pairs.size(), 3u);  // two routed pairs, one shadow pair
  EXPECT_EQ(report.pairs[0].baseline, "first");
  EXPECT_TRUE(report.pairs[2].shadow);
  EXPECT_EQ(report.pairs[2].baseline, "fourth");
  EXPECT_EQ(report.pairs[2].candidate, "fifth");
  EXPECT_TRUE(ExperimentStatistics({}).Report().arms.empty());
}

TEST(ExperimentStatisticsTest, CountsRequestsErrorsLabelsAndRewards) {
  ExperimentStatistics stats({"a"});
  for (int i = 0; i < 100; ++i) stats.RecordRequest("a", 0.010 * (1 + i % 4), i % 10 != 0);
  stats.RecordRequest("a", 99.0, false);  // an error's latency is not recorded
  for (int i = 0; i < 40; ++i) stats.RecordLabel("a", i % 4 != 0);
  for (int i = 0; i < 30; ++i) stats.RecordReward("a", 0.5);
  const ArmReport arm = stats.Report().arms.at(0);
  EXPECT_EQ(arm.requests, 101u);
  EXPECT_EQ(arm.errors, 11u);
  EXPECT_DOUBLE_EQ(arm.error_rate.estimate, 11.0 / 101);
  EXPECT_LT(arm.error_rate.lower, 11.0 / 101);
  EXPECT_GT(arm.error_rate.upper, 11.0 / 101);
  EXPECT_EQ(arm.labelled, 40u);
  EXPECT_DOUBLE_EQ(arm.accuracy.estimate, 0.75);
  EXPECT_EQ(arm.rewarded, 30u);
  EXPECT_DOUBLE_EQ(arm.reward.estimate, 0.5);
  EXPECT_TRUE(Finite(arm.reward));
  EXPECT_GT(arm.reward.upper, 0.5);  // constant rewards still get a width
  // 90 successes at 10/20/30/40 ms; p99 is 40 ms, not the 99 s error.
  EXPECT_NEAR(arm.latency_p50, 0.020, 0.0002);
  EXPECT_NEAR(arm.latency_p99, 0.040, 0.0004);
  EXPECT_NEAR(arm.latency_p95, 0.040, 0.0004);
}

TEST(ExperimentStatisticsTest, BoundsAreInfiniteUntilTheMinimumCount) {
  ExperimentStatistics stats({"a", "b"});
  auto serve = [&stats](int n) {
    for (int i = 0; i < n; ++i) {
      for (const char* arm : {"a", "b"}) stats.RecordRequest(arm, 0.01 + 0.001 * (i % 5), true);
    }
  };
  serve(static_cast<int>(kMinCount) - 1);
  ExperimentReport report = stats.Report();
  EXPECT_FALSE(Finite(report.arms[0].error_rate));
  EXPECT_FALSE(Finite(Comparison(report.pairs[0], "error_rate_diff").value));
  const Interval ratio = Comparison(report.pairs[0], "latency_ratio").value;
  EXPECT_EQ(ratio.lower, 0);  // exp(-inf): a ratio knows nothing yet
  EXPECT_TRUE(std::isinf(ratio.upper));
  EXPECT_EQ(Comparison(report.pairs[0], "latency_ratio").observations, kMinCount - 1);

  serve(1);
  report = stats.Report();
  EXPECT_TRUE(Finite(report.arms[0].error_rate));
  EXPECT_TRUE(Finite(Comparison(report.pairs[0], "error_rate_diff").value));
  EXPECT_TRUE(Finite(Comparison(report.pairs[0], "latency_ratio").value));
  EXPECT_DOUBLE_EQ(Comparison(report.pairs[0], "latency_ratio").value.estimate, 1);
}

TEST(ExperimentStatisticsTest, FeedbackComparisonsAppearOnceBothArmsHaveSome) {
  ExperimentStatistics stats({"a", "b"});
  stats.RecordLabel("a", true);
  stats.RecordReward("b", 1);
  EXPECT_EQ(MetricNames(stats.Report().pairs.at(0)),
            (std::vector<std::string>{"latency_ratio", "error_rate_diff"}));
  stats.RecordLabel("b", false);
  stats.RecordReward("a", 0);
  const PairReport pair = stats.Report().pairs.at(0);
  EXPECT_EQ(MetricNames(pair), (std::vector<std::string>{"latency_ratio", "error_rate_diff",
                                                         "accuracy_diff", "reward_diff"}));
  EXPECT_DOUBLE_EQ(Comparison(pair, "accuracy_diff").value.estimate, -1);
  EXPECT_DOUBLE_EQ(Comparison(pair, "reward_diff").value.estimate, 1);
  EXPECT_EQ(Comparison(pair, "accuracy_diff").observations, 1u);
}

TEST(ExperimentStatisticsTest, ClearDifferencesGetVerdictsInTheRightDirection) {
  ExperimentStatistics stats({"baseline", "candidate"});
  std::mt19937_64 rng(21);
  std::lognormal_distribution<double> fast(std::log(0.010), 0.3), slow(std::log(0.015), 0.3);
  std::bernoulli_distribution rare(0.01), frequent(0.2), mostly(0.9), sometimes(0.6);
  for (int i = 0; i < 2000; ++i) {
    stats.RecordRequest("baseline", fast(rng), !rare(rng));
    stats.RecordRequest("candidate", slow(rng), !frequent(rng));
    stats.RecordLabel("baseline", mostly(rng));
    stats.RecordLabel("candidate", sometimes(rng));
    stats.RecordReward("baseline", 0.3);
    stats.RecordReward("candidate", 0.7);
  }
  const PairReport pair = stats.Report().pairs.at(0);
  EXPECT_EQ(Comparison(pair, "latency_ratio").verdict, Verdict::kWorse);
  EXPECT_NEAR(Comparison(pair, "latency_ratio").value.estimate, 1.5, 0.05);
  EXPECT_EQ(Comparison(pair, "error_rate_diff").verdict, Verdict::kWorse);
  EXPECT_EQ(Comparison(pair, "accuracy_diff").verdict, Verdict::kWorse);
  EXPECT_EQ(Comparison(pair, "reward_diff").verdict, Verdict::kBetter);
  // Successful requests only: the smaller arm (candidate, 20% errors) has about 1600.
  EXPECT_NEAR(static_cast<double>(Comparison(pair, "latency_ratio").observations), 1600, 80);
  EXPECT_EQ(Comparison(pair, "error_rate_diff").observations, 2000u);
}

TEST(ExperimentStatisticsTest, ShadowPairsArePairedOneSampleComparisons) {
  ExperimentStatistics stats({"gelu", "gem-n1"});
  std::mt19937_64 rng(31);
  std::bernoulli_distribution disagrees(0.1);
  std::lognormal_distribution<double> noise(0, 0.2);
  std::exponential_distribution<double> kl(1 / 0.02);
  for (int i = 0; i < 3000; ++i) {
    // gem-n1 disagrees 10% of the time and is 10% slower; relu is the primary's twin.
    stats.RecordShadow("gelu", "gem-n1", disagrees(rng) ? 0 : 1, kl(rng), 1.1 * noise(rng));
    stats.RecordShadow("gelu", "relu", 1, 0, noise(rng));
  }
  for (int i = 0; i < 7; ++i) stats.RecordShadowDropped();
  const ExperimentReport report = stats.Report();
  EXPECT_EQ(report.shadow_dropped, 7u);
  ASSERT_EQ(report.pairs.size(), 3u);  // gem-n1 vs gelu, then the two shadow pairs
  const PairReport& different = report.pairs[1];
  const PairReport& twin = report.pairs[2];
  EXPECT_TRUE(different.shadow && twin.shadow);
  EXPECT_EQ(different.candidate, "gem-n1");
  EXPECT_EQ(twin.candidate, "relu");
  EXPECT_EQ(MetricNames(different), (std::vector<std::string>{
                                        "shadow_agreement", "shadow_kl", "shadow_latency_ratio"}));

  EXPECT_EQ(Comparison(different, "shadow_agreement").verdict, Verdict::kWorse);
  EXPECT_NEAR(Comparison(different, "shadow_agreement").value.estimate, 0.9, 0.02);
  EXPECT_EQ(Comparison(different, "shadow_kl").verdict, Verdict::kWorse);
  EXPECT_EQ(Comparison(different, "shadow_latency_ratio").verdict, Verdict::kWorse);
  EXPECT_NEAR(Comparison(different, "shadow_latency_ratio").value.estimate, 1.1, 0.02);
  EXPECT_EQ(Comparison(different, "shadow_agreement").observations, 3000u);

  EXPECT_EQ(Comparison(twin, "shadow_agreement").verdict, Verdict::kNoDifferenceYet);
  EXPECT_EQ(Comparison(twin, "shadow_kl").verdict, Verdict::kNoDifferenceYet);
  EXPECT_EQ(Comparison(twin, "shadow_latency_ratio").verdict, Verdict::kNoDifferenceYet);
  EXPECT_LE(Comparison(twin, "shadow_latency_ratio").value.lower, 1);
  EXPECT_GE(Comparison(twin, "shadow_latency_ratio").value.upper, 1);
}

TEST(ExperimentStatisticsTest, InvalidValuesAreDroppedNotFatal) {
  constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  ExperimentStatistics stats({"a"});
  stats.RecordRequest("a", kNan, true);
  stats.RecordRequest("a", -1, true);
  stats.RecordRequest("a", 0, true);
  stats.RecordRequest("a", kInf, true);
  stats.RecordReward("a", kNan);
  stats.RecordReward("a", 7);  // clamped to 1
  stats.RecordShadow("a", "b", kNan, -1e-9, 0);
  stats.RecordShadow("a", "b", 3, kInf, -2);
  const ExperimentReport report = stats.Report();
  const ArmReport& arm = report.arms.at(0);
  EXPECT_EQ(arm.requests, 4u);  // counted, latency not recorded
  EXPECT_EQ(arm.latency_p99, 0);
  EXPECT_EQ(arm.rewarded, 1u);
  EXPECT_EQ(arm.reward.estimate, 1);
  const PairReport& shadow = report.pairs.back();
  EXPECT_EQ(Comparison(shadow, "shadow_agreement").observations, 1u);
  EXPECT_EQ(Comparison(shadow, "shadow_agreement").value.estimate, 1);  // 3 clamped to 1
  EXPECT_EQ(Comparison(shadow, "shadow_kl").observations, 1u);
  EXPECT_EQ(Comparison(shadow, "shadow_kl").value.estimate, 0);  // -1e-9 reads 0
  EXPECT_EQ(Comparison(shadow, "shadow_latency_ratio").observations, 0u);
}

TEST(ExperimentStatisticsTest, ConcurrentRecordingLosesNothing) {
  ExperimentStatistics stats({"a", "b"});
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&stats, t] {
      const std::string arm = t % 2 == 0 ? "a" : "b";
      for (int i = 0; i < 5000; ++i) {
        stats.RecordRequest(arm, 0.01, i % 100 != 0);
        stats.RecordShadow("a", "b", 1, 0, 1);
        if (i % 500 == 0) stats.Report();
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  const ExperimentReport report = stats.Report();
  EXPECT_EQ(report.arms[0].requests, 10000u);
  EXPECT_EQ(report.arms[1].requests, 10000u);
  EXPECT_EQ(report.arms[0].errors, 100u);
  EXPECT_EQ(Comparison(report.pairs.back(), "shadow_agreement").observations, 20000u);
}

}  // namespace
}  // namespace gemserve::stats
