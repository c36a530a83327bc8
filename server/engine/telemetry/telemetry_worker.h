#pragma once

// Runs the activation statistics of a sample of served requests off the request path
// (DESIGN.md "Activation telemetry"; docs/TELEMETRY.md "Server").
//
// The engine asks Sample(its model's rate) after a request was served successfully; for a sampled one it
// submits the input it already preprocessed (Classify: the normalised image; Generate:
// the prompt's token ids) with the variant's VariantTelemetry. Submit never blocks: when
// `queue_size` jobs already wait, the job is dropped and counted
// (OnActivationSample(recorded=false)). One thread, at SCHED_IDLE on one core (no
// intra-op threads), runs each job on the variant's own model copy, never on a serving
// runner's, so the two never wait on each other, and folds it into the variant's window.
// Thread-safe.

#include <ATen/core/Tensor.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/engine/request.h"
#include "server/engine/request_queue.h"
#include "server/engine/telemetry/variant_telemetry.h"

namespace gemserve {

// Config section `telemetry`, and `models.<model>.telemetry_sample_rate`.
struct TelemetryOptions {
  double sample_rate = 0.01;  // of successfully served requests, in [0, 1]; 0: off (no
                              // model copies are loaded)
  size_t window = 1000;       // sampled requests per (model, variant) the figures cover
  size_t queue_size = 64;     // sampled requests waiting beyond it are dropped
  std::map<std::string, double> model_sample_rates;  // per model, in place of sample_rate

  // The sample rate of `model`'s requests.
  double RateFor(const std::string& model) const {
    const auto it = model_sample_rates.find(model);
    return it == model_sample_rates.end() ? sample_rate : it->second;
  }
  // Whether any model is sampled at all.
  bool enabled() const {
    if (sample_rate > 0) return true;
    for (const auto& [model, rate] : model_sample_rates) {
      if (rate > 0) return true;
    }
    return false;
  }
};

struct TelemetryJob {
  std::shared_ptr<VariantTelemetry> variant;  // the version that served the request
  at::Tensor image;                           // classify: the normalised input [C, H, W]
  std::vector<int32_t> tokens;                // generate: the prompt's token ids
};

class TelemetryWorker {
 public:
  TelemetryWorker(TelemetryOptions options, InferenceObserver* observer);
  ~TelemetryWorker();  // drops what is queued (uncounted: the server is stopping), joins

  // True for a `rate` fraction of calls.
  static bool Sample(double rate);
  void Submit(TelemetryJob job);

 private:
  void WorkerLoop();
  void Run(const TelemetryJob& job);

  InferenceObserver* observer_;
  RequestQueue<TelemetryJob> queue_;
  std::atomic<bool> stopping_{false};
  std::thread worker_;
};

}  // namespace gemserve
