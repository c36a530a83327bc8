#pragma once

// Mirrors a sample of an experiment's routed requests to its shadow variants, off the
// request path, and compares each shadow with the variant that served the request.
//
// The worker owns private copies of the models it runs (every ready variant of the
// model), so it never waits on a serving runner and no runner waits on it; its thread
// runs at SCHED_IDLE on one core (no intra-op threads), so it only uses CPU the serving
// threads leave idle. For each
// mirrored request and each shadow variant it runs the primary's variant and the shadow
// back to back at batch 1, in random order, timing each forward:
//   - Classify: top-1 agreement and KL(primary || shadow) of the class distributions;
//   - Generate: teacher-forced, one forward of each model over prompt + the primary's
//     completion: the fraction of positions where the shadow's top-1 is the primary's
//     token, and the mean KL over those positions.
// Results go to the experiment's statistics and the observer (metrics). Submit never
// blocks: when `queue_size` mirrors already wait, the new one is dropped and counted.

#include <ATen/core/Tensor.h>

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "server/engine/experiments/experiment.h"
#include "server/engine/model_config.h"
#include "server/engine/request.h"
#include "server/engine/request_queue.h"
#include "server/engine/scripted_model.h"

namespace gemserve {

struct ShadowJob {
  std::string primary;            // the variant that served the request
  at::Tensor image;               // classify: the normalised input [C, H, W]
  std::vector<int32_t> tokens;    // generate: prompt + completion
  int64_t prompt_length = 0;      // generate: how many of `tokens` were the prompt
};

class ShadowWorker {
 public:
  // `warmup` is a typical input (classify: an image [C, H, W]; generate: token ids
  // [1, T]) that the worker runs through every model before its first comparison, so
  // that TorchScript's profiling runs do not enter the latency ratios.
  ShadowWorker(std::string model, Task task,
               std::map<std::string, std::unique_ptr<ScriptedModel>> models, at::Tensor warmup,
               ShadowSettings settings, Experiment* experiment, InferenceObserver* observer);
  ~ShadowWorker();  // drops what is queued (uncounted: the server is stopping), joins

  void Submit(ShadowJob job);
  // After a reload: replaces the models of the variants named (a null model: the variant
  // is gone). The worker swaps and warms them up on its own thread before its next
  // comparison; an update not yet applied is replaced by a later one.
  void UpdateModels(std::map<std::string, std::unique_ptr<ScriptedModel>> models);
  // Counts a mirror that will never run (its primary was cancelled or failed).
  void Drop(const std::string& primary);

 private:
  struct Outcome {
    double agreement = 0;  // 1/0 (classify) or the fraction of positions (generate)
    double kl = 0;
    double latency_ratio = 1;
  };

  void WorkerLoop();
  void ApplyUpdates();
  void Warmup(const std::string& name, ScriptedModel& model);
  void Run(const ShadowJob& job);
  Outcome CompareClassify(const ShadowJob& job, ScriptedModel& primary, ScriptedModel& shadow);
  Outcome CompareGenerate(const ShadowJob& job, ScriptedModel& primary, ScriptedModel& shadow);
  // Runs `forward` on both models in random order; returns (primary, shadow) outputs and
  // shadow time / primary time.
  template <typename Forward>
  std::pair<std::pair<at::Tensor, at::Tensor>, double> Paired(ScriptedModel& primary,
                                                              ScriptedModel& shadow,
                                                              Forward forward);

  const std::string model_;
  const Task task_;
  std::map<std::string, std::unique_ptr<ScriptedModel>> models_;
  const at::Tensor warmup_;
  const ShadowSettings settings_;
  Experiment* experiment_;
  InferenceObserver* observer_;
  std::mt19937_64 random_;
  std::mutex updates_mutex_;
  std::map<std::string, std::unique_ptr<ScriptedModel>> updates_;  // guarded by updates_mutex_
  RequestQueue<ShadowJob> queue_;
  std::atomic<bool> stopping_{false};
  std::thread worker_;
};

}  // namespace gemserve
