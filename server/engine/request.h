#pragma once

// What every engine request carries besides its payload: when it arrived, until when
// it may run, and a flag the transport sets when the client goes away.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "server/engine/status.h"
#include "server/engine/telemetry/site_summary.h"

namespace gemserve {

using Clock = std::chrono::steady_clock;

struct Timing {
  int64_t queue_us = 0;      // arrival -> picked up by the worker
  int64_t inference_us = 0;  // time in model forwards
  int64_t total_us = 0;      // arrival -> answer
};

inline int64_t MicrosBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration_cast<std::chrono::microseconds>(to - from).count();
}

inline double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

struct RequestContext {
  Clock::time_point arrival = Clock::now();
  Clock::time_point deadline = Clock::time_point::max();
  std::shared_ptr<std::atomic<bool>> cancelled = std::make_shared<std::atomic<bool>>(false);
  // Set by the transport when it shuts down past its grace period; null: never.
  std::shared_ptr<const std::atomic<bool>> aborted;

  // Cancelled, Unavailable (shutting down) or DeadlineExceeded once the request must
  // stop; OK while it may run.
  Status CheckAlive() const {
    if (cancelled->load(std::memory_order_relaxed)) {
      return Status::Cancelled("the client cancelled the request");
    }
    if (aborted && aborted->load(std::memory_order_relaxed)) {
      return Status::Unavailable("gem-server shut down before the request finished; retry");
    }
    if (Clock::now() > deadline) return Status::DeadlineExceeded("the request deadline passed");
    return Status::Ok();
  }
};

// Which model variant served a request.
struct VariantKey {
  std::string model;
  std::string variant;
};

// Receives the engine's measurements (the Prometheus layer implements it). Called from
// engine worker threads; implementations must be thread-safe and fast.
class InferenceObserver {
 public:
  virtual ~InferenceObserver() = default;
  virtual void OnQueued(const VariantKey&, double /*seconds*/) {}
  virtual void OnInference(const VariantKey&, double /*seconds*/, int /*batch_size*/) {}
  virtual void OnFirstToken(const VariantKey&, double /*seconds*/) {}
  virtual void OnInterToken(const VariantKey&, double /*seconds*/) {}
  virtual void OnGeneratedTokens(const VariantKey&, int /*count*/) {}
  // Generate: the sequences generating now and the KV-cache positions they hold in
  // reserve, after every change (admission, retirement, cancellation).
  virtual void OnSequences(const VariantKey&, int /*generating*/, int64_t /*kv_positions*/) {}
  // A request whose deadline passed (or whose client left) before its worker reached it:
  // dropped without inference.
  virtual void OnExpired(const VariantKey&) {}

  // Experiments (see server/engine/experiments/).
  // A request that named no variant was routed to `key.variant` by the model's experiment.
  virtual void OnAbAssignment(const VariantKey& /*key*/) {}
  // The split now in force for `model` (every arm, weights as configured, not normalised).
  virtual void OnExperimentWeights(const std::string& /*model*/,
                                   const std::map<std::string, uint32_t>& /*split*/) {}
  // One paired shadow comparison of `shadow` against `primary` on the same input:
  // `agree` (same top-1 / every teacher-forced position agrees), KL(primary || shadow) in
  // nats, and shadow forward time / primary forward time.
  virtual void OnShadowComparison(const std::string& /*model*/, const std::string& /*primary*/,
                                  const std::string& /*shadow*/, bool /*agree*/, double /*kl*/,
                                  double /*latency_ratio*/) {}
  // A mirror of a request to `shadow` was dropped (shadow queue full, or the primary was
  // cancelled before the shadow worker reached it).
  virtual void OnShadowDropped(const std::string& /*model*/, const std::string& /*primary*/,
                               const std::string& /*shadow*/) {}
  // Feedback on a request `key` served: a label (`correct` says whether the served top-1
  // was it) or a reward in [0, 1].
  virtual void OnFeedbackLabel(const VariantKey& /*key*/, bool /*correct*/) {}
  virtual void OnFeedbackReward(const VariantKey& /*key*/, double /*reward*/) {}

  // Activation telemetry (see server/engine/telemetry/).
  // A sampled request of `key` was folded into its window (`recorded`), or dropped: the
  // telemetry queue was full, or the statistics method failed on it (logged).
  virtual void OnActivationSample(const VariantKey& /*key*/, bool /*recorded*/) {}
  // The window of `key` now, one summary per site in network order, after each recorded
  // sample. Empty: the variant's window is gone (a reload replaced or removed that
  // version); its figures must no longer be shown.
  virtual void OnActivationWindow(const VariantKey& /*key*/,
                                  const std::vector<SiteSummary>& /*sites*/) {}
};

// Batching, workers and queue limits of one variant.
struct BatchingOptions {
  int max_batch_size = 16;                     // requests per forward (decode rows for GPT-2)
  std::chrono::microseconds max_queue_delay{0};  // Classify: hold a short batch open this long
  size_t queue_capacity = 256;                 // queued requests beyond it: RESOURCE_EXHAUSTED
  int workers = 2;                             // Classify: worker threads, one model copy each
};

}  // namespace gemserve
