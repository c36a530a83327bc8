#pragma once

// Serves one classify variant: a worker thread takes queued requests in batches, runs
// one forward per batch, and answers each request with its top-k classes.

#include <ATen/core/Tensor.h>

#include <functional>
#include <memory>
#include <mutex>
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
  ClassifyRunner(VariantConfig config, std::unique_ptr<ScriptedModel> model,
                 BatchingOptions options, InferenceObserver* observer);
  ~ClassifyRunner();  // answers queued jobs with Unavailable, then joins the worker

  // One forward of a zero image, before the variant is reported ready.
  Status Warmup();

  // Queues `job`; when the queue is full, calls job.done(ResourceExhausted) at once.
  void Submit(ClassifyJob job);

  // Classifies inputs directly on the caller's thread (used by Compare and tests).
  StatusOr<std::vector<std::vector<Prediction>>> ClassifyNow(const std::vector<at::Tensor>& inputs,
                                                             int top_k);

  const VariantConfig& config() const { return config_; }

 private:
  void WorkerLoop();
  void RunBatch(std::vector<ClassifyJob>& batch);
  std::vector<std::vector<Prediction>> TopK(const at::Tensor& logits, const std::vector<int>& k);

  const VariantConfig config_;
  const VariantKey key_;
  std::unique_ptr<ScriptedModel> model_;
  std::mutex model_mutex_;  // the worker and ClassifyNow share the model
  const BatchingOptions options_;
  InferenceObserver* observer_;
  RequestQueue<ClassifyJob> queue_;
  std::thread worker_;
};

}  // namespace gemserve
