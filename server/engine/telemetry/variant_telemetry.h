#pragma once

// The activation telemetry of one loaded version of one variant: a private copy of its
// model, run only by the telemetry worker, and the window its sampled requests fill.
//
// A reload that loads the variant again makes a new VariantTelemetry, so the new version
// starts with an empty window; the engine retires the replaced one (Retire) before the
// swap. Thread-safe: Record is for the telemetry worker's thread alone, Snapshot and
// Retire may be called from any thread.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <atomic>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "server/engine/model_config.h"
#include "server/engine/request.h"
#include "server/engine/scripted_model.h"
#include "server/engine/status.h"
#include "server/engine/telemetry/activation_window.h"

namespace gemserve {

// One variant's window as the engine reports it (Engine::Activations).
struct VariantActivations {
  VariantKey key;
  size_t window = 0;                  // capacity in sampled requests
  size_t samples = 0;                 // held now
  std::vector<ActivationSite> sites;  // model.json's, with the train_* figures
  std::vector<SiteSummary> summaries; // one per site; empty while samples == 0
};

class VariantTelemetry {
 public:
  // Loads its own copy of `config`'s model (config.has_telemetry()) onto `device` and
  // runs the statistics method once on a probe input (a zero image; end-of-text
  // tokens), checking that it returns config.activation_sites: the same names in the same
  // order, each mask with `units` entries. InvalidArgument naming the variant, the method
  // and the difference otherwise. Call it at background priority (it loads and runs).
  static StatusOr<std::shared_ptr<VariantTelemetry>> Load(const VariantConfig& config,
                                                          const c10::Device& device,
                                                          size_t window,
                                                          InferenceObserver* observer);

  const VariantKey& key() const { return key_; }
  Task task() const { return task_; }

  // The telemetry worker's thread only: runs the method on `input` (a batch of one:
  // an image [1, C, H, W] or tokens [1, T]), folds it into the window and reports the
  // window to the observer. Cancelled when retired meanwhile; another error says why
  // nothing was folded in.
  Status Record(const at::Tensor& input);

  // No more samples are recorded, and the observer is told the window is gone.
  void Retire();
  bool retired() const { return retired_.load(std::memory_order_relaxed); }

  VariantActivations Snapshot() const;

 private:
  VariantTelemetry(const VariantConfig& config, std::unique_ptr<ScriptedModel> model,
                   size_t window, InferenceObserver* observer);

  // The method's statistics for `input`, as observations of the configured sites.
  StatusOr<std::vector<SiteObservation>> Observe(const at::Tensor& input);

  const VariantKey key_;
  const Task task_;
  const std::string method_;
  const std::unique_ptr<ScriptedModel> model_;  // the worker's thread alone runs it
  InferenceObserver* observer_;
  std::atomic<bool> retired_{false};
  mutable std::mutex mutex_;
  ActivationWindow window_;  // guarded by mutex_
};

}  // namespace gemserve
