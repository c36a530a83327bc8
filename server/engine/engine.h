#pragma once

// The inference engine: loads the model repository and serves Classify and Generate
// for every variant that loaded. Knows nothing of gRPC or HTTP; the transports call
// this API and map Status codes to their own.
//
// Thread-safe: every method may be called from any thread. Results are delivered
// through callbacks on engine worker threads; callbacks must not block.

#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include <c10/core/Device.h>

#include "server/engine/classify_runner.h"
#include "server/engine/experiments/experiment.h"
#include "server/engine/experiments/feedback_log.h"
#include "server/engine/experiments/shadow_worker.h"
#include "server/engine/generate_runner.h"
#include "server/engine/image_input.h"
#include "server/engine/model_config.h"
#include "server/engine/request.h"
#include "server/engine/status.h"
#include "server/engine/telemetry/telemetry_worker.h"

namespace gemserve {

struct GenerationLimits {
  int max_prompt_tokens = 512;     // longer prompts: INVALID_ARGUMENT
  int max_new_tokens = 256;        // larger requests: INVALID_ARGUMENT
  int default_new_tokens = 64;     // when a request says 0
  int max_stop_strings = 16;       // more: INVALID_ARGUMENT
  int max_stop_bytes = 256;        // a longer stop string: INVALID_ARGUMENT
};

struct EngineOptions {
  std::filesystem::path repository = "models/repository";
  std::string device = "cpu";      // cpu, cuda, cuda:N, auto
  int threads = 0;                 // intra-op threads; 0 keeps LibTorch's default
  BatchingOptions batching;
  GenerateOptions generate;        // GPT-2 admission limits per variant
  GenerationLimits generation;
  // model -> variant used when a request names none and no experiment routes it.
  std::map<std::string, std::string> default_variants;
  std::vector<ExperimentConfig> experiments;  // at most one per model
  size_t feedback_window = 100000;            // request ids remembered for Feedback
  int64_t max_image_pixels = 4 << 20;         // width x height of an encoded image, larger:
                                              // INVALID_ARGUMENT before decoding
  // Activation telemetry of the variants whose model.json has a statistics method.
  TelemetryOptions telemetry;
};

struct VariantState {
  std::string name;
  bool ready = false;
  std::string error;                    // why it is not ready
  std::optional<VariantConfig> config;  // absent when model.json itself was invalid
};

struct ModelState {
  std::string name;
  Task task = Task::kClassify;
  std::string default_variant;          // empty when none is configured
  std::vector<VariantState> variants;   // sorted by name
};

struct LoadedModel;  // engine-private (loaded_model.h)
using ModelMap = std::map<std::string, std::shared_ptr<const LoadedModel>>;

// Which variant serves a request, and whether an experiment chose it.
struct Routing {
  VariantKey key;
  uint64_t experiment_version = 0;  // the split version that chose it; 0: not routed
  // The model's version the request was routed on, held until it is answered: a reload
  // that replaces the variant meanwhile lets it finish on the old one.
  std::shared_ptr<const LoadedModel> model;
  bool routed() const { return experiment_version != 0; }
};

// What a reload did to one variant.
enum class ReloadAction {
  kUnchanged,  // its files are as they were: the loaded version keeps serving
  kAdded,      // new in the repository, loaded and warmed up
  kUpdated,    // its files changed: the new version was loaded, warmed up and swapped in
  kRemoved,    // gone from the repository: no new requests, those in flight finish
  kFailed,     // see `error`; `kept_previous`: the old version keeps serving
};
const char* ReloadActionName(ReloadAction action);

struct VariantReload {
  std::string model, variant;
  ReloadAction action = ReloadAction::kUnchanged;
  std::string error;           // kFailed: why
  bool kept_previous = false;  // kFailed: the version loaded before still serves
};

struct ReloadReport {
  std::vector<VariantReload> variants;  // sorted by model, then variant
  int failed() const;
};

// Compare: one input for several variants of a model.
struct CompareInput {
  ClassifyInput image;                // classify models
  std::optional<std::string> prompt;  // generate models: a greedy continuation
  int top_k = 0;                      // classify: 0 -> 5
  int max_new_tokens = 0;             // generate: 0 -> the default
};

struct VariantOutput {
  std::string variant;
  std::vector<Prediction> predictions;  // classify
  std::string text;                     // generate
  std::vector<int32_t> token_ids;       // generate
  Timing timing;
};

struct PairAgreement {
  std::string a, b;
  bool agree = false;     // same top-1 class / identical continuation
  int common_prefix = 0;  // generate: leading tokens in common
};

struct CompareResult {
  std::vector<VariantOutput> results;  // in the order asked for
  std::vector<PairAgreement> pairs;    // every unordered pair
  double agreement = 1;                // fraction of pairs that agree
};

struct FeedbackOutcome {
  std::optional<int> label;     // the true class of a Classify request
  std::optional<double> reward;  // in [0, 1]
};

struct FeedbackResult {
  VariantKey key;        // the variant credited
  bool correct = false;  // label feedback: the answer's top-1 was the label
};

// An experiment's settings and a snapshot of its statistics.
struct ExperimentSnapshot {
  ExperimentSettings settings;
  stats::ExperimentReport report;
};

class Engine {
 public:
  // Scans options.repository, loads and warms up every variant. A variant that fails is
  // logged and reported (VariantState::error) without stopping the others. Fails only
  // when the repository directory or the device is unusable.
  // Fails also when an experiment names an unknown or unloaded variant.
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options,
                                                  InferenceObserver* observer);
  ~Engine();

  std::vector<ModelState> Models() const;

  // Scans the repository again and brings the served models in line with it, without
  // stopping service: a variant whose files (model.json, weights, tokenizer) changed, or
  // that is new, is loaded and warmed up on the calling thread, then swapped in at once;
  // a removed one drains (requests routed to it finish, none new arrive). A variant that
  // fails to load keeps its previous version serving, if it had one. A model's reload is
  // refused as a whole (its variants reported kFailed, the old version kept) when it
  // would leave its experiment's split, baseline or shadows, or its default variant,
  // naming a variant that is not ready. Experiments keep their split and statistics.
  // Returns after the swap and after the replaced versions drained (at most
  // `drain_timeout`; what is still busy then stops when its requests are done).
  // One reload at a time: a second caller waits. NotFound: the repository is gone.
  StatusOr<ReloadReport> Reload();

  // The ready variant that serves a request for `model` naming `variant`. An empty
  // variant is chosen by the model's experiment (by `routing_key` when it is sticky, and
  // counted as an assignment), else the configured default.
  // NotFound: unknown model or variant. Unavailable: it failed to load.
  // InvalidArgument: the model's task differs from `task`, a routing key above 256 bytes,
  // or no variant was named and the model has neither experiment nor default (the
  // message lists the variants).
  StatusOr<Routing> Route(const std::string& model, const std::string& variant,
                          const std::string& routing_key, Task task);

  // Preprocesses and queues; `done` runs once with the result or the error. A result
  // carries its request id (for Feedback) and the experiment version; a routed request
  // is counted in its experiment's statistics and may be mirrored to the shadows.
  void Classify(const Routing& routing, ClassifyInput input, int top_k,
                RequestContext context, std::function<void(StatusOr<ClassifyResult>)> done);

  // Validates (limits, sampling fields, prompt length) and queues. On a returned error
  // nothing was queued and the sink is never called. The last chunk carries the request
  // id and the experiment version, as for Classify.
  Status Generate(const Routing& routing, GenerateParams params, RequestContext context,
                  GenerateSink sink);

  // Runs one input on `variants` of `model` (empty: every ready variant), through each
  // variant's own queue; `done` runs once, with every output or the first error.
  // Generate models: a greedy continuation of the prompt. Not counted in experiments.
  void Compare(const std::string& model, std::vector<std::string> variants, CompareInput input,
               RequestContext context, std::function<void(StatusOr<CompareResult>)> done);

  // Credits the variant that served `request_id` with a label or a reward.
  // InvalidArgument: empty id or outcome, reward outside [0, 1], a label for a Generate
  // request or outside the model's classes. NotFound / AlreadyExists: see FeedbackLog.
  StatusOr<FeedbackResult> Feedback(const std::string& request_id, const FeedbackOutcome& outcome);

  // Replaces the split of `model`'s experiment for the next request.
  // NotFound: unknown model. InvalidArgument (naming the field): no experiment, an empty
  // split, an unknown or unloaded variant, a weight above 1,000,000, all weights 0.
  StatusOr<ExperimentSettings> SetTrafficSplit(const std::string& model,
                                               const std::map<std::string, uint32_t>& split);

  // Every experiment (or `model`'s; NotFound if it has none), sorted by model.
  StatusOr<std::vector<ExperimentSnapshot>> Experiments(const std::string& model) const;

  // The activation telemetry window of every ready variant that has one (or `model`'s),
  // sorted by model, then variant; empty when telemetry is off or no variant has it.
  // NotFound: `model` is not empty and names no model.
  StatusOr<std::vector<VariantActivations>> Activations(const std::string& model) const;

  const EngineOptions& options() const { return options_; }

 private:
  struct CompareGather;

  Engine(EngineOptions options, c10::Device device, InferenceObserver* observer);
  // The models in force now; a request keeps the one it routed on.
  std::shared_ptr<const ModelMap> Snapshot() const;
  std::shared_ptr<const LoadedModel> FindModel(const std::string& name) const;
  // NotFound for `name`, which names no model: the message lists the models served.
  Status UnknownModel(const std::string& name) const;
  // Every model in the repository, loaded afresh (at start).
  std::map<std::string, std::shared_ptr<LoadedModel>> LoadRepository();
  // A new version of the model in `directory`. `before` is the version serving now (null:
  // none): its variants whose files did not change, its tokenizers and its experiment are
  // shared, not loaded again. Sets `changed` when the new version differs from `before`.
  // Appends what happened to each variant to `report`.
  std::shared_ptr<LoadedModel> LoadModel(const std::filesystem::path& directory,
                                         const LoadedModel* before, ReloadReport& report,
                                         bool& changed);
  // Loads one variant into `model`: its runner (LoadRunner) and its telemetry.
  Status LoadVariant(const VariantConfig& config, LoadedModel& model);
  // Loads, warms up and starts the runner of one variant into `model`.
  Status LoadRunner(const VariantConfig& config, LoadedModel& model);
  StatusOr<std::shared_ptr<VariantTelemetry>> LoadTelemetry(const VariantConfig& config) const;
  // FailedPrecondition when `model` leaves a variant that its experiment names, or the
  // default variant that was ready in `before`, not ready.
  Status CheckReferences(const LoadedModel& model, const LoadedModel& before) const;
  // Publishes `next` and waits (bounded) for the versions it replaced to drain.
  void Swap(ModelMap next);
  Status StartExperiment(const ExperimentConfig& config, LoadedModel& model);
  // The shadow worker's own copies of every ready variant of `model`.
  StatusOr<std::shared_ptr<ShadowWorker>> StartShadow(const LoadedModel& model,
                                                      const ShadowSettings& settings) const;
  // After a reload of `before` into `model`: hands the shadow worker new copies of the
  // variants that changed, and drops those no longer ready.
  Status UpdateShadow(const LoadedModel& model, const LoadedModel& before) const;
  StatusOr<std::unique_ptr<ScriptedModel>> LoadShadowCopy(const VariantConfig& config) const;
  Status ValidateSplit(const ModelState& model, const Weights& split,
                       const std::string& field) const;
  Status ValidateVariant(const ModelState& model, const std::string& variant,
                         const std::string& field) const;
  // Checks a Generate request and turns it into a job for `runner`.
  StatusOr<GenerateJob> PrepareGenerate(GenerateRunner& runner, GenerateParams params,
                                        RequestContext context, GenerateSink sink) const;
  // After a routed request finished: its experiment's statistics (no-op when not routed).
  void RecordServed(const Routing& routing, Clock::time_point arrival, const Status& status);
  // The shadow worker when this finished routed request is sampled for mirroring (the
  // caller then submits the job, or drops it when the request failed); else null.
  ShadowWorker* SampledShadow(const Routing& routing);
  // The variant's telemetry when this successfully served request is sampled; else null.
  std::shared_ptr<VariantTelemetry> SampledTelemetry(const Routing& routing);
  // Before `next` replaces `now`: retires the telemetry of every version `next` drops, so
  // that a reloaded variant starts a fresh window and a removed one reports none.
  static void RetireTelemetry(const ModelMap& now, const ModelMap& next);
  void CompareClassify(const LoadedModel& model, const std::vector<std::string>& variants,
                       const CompareInput& input, const RequestContext& context,
                       const std::shared_ptr<CompareGather>& gather);
  void CompareGenerate(const LoadedModel& model, const std::vector<std::string>& variants,
                       const CompareInput& input, const RequestContext& context,
                       const std::shared_ptr<CompareGather>& gather);

  const EngineOptions options_;
  const c10::Device device_;
  InferenceObserver* observer_;
  FeedbackLog feedback_;
  std::unique_ptr<TelemetryWorker> telemetry_;  // null: telemetry is off
  // Held by Reload, and by SetTrafficSplit (whose split a reload validates).
  std::mutex reload_mutex_;
  mutable std::mutex models_mutex_;
  std::shared_ptr<const ModelMap> models_;  // guarded by models_mutex_; replaced, never changed
  // Replaced versions still serving requests routed before the swap; freed by the
  // reload thread once no request holds them (never on a worker thread: a runner must
  // not be destroyed by its own thread).
  std::vector<std::shared_ptr<const LoadedModel>> retired_;  // guarded by reload_mutex_
};

}  // namespace gemserve
