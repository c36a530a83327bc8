#pragma once

// Serves one classify variant: `workers` threads, each with its own copy of the model
// (forwards use the engine's intra-op thread count), take queued requests in batches
// from one shared queue, run one forward per batch, and answer each request with its top-k classes.
//
// Batching is continuous: a free worker takes everything queued (up to max_batch_size)
// at once, so a lone request never waits and batches fill by themselves under load while
// the workers compute. max_queue_delay > 0 additionally holds a short batch open that
// long for more requests (more throughput at low load, at the cost of latency).

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/engine/model_config.h"
#include "server/engine/request.h"
#include "server/engine/request_queue.h"
#include "server/engine/scripted_model.h"

namespace gemserve {

struct Prediction {
  int index = 0;
  std::string label;
  float probability = 0;
};

struct ClassifyResult {
  std::vector<Prediction> predictions;  // most probable first
  Timing timing;
  std::string request_id;               // set by the engine (feedback_log.h)
  uint64_t experiment_version = 0;      // set by the engine; 0: not routed
};

struct ClassifyJob {
  at::Tensor input;  // normalised [C, H, W] (see image_input.h)
  int top_k = 5;     // clamped to the number of classes
  RequestContext context;
  // Called exactly once, on the worker thread (or in Submit's caller on rejection).
  std::function<void(StatusOr<ClassifyResult>)> done;
};

class ClassifyRunner {
 public:
  // Warms every model up (forwards of a zero image), then starts one worker per model.
  // `models` are copies of the variant's model, options.workers of them.
  static StatusOr<std::unique_ptr<ClassifyRunner>> Start(
      VariantConfig config, std::vector<std::unique_ptr<ScriptedModel>> models,
      BatchingOptions options, InferenceObserver* observer);
  ~ClassifyRunner();  // refuses new jobs, lets the workers answer those still queued, joins

  // Queues `job`; when the queue is full, calls job.done(ResourceExhausted) at once.
  void Submit(ClassifyJob job);

  const VariantConfig& config() const { return config_; }

 private:
  ClassifyRunner(VariantConfig config, std::vector<std::unique_ptr<ScriptedModel>> models,
                 BatchingOptions options, InferenceObserver* observer);

  void WorkerLoop(ScriptedModel& model);
  void RunBatch(ScriptedModel& model, std::vector<ClassifyJob>& batch);
  std::vector<std::vector<Prediction>> TopK(const at::Tensor& logits, const std::vector<int>& k);

  const VariantConfig config_;
  const VariantKey key_;
  const std::vector<std::unique_ptr<ScriptedModel>> models_;  // models_[i]: worker i's
  const BatchingOptions options_;
  InferenceObserver* observer_;
  RequestQueue<ClassifyJob> queue_;
  std::vector<std::thread> workers_;
};

}  // namespace gemserve
