#pragma once

// gemserve's Prometheus metrics: the families of DESIGN.md ("Metrics"), filled by the
// engine (as its InferenceObserver, experiments included), by the transports (requests,
// in-flight) and by the model loader (model_info), and rendered as the text exposition for
// GET /metrics.
//
// Thread-safe: every method may be called from any thread without external locking.
// Recording never fails and never throws; label values are taken as given (an empty
// model or variant is allowed, e.g. for a request rejected before routing). No label
// value is made up here: each is a string the caller passed, or one of the fixed words of
// `result` (agree, disagree, dropped) and `outcome` (correct, incorrect, reward).
//
// Histogram buckets (upper bounds; each histogram also has +Inf):
//   - Every latency family (request, queue, inference, time to first token, inter-token):
//     50 us * 1.5^k, k = 0..35, i.e. 50 us to 73 s (the first bound >= 60 s), 36 bounds.
//     A quantile interpolated from them is within a factor 1.5 of the truth from 50 us to
//     60 s, so p99 of 45 ms and of 50 ms land in different buckets.
//   - gemserve_batch_size: 1, 2, 3, 4, 6, 8, 12, 16, 24, 32, 48, 64.
//   - gemserve_shadow_divergence (KL, nats): 10^(k/4), k = -20..4, i.e. 1e-5 to 10 in
//     quarter decades (factor 1.78).
//   - gemserve_shadow_latency_ratio: 2^(k/8), k = -16..24, i.e. 0.25 to 8 in factors of
//     1.09, with 1 (as fast as the primary) and every power of two an exact bound.
//   - gemserve_feedback_reward: 0, 0.1, 0.2, ..., 1.

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

  // InferenceObserver, serving: called by engine workers, per batch or per token; each is
  // a cached lookup and an atomic update (see VariantSeries). They fill, in this order,
  // gemserve_queue_duration_seconds, gemserve_inference_duration_seconds and
  // gemserve_batch_size, gemserve_time_to_first_token_seconds,
  // gemserve_inter_token_duration_seconds and gemserve_generated_tokens_total.
  void OnQueued(const VariantKey& key, double seconds) override;
  void OnInference(const VariantKey& key, double seconds, int batch_size) override;
  void OnFirstToken(const VariantKey& key, double seconds) override;
  void OnInterToken(const VariantKey& key, double seconds) override;
  void OnGeneratedTokens(const VariantKey& key, int count) override;
  // gemserve_generate_sequences{model,variant} = generating and
  // gemserve_kv_positions_reserved{model,variant} = kv_positions.
  void OnSequences(const VariantKey& key, int generating, int64_t kv_positions) override;
  // gemserve_expired_requests_total{model,variant} += 1.
  void OnExpired(const VariantKey& key) override;

  // InferenceObserver, experiments (request.h says when the engine calls each).
  //
  // gemserve_ab_assignments_total{model,variant} += 1.
  void OnAbAssignment(const VariantKey& key) override;
  // gemserve_experiment_weight{model,variant} = the arm's weight, for every arm of `split`;
  // an arm of `model` that an earlier split had and this one lacks reads 0 from now on
  // (its series stays, so a dashboard sees it leave rather than freeze or vanish).
  void OnExperimentWeights(const std::string& model,
                           const std::map<std::string, uint32_t>& split) override;
  // gemserve_shadow_comparisons_total{model,primary,shadow,result="agree"|"disagree"} += 1;
  // gemserve_shadow_divergence{model,primary,shadow} observes `kl` (KL(primary || shadow),
  // nats) and gemserve_shadow_latency_ratio{model,primary,shadow} observes `latency_ratio`
  // (shadow / primary forward time). A NaN or infinite kl or ratio is not observed (it
  // would poison the histogram's _sum for good); the comparison is still counted.
  void OnShadowComparison(const std::string& model, const std::string& primary,
                          const std::string& shadow, bool agree, double kl,
                          double latency_ratio) override;
  // gemserve_shadow_comparisons_total{model,primary,shadow,result="dropped"} += 1.
  void OnShadowDropped(const std::string& model, const std::string& primary,
                       const std::string& shadow) override;
  // gemserve_feedback_total{model,variant,outcome="correct"|"incorrect"} += 1.
  void OnFeedbackLabel(const VariantKey& key, bool correct) override;
  // gemserve_feedback_total{model,variant,outcome="reward"} += 1 and the histogram
  // gemserve_feedback_reward{model,variant} observes `reward`; its series
  // gemserve_feedback_reward_sum{model,variant} is the sum of DESIGN.md, and sum / count
  // the mean reward. (A counter named *_sum would fail promtool.) A reward that is
  // negative, NaN or infinite is dropped from both families (the sum must never go down),
  // keeping the two counts equal.
  void OnFeedbackReward(const VariantKey& key, double reward) override;

  // InferenceObserver, activation telemetry.
  //
  // gemserve_activation_samples_total{model,variant,result="recorded"|"dropped"} += 1.
  void OnActivationSample(const VariantKey& key, bool recorded) override;
  // gemserve_activation_zero_fraction, _dead_units_ratio, _input_mean and _input_std
  // {model,variant,site} = the summary's figures, for every site of `sites`; a site of
  // `key` not in `sites` loses its series, and an empty `sites` removes every series of
  // `key` (a reload replaced the version, or removed it).
  void OnActivationWindow(const VariantKey& key, const std::vector<SiteSummary>& sites) override;

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
  Gauges& experiment_weight_;
  Counters& shadow_comparisons_;
  Histograms& shadow_divergence_;
  Histograms& shadow_latency_ratio_;
  Counters& feedback_;

  VariantSeries<prometheus::Histogram> queue_duration_;
  VariantSeries<prometheus::Histogram> inference_duration_;
  VariantSeries<prometheus::Histogram> batch_size_;
  VariantSeries<prometheus::Histogram> time_to_first_token_;
  VariantSeries<prometheus::Histogram> inter_token_duration_;
  VariantSeries<prometheus::Counter> generated_tokens_;
  VariantSeries<prometheus::Gauge> generate_sequences_;
  VariantSeries<prometheus::Gauge> kv_positions_reserved_;
  VariantSeries<prometheus::Counter> expired_requests_;
  VariantSeries<prometheus::Counter> ab_assignments_;
  VariantSeries<prometheus::Histogram> feedback_reward_;

  std::mutex model_info_mutex_;
  // {model, variant} -> its model_info series, so that SetModelInfo can replace it.
  std::map<std::pair<std::string, std::string>, prometheus::Gauge*> model_info_series_;

  // One site's four activation gauges.
  struct SiteGauges {
    prometheus::Gauge* zero_fraction;
    prometheus::Gauge* dead_units_ratio;
    prometheus::Gauge* input_mean;
    prometheus::Gauge* input_std;
  };
  SiteGauges AddSiteGauges(const VariantKey& key, const std::string& site);
  void RemoveSiteGauges(const SiteGauges& gauges);

  Counters& activation_samples_;
  Gauges& activation_zero_fraction_;
  Gauges& activation_dead_units_ratio_;
  Gauges& activation_input_mean_;
  Gauges& activation_input_std_;
  std::mutex activation_mutex_;
  // {model, variant} -> site -> its gauges, so that a reload can remove them.
  std::map<std::pair<std::string, std::string>, std::map<std::string, SiteGauges>>
      activation_series_;

  std::mutex experiment_weight_mutex_;
  // model -> every arm any of its splits had -> its experiment_weight series.
  std::map<std::string, std::map<std::string, prometheus::Gauge*>> experiment_weight_series_;
};

}  // namespace gemserve
