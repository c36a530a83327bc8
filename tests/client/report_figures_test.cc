#include "client/report_figures.h"

#include <gtest/gtest.h>

namespace gemserve::client {
namespace {

// A scrape with one classify experiment: gelu and gem-n1 routed, segem shadowing gelu.
const char kScrape[] = R"(# TYPE gemserve_requests_total counter
gemserve_requests_total{code="NOT_FOUND",model="",rpc="Classify",variant=""} 4
gemserve_requests_total{code="OK",model="m",rpc="Classify",variant="gelu"} 90
gemserve_requests_total{code="RESOURCE_EXHAUSTED",model="m",rpc="Classify",variant="gelu"} 10
gemserve_requests_total{code="OK",model="m",rpc="Classify",variant="gem-n1"} 50
gemserve_request_duration_seconds_bucket{model="m",rpc="Classify",variant="gelu",le="0.01"} 50
gemserve_request_duration_seconds_bucket{model="m",rpc="Classify",variant="gelu",le="0.02"} 100
gemserve_request_duration_seconds_bucket{model="m",rpc="Classify",variant="gelu",le="+Inf"} 100
gemserve_request_duration_seconds_sum{model="m",rpc="Classify",variant="gelu"} 1.2
gemserve_request_duration_seconds_count{model="m",rpc="Classify",variant="gelu"} 100
gemserve_batch_size_sum{model="m",variant="gelu"} 100
gemserve_batch_size_count{model="m",variant="gelu"} 40
gemserve_generated_tokens_total{model="g",variant="gelu"} 300
gemserve_model_info{activation="relu",model="m",variant="relu"} 1
gemserve_feedback_total{model="m",outcome="correct",variant="gelu"} 9
gemserve_feedback_total{model="m",outcome="incorrect",variant="gelu"} 1
gemserve_feedback_total{model="m",outcome="reward",variant="gelu"} 4
gemserve_feedback_reward_sum{model="m",variant="gelu"} 3
gemserve_shadow_comparisons_total{model="m",primary="gelu",result="agree",shadow="segem"} 18
gemserve_shadow_comparisons_total{model="m",primary="gelu",result="disagree",shadow="segem"} 2
gemserve_shadow_comparisons_total{model="m",primary="gelu",result="dropped",shadow="segem"} 5
gemserve_shadow_divergence_sum{model="m",primary="gelu",shadow="segem"} 0.5
gemserve_shadow_divergence_count{model="m",primary="gelu",shadow="segem"} 20
)";

std::vector<VariantFigures> Figures(double interval_s = 0) {
  std::vector<MetricSample> samples;
  std::string error;
  EXPECT_TRUE(ParseMetricsText(kScrape, &samples, &error)) << error;
  return ComputeVariantFigures(samples, interval_s);
}

TEST(ComputeVariantFigures, OneRowPerRoutedVariantSkippingUnroutedAndInventory) {
  const auto figures = Figures();
  ASSERT_EQ(figures.size(), 3u);  // g/gelu, m/gelu, m/gem-n1; not model="" nor m/relu
  EXPECT_EQ(figures[0].model + "/" + figures[0].variant, "g/gelu");
  EXPECT_EQ(figures[1].model + "/" + figures[1].variant, "m/gelu");
  EXPECT_EQ(figures[2].model + "/" + figures[2].variant, "m/gem-n1");
}

TEST(ComputeVariantFigures, TrafficLatencyAndBatches) {
  const VariantFigures gelu = Figures()[1];
  EXPECT_EQ(gelu.requests, 100);
  EXPECT_EQ(gelu.errors, 10);
  EXPECT_DOUBLE_EQ(*gelu.error_rate, 0.1);
  EXPECT_DOUBLE_EQ(*gelu.latency_p50_ms, 10);
  EXPECT_DOUBLE_EQ(*gelu.latency_p99_ms, 19.8);
  EXPECT_DOUBLE_EQ(*gelu.batch_size_mean, 2.5);
  EXPECT_FALSE(gelu.inference_p50_ms);  // no inference histogram in this scrape
  EXPECT_FALSE(gelu.ttft_p50_ms);
  EXPECT_FALSE(gelu.requests_per_s);
}

TEST(ComputeVariantFigures, FeedbackAndShadows) {
  const VariantFigures gelu = Figures()[1];
  EXPECT_DOUBLE_EQ(*gelu.accuracy, 0.9);
  EXPECT_EQ(gelu.labelled, 10);
  EXPECT_DOUBLE_EQ(*gelu.mean_reward, 0.75);
  ASSERT_EQ(gelu.shadows.size(), 1u);
  EXPECT_EQ(gelu.shadows[0].shadow, "segem");
  EXPECT_EQ(gelu.shadows[0].comparisons, 20);
  EXPECT_EQ(gelu.shadows[0].dropped, 5);
  EXPECT_DOUBLE_EQ(*gelu.shadows[0].agreement, 0.9);
  EXPECT_DOUBLE_EQ(*gelu.shadows[0].mean_kl, 0.025);
  EXPECT_FALSE(Figures()[2].accuracy);
  EXPECT_TRUE(Figures()[2].shadows.empty());
}

TEST(ComputeVariantFigures, RatesOverAKnownInterval) {
  const auto figures = Figures(/*interval_s=*/2);
  EXPECT_DOUBLE_EQ(*figures[0].tokens_per_s, 150);
  EXPECT_DOUBLE_EQ(*figures[1].requests_per_s, 50);
}

TEST(VariantFiguresJson, HasTheDocumentedFieldsWithNullForAbsentFigures) {
  const auto json = VariantFiguresJson(Figures()[1]);
  EXPECT_EQ(json["model"], "m");
  EXPECT_EQ(json["requests"], 100);
  EXPECT_EQ(json["errors"], 10);
  EXPECT_DOUBLE_EQ(json["latency_ms"]["p50"].get<double>(), 10);
  EXPECT_TRUE(json["inference_ms"]["p99"].is_null());
  EXPECT_TRUE(json["ttft_ms_p50"].is_null());
  EXPECT_EQ(json["tokens"], 0);
  EXPECT_DOUBLE_EQ(json["accuracy"].get<double>(), 0.9);
  EXPECT_EQ(json["shadow"][0]["shadow"], "segem");
  EXPECT_EQ(json["shadow"][0]["comparisons"], 20);
  for (const char* key : {"error_rate", "batch_size_mean", "mean_reward", "variant"}) {
    EXPECT_TRUE(json.contains(key)) << key;
  }
}

}  // namespace
}  // namespace gemserve::client
