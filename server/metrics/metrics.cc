#include "server/metrics/metrics.h"

#include <cmath>
#include <cstdio>
#include <cstdlib>

#include <prometheus/text_serializer.h>

namespace gemserve {
namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

// Every latency family: request, queue, forward, time to first token, inter-token. One
// ResNet-20 forward takes a few hundred microseconds, a GPT-2 decode step a few
// milliseconds, a long generation seconds to a minute. Geometric with factor 1.5 from
// 50 us up to the first bound >= 60 s (36 bounds, the last 73 s), so that a quantile
// interpolated from the buckets is within 1.5x of the truth over the whole range (the
// old 1-2.5-5 buckets put every gpt2 variant's p99 at 49.7 ms, the edge of the 25..50 ms
// bucket; now 45 ms and 50 ms fall in different buckets). See DESIGN.md, "Metrics".
// Computed once, since RecordRequest passes them on every call.
const Histogram::BucketBoundaries& LatencyBuckets() {
  static const Histogram::BucketBoundaries kBounds = [] {
    constexpr double kFirst = 50e-6;
    constexpr double kFactor = 1.5;
    constexpr double kLast = 60;
    Histogram::BucketBoundaries bounds;
    for (int k = 0; bounds.empty() || bounds.back() < kLast; ++k) {
      bounds.push_back(kFirst * std::pow(kFactor, k));
    }
    return bounds;
  }();
  return kBounds;
}

// Requests per forward. max_batch_size is usually a power of two up to 64; powers of two
// and their midpoints tell "mostly alone" from "full batches", and le="1" counts exactly
// the forwards that batched nothing.
Histogram::BucketBoundaries BatchSizeBuckets() {
  return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
}

// KL(primary || shadow) in nats. A shadow variant that nearly matches the primary sits at
// 1e-5..1e-3, one that has learnt something else at 0.1..10: quarter decades 10^(k/4) from
// 1e-5 to 10 (25 bounds, factor 1.78), every power of ten an exact bound.
const Histogram::BucketBoundaries& DivergenceBuckets() {
  static const Histogram::BucketBoundaries kBounds = [] {
    Histogram::BucketBoundaries bounds;
    for (int k = -20; k <= 4; ++k) bounds.push_back(std::pow(10.0, k / 4.0));
    return bounds;
  }();
  return kBounds;
}

// Shadow / primary forward time of one paired comparison: mostly near 1, where a few
// percent matter. Eighth octaves 2^(k/8) from 0.25 to 8 (41 bounds, factor 1.09), so 1
// and every power of two are exact bounds.
const Histogram::BucketBoundaries& LatencyRatioBuckets() {
  static const Histogram::BucketBoundaries kBounds = [] {
    Histogram::BucketBoundaries bounds;
    for (int k = -16; k <= 24; ++k) bounds.push_back(std::pow(2.0, k / 8.0));
    return bounds;
  }();
  return kBounds;
}

// A reward in [0, 1], often 0 or 1: le="0" counts exactly the zero rewards, then tenths.
Histogram::BucketBoundaries RewardBuckets() {
  Histogram::BucketBoundaries bounds;
  for (int k = 0; k <= 10; ++k) bounds.push_back(k / 10.0);
  return bounds;
}

prometheus::Family<Counter>& NewCounters(prometheus::Registry& registry, const char* name,
                                         const char* help) {
  return prometheus::BuildCounter().Name(name).Help(help).Register(registry);
}

prometheus::Family<Gauge>& NewGauges(prometheus::Registry& registry, const char* name,
                                     const char* help) {
  return prometheus::BuildGauge().Name(name).Help(help).Register(registry);
}

prometheus::Family<Histogram>& NewHistograms(prometheus::Registry& registry, const char* name,
                                             const char* help) {
  return prometheus::BuildHistogram().Name(name).Help(help).Register(registry);
}

VariantSeries<Histogram>::AddFn AddHistogram(prometheus::Family<Histogram>& family,
                                             Histogram::BucketBoundaries buckets) {
  return [&family, buckets](const Labels& labels) -> Histogram& {
    return family.Add(labels, buckets);
  };
}

VariantSeries<Counter>::AddFn AddCounter(prometheus::Family<Counter>& family) {
  return [&family](const Labels& labels) -> Counter& { return family.Add(labels); };
}

VariantSeries<Gauge>::AddFn AddGauge(prometheus::Family<Gauge>& family) {
  return [&family](const Labels& labels) -> Gauge& { return family.Add(labels); };
}

// The shortest "%g" form that reads back as the same double: 1 -> "1", 1e-4 -> "0.0001".
std::string ShortestExact(double value) {
  char text[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(text, sizeof text, "%.*g", precision, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

}  // namespace

InflightGuard::InflightGuard(Gauge* gauge) : gauge_(gauge) { gauge_->Increment(); }

InflightGuard::InflightGuard(InflightGuard&& other) noexcept : gauge_(other.gauge_) {
  other.gauge_ = nullptr;
}

InflightGuard& InflightGuard::operator=(InflightGuard&& other) noexcept {
  if (this != &other) {
    if (gauge_ != nullptr) gauge_->Decrement();
    gauge_ = other.gauge_;
    other.gauge_ = nullptr;
  }
  return *this;
}

InflightGuard::~InflightGuard() {
  if (gauge_ != nullptr) gauge_->Decrement();
}

Metrics::Metrics()
    : requests_(
          NewCounters(registry_, "gemserve_requests_total", "Finished RPCs by gRPC status code.")),
      request_duration_(NewHistograms(registry_, "gemserve_request_duration_seconds",
                                      "RPC latency from arrival to the last byte.")),
      inflight_(NewGauges(registry_, "gemserve_inflight_requests", "RPCs being served now.")),
      model_info_(NewGauges(registry_, "gemserve_model_info",
                            "1 per loaded model variant, labelled with its activation.")),
      experiment_weight_(NewGauges(
          registry_, "gemserve_experiment_weight",
          "Weight of each arm in the experiment split in force (as configured, not "
          "normalised; 0 once the arm left the split).")),
      shadow_comparisons_(NewCounters(
          registry_, "gemserve_shadow_comparisons_total",
          "Shadow answers compared with the primary's on the same input (result: agree, "
          "disagree), and mirrors dropped before comparison (result: dropped).")),
      shadow_divergence_(NewHistograms(
          registry_, "gemserve_shadow_divergence",
          "KL(primary || shadow) in nats between the two answers to the same input.")),
      shadow_latency_ratio_(NewHistograms(
          registry_, "gemserve_shadow_latency_ratio",
          "Shadow forward time / primary forward time on the same input.")),
      feedback_(NewCounters(
          registry_, "gemserve_feedback_total",
          "Feedback on served requests (outcome: correct, incorrect label; reward).")),
      queue_duration_(
          AddHistogram(NewHistograms(registry_, "gemserve_queue_duration_seconds",
                                     "Time a request waited before its worker picked it up."),
                       LatencyBuckets())),
      inference_duration_(
          AddHistogram(NewHistograms(registry_, "gemserve_inference_duration_seconds",
                                     "Duration of one model forward (one batch)."),
                       LatencyBuckets())),
      batch_size_(AddHistogram(
          NewHistograms(registry_, "gemserve_batch_size", "Requests (or decode rows) per forward."),
          BatchSizeBuckets())),
      time_to_first_token_(
          AddHistogram(NewHistograms(registry_, "gemserve_time_to_first_token_seconds",
                                     "Time from arrival to the first generated token."),
                       LatencyBuckets())),
      inter_token_duration_(
          AddHistogram(NewHistograms(registry_, "gemserve_inter_token_duration_seconds",
                                     "Time between two consecutive generated tokens."),
                       LatencyBuckets())),
      generated_tokens_(AddCounter(
          NewCounters(registry_, "gemserve_generated_tokens_total", "Tokens generated."))),
      generate_sequences_(AddGauge(NewGauges(registry_, "gemserve_generate_sequences",
                                             "Generate requests generating now (KV-cache rows)."))),
      kv_positions_reserved_(AddGauge(
          NewGauges(registry_, "gemserve_kv_positions_reserved",
                    "KV-cache positions (prompt + max_new_tokens) held by the generating requests."))),
      expired_requests_(AddCounter(NewCounters(
          registry_, "gemserve_expired_requests_total",
          "Requests dropped before inference: their deadline passed or their client left while "
          "they waited."))),
      ab_assignments_(AddCounter(NewCounters(registry_, "gemserve_ab_assignments_total",
                                             "Requests routed to a variant by an experiment."))),
      // A histogram, so that its _sum series is DESIGN.md's gemserve_feedback_reward_sum
      // and still passes promtool (which rejects a counter named *_sum).
      feedback_reward_(
          AddHistogram(NewHistograms(registry_, "gemserve_feedback_reward",
                                     "Rewards fed back on served requests, in [0, 1]."),
                       RewardBuckets())),
      activation_samples_(NewCounters(
          registry_, "gemserve_activation_samples_total",
          "Sampled requests whose activation statistics were folded into the window "
          "(result: recorded), or dropped (telemetry queue full, or the method failed).")),
      activation_zero_fraction_(NewGauges(
          registry_, "gemserve_activation_zero_fraction",
          "Mean fraction of the activation's outputs exactly 0, over the telemetry window.")),
      activation_dead_units_ratio_(NewGauges(
          registry_, "gemserve_activation_dead_units_ratio",
          "Fraction of the site's units never non-zero in any sample of the window.")),
      activation_input_mean_(NewGauges(registry_, "gemserve_activation_input_mean",
                                       "Mean of the activation's input over the window.")),
      activation_input_std_(NewGauges(
          registry_, "gemserve_activation_input_std",
          "Standard deviation of the activation's input over the window (pooled).")) {}

void Metrics::OnQueued(const VariantKey& key, double seconds) {
  queue_duration_.Get(key).Observe(seconds);
}

void Metrics::OnInference(const VariantKey& key, double seconds, int batch_size) {
  inference_duration_.Get(key).Observe(seconds);
  batch_size_.Get(key).Observe(batch_size);
}

void Metrics::OnFirstToken(const VariantKey& key, double seconds) {
  time_to_first_token_.Get(key).Observe(seconds);
}

void Metrics::OnInterToken(const VariantKey& key, double seconds) {
  inter_token_duration_.Get(key).Observe(seconds);
}

void Metrics::OnGeneratedTokens(const VariantKey& key, int count) {
  generated_tokens_.Get(key).Increment(count);
}

void Metrics::OnSequences(const VariantKey& key, int generating, int64_t kv_positions) {
  generate_sequences_.Get(key).Set(generating);
  kv_positions_reserved_.Get(key).Set(static_cast<double>(kv_positions));
}

void Metrics::OnExpired(const VariantKey& key) { expired_requests_.Get(key).Increment(); }

void Metrics::RecordRequest(const std::string& rpc, const std::string& model,
                            const std::string& variant, const std::string& code, double seconds) {
  requests_.Add({{"rpc", rpc}, {"model", model}, {"variant", variant}, {"code", code}}).Increment();
  request_duration_.Add({{"rpc", rpc}, {"model", model}, {"variant", variant}}, LatencyBuckets())
      .Observe(seconds);
}

InflightGuard Metrics::Inflight(const std::string& rpc) {
  return InflightGuard(&inflight_.Add({{"rpc", rpc}}));
}

void Metrics::SetModelInfo(const std::string& model, const std::string& variant,
                           const std::string& activation_kind, int64_t n, double eps,
                           double neg_slope) {
  std::lock_guard<std::mutex> lock(model_info_mutex_);
  Gauge*& series = model_info_series_[{model, variant}];
  if (series != nullptr) model_info_.Remove(series);
  series = &model_info_.Add({{"model", model},
                             {"variant", variant},
                             {"activation", activation_kind},
                             {"n", std::to_string(n)},
                             {"eps", ShortestExact(eps)},
                             {"neg_slope", ShortestExact(neg_slope)}});
  series->Set(1);
}

void Metrics::ClearModelInfo() {
  std::lock_guard<std::mutex> lock(model_info_mutex_);
  for (const auto& [key, series] : model_info_series_) model_info_.Remove(series);
  model_info_series_.clear();
}

void Metrics::OnAbAssignment(const VariantKey& key) { ab_assignments_.Get(key).Increment(); }

void Metrics::OnExperimentWeights(const std::string& model,
                                  const std::map<std::string, uint32_t>& split) {
  std::lock_guard<std::mutex> lock(experiment_weight_mutex_);
  std::map<std::string, Gauge*>& arms = experiment_weight_series_[model];
  for (const auto& [variant, weight] : split) {
    Gauge*& series = arms[variant];
    if (series == nullptr) {
      series = &experiment_weight_.Add({{"model", model}, {"variant", variant}});
    }
    series->Set(weight);
  }
  for (const auto& [variant, series] : arms) {
    if (split.count(variant) == 0) series->Set(0);
  }
}

void Metrics::OnShadowComparison(const std::string& model, const std::string& primary,
                                 const std::string& shadow, bool agree, double kl,
                                 double latency_ratio) {
  const Labels pair{{"model", model}, {"primary", primary}, {"shadow", shadow}};
  Labels counted = pair;
  counted.emplace("result", agree ? "agree" : "disagree");
  shadow_comparisons_.Add(counted).Increment();
  if (std::isfinite(kl)) shadow_divergence_.Add(pair, DivergenceBuckets()).Observe(kl);
  if (std::isfinite(latency_ratio)) {
    shadow_latency_ratio_.Add(pair, LatencyRatioBuckets()).Observe(latency_ratio);
  }
}

void Metrics::OnShadowDropped(const std::string& model, const std::string& primary,
                              const std::string& shadow) {
  shadow_comparisons_
      .Add({{"model", model}, {"primary", primary}, {"shadow", shadow}, {"result", "dropped"}})
      .Increment();
}

void Metrics::OnFeedbackLabel(const VariantKey& key, bool correct) {
  feedback_
      .Add({{"model", key.model},
            {"variant", key.variant},
            {"outcome", correct ? "correct" : "incorrect"}})
      .Increment();
}

void Metrics::OnFeedbackReward(const VariantKey& key, double reward) {
  if (!std::isfinite(reward) || reward < 0) return;
  feedback_.Add({{"model", key.model}, {"variant", key.variant}, {"outcome", "reward"}})
      .Increment();
  feedback_reward_.Get(key).Observe(reward);
}

void Metrics::OnActivationSample(const VariantKey& key, bool recorded) {
  activation_samples_
      .Add({{"model", key.model},
            {"variant", key.variant},
            {"result", recorded ? "recorded" : "dropped"}})
      .Increment();
}

Metrics::SiteGauges Metrics::AddSiteGauges(const VariantKey& key, const std::string& site) {
  const Labels labels{{"model", key.model}, {"variant", key.variant}, {"site", site}};
  return {&activation_zero_fraction_.Add(labels), &activation_dead_units_ratio_.Add(labels),
          &activation_input_mean_.Add(labels), &activation_input_std_.Add(labels)};
}

void Metrics::RemoveSiteGauges(const SiteGauges& gauges) {
  activation_zero_fraction_.Remove(gauges.zero_fraction);
  activation_dead_units_ratio_.Remove(gauges.dead_units_ratio);
  activation_input_mean_.Remove(gauges.input_mean);
  activation_input_std_.Remove(gauges.input_std);
}

void Metrics::OnActivationWindow(const VariantKey& key, const std::vector<SiteSummary>& sites) {
  std::lock_guard<std::mutex> lock(activation_mutex_);
  std::map<std::string, SiteGauges>& series = activation_series_[{key.model, key.variant}];
  std::map<std::string, SiteGauges> kept;
  for (const SiteSummary& site : sites) {
    const auto it = series.find(site.site);
    const SiteGauges gauges = it != series.end() ? it->second : AddSiteGauges(key, site.site);
    if (it != series.end()) series.erase(it);
    gauges.zero_fraction->Set(site.zero_fraction);
    gauges.dead_units_ratio->Set(site.dead_units_ratio);
    gauges.input_mean->Set(site.input_mean);
    gauges.input_std->Set(site.input_std);
    kept.emplace(site.site, gauges);
  }
  for (const auto& [site, gauges] : series) RemoveSiteGauges(gauges);
  if (kept.empty()) {
    activation_series_.erase({key.model, key.variant});
  } else {
    series = std::move(kept);
  }
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
  std::vector<prometheus::MetricFamily> families = registry_.Collect();
  for (auto& family : process_.Collect()) families.push_back(std::move(family));
  return families;
}

std::string Metrics::Serialize() const { return prometheus::TextSerializer().Serialize(Collect()); }

}  // namespace gemserve
