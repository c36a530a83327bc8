#pragma once

// Serves one classify variant: `workers` threads, each with its own copy of the model
// (forwards use the engine's intra-op thread count), take queued requests in batches
// from one shared queue, run one forward per batch, and answer each request with its top-k classes.
//
// Batching is continuous: a free worker takes everything queued (up to max_batch_size)
// at once, so a lone request never waits and batches fill by themselves under load while
// the workers compute. max_queue_delay > 0 additionally holds a short batch open that
// long for more requests (more throughput at low load, at the cost of latency).
//
// The workers also turn each request's pixels or image bytes into the model's input
// (image_input.h), so that decoding never runs on the transport's threads and costs at
// most `workers` decodes at once per variant, each bounded by max_image_pixels.

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "server/engine/image_input.h"
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
  at::Tensor input;                     // the normalised [C, H, W] the answer is for
};

struct ClassifyJob {
  std::shared_ptr<const ClassifyInput> input;  // pixels or image bytes, as the client sent
  int top_k = 5;     // clamped to the number of classes
  RequestContext context;
  // Called exactly once, on the worker thread (or in Submit's caller on rejection).
  std::function<void(StatusOr<ClassifyResult>)> done;
};

class ClassifyRunner {
 public:
  // Starts one worker per model; `models` are copies of the variant's model,
  // options.workers of them. Images above `max_image_pixels` (width x height) are refused
  // before decoding.
  static StatusOr<std::unique_ptr<ClassifyRunner>> Start(
      VariantConfig config, std::vector<std::unique_ptr<ScriptedModel>> models,
      BatchingOptions options, int64_t max_image_pixels, InferenceObserver* observer);
  ~ClassifyRunner();  // Stop()

  // Refuses new jobs, lets the workers answer those still queued, joins them. Idempotent;
  // call it from a thread other than the workers.
  void Stop();

  // Forwards of a zero image on every model, on the calling thread, until TorchScript has
  // optimized the graph; before the first Submit (the workers must be idle).
  Status Warmup();

  // Queues `job`; when the queue is full, calls job.done(ResourceExhausted) at once.
  void Submit(ClassifyJob job);

  const VariantConfig& config() const { return config_; }

 private:
  ClassifyRunner(VariantConfig config, std::vector<std::unique_ptr<ScriptedModel>> models,
                 BatchingOptions options, int64_t max_image_pixels, InferenceObserver* observer);

  void WorkerLoop(ScriptedModel& model);
  void RunBatch(ScriptedModel& model, std::vector<ClassifyJob>& batch);
  std::vector<std::vector<Prediction>> TopK(const at::Tensor& logits, const std::vector<int>& k);

  const VariantConfig config_;
  const VariantKey key_;
  const std::vector<std::unique_ptr<ScriptedModel>> models_;  // models_[i]: worker i's
  const BatchingOptions options_;
  const int64_t max_image_pixels_;
  InferenceObserver* observer_;
  RequestQueue<ClassifyJob> queue_;
  std::vector<std::thread> workers_;
};

}  // namespace gemserve
