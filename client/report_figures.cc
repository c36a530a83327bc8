#include "client/report_figures.h"

#include <cmath>
#include <set>
#include <utility>

namespace gemserve::client {
namespace {

// Series that carry model and variant labels but say nothing about traffic: every
// loaded variant has them.
bool IsInventory(const std::string& name) {
  return name == "gemserve_model_info" || name.rfind("gemserve_activation_", 0) == 0;
}

std::set<std::pair<std::string, std::string>> VariantsIn(const std::vector<MetricSample>& samples) {
  std::set<std::pair<std::string, std::string>> variants;
  for (const MetricSample& s : samples) {
    const auto model = s.labels.find("model");
    const auto variant = s.labels.find("variant");
    if (model == s.labels.end() || variant == s.labels.end() || model->second.empty()) continue;
    if (s.name.rfind("gemserve_", 0) != 0 || IsInventory(s.name)) continue;
    variants.emplace(model->second, variant->second);
  }
  return variants;
}

Figure Ratio(double numerator, double denominator) {
  if (denominator <= 0) return std::nullopt;
  return numerator / denominator;
}

// The q-quantile of histogram `name` in milliseconds (its buckets are in seconds).
Figure QuantileMs(const std::vector<MetricSample>& samples, const std::string& name,
                  const Labels& labels, double q) {
  const double seconds = HistogramQuantile(q, HistogramOf(samples, name, labels).buckets);
  if (std::isnan(seconds)) return std::nullopt;
  return seconds * 1e3;
}

void FillTraffic(const std::vector<MetricSample>& samples, const Labels& labels,
                 VariantFigures* f) {
  Labels ok = labels;
  ok["code"] = "OK";
  f->requests = SumOf(samples, "gemserve_requests_total", labels);
  f->errors = f->requests - SumOf(samples, "gemserve_requests_total", ok);
  f->error_rate = Ratio(f->errors, f->requests);
  const std::string request = "gemserve_request_duration_seconds";
  f->latency_p50_ms = QuantileMs(samples, request, labels, 0.50);
  f->latency_p95_ms = QuantileMs(samples, request, labels, 0.95);
  f->latency_p99_ms = QuantileMs(samples, request, labels, 0.99);
}

void FillEngine(const std::vector<MetricSample>& samples, const Labels& labels, VariantFigures* f) {
  const std::string inference = "gemserve_inference_duration_seconds";
  f->inference_p50_ms = QuantileMs(samples, inference, labels, 0.50);
  f->inference_p99_ms = QuantileMs(samples, inference, labels, 0.99);
  const Histogram batch = HistogramOf(samples, "gemserve_batch_size", labels);
  f->batch_size_mean = Ratio(batch.sum, batch.count);
  f->ttft_p50_ms = QuantileMs(samples, "gemserve_time_to_first_token_seconds", labels, 0.50);
  f->tokens = SumOf(samples, "gemserve_generated_tokens_total", labels);
}

void FillFeedback(const std::vector<MetricSample>& samples, const Labels& labels,
                  VariantFigures* f) {
  auto outcome = [&](const std::string& name) {
    Labels with_outcome = labels;
    with_outcome["outcome"] = name;
    return SumOf(samples, "gemserve_feedback_total", with_outcome);
  };
  const double correct = outcome("correct");
  f->labelled = correct + outcome("incorrect");
  f->accuracy = Ratio(correct, f->labelled);
  f->rewarded = outcome("reward");
  f->mean_reward = Ratio(SumOf(samples, "gemserve_feedback_reward_sum", labels), f->rewarded);
}

ShadowFigures ShadowOf(const std::vector<MetricSample>& samples, Labels labels) {
  ShadowFigures f;
  f.shadow = labels["shadow"];
  auto result = [&](const std::string& name) {
    Labels with_result = labels;
    with_result["result"] = name;
    return SumOf(samples, "gemserve_shadow_comparisons_total", with_result);
  };
  const double agree = result("agree");
  f.comparisons = agree + result("disagree");
  f.dropped = result("dropped");
  f.agreement = Ratio(agree, f.comparisons);
  const Histogram kl = HistogramOf(samples, "gemserve_shadow_divergence", labels);
  f.mean_kl = Ratio(kl.sum, kl.count);
  return f;
}

void FillShadows(const std::vector<MetricSample>& samples, VariantFigures* f) {
  std::set<std::string> shadows;
  const Labels primary = {{"model", f->model}, {"primary", f->variant}};
  for (const MetricSample& s : samples) {
    if (s.name.rfind("gemserve_shadow_", 0) == 0 && HasLabels(s.labels, primary)) {
      shadows.insert(s.labels.count("shadow") ? s.labels.at("shadow") : "");
    }
  }
  for (const std::string& shadow : shadows) {
    Labels labels = primary;
    labels["shadow"] = shadow;
    f->shadows.push_back(ShadowOf(samples, labels));
  }
}

nlohmann::ordered_json ToJson(const Figure& figure) {
  return figure ? nlohmann::ordered_json(*figure) : nlohmann::ordered_json(nullptr);
}

uint64_t Count(double value) { return static_cast<uint64_t>(std::llround(value)); }

}  // namespace

std::vector<VariantFigures> ComputeVariantFigures(const std::vector<MetricSample>& samples,
                                                  double interval_s) {
  std::vector<VariantFigures> all;
  for (const auto& [model, variant] : VariantsIn(samples)) {
    VariantFigures f;
    f.model = model;
    f.variant = variant;
    const Labels labels = {{"model", model}, {"variant", variant}};
    FillTraffic(samples, labels, &f);
    FillEngine(samples, labels, &f);
    FillFeedback(samples, labels, &f);
    FillShadows(samples, &f);
    if (interval_s > 0) {
      f.requests_per_s = f.requests / interval_s;
      f.tokens_per_s = f.tokens / interval_s;
    }
    all.push_back(std::move(f));
  }
  return all;
}

nlohmann::ordered_json VariantFiguresJson(const VariantFigures& f) {
  nlohmann::ordered_json shadows = nlohmann::ordered_json::array();
  for (const ShadowFigures& s : f.shadows) {
    shadows.push_back({{"shadow", s.shadow},
                       {"comparisons", Count(s.comparisons)},
                       {"dropped", Count(s.dropped)},
                       {"agreement", ToJson(s.agreement)},
                       {"mean_kl", ToJson(s.mean_kl)}});
  }
  return {
      {"model", f.model},
      {"variant", f.variant},
      {"requests", Count(f.requests)},
      {"errors", Count(f.errors)},
      {"error_rate", ToJson(f.error_rate)},
      {"latency_ms",
       {{"p50", ToJson(f.latency_p50_ms)},
        {"p95", ToJson(f.latency_p95_ms)},
        {"p99", ToJson(f.latency_p99_ms)}}},
      {"inference_ms", {{"p50", ToJson(f.inference_p50_ms)}, {"p99", ToJson(f.inference_p99_ms)}}},
      {"batch_size_mean", ToJson(f.batch_size_mean)},
      {"ttft_ms_p50", ToJson(f.ttft_p50_ms)},
      {"tokens", Count(f.tokens)},
      {"requests_per_s", ToJson(f.requests_per_s)},
      {"tokens_per_s", ToJson(f.tokens_per_s)},
      {"accuracy", ToJson(f.accuracy)},
      {"mean_reward", ToJson(f.mean_reward)},
      {"shadow", shadows}};
}

}  // namespace gemserve::client
