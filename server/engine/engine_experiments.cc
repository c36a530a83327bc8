// Engine: experiments (start, split changes, snapshots) and Feedback.

#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <spdlog/spdlog.h>

#include <cmath>

#include "server/engine/cpu_priority.h"
#include "server/engine/engine.h"
#include "server/engine/loaded_model.h"

namespace gemserve {
namespace {

constexpr uint32_t kMaxWeight = 1000000;

std::string SplitText(const Weights& split) {
  std::string text;
  for (const auto& [arm, weight] : split) {
    text += (text.empty() ? "" : ",") + arm + "=" + std::to_string(weight);
  }
  return text;
}

std::map<std::string, uint32_t> AsMap(const Weights& split) {
  return {split.begin(), split.end()};
}

// The new weights in the current arms' order, then new arms by name.
Weights Ordered(const Weights& current, const std::map<std::string, uint32_t>& requested) {
  Weights out;
  for (const auto& [arm, weight] : current) {
    if (auto it = requested.find(arm); it != requested.end()) out.emplace_back(arm, it->second);
  }
  for (const auto& [name, weight] : requested) {
    const std::string& arm = name;  // a lambda cannot capture a structured binding in clang 14
    const bool known = std::any_of(current.begin(), current.end(),
                                   [&](const auto& entry) { return entry.first == arm; });
    if (!known) out.emplace_back(arm, weight);
  }
  return out;
}

// A typical input of the model: a zero image, or a short run of end-of-text tokens.
at::Tensor WarmupInput(const VariantConfig& config) {
  if (config.task == Task::kClassify) {
    const ImageSpec& s = config.image;
    return at::zeros({s.channels, s.height, s.width});
  }
  return at::full({1, 16}, int64_t{config.tokenizer.eos_id}, at::kLong);
}

}  // namespace

Status Engine::ValidateSplit(const ModelState& model, const Weights& split,
                             const std::string& field) const {
  if (split.empty()) return Status::InvalidArgument(field + " is empty: give each variant a weight");
  uint64_t total = 0;
  for (const auto& [arm, weight] : split) {
    if (Status known = ValidateVariant(model, arm, field); !known.ok()) return known;
    if (weight > kMaxWeight) {
      return Status::InvalidArgument(field + "." + arm + ": weight " + std::to_string(weight) +
                                     " is above " + std::to_string(kMaxWeight));
    }
    total += weight;
  }
  if (total == 0) return Status::InvalidArgument(field + ": every weight is 0; give one a weight > 0");
  return Status::Ok();
}

Status Engine::StartExperiment(const ExperimentConfig& config, LoadedModel& model) {
  const std::string where = "experiments: " + config.model;
  if (model.experiment) return Status::InvalidArgument(where + ": a second experiment for the model");
  if (Status valid = ValidateSplit(model.state, config.split, where + ": split"); !valid.ok()) {
    return valid;
  }
  const bool baseline_is_arm =
      config.baseline.empty() ||
      std::any_of(config.split.begin(), config.split.end(),
                  [&](const auto& entry) { return entry.first == config.baseline; });
  if (!baseline_is_arm) {
    return Status::InvalidArgument(where + ": baseline " + QuoteForMessage(config.baseline) +
                                   " is not in the split");
  }
  for (const std::string& shadow : config.shadow.variants) {
    if (Status valid = ValidateVariant(model.state, shadow, where + ": shadow.variants");
        !valid.ok()) {
      return valid;
    }
  }
  model.experiment = std::make_shared<Experiment>(config);
  if (!config.shadow.variants.empty()) {
    StatusOr<std::shared_ptr<ShadowWorker>> shadow = StartShadow(model, config.shadow);
    if (!shadow.ok()) return shadow.status();
    model.shadow = std::move(shadow.value());
  }
  observer_->OnExperimentWeights(config.model, AsMap(config.split));
  spdlog::info("experiment {}: split {}, sticky {}, {} shadow(s) at {}", config.model,
               SplitText(config.split), config.sticky, config.shadow.variants.size(),
               config.shadow.sample_rate);
  return Status::Ok();
}

StatusOr<std::unique_ptr<ScriptedModel>> Engine::LoadShadowCopy(const VariantConfig& config) const {
  StatusOr<std::vector<std::unique_ptr<ScriptedModel>>> copy =
      RunInBackground(BackgroundPriority::kLowest,
                      [&] { return ScriptedModel::LoadCopies(config.weights, device_, 1); });
  if (!copy.ok()) return copy.status();
  return std::move(copy.value().front());
}

StatusOr<std::shared_ptr<ShadowWorker>> Engine::StartShadow(const LoadedModel& model,
                                                            const ShadowSettings& settings) const {
  // Its own copies of every ready variant (any may become an arm).
  std::map<std::string, std::unique_ptr<ScriptedModel>> copies;
  at::Tensor warmup;
  for (const VariantState& variant : model.state.variants) {
    if (!variant.ready) continue;
    warmup = WarmupInput(*variant.config);
    StatusOr<std::unique_ptr<ScriptedModel>> copy = LoadShadowCopy(*variant.config);
    if (!copy.ok()) return copy.status();
    copies[variant.name] = std::move(copy.value());
  }
  return std::make_shared<ShadowWorker>(model.state.name, model.state.task, std::move(copies),
                                        warmup, settings, model.experiment.get(), observer_);
}

Status Engine::UpdateShadow(const LoadedModel& model, const LoadedModel& before) const {
  std::map<std::string, std::unique_ptr<ScriptedModel>> changes;
  for (const VariantState& variant : model.state.variants) {
    if (!variant.ready) continue;
    const auto was = before.fingerprints.find(variant.name);
    if (was != before.fingerprints.end() && was->second == model.fingerprints.at(variant.name)) {
      continue;
    }
    StatusOr<std::unique_ptr<ScriptedModel>> copy = LoadShadowCopy(*variant.config);
    if (!copy.ok()) return copy.status();
    changes[variant.name] = std::move(copy.value());
  }
  for (const VariantState& variant : before.state.variants) {
    if (variant.ready && !model.Ready(variant.name)) changes[variant.name] = nullptr;
  }
  if (!changes.empty()) model.shadow->UpdateModels(std::move(changes));
  return Status::Ok();
}

StatusOr<ExperimentSettings> Engine::SetTrafficSplit(
    const std::string& model_name, const std::map<std::string, uint32_t>& split) {
  if (model_name.empty()) return Status::InvalidArgument("model is empty");
  std::lock_guard<std::mutex> no_reload(reload_mutex_);
  const std::shared_ptr<const LoadedModel> found = FindModel(model_name);
  if (!found) return UnknownModel(model_name);
  const LoadedModel& model = *found;
  if (!model.experiment) {
    return Status::InvalidArgument("model: \"" + model_name +
                                   "\" has no experiment; add one under experiments: in the config");
  }
  const ExperimentSettings before = model.experiment->Settings();
  const Weights ordered = Ordered(before.config.split, split);
  if (Status valid = ValidateSplit(model.state, ordered, "split"); !valid.ok()) return valid;
  if (ordered == before.config.split) return before;  // no change, no new version
  ExperimentSettings after = model.experiment->SetSplit(ordered);
  std::map<std::string, uint32_t> weights = AsMap(ordered);
  for (const auto& [arm, weight] : before.config.split) weights.emplace(arm, 0);  // left the split
  observer_->OnExperimentWeights(model_name, weights);
  spdlog::info("experiment {}: split {} (version {}) -> {} (version {})", model_name,
               SplitText(before.config.split), before.version, SplitText(ordered), after.version);
  return after;
}

StatusOr<std::vector<ExperimentSnapshot>> Engine::Experiments(const std::string& model) const {
  std::vector<ExperimentSnapshot> out;
  const std::shared_ptr<const ModelMap> models = Snapshot();
  for (const auto& [name, loaded] : *models) {
    if (!loaded->experiment || (!model.empty() && name != model)) continue;
    out.push_back({loaded->experiment->Settings(), loaded->experiment->statistics().Report()});
  }
  if (!model.empty() && out.empty()) {
    if (models->count(model) == 0) return UnknownModel(model);
    return Status::NotFound("model " + QuoteForMessage(model) + " has no experiment");
  }
  return out;
}

StatusOr<FeedbackResult> Engine::Feedback(const std::string& request_id,
                                          const FeedbackOutcome& outcome) {
  if (request_id.empty()) return Status::InvalidArgument("request_id is empty");
  if (!outcome.label && !outcome.reward) {
    return Status::InvalidArgument("outcome is empty: set label or reward");
  }
  if (outcome.reward && !(*outcome.reward >= 0 && *outcome.reward <= 1)) {
    return Status::InvalidArgument("reward must be in [0, 1], got " +
                                   std::to_string(*outcome.reward));
  }
  StatusOr<ServedRequest> served = feedback_.Claim(request_id, [&](const ServedRequest& r) {
    if (!outcome.label) return Status::Ok();
    if (r.task != Task::kClassify) {
      return Status::InvalidArgument("label: request " + QuoteForMessage(request_id) +
                                     " was a Generate; give a reward instead");
    }
    if (*outcome.label < 0 || *outcome.label >= r.classes) {
      return Status::InvalidArgument("label must be a class index in [0, " +
                                     std::to_string(r.classes) + "), got " +
                                     std::to_string(*outcome.label));
    }
    return Status::Ok();
  });
  if (!served.ok()) return served.status();
  const ServedRequest& request = served.value();
  const std::shared_ptr<const LoadedModel> model =
      request.routed ? FindModel(request.key.model) : nullptr;
  Experiment* experiment = model ? model->experiment.get() : nullptr;
  FeedbackResult result{request.key, false};
  if (outcome.label) {
    result.correct = *outcome.label == request.top1;
    observer_->OnFeedbackLabel(request.key, result.correct);
    if (experiment) experiment->statistics().RecordLabel(request.key.variant, result.correct);
  } else {
    observer_->OnFeedbackReward(request.key, *outcome.reward);
    if (experiment) experiment->statistics().RecordReward(request.key.variant, *outcome.reward);
  }
  return result;
}

}  // namespace gemserve
