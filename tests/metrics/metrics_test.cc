#include "server/metrics/metrics.h"

#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <map>
#include <string>
#include <thread>
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
  EXPECT_EQ(Bucket(*duration, 0.001), 0u);
  EXPECT_EQ(Bucket(*duration, 0.0025), 3u);
  EXPECT_EQ(Bucket(*duration, 0.5), 4u);
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

TEST(MetricsTest, AbAndShadowFamilies) {
  Metrics metrics;
  metrics.OnAbAssignment("m", "gelu");
  metrics.OnAbAssignment("m", "gelu");
  metrics.OnShadowComparison("m", "gelu", "gem-n1", ShadowResult::kAgree);
  metrics.OnShadowComparison("m", "gelu", "gem-n1", ShadowResult::kDropped);
  metrics.OnShadowDivergence("m", "gelu", "gem-n1", 0.03);

  const auto families = metrics.Collect();
  EXPECT_EQ(Find(families, "gemserve_ab_assignments_total", {{"model", "m"}, {"variant", "gelu"}})
                ->counter.value,
            2);
  for (const char* result : {"agree", "dropped"}) {
    const auto* comparisons =
        Find(families, "gemserve_shadow_comparisons_total",
             {{"model", "m"}, {"primary", "gelu"}, {"shadow", "gem-n1"}, {"result", result}});
    ASSERT_NE(comparisons, nullptr) << result;
    EXPECT_EQ(comparisons->counter.value, 1);
  }
  const auto* divergence = Find(families, "gemserve_shadow_divergence",
                                {{"model", "m"}, {"primary", "gelu"}, {"shadow", "gem-n1"}});
  EXPECT_EQ(divergence->histogram.sample_count, 1u);
  EXPECT_EQ(Bucket(*divergence, 0.025), 0u);
  EXPECT_EQ(Bucket(*divergence, 0.05), 1u);
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
  metrics.OnAbAssignment(key.model, key.variant);
  metrics.OnShadowComparison(key.model, key.variant, "gelu", ShadowResult::kDisagree);
  metrics.OnShadowDivergence(key.model, key.variant, "gelu", 0.2);
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
           "# TYPE gemserve_shadow_divergence histogram",
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
