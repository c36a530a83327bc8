#include "server/engine/engine.h"

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "server/engine/device.h"
#include "server/engine/loaded_model.h"

namespace gemserve {

namespace {

std::string variant_list(const ModelState& model) {
  std::string names;
  for (const VariantState& v : model.variants) names += (names.empty() ? "" : ", ") + v.name;
  return names;
}

// A routing key names a user or a session; anything longer is a mistake (and hashing it
// would cost time on every request).
constexpr size_t kMaxRoutingKeyBytes = 256;

// Errors that say something about the variant (counted in its error rate), as opposed to
// errors the client caused (bad input, cancelling).
bool IsServerSideError(const Status& status) {
  switch (status.code()) {
    case StatusCode::kResourceExhausted:
    case StatusCode::kDeadlineExceeded:
    case StatusCode::kUnavailable:
    case StatusCode::kInternal: return true;
    default: return false;
  }
}

Status ValidateStopStrings(const std::vector<std::string>& stops, const GenerationLimits& limits) {
  if (stops.size() > static_cast<size_t>(limits.max_stop_strings)) {
    return Status::InvalidArgument("stop has " + std::to_string(stops.size()) +
                                   " strings; the limit is " +
                                   std::to_string(limits.max_stop_strings));
  }
  for (const std::string& stop : stops) {
    if (stop.empty()) return Status::InvalidArgument("stop strings must not be empty");
    if (stop.size() > static_cast<size_t>(limits.max_stop_bytes)) {
      return Status::InvalidArgument("stop string " + QuoteForMessage(stop) + " has " +
                                     std::to_string(stop.size()) + " bytes; the limit is " +
                                     std::to_string(limits.max_stop_bytes));
    }
  }
  return Status::Ok();
}

// A `models:` entry of the config must name one of its model's variants: a wrong
// default_variant would fail every request that names no variant. An entry for a model
// the repository does not hold (yet: a reload may add it) is only logged.
Status CheckDefaultVariants(const EngineOptions& options,
                            const std::map<std::string, std::shared_ptr<LoadedModel>>& models) {
  for (const auto& [model, variant] : options.default_variants) {
    const auto it = models.find(model);
    if (it == models.end()) {
      spdlog::warn("models: {}: no such model in {} (yet); its default_variant applies once a "
                   "reload adds it", QuoteForMessage(model), options.repository.string());
      continue;
    }
    if (it->second->Variant(variant) == nullptr) {
      return Status::InvalidArgument("models: " + model + ": default_variant " +
                                     QuoteForMessage(variant) + " is not a variant of " + model +
                                     "; variants: " + variant_list(it->second->state));
    }
  }
  return Status::Ok();
}

}  // namespace

Engine::Engine(EngineOptions options, c10::Device device, InferenceObserver* observer)
    : options_(std::move(options)),
      device_(device),
      observer_(observer),
      feedback_(options_.feedback_window),
      telemetry_(options_.telemetry.enabled()
                     ? std::make_unique<TelemetryWorker>(options_.telemetry, observer)
                     : nullptr) {}

// The runners stop first: they answer what is still queued, and those answers reach
// RecordServed, SampledShadow and the feedback log, which must still be there.
Engine::~Engine() {
  std::vector<std::shared_ptr<const LoadedModel>> versions = retired_;
  if (const std::shared_ptr<const ModelMap> models = Snapshot()) {
    for (const auto& [name, model] : *models) versions.push_back(model);
  }
  for (const auto& model : versions) model->Stop();
}

StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options,
                                                 InferenceObserver* observer) {
  if (!std::filesystem::is_directory(options.repository)) {
    return Status::NotFound("model repository " + options.repository.string() +
                            " is not a directory");
  }
  StatusOr<c10::Device> device = ParseDevice(options.device);
  if (!device.ok()) return device.status();
  if (options.threads > 0) at::set_num_threads(options.threads);
  std::unique_ptr<Engine> engine(new Engine(options, device.value(), observer));
  std::map<std::string, std::shared_ptr<LoadedModel>> models = engine->LoadRepository();
  if (Status valid = CheckDefaultVariants(options, models); !valid.ok()) return valid;
  for (const ExperimentConfig& experiment : options.experiments) {
    const auto it = models.find(experiment.model);
    if (it == models.end()) {
      return Status::InvalidArgument("experiments: " + experiment.model + ": no such model in " +
                                     options.repository.string());
    }
    if (Status started = engine->StartExperiment(experiment, *it->second); !started.ok()) {
      return started;
    }
  }
  engine->models_ = std::make_shared<const ModelMap>(models.begin(), models.end());
  return engine;
}

std::shared_ptr<const ModelMap> Engine::Snapshot() const {
  std::lock_guard<std::mutex> lock(models_mutex_);
  return models_;
}

std::shared_ptr<const LoadedModel> Engine::FindModel(const std::string& name) const {
  const std::shared_ptr<const ModelMap> models = Snapshot();
  const auto it = models->find(name);
  return it == models->end() ? nullptr : it->second;
}

Status Engine::UnknownModel(const std::string& name) const {
  constexpr size_t kMaxListed = 16;  // the message stays short with a large repository
  const std::shared_ptr<const ModelMap> models = Snapshot();
  std::string names;
  size_t listed = 0;
  for (const auto& [model, loaded] : *models) {
    if (listed++ == kMaxListed) {
      names += ", ... (" + std::to_string(models->size()) + " in all)";
      break;
    }
    names += (names.empty() ? "" : ", ") + model;
  }
  return Status::NotFound("unknown model " + QuoteForMessage(name) +
                          "; models: " + (names.empty() ? "none" : names));
}

std::vector<ModelState> Engine::Models() const {
  std::vector<ModelState> out;
  for (const auto& [name, model] : *Snapshot()) out.push_back(model->state);
  return out;
}

Status Engine::ValidateVariant(const ModelState& model, const std::string& variant,
                               const std::string& field) const {
  for (const VariantState& v : model.variants) {
    if (v.name != variant) continue;
    if (v.ready) return Status::Ok();
    return Status::InvalidArgument(field + ": variant " + model.name + "/" + variant +
                                   " is not loaded: " + v.error);
  }
  return Status::InvalidArgument(field + ": model \"" + model.name + "\" has no variant " +
                                 QuoteForMessage(variant) + "; variants: " + variant_list(model));
}

StatusOr<Routing> Engine::Route(const std::string& model, const std::string& variant,
                                const std::string& routing_key, Task task) {
  std::shared_ptr<const LoadedModel> loaded = FindModel(model);
  if (!loaded) return UnknownModel(model);
  const ModelState& state = loaded->state;
  if (state.task != task) {
    return Status::InvalidArgument("model \"" + model + "\" is a " + TaskName(state.task) +
                                   " model; use the matching RPC");
  }
  if (routing_key.size() > kMaxRoutingKeyBytes) {
    return Status::InvalidArgument("routing_key has " + std::to_string(routing_key.size()) +
                                   " bytes; the limit is " + std::to_string(kMaxRoutingKeyBytes));
  }
  if (variant.empty() && loaded->experiment) {
    const Assignment assignment = loaded->experiment->Route(routing_key);
    // A split set after this version was taken may name a variant a reload just added.
    if (!loaded->Ready(assignment.variant)) {
      return Status::Unavailable("variant " + model + "/" + assignment.variant +
                                 " is being loaded; retry");
    }
    const VariantKey key{model, assignment.variant};
    observer_->OnAbAssignment(key);
    return Routing{key, assignment.version, std::move(loaded)};
  }
  const std::string& chosen = variant.empty() ? state.default_variant : variant;
  if (chosen.empty()) {
    return Status::InvalidArgument("variant is empty and model \"" + model +
                                   "\" has no default variant or experiment; name one of: " +
                                   variant_list(state));
  }
  for (const VariantState& v : state.variants) {
    if (v.name != chosen) continue;
    if (!v.ready) {
      return Status::Unavailable("variant " + model + "/" + chosen + " is not loaded: " + v.error);
    }
    return Routing{VariantKey{model, chosen}, 0, std::move(loaded)};
  }
  return Status::NotFound("model \"" + model + "\" has no variant " + QuoteForMessage(chosen) +
                          "; variants: " + variant_list(state));
}

void Engine::RecordServed(const Routing& routing, Clock::time_point arrival,
                          const Status& status) {
  if (!routing.routed()) return;
  if (!status.ok() && !IsServerSideError(status)) return;
  routing.model->experiment->statistics().RecordRequest(routing.key.variant, SecondsBetween(arrival, Clock::now()), status.ok());
}

ShadowWorker* Engine::SampledShadow(const Routing& routing) {
  if (!routing.routed()) return nullptr;
  const LoadedModel& model = *routing.model;
  if (!model.shadow || !model.experiment->SampleForShadow()) return nullptr;
  return model.shadow.get();
}

std::shared_ptr<VariantTelemetry> Engine::SampledTelemetry(const Routing& routing) {
  const auto& variants = routing.model->telemetry;
  const auto it = variants.find(routing.key.variant);
  if (it == variants.end() ||
      !TelemetryWorker::Sample(options_.telemetry.RateFor(routing.key.model))) {
    return nullptr;
  }
  return it->second;
}

StatusOr<std::vector<VariantActivations>> Engine::Activations(const std::string& model) const {
  const std::shared_ptr<const ModelMap> models = Snapshot();
  if (!model.empty() && models->count(model) == 0) return UnknownModel(model);
  std::vector<VariantActivations> out;
  for (const auto& [name, loaded] : *models) {
    if (!model.empty() && name != model) continue;
    for (const auto& [variant, telemetry] : loaded->telemetry) out.push_back(telemetry->Snapshot());
  }
  return out;
}

void Engine::Classify(const Routing& routing, ClassifyInput input, int top_k,
                      RequestContext context,
                      std::function<void(StatusOr<ClassifyResult>)> done) {
  ClassifyRunner& runner = *routing.model->classifiers.at(routing.key.variant);
  if (top_k < 0) {
    return done(Status::InvalidArgument("top_k must be >= 0, got " + std::to_string(top_k)));
  }
  const auto classes = static_cast<int>(runner.config().labels.size());
  const Clock::time_point arrival = context.arrival;
  runner.Submit({std::make_shared<const ClassifyInput>(std::move(input)), top_k == 0 ? 5 : top_k,
                 std::move(context),
                 [this, routing, classes, arrival,
                  done = std::move(done)](StatusOr<ClassifyResult> result) {
                   RecordServed(routing, arrival, result.status());
                   ShadowWorker* shadow = SampledShadow(routing);
                   if (!result.ok()) {
                     if (shadow) shadow->Drop(routing.key.variant);
                     return done(std::move(result));
                   }
                   result->request_id = feedback_.Remember(
                       {routing.key, Task::kClassify, result->predictions.front().index, classes,
                        routing.routed()});
                   result->experiment_version = routing.experiment_version;
                   if (shadow) shadow->Submit({routing.key.variant, result->input, {}, 0});
                   if (auto sampled = SampledTelemetry(routing)) {
                     telemetry_->Submit({std::move(sampled), result->input, {}});
                   }
                   done(std::move(result));
                 }});
}

StatusOr<GenerateJob> Engine::PrepareGenerate(GenerateRunner& runner, GenerateParams params,
                                              RequestContext context, GenerateSink sink) const {
  const GenerationLimits& limits = options_.generation;
  if (params.max_new_tokens < 0 || params.max_new_tokens > limits.max_new_tokens) {
    return Status::InvalidArgument("max_new_tokens must be in [0, " +
                                   std::to_string(limits.max_new_tokens) + "], got " +
                                   std::to_string(params.max_new_tokens));
  }
  if (params.max_new_tokens == 0) params.max_new_tokens = limits.default_new_tokens;
  if (Status valid = ValidateSamplingParams(params.sampling); !valid.ok()) return valid;
  if (Status valid = ValidateStopStrings(params.stop, limits); !valid.ok()) return valid;
  // Cheap first: so many bytes cannot fit in the token limit, whatever they say.
  const size_t most_bytes =
      static_cast<size_t>(limits.max_prompt_tokens) * runner.tokenizer().longest_token_bytes();
  if (params.prompt.size() > most_bytes) {
    return Status::InvalidArgument("prompt has " + std::to_string(params.prompt.size()) +
                                   " bytes, more than " + std::to_string(limits.max_prompt_tokens) +
                                   " tokens can hold (limits.max_prompt_tokens)");
  }
  std::vector<int32_t> ids = runner.tokenizer().Encode(params.prompt);
  if (ids.empty()) ids.push_back(runner.config().tokenizer.eos_id);  // GPT-2's start of text
  const int64_t context_length = runner.config().tokenizer.max_positions;
  const auto prompt_tokens = static_cast<int64_t>(ids.size());
  if (prompt_tokens > limits.max_prompt_tokens || prompt_tokens >= context_length) {
    return Status::InvalidArgument(
        "prompt has " + std::to_string(prompt_tokens) + " tokens; the limit is " +
        std::to_string(std::min<int64_t>(limits.max_prompt_tokens, context_length - 1)));
  }
  return GenerateJob{std::move(ids), std::move(params), std::move(context), std::move(sink)};
}

Status Engine::Generate(const Routing& routing, GenerateParams params, RequestContext context,
                        GenerateSink sink) {
  GenerateRunner& runner = *routing.model->generators.at(routing.key.variant);
  const Clock::time_point arrival = context.arrival;
  // The tokens so far (prompt, then each chunk's), for the shadow's teacher forcing.
  auto tokens = std::make_shared<std::vector<int32_t>>();
  auto prompt_length = std::make_shared<int64_t>(0);
  GenerateSink recording{
      [this, routing, arrival, tokens, prompt_length,
       on_chunk = std::move(sink.on_chunk)](GenerateChunk chunk) {
        tokens->insert(tokens->end(), chunk.token_ids.begin(), chunk.token_ids.end());
        if (chunk.finish) {
          RecordServed(routing, arrival, Status::Ok());
          chunk.request_id = feedback_.Remember({routing.key, Task::kGenerate, -1, 0, routing.routed()});
          chunk.experiment_version = routing.experiment_version;
          ShadowWorker* shadow = static_cast<int64_t>(tokens->size()) > *prompt_length
                                     ? SampledShadow(routing)  // else nothing to compare
                                     : nullptr;
          if (shadow) shadow->Submit({routing.key.variant, {}, *tokens, *prompt_length});
          if (auto sampled = SampledTelemetry(routing)) {
            telemetry_->Submit({std::move(sampled), {},
                                {tokens->begin(), tokens->begin() + *prompt_length}});
          }
        }
        on_chunk(std::move(chunk));
      },
      [this, routing, arrival, on_error = std::move(sink.on_error)](Status error) {
        RecordServed(routing, arrival, error);
        if (ShadowWorker* shadow = SampledShadow(routing)) shadow->Drop(routing.key.variant);
        on_error(std::move(error));
      }};
  StatusOr<GenerateJob> job =
      PrepareGenerate(runner, std::move(params), std::move(context), std::move(recording));
  if (!job.ok()) return job.status();
  *tokens = job->prompt_ids;
  *prompt_length = static_cast<int64_t>(tokens->size());
  Status queued = runner.Submit(std::move(job.value()));
  if (!queued.ok()) RecordServed(routing, arrival, queued);
  return queued;
}

}  // namespace gemserve
