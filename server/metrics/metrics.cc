#include "server/metrics/metrics.h"

#include <cstdio>
#include <cstdlib>

#include <prometheus/text_serializer.h>

namespace gemserve {
namespace {

using prometheus::Counter;
using prometheus::Gauge;
using prometheus::Histogram;
using prometheus::Labels;

// Request, queue, forward and time-to-first-token latencies. One ResNet-20 forward takes a
// few hundred microseconds, a batching delay about 2 ms, a long generation seconds: 100 us
// to 10 s in 1-2.5-5 steps, so a quantile read from the buckets is within 2.5x of the truth
// over the whole range, with 16 buckets per series.
Histogram::BucketBoundaries LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025,
          0.05,   0.1,     0.25,   0.5,   1,      2.5,   5,    10};
}

// Requests per forward. max_batch_size is usually a power of two up to 64; powers of two
// and their midpoints tell "mostly alone" from "full batches", and le="1" counts exactly
// the forwards that batched nothing.
Histogram::BucketBoundaries BatchSizeBuckets() {
  return {1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64};
}

// One decode step: a few milliseconds for the demo GPT-2 on CPU, up to a second on a
// contended machine: 1 ms to 1 s in 1-2.5-5 steps.
Histogram::BucketBoundaries InterTokenBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
}

// Divergence is a distance in [0, 1]; shadow variants mostly nearly agree with the
// primary, so the resolution is finest near 0.
Histogram::BucketBoundaries DivergenceBuckets() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1};
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

// The shortest "%g" form that reads back as the same double: 1 -> "1", 1e-4 -> "0.0001".
std::string ShortestExact(double value) {
  char text[32];
  for (int precision = 1; precision <= 17; ++precision) {
    std::snprintf(text, sizeof text, "%.*g", precision, value);
    if (std::strtod(text, nullptr) == value) break;
  }
  return text;
}

const char* ShadowResultName(ShadowResult result) {
  switch (result) {
    case ShadowResult::kAgree: return "agree";
    case ShadowResult::kDisagree: return "disagree";
    case ShadowResult::kDropped: return "dropped";
  }
  return "unknown";
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
      ab_assignments_(NewCounters(registry_, "gemserve_ab_assignments_total",
                                  "Requests routed to a variant by an experiment.")),
      shadow_comparisons_(NewCounters(
          registry_, "gemserve_shadow_comparisons_total",
          "Shadow answers compared with the primary's (result: agree, disagree, dropped).")),
      shadow_divergence_(
          NewHistograms(registry_, "gemserve_shadow_divergence",
                        "Distance in [0, 1] between a shadow answer and the primary's.")),
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
                       InterTokenBuckets())),
      generated_tokens_(AddCounter(
          NewCounters(registry_, "gemserve_generated_tokens_total", "Tokens generated."))) {}

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

void Metrics::OnAbAssignment(const std::string& model, const std::string& variant) {
  ab_assignments_.Add({{"model", model}, {"variant", variant}}).Increment();
}

void Metrics::OnShadowComparison(const std::string& model, const std::string& primary,
                                 const std::string& shadow, ShadowResult result) {
  shadow_comparisons_
      .Add({{"model", model},
            {"primary", primary},
            {"shadow", shadow},
            {"result", ShadowResultName(result)}})
      .Increment();
}

void Metrics::OnShadowDivergence(const std::string& model, const std::string& primary,
                                 const std::string& shadow, double divergence) {
  shadow_divergence_
      .Add({{"model", model}, {"primary", primary}, {"shadow", shadow}}, DivergenceBuckets())
      .Observe(divergence);
}

std::vector<prometheus::MetricFamily> Metrics::Collect() const {
  std::vector<prometheus::MetricFamily> families = registry_.Collect();
  for (auto& family : process_.Collect()) families.push_back(std::move(family));
  return families;
}

std::string Metrics::Serialize() const { return prometheus::TextSerializer().Serialize(Collect()); }

}  // namespace gemserve
