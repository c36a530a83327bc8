#pragma once

// gemserve's Prometheus metrics: the families of DESIGN.md ("Metrics"), filled by the
// engine (as its InferenceObserver), by the transports (requests, in-flight) and by the
// model loader (model_info), and rendered as the text exposition for GET /metrics.
//
// Thread-safe: every method may be called from any thread without external locking.
// Recording never fails and never throws; label values are taken as given (an empty
// model or variant is allowed, e.g. for a request rejected before routing).

#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/metric_family.h>
#include <prometheus/registry.h>

#include "server/engine/request.h"
#include "server/metrics/process_collector.h"
#include "server/metrics/variant_series.h"

namespace gemserve {

// The outcome of comparing a shadow variant's answer with the primary's; the `result`
// label of gemserve_shadow_comparisons_total.
enum class ShadowResult { kAgree, kDisagree, kDropped };

// Holds one increment of gemserve_inflight_requests{rpc} and gives it back when
// destroyed. Move-only; a moved-from guard gives back nothing. Must not outlive the
// Metrics that made it.
class InflightGuard {
 public:
  InflightGuard(InflightGuard&& other) noexcept;
  InflightGuard& operator=(InflightGuard&& other) noexcept;
  InflightGuard(const InflightGuard&) = delete;
  InflightGuard& operator=(const InflightGuard&) = delete;
  ~InflightGuard();

 private:
  friend class Metrics;
  explicit InflightGuard(prometheus::Gauge* gauge);
  prometheus::Gauge* gauge_;
};

class Metrics final : public InferenceObserver {
 public:
  Metrics();
  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // InferenceObserver: called by engine workers, per batch or per token; each is a
  // cached lookup and an atomic update (see VariantSeries).
  void OnQueued(const VariantKey& key, double seconds) override;
  void OnInference(const VariantKey& key, double seconds, int batch_size) override;
  void OnFirstToken(const VariantKey& key, double seconds) override;
  void OnInterToken(const VariantKey& key, double seconds) override;
  void OnGeneratedTokens(const VariantKey& key, int count) override;

  // One finished RPC: gemserve_requests_total{rpc,model,variant,code} += 1 and
  // gemserve_request_duration_seconds{rpc,model,variant} observes `seconds`.
  // `code` is the gRPC status code name, e.g. "OK", "INVALID_ARGUMENT".
  void RecordRequest(const std::string& rpc, const std::string& model, const std::string& variant,
                     const std::string& code, double seconds);

  // gemserve_inflight_requests{rpc} is one higher while the returned guard lives.
  [[nodiscard]] InflightGuard Inflight(const std::string& rpc);

  // gemserve_model_info{model,variant,activation,n,eps,neg_slope} = 1. Numbers are
  // written in their shortest exact form ("1", "0.0001", "0.01"). Setting a variant
  // again replaces its previous series.
  void SetModelInfo(const std::string& model, const std::string& variant,
                    const std::string& activation_kind, int64_t n, double eps, double neg_slope);
  // Drops every model_info series (before a reload sets the loaded variants again).
  void ClearModelInfo();

  // A/B: gemserve_ab_assignments_total{model,variant} += 1 for one routed request.
  void OnAbAssignment(const std::string& model, const std::string& variant);
  // gemserve_shadow_comparisons_total{model,primary,shadow,result} += 1.
  void OnShadowComparison(const std::string& model, const std::string& primary,
                          const std::string& shadow, ShadowResult result);
  // gemserve_shadow_divergence{model,primary,shadow} observes `divergence`, a distance
  // in [0, 1] between the two answers (e.g. total variation of the class probabilities).
  void OnShadowDivergence(const std::string& model, const std::string& primary,
                          const std::string& shadow, double divergence);

  // Every family: the registry's, then the process metrics.
  std::vector<prometheus::MetricFamily> Collect() const;
  // Collect() in the Prometheus text format 0.0.4 (the body of GET /metrics).
  std::string Serialize() const;

 private:
  using Histograms = prometheus::Family<prometheus::Histogram>;
  using Counters = prometheus::Family<prometheus::Counter>;
  using Gauges = prometheus::Family<prometheus::Gauge>;

  prometheus::Registry registry_;
  ProcessCollector process_;

  Counters& requests_;
  Histograms& request_duration_;
  Gauges& inflight_;
  Gauges& model_info_;
  Counters& ab_assignments_;
  Counters& shadow_comparisons_;
  Histograms& shadow_divergence_;

  VariantSeries<prometheus::Histogram> queue_duration_;
  VariantSeries<prometheus::Histogram> inference_duration_;
  VariantSeries<prometheus::Histogram> batch_size_;
  VariantSeries<prometheus::Histogram> time_to_first_token_;
  VariantSeries<prometheus::Histogram> inter_token_duration_;
  VariantSeries<prometheus::Counter> generated_tokens_;

  std::mutex model_info_mutex_;
  // {model, variant} -> its model_info series, so that SetModelInfo can replace it.
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> model_info_series_;
};

}  // namespace gemserve
