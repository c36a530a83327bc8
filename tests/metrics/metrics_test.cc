#include "server/metrics/metrics.h"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <limits>
#include <map>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include <gtest/gtest.h>

namespace gemserve {
namespace {

using prometheus::ClientMetric;
using prometheus::MetricFamily;
using LabelMap = std::map<std::string, std::string>;

// The series of family `name` with exactly `labels`, or nullptr.
const ClientMetric* Find(const std::vector<MetricFamily>& families, const std::string& name,
                         const LabelMap& labels = {}) {
  for (const MetricFamily& family : families) {
    if (family.name != name) continue;
    for (const ClientMetric& metric : family.metric) {
      LabelMap have;
      for (const auto& label : metric.label) have[label.name] = label.value;
      if (have == labels) return &metric;
    }
  }
  return nullptr;
}

size_t SeriesCount(const std::vector<MetricFamily>& families, const std::string& name) {
  for (const MetricFamily& family : families) {
    if (family.name == name) return family.metric.size();
  }
  return 0;
}

// Cumulative count of the bucket with upper bound `le`.
uint64_t Bucket(const ClientMetric& metric, double le) {
  for (const auto& bucket : metric.histogram.bucket) {
    if (bucket.upper_bound == le) return bucket.cumulative_count;
  }
  ADD_FAILURE() << "no bucket le=" << le;
  return 0;
}

// The finite upper bounds of a histogram series, in order (the +Inf bucket left out).
std::vector<double> Bounds(const ClientMetric& metric) {
  std::vector<double> bounds;
  for (const auto& bucket : metric.histogram.bucket) {
    if (std::isfinite(bucket.upper_bound)) bounds.push_back(bucket.upper_bound);
  }
  return bounds;
}

// Observations the buckets show to be <= x: the cumulative count of the largest bound <= x
// (0 when every bound is above x). Lets a test place a value without spelling out a
// computed bound such as 50e-6 * 1.5^10.
uint64_t CountAtMost(const ClientMetric& metric, double x) {
  uint64_t count = 0;
  for (const auto& bucket : metric.histogram.bucket) {
    if (bucket.upper_bound <= x) count = bucket.cumulative_count;
  }
  return count;
}

// The q-quantile estimated from the buckets as Prometheus' histogram_quantile() does it:
// find the bucket holding rank q * count and interpolate linearly inside it (from 0 for
// the first bucket; the highest finite bound when the rank is in +Inf).
double HistogramQuantile(double q, const ClientMetric& metric) {
  const auto& buckets = metric.histogram.bucket;
  const double rank = q * static_cast<double>(metric.histogram.sample_count);
  double lower = 0;
  uint64_t below = 0;
  for (const auto& bucket : buckets) {
    if (static_cast<double>(bucket.cumulative_count) >= rank) {
      if (!std::isfinite(bucket.upper_bound)) return lower;
      const double in_bucket = static_cast<double>(bucket.cumulative_count - below);
      return lower + (bucket.upper_bound - lower) * (rank - static_cast<double>(below)) / in_bucket;
    }
    lower = bucket.upper_bound;
    below = bucket.cumulative_count;
  }
  ADD_FAILURE() << "no bucket holds rank " << rank;
  return 0;
}

const VariantKey kGelu{"resnet20-fashion", "gelu"};
const VariantKey kGem{"resnet20-fashion", "gem-n1"};

TEST(MetricsTest, RequestsCountExactlyWhatWasRecorded) {
  Metrics metrics;
  for (int i = 0; i < 3; ++i) metrics.RecordRequest("Classify", "m", "gelu", "OK", 0.002);
  metrics.RecordRequest("Classify", "m", "gelu", "INVALID_ARGUMENT", 0.5);

  const auto families = metrics.Collect();
  const auto* ok = Find(families, "gemserve_requests_total",
                        {{"rpc", "Classify"}, {"model", "m"}, {"variant", "gelu"}, {"code", "OK"}});
  const auto* bad = Find(
      families, "gemserve_requests_total",
      {{"rpc", "Classify"}, {"model", "m"}, {"variant", "gelu"}, {"code", "INVALID_ARGUMENT"}});
  ASSERT_NE(ok, nullptr);
  ASSERT_NE(bad, nullptr);
  EXPECT_EQ(ok->counter.value, 3);
  EXPECT_EQ(bad->counter.value, 1);

  const auto* duration = Find(families, "gemserve_request_duration_seconds",
                              {{"rpc", "Classify"}, {"model", "m"}, {"variant", "gelu"}});
  ASSERT_NE(duration, nullptr);
  EXPECT_EQ(duration->histogram.sample_count, 4u);
  EXPECT_DOUBLE_EQ(duration->histogram.sample_sum, 3 * 0.002 + 0.5);
  EXPECT_EQ(CountAtMost(*duration, 0.0019), 0u);  // 2 ms lies in (1.92 ms, 2.88 ms]
  EXPECT_EQ(CountAtMost(*duration, 0.0029), 3u);
  EXPECT_EQ(CountAtMost(*duration, 0.37), 3u);  // 0.5 s lies in (0.374 s, 0.561 s]
  EXPECT_EQ(CountAtMost(*duration, 0.57), 4u);
}

// Records one latency in every latency family for `key`.
void ObserveEveryLatency(Metrics& metrics, const VariantKey& key, double seconds) {
  metrics.RecordRequest("Generate", key.model, key.variant, "OK", seconds);
  metrics.OnQueued(key, seconds);
  metrics.OnInference(key, seconds, 1);
  metrics.OnFirstToken(key, seconds);
  metrics.OnInterToken(key, seconds);
}

TEST(MetricsTest, LatencyBucketsAreGeometricFrom50usTo60s) {
  Metrics metrics;
  ObserveEveryLatency(metrics, kGelu, 0.01);
  const auto families = metrics.Collect();
  const LabelMap key{{"model", kGelu.model}, {"variant", kGelu.variant}};
  LabelMap request_key = key;
  request_key["rpc"] = "Generate";
  const std::vector<std::pair<const char*, LabelMap>> latency_series = {
      {"gemserve_request_duration_seconds", request_key},
      {"gemserve_queue_duration_seconds", key},
      {"gemserve_inference_duration_seconds", key},
      {"gemserve_time_to_first_token_seconds", key},
      {"gemserve_inter_token_duration_seconds", key},
  };
  std::vector<double> first_family_bounds;
  for (const auto& [name, labels] : latency_series) {
    const auto* series = Find(families, name, labels);
    ASSERT_NE(series, nullptr) << name;
    const std::vector<double> bounds = Bounds(*series);
    ASSERT_GE(bounds.size(), 2u) << name;
    EXPECT_DOUBLE_EQ(bounds.front(), 50e-6) << name;
    for (size_t i = 1; i < bounds.size(); ++i) {
      EXPECT_GT(bounds[i], bounds[i - 1]) << name << " bound " << i;
      EXPECT_LE(bounds[i] / bounds[i - 1], 1.5 * (1 + 1e-12)) << name << " bound " << i;
    }
    EXPECT_GE(bounds.back(), 60) << name;
    EXPECT_LT(bounds[bounds.size() - 2], 60) << name << ": one bound >= 60 s is enough";
    EXPECT_TRUE(std::isinf(series->histogram.bucket.back().upper_bound)) << name;
    // One bucket list for every latency family, inter-token included.
    if (first_family_bounds.empty()) first_family_bounds = bounds;
    EXPECT_EQ(bounds, first_family_bounds) << name;
  }
}

// The symptom that motivated the buckets: with 1-2.5-5 buckets a p99 of 45 ms and one of
// 50 ms both read 49.7 ms (interpolated at the top of the 25..50 ms bucket).
TEST(MetricsTest, P99FromBucketsTellsVariantsApart) {
  const VariantKey fast{"gpt2-kjv", "gelu"};
  const VariantKey slow{"gpt2-kjv", "segem-n1-e1e-4"};
  Metrics metrics;
  // 1000 requests each: 98% at 10 ms, the slowest 2% at 45 ms or 50 ms, so p99 (rank 990)
  // falls among the slow ones.
  for (const auto& [key, tail] : {std::pair{fast, 0.045}, std::pair{slow, 0.050}}) {
    for (int i = 0; i < 980; ++i) ObserveEveryLatency(metrics, key, 0.010);
    for (int i = 0; i < 20; ++i) ObserveEveryLatency(metrics, key, tail);
  }
  const auto families = metrics.Collect();
  for (const char* name :
       {"gemserve_request_duration_seconds", "gemserve_queue_duration_seconds",
        "gemserve_inference_duration_seconds", "gemserve_time_to_first_token_seconds",
        "gemserve_inter_token_duration_seconds"}) {
    auto labels_of = [name](const VariantKey& key) {
      LabelMap labels{{"model", key.model}, {"variant", key.variant}};
      if (std::string(name) == "gemserve_request_duration_seconds") labels["rpc"] = "Generate";
      return labels;
    };
    const auto* fast_series = Find(families, name, labels_of(fast));
    const auto* slow_series = Find(families, name, labels_of(slow));
    ASSERT_TRUE(fast_series && slow_series) << name;
    ASSERT_EQ(fast_series->histogram.sample_count, 1000u) << name;
    const double fast_p99 = HistogramQuantile(0.99, *fast_series);
    const double slow_p99 = HistogramQuantile(0.99, *slow_series);
    // Each estimate within the promised factor 1.5 of the truth...
    EXPECT_GT(fast_p99, 0.045 / 1.5) << name;
    EXPECT_LT(fast_p99, 0.045 * 1.5) << name;
    EXPECT_GT(slow_p99, 0.050 / 1.5) << name;
    EXPECT_LT(slow_p99, 0.050 * 1.5) << name;
    // ...and the two told apart, the right way round, by more than noise.
    EXPECT_GT(slow_p99, fast_p99 * 1.1) << name << ": p99 " << fast_p99 << " vs " << slow_p99;
  }
}

TEST(MetricsTest, ObserverFillsEachVariantSeparately) {
  Metrics metrics;
  metrics.OnQueued(kGelu, 0.001);
  metrics.OnInference(kGelu, 0.01, 3);
  metrics.OnInference(kGelu, 0.02, 8);
  metrics.OnFirstToken(kGelu, 0.05);
  for (int i = 0; i < 5; ++i) metrics.OnInterToken(kGelu, 0.004);
  metrics.OnGeneratedTokens(kGelu, 7);
  metrics.OnGeneratedTokens(kGelu, 3);
  metrics.OnGeneratedTokens(kGem, 2);

  const auto families = metrics.Collect();
  const LabelMap gelu{{"model", kGelu.model}, {"variant", kGelu.variant}};
  const LabelMap gem{{"model", kGem.model}, {"variant", kGem.variant}};
  EXPECT_EQ(Find(families, "gemserve_queue_duration_seconds", gelu)->histogram.sample_count, 1u);
  EXPECT_EQ(Find(families, "gemserve_inference_duration_seconds", gelu)->histogram.sample_count,
            2u);
  const auto* batch = Find(families, "gemserve_batch_size", gelu);
  EXPECT_EQ(batch->histogram.sample_count, 2u);
  EXPECT_EQ(batch->histogram.sample_sum, 11);
  EXPECT_EQ(Bucket(*batch, 2), 0u);
  EXPECT_EQ(Bucket(*batch, 4), 1u);
  EXPECT_EQ(Bucket(*batch, 8), 2u);
  EXPECT_EQ(Find(families, "gemserve_time_to_first_token_seconds", gelu)->histogram.sample_count,
            1u);
  EXPECT_EQ(Find(families, "gemserve_inter_token_duration_seconds", gelu)->histogram.sample_count,
            5u);
  EXPECT_EQ(Find(families, "gemserve_generated_tokens_total", gelu)->counter.value, 10);
  EXPECT_EQ(Find(families, "gemserve_generated_tokens_total", gem)->counter.value, 2);
  // Only what was observed exists: kGem generated tokens but was never queued.
  EXPECT_EQ(Find(families, "gemserve_queue_duration_seconds", gem), nullptr);
}

TEST(MetricsTest, InflightGaugeFollowsTheGuards) {
  Metrics metrics;
  auto inflight = [&metrics] {
    return Find(metrics.Collect(), "gemserve_inflight_requests", {{"rpc", "Generate"}})
        ->gauge.value;
  };
  {
    InflightGuard first = metrics.Inflight("Generate");
    InflightGuard second = metrics.Inflight("Generate");
    EXPECT_EQ(inflight(), 2);
    InflightGuard moved = std::move(second);
    EXPECT_EQ(inflight(), 2);
    first = std::move(moved);  // gives back first's increment, takes over moved's
    EXPECT_EQ(inflight(), 1);
  }
  EXPECT_EQ(inflight(), 0);
}

TEST(MetricsTest, ModelInfoHasOneCompactSeriesPerVariant) {
  Metrics metrics;
  metrics.SetModelInfo("gpt2-kjv", "segem-n1-e1e-4", "segem", 1, 1e-4, 0.01);
  metrics.SetModelInfo("gpt2-kjv", "relu", "relu", 0, 0, 0);
  auto families = metrics.Collect();
  const auto* info = Find(families, "gemserve_model_info",
                          {{"model", "gpt2-kjv"},
                           {"variant", "segem-n1-e1e-4"},
                           {"activation", "segem"},
                           {"n", "1"},
                           {"eps", "0.0001"},
                           {"neg_slope", "0.01"}});
  ASSERT_NE(info, nullptr);
  EXPECT_EQ(info->gauge.value, 1);
  EXPECT_EQ(SeriesCount(families, "gemserve_model_info"), 2u);

  metrics.SetModelInfo("gpt2-kjv", "segem-n1-e1e-4", "segem", 1, 1e-5, 0.01);  // replaces
  families = metrics.Collect();
  EXPECT_EQ(SeriesCount(families, "gemserve_model_info"), 2u);
  EXPECT_NE(Find(families, "gemserve_model_info",
                 {{"model", "gpt2-kjv"},
                  {"variant", "segem-n1-e1e-4"},
                  {"activation", "segem"},
                  {"n", "1"},
                  {"eps", "1e-05"},
                  {"neg_slope", "0.01"}}),
            nullptr);

  metrics.ClearModelInfo();
  EXPECT_EQ(SeriesCount(metrics.Collect(), "gemserve_model_info"), 0u);
}

TEST(MetricsTest, AbAssignmentsCountPerVariant) {
  Metrics metrics;
  metrics.OnAbAssignment(kGelu);
  metrics.OnAbAssignment(kGelu);
  metrics.OnAbAssignment(kGem);

  const auto families = metrics.Collect();
  EXPECT_EQ(Find(families, "gemserve_ab_assignments_total",
                 {{"model", kGelu.model}, {"variant", kGelu.variant}})
                ->counter.value,
            2);
  EXPECT_EQ(Find(families, "gemserve_ab_assignments_total",
                 {{"model", kGem.model}, {"variant", kGem.variant}})
                ->counter.value,
            1);
  EXPECT_EQ(SeriesCount(families, "gemserve_ab_assignments_total"), 2u);
}

TEST(MetricsTest, ExperimentWeightsFollowTheSplitAndALeaverReadsZero) {
  Metrics metrics;
  auto weight = [&metrics](const std::string& model, const std::string& variant) {
    const std::vector<prometheus::MetricFamily> families = metrics.Collect();  // outlives series
    const auto* series = Find(families, "gemserve_experiment_weight",
                              {{"model", model}, {"variant", variant}});
    return series == nullptr ? -1.0 : series->gauge.value;  // -1: no such series
  };
  metrics.OnExperimentWeights("m", {{"gelu", 90}, {"gem-n1", 10}});
  metrics.OnExperimentWeights("other", {{"gelu", 7}});
  EXPECT_EQ(weight("m", "gelu"), 90);
  EXPECT_EQ(weight("m", "gem-n1"), 10);
  EXPECT_EQ(weight("other", "gelu"), 7);

  // gem-n1 leaves m's split, relu joins: gem-n1 reads 0 (not 10, not missing).
  metrics.OnExperimentWeights("m", {{"gelu", 50}, {"relu", 50}});
  EXPECT_EQ(weight("m", "gelu"), 50);
  EXPECT_EQ(weight("m", "relu"), 50);
  EXPECT_EQ(weight("m", "gem-n1"), 0);
  EXPECT_EQ(weight("other", "gelu"), 7);  // another model's split is untouched
  EXPECT_EQ(SeriesCount(metrics.Collect(), "gemserve_experiment_weight"), 4u);

  // A leaver that comes back reads its new weight; an empty split zeroes every arm.
  metrics.OnExperimentWeights("m", {{"gem-n1", 3}});
  EXPECT_EQ(weight("m", "gem-n1"), 3);
  EXPECT_EQ(weight("m", "gelu"), 0);
  metrics.OnExperimentWeights("m", {});
  for (const char* variant : {"gelu", "relu", "gem-n1"}) EXPECT_EQ(weight("m", variant), 0);
  EXPECT_EQ(weight("other", "gelu"), 7);
}

TEST(MetricsTest, ShadowComparisonsCountAgreeDisagreeAndDropped) {
  Metrics metrics;
  metrics.OnShadowComparison("m", "gelu", "gem-n1", true, 2e-5, 1.0);
  metrics.OnShadowComparison("m", "gelu", "gem-n1", true, 2e-5, 1.03);
  metrics.OnShadowComparison("m", "gelu", "gem-n1", true, 2e-5, 0.97);
  metrics.OnShadowComparison("m", "gelu", "gem-n1", false, 0.3, 2.5);
  metrics.OnShadowDropped("m", "gelu", "gem-n1");
  metrics.OnShadowDropped("m", "gelu", "gem-n1");
  metrics.OnShadowComparison("m", "gelu", "relu", false, 1.0, 0.5);  // another pair

  const auto families = metrics.Collect();
  auto comparisons = [&families](const std::string& shadow, const std::string& result) {
    const auto* series =
        Find(families, "gemserve_shadow_comparisons_total",
             {{"model", "m"}, {"primary", "gelu"}, {"shadow", shadow}, {"result", result}});
    return series == nullptr ? -1.0 : series->counter.value;  // -1: no such series
  };
  EXPECT_EQ(comparisons("gem-n1", "agree"), 3);
  EXPECT_EQ(comparisons("gem-n1", "disagree"), 1);
  EXPECT_EQ(comparisons("gem-n1", "dropped"), 2);
  EXPECT_EQ(comparisons("relu", "disagree"), 1);
  EXPECT_EQ(comparisons("relu", "agree"), -1);
  EXPECT_EQ(SeriesCount(families, "gemserve_shadow_comparisons_total"), 4u);

  const LabelMap pair{{"model", "m"}, {"primary", "gelu"}, {"shadow", "gem-n1"}};
  // A dropped mirror has no answer to compare: only the 4 comparisons are observed.
  const auto* kl = Find(families, "gemserve_shadow_divergence", pair);
  ASSERT_NE(kl, nullptr);
  EXPECT_EQ(kl->histogram.sample_count, 4u);
  EXPECT_DOUBLE_EQ(kl->histogram.sample_sum, 3 * 2e-5 + 0.3);
  EXPECT_EQ(CountAtMost(*kl, 1.7e-5), 0u);  // 2e-5 lies in (1.78e-5, 3.16e-5]
  EXPECT_EQ(CountAtMost(*kl, 3.2e-5), 3u);
  EXPECT_EQ(CountAtMost(*kl, 0.3), 3u);  // 0.3 lies in (0.178, 0.316]
  EXPECT_EQ(CountAtMost(*kl, 0.32), 4u);

  const auto* ratio = Find(families, "gemserve_shadow_latency_ratio", pair);
  ASSERT_NE(ratio, nullptr);
  EXPECT_EQ(ratio->histogram.sample_count, 4u);
  EXPECT_DOUBLE_EQ(ratio->histogram.sample_sum, 1.0 + 1.03 + 0.97 + 2.5);
  EXPECT_EQ(Bucket(*ratio, 1.0), 2u);  // 0.97 and 1.0: not slower than the primary
  EXPECT_EQ(CountAtMost(*ratio, 0.95), 0u);
  EXPECT_EQ(CountAtMost(*ratio, 1.1), 3u);  // 1.03 lies in (1, 1.09]
  EXPECT_EQ(Bucket(*ratio, 2.0), 3u);
  EXPECT_EQ(CountAtMost(*ratio, 2.6), 4u);
  EXPECT_EQ(Find(families, "gemserve_shadow_latency_ratio",
                 {{"model", "m"}, {"primary", "gelu"}, {"shadow", "relu"}})
                ->histogram.sample_count,
            1u);
}

TEST(MetricsTest, ShadowBucketsCoverTheirRanges) {
  Metrics metrics;
  metrics.OnShadowComparison("m", "gelu", "gem-n1", true, 0.01, 1.0);
  const auto families = metrics.Collect();
  const LabelMap pair{{"model", "m"}, {"primary", "gelu"}, {"shadow", "gem-n1"}};

  const std::vector<double> kl = Bounds(*Find(families, "gemserve_shadow_divergence", pair));
  ASSERT_GE(kl.size(), 2u);
  EXPECT_DOUBLE_EQ(kl.front(), 1e-5);
  EXPECT_DOUBLE_EQ(kl.back(), 10);
  for (size_t i = 1; i < kl.size(); ++i) {
    EXPECT_NEAR(kl[i] / kl[i - 1], std::pow(10.0, 0.25), 1e-9) << "bound " << i;
  }

  const std::vector<double> ratio =
      Bounds(*Find(families, "gemserve_shadow_latency_ratio", pair));
  ASSERT_GE(ratio.size(), 2u);
  EXPECT_DOUBLE_EQ(ratio.front(), 0.25);
  EXPECT_DOUBLE_EQ(ratio.back(), 8);
  for (size_t i = 1; i < ratio.size(); ++i) {
    EXPECT_GE(ratio[i] / ratio[i - 1], 1.05) << "bound " << i;
    EXPECT_LE(ratio[i] / ratio[i - 1], 1.1) << "bound " << i;
  }
  for (double exact : {0.5, 1.0, 2.0, 4.0}) {  // "as fast", "twice as slow" are bounds
    EXPECT_NE(std::find(ratio.begin(), ratio.end(), exact), ratio.end()) << exact;
  }
}

TEST(MetricsTest, ShadowComparisonWithNonFiniteValuesIsCountedNotObserved) {
  Metrics metrics;
  constexpr double kNan = std::numeric_limits<double>::quiet_NaN();
  constexpr double kInf = std::numeric_limits<double>::infinity();
  metrics.OnShadowComparison("m", "gelu", "gem-n1", false, kNan, kInf);
  metrics.OnShadowComparison("m", "gelu", "gem-n1", true, 0.01, kNan);

  const auto families = metrics.Collect();
  const LabelMap pair{{"model", "m"}, {"primary", "gelu"}, {"shadow", "gem-n1"}};
  for (const char* result : {"agree", "disagree"}) {
    LabelMap labels = pair;
    labels["result"] = result;
    EXPECT_EQ(Find(families, "gemserve_shadow_comparisons_total", labels)->counter.value, 1)
        << result;
  }
  const auto* kl = Find(families, "gemserve_shadow_divergence", pair);
  ASSERT_NE(kl, nullptr);
  EXPECT_EQ(kl->histogram.sample_count, 1u);
  EXPECT_DOUBLE_EQ(kl->histogram.sample_sum, 0.01);
  EXPECT_EQ(Find(families, "gemserve_shadow_latency_ratio", pair), nullptr);
}

TEST(MetricsTest, FeedbackCountsLabelsAndSumsRewards) {
  Metrics metrics;
  metrics.OnFeedbackLabel(kGelu, true);
  metrics.OnFeedbackLabel(kGelu, true);
  metrics.OnFeedbackLabel(kGelu, false);
  metrics.OnFeedbackReward(kGelu, 0.25);
  metrics.OnFeedbackReward(kGelu, 1.0);
  metrics.OnFeedbackReward(kGelu, 0.5);
  metrics.OnFeedbackReward(kGelu, 0);  // a zero reward is a reward
  metrics.OnFeedbackReward(kGem, 0.125);
  // Dropped from both the count and the sum: a counter cannot go down or hold NaN.
  metrics.OnFeedbackReward(kGelu, -1);
  metrics.OnFeedbackReward(kGelu, std::numeric_limits<double>::quiet_NaN());
  metrics.OnFeedbackReward(kGelu, std::numeric_limits<double>::infinity());

  const auto families = metrics.Collect();
  auto feedback = [&families](const VariantKey& key, const std::string& outcome) {
    const auto* series =
        Find(families, "gemserve_feedback_total",
             {{"model", key.model}, {"variant", key.variant}, {"outcome", outcome}});
    return series == nullptr ? -1.0 : series->counter.value;  // -1: no such series
  };
  EXPECT_EQ(feedback(kGelu, "correct"), 2);
  EXPECT_EQ(feedback(kGelu, "incorrect"), 1);
  EXPECT_EQ(feedback(kGelu, "reward"), 4);
  EXPECT_EQ(feedback(kGem, "reward"), 1);
  EXPECT_EQ(feedback(kGem, "correct"), -1);
  EXPECT_EQ(SeriesCount(families, "gemserve_feedback_total"), 4u);

  auto reward = [&families](const VariantKey& key) {
    return Find(families, "gemserve_feedback_reward",
                {{"model", key.model}, {"variant", key.variant}})
        ->histogram;
  };
  EXPECT_EQ(reward(kGelu).sample_sum, 0.25 + 1.0 + 0.5);  // exact in binary
  EXPECT_EQ(reward(kGelu).sample_count, 4u);               // = feedback_total{outcome=reward}
  EXPECT_EQ(reward(kGem).sample_sum, 0.125);
  EXPECT_EQ(reward(kGem).sample_count, 1u);
  const auto* gelu = Find(families, "gemserve_feedback_reward",
                          {{"model", kGelu.model}, {"variant", kGelu.variant}});
  EXPECT_EQ(Bucket(*gelu, 0), 1u);  // exactly the zero reward
  EXPECT_EQ(Bucket(*gelu, 0.2), 1u);
  EXPECT_EQ(Bucket(*gelu, 0.3), 2u);
  EXPECT_EQ(Bucket(*gelu, 0.5), 3u);
  EXPECT_EQ(Bucket(*gelu, 1), 4u);

  // DESIGN.md's gemserve_feedback_reward_sum{model,variant} is the histogram's _sum line,
  // as readers of the text (client/report_figures.cc) look it up.
  EXPECT_NE(metrics.Serialize().find("gemserve_feedback_reward_sum{model=\"resnet20-fashion\","
                                     "variant=\"gelu\"} 1.75\n"),
            std::string::npos)
      << metrics.Serialize();
}

TEST(MetricsTest, ProcessMetricsArePlausible) {
  const auto families = Metrics().Collect();
  const auto* rss = Find(families, "process_resident_memory_bytes");
  const auto* cpu = Find(families, "process_cpu_seconds_total");
  const auto* start = Find(families, "process_start_time_seconds");
  const auto* fds = Find(families, "process_open_fds");
  ASSERT_TRUE(rss && cpu && start && fds);
  EXPECT_GT(rss->gauge.value, 1 << 20);
  EXPECT_GE(cpu->counter.value, 0);
  const double now =
      std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
  EXPECT_LE(start->gauge.value, now + 1);
  EXPECT_GT(start->gauge.value, now - 24 * 3600);  // this test process started today
  EXPECT_GE(fds->gauge.value, 3);                  // stdin, stdout, stderr
}

TEST(MetricsTest, ConcurrentRecordingLosesNothing) {
  Metrics metrics;
  constexpr int kThreads = 4;
  constexpr int kEach = 2000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&metrics, t] {
      const VariantKey key{"m", t % 2 == 0 ? "gelu" : "relu"};
      for (int i = 0; i < kEach; ++i) {
        metrics.OnGeneratedTokens(key, 1);
        metrics.OnInterToken(key, 0.002);
        metrics.RecordRequest("Generate", "m", key.variant, "OK", 0.01);
        InflightGuard guard = metrics.Inflight("Generate");
      }
    });
  }
  for (auto& thread : threads) thread.join();

  const auto families = metrics.Collect();
  for (const char* variant : {"gelu", "relu"}) {
    const LabelMap key{{"model", "m"}, {"variant", variant}};
    EXPECT_EQ(Find(families, "gemserve_generated_tokens_total", key)->counter.value, 2 * kEach);
    EXPECT_EQ(Find(families, "gemserve_inter_token_duration_seconds", key)->histogram.sample_count,
              2u * kEach);
    EXPECT_EQ(Find(families, "gemserve_requests_total",
                   {{"rpc", "Generate"}, {"model", "m"}, {"variant", variant}, {"code", "OK"}})
                  ->counter.value,
              2 * kEach);
  }
  EXPECT_EQ(Find(families, "gemserve_inflight_requests", {{"rpc", "Generate"}})->gauge.value, 0);
}

// Fills every family of DESIGN.md, so that the exposition shows each one.
void RecordOneOfEverything(Metrics& metrics) {
  const VariantKey key{"gpt2-kjv", "segem-n1-e1e-4"};
  metrics.RecordRequest("Generate", key.model, key.variant, "OK", 0.3);
  metrics.RecordRequest("Classify", "resnet20-fashion", "", "NOT_FOUND", 0.0001);
  metrics.OnQueued(key, 0.001);
  metrics.OnInference(key, 0.004, 2);
  metrics.OnFirstToken(key, 0.02);
  metrics.OnInterToken(key, 0.005);
  metrics.OnGeneratedTokens(key, 12);
  metrics.SetModelInfo(key.model, key.variant, "segem", 1, 1e-4, 0.01);
  metrics.OnAbAssignment(key);
  metrics.OnExperimentWeights(key.model, {{key.variant, 90}, {"gelu", 10}});
  metrics.OnExperimentWeights(key.model, {{key.variant, 100}});  // gelu left: reads 0
  metrics.OnShadowComparison(key.model, key.variant, "gelu", false, 0.2, 1.1);
  metrics.OnShadowComparison(key.model, key.variant, "gelu", true, 1e-4, 0.9);
  metrics.OnShadowDropped(key.model, key.variant, "gelu");
  metrics.OnFeedbackLabel(key, true);
  metrics.OnFeedbackLabel(key, false);
  metrics.OnFeedbackReward(key, 0.75);
}

TEST(MetricsTest, ExpositionHasEveryFamilyWithItsType) {
  Metrics metrics;
  InflightGuard inflight = metrics.Inflight("Generate");
  RecordOneOfEverything(metrics);
  const std::string text = metrics.Serialize();
  for (const char* type_line : {
           "# TYPE gemserve_requests_total counter",
           "# TYPE gemserve_request_duration_seconds histogram",
           "# TYPE gemserve_queue_duration_seconds histogram",
           "# TYPE gemserve_inference_duration_seconds histogram",
           "# TYPE gemserve_batch_size histogram",
           "# TYPE gemserve_time_to_first_token_seconds histogram",
           "# TYPE gemserve_inter_token_duration_seconds histogram",
           "# TYPE gemserve_generated_tokens_total counter",
           "# TYPE gemserve_inflight_requests gauge",
           "# TYPE gemserve_model_info gauge",
           "# TYPE gemserve_ab_assignments_total counter",
           "# TYPE gemserve_shadow_comparisons_total counter",
           "# TYPE gemserve_experiment_weight gauge",
           "# TYPE gemserve_shadow_divergence histogram",
           "# TYPE gemserve_shadow_latency_ratio histogram",
           "# TYPE gemserve_feedback_total counter",
           "# TYPE gemserve_feedback_reward histogram",
           "# TYPE process_resident_memory_bytes gauge",
           "# TYPE process_cpu_seconds_total counter",
       }) {
    EXPECT_NE(text.find(type_line), std::string::npos) << type_line << "\n" << text;
  }
}

TEST(MetricsTest, ExpositionPassesPromtool) {
  const std::string promtool = GEM_PROMTOOL;
  ASSERT_EQ(access(promtool.c_str(), X_OK), 0)
      << "promtool not found (" << promtool << "): install the Debian package 'prometheus'";
  Metrics metrics;
  InflightGuard inflight = metrics.Inflight("Classify");
  RecordOneOfEverything(metrics);
  const std::string path = testing::TempDir() + "gemserve_metrics_" + std::to_string(getpid());
  std::ofstream(path) << metrics.Serialize();

  FILE* pipe = popen((promtool + " check metrics < " + path + " 2>&1").c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  std::remove(path.c_str());
  EXPECT_EQ(status, 0) << "promtool check metrics:\n" << output;
}

}  // namespace
}  // namespace gemserve
