// Engine: loading the model repository, at start and on Reload.

#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <thread>

#include "server/engine/cpu_priority.h"
#include "server/engine/engine.h"
#include "server/engine/loaded_model.h"

namespace gemserve {

namespace fs = std::filesystem;

namespace {

// How long Reload waits for the versions it replaced to finish their requests (a Generate
// stream of max_new_tokens; a queued Classify). Past it, they are freed by a later reload
// or when the engine stops.
constexpr auto kDrainTimeout = std::chrono::seconds(60);
constexpr auto kDrainPoll = std::chrono::milliseconds(5);

const std::vector<VariantState> kNoVariants;

std::vector<fs::path> SortedSubdirectories(const fs::path& directory) {
  std::vector<fs::path> out;
  std::error_code error;
  for (const auto& entry : fs::directory_iterator(directory, error)) {
    if (entry.is_directory()) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The variant directories of a model: those with a model.json (not tokenizer/).
std::vector<fs::path> VariantDirectories(const fs::path& model_dir) {
  std::vector<fs::path> out = SortedSubdirectories(model_dir);
  out.erase(std::remove_if(out.begin(), out.end(),
                           [](const fs::path& dir) { return !fs::exists(dir / "model.json"); }),
            out.end());
  return out;
}

// Path, size and modification time: what a deploy changes when it replaces the file.
std::string FileStamp(const fs::path& path) {
  std::error_code error;
  const uintmax_t size = fs::file_size(path, error);
  if (error) return path.string() + " missing\n";
  const auto written = fs::last_write_time(path, error);
  return path.string() + " " + std::to_string(size) + " " +
         std::to_string(written.time_since_epoch().count()) + "\n";
}

std::string TokenizerFingerprint(const TokenizerSpec& tokenizer) {
  return FileStamp(tokenizer.vocab) + FileStamp(tokenizer.merges);
}

// Everything a variant is loaded from: model.json's text and the files it names.
std::string VariantFingerprint(const fs::path& variant_dir, const VariantConfig& config) {
  std::ifstream in(variant_dir / "model.json", std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf() << "\n" << FileStamp(config.weights);
  if (config.task == Task::kGenerate) text << TokenizerFingerprint(config.tokenizer);
  return text.str();
}

// The variant names an experiment relies on: its arms, baseline and shadows.
std::set<std::string> NamedVariants(const ExperimentConfig& config) {
  std::set<std::string> out;
  for (const auto& [arm, weight] : config.split) out.insert(arm);
  if (!config.baseline.empty()) out.insert(config.baseline);
  out.insert(config.shadow.variants.begin(), config.shadow.variants.end());
  return out;
}

// Copies `name`'s loaded version from `from` into `to`: state, runner and fingerprint.
void KeepVariant(const LoadedModel& from, const std::string& name, LoadedModel& to) {
  to.state.variants.push_back(*from.Variant(name));
  to.fingerprints[name] = from.fingerprints.at(name);
  if (auto it = from.classifiers.find(name); it != from.classifiers.end()) {
    to.classifiers[name] = it->second;
  }
  if (auto it = from.generators.find(name); it != from.generators.end()) {
    to.generators[name] = it->second;
  }
  if (auto it = from.telemetry.find(name); it != from.telemetry.end()) {
    to.telemetry[name] = it->second;
  }
}

// Turns this model's entries of `report` (from `first` on) into failures: the reload of
// the model was refused for `why`, and its previous version keeps serving.
void RefuseModel(ReloadReport& report, size_t first, const std::string& why) {
  for (size_t i = first; i < report.variants.size(); ++i) {
    VariantReload& entry = report.variants[i];
    if (entry.action == ReloadAction::kUnchanged) continue;
    const bool was_served = entry.action == ReloadAction::kFailed ? entry.kept_previous
                                                                  : entry.action != ReloadAction::kAdded;
    entry.error = entry.action == ReloadAction::kFailed ? entry.error + "; " + why : why;
    entry.action = ReloadAction::kFailed;
    entry.kept_previous = was_served;
  }
}

}  // namespace

const char* ReloadActionName(ReloadAction action) {
  switch (action) {
    case ReloadAction::kUnchanged: return "unchanged";
    case ReloadAction::kAdded: return "added";
    case ReloadAction::kUpdated: return "updated";
    case ReloadAction::kRemoved: return "removed";
    case ReloadAction::kFailed: return "failed";
  }
  return "unknown";
}

int ReloadReport::failed() const {
  return static_cast<int>(std::count_if(variants.begin(), variants.end(), [](const auto& v) {
    return v.action == ReloadAction::kFailed;
  }));
}

void LoadedModel::Stop() const {
  for (const auto& [name, runner] : classifiers) runner->Stop();
  for (const auto& [name, runner] : generators) runner->Stop();
}

std::map<std::string, std::shared_ptr<LoadedModel>> Engine::LoadRepository() {
  std::map<std::string, std::shared_ptr<LoadedModel>> models;
  ReloadReport report;  // at start the log says it all
  for (const fs::path& model_dir : SortedSubdirectories(options_.repository)) {
    bool changed = false;
    std::shared_ptr<LoadedModel> model = LoadModel(model_dir, nullptr, report, changed);
    if (!model->state.variants.empty()) models[model->state.name] = std::move(model);
  }
  return models;
}

// Its own copy of the model, checked against activation_sites, when the variant has
// telemetry and telemetry is on; else null.
StatusOr<std::shared_ptr<VariantTelemetry>> Engine::LoadTelemetry(const VariantConfig& config) const {
  if (!telemetry_ || !config.has_telemetry() || options_.telemetry.RateFor(config.model) == 0) {
    return std::shared_ptr<VariantTelemetry>();
  }
  return RunInBackground(BackgroundPriority::kLowest, [&] {
    return VariantTelemetry::Load(config, device_, options_.telemetry.window, observer_);
  });
}

void Engine::RetireTelemetry(const ModelMap& now, const ModelMap& next) {
  for (const auto& [name, model] : now) {
    const auto kept = next.find(name);
    for (const auto& [variant, telemetry] : model->telemetry) {
      if (kept != next.end()) {
        const auto same = kept->second->telemetry.find(variant);
        if (same != kept->second->telemetry.end() && same->second == telemetry) continue;
      }
      telemetry->Retire();
    }
  }
}

Status Engine::LoadVariant(const VariantConfig& config, LoadedModel& model) {
  StatusOr<std::shared_ptr<VariantTelemetry>> telemetry = LoadTelemetry(config);
  if (!telemetry.ok()) return telemetry.status();
  if (Status runner = LoadRunner(config, model); !runner.ok()) return runner;
  if (telemetry.value()) model.telemetry[config.variant] = std::move(telemetry.value());
  return Status::Ok();
}

// Deserialising and warming up take CPU that serving may want: they run at background
// priority. The runners' threads are started from this thread, at serving priority.
Status Engine::LoadRunner(const VariantConfig& config, LoadedModel& model) {
  const int copies = config.task == Task::kClassify ? options_.batching.workers : 1;
  StatusOr<std::vector<std::unique_ptr<ScriptedModel>>> scripted =
      RunInBackground(BackgroundPriority::kLowest,
                      [&] { return ScriptedModel::LoadCopies(config.weights, device_, copies); });
  if (!scripted.ok()) return scripted.status();
  if (config.task == Task::kClassify) {
    StatusOr<std::unique_ptr<ClassifyRunner>> runner =
        ClassifyRunner::Start(config, std::move(scripted).value(), options_.batching,
                              options_.max_image_pixels, observer_);
    if (!runner.ok()) return runner.status();
    ClassifyRunner& started = *runner.value();
    if (Status warm = RunInBackground(BackgroundPriority::kLowest, [&] { return started.Warmup(); });
        !warm.ok()) {
      return warm;
    }
    model.classifiers[config.variant] = std::move(runner.value());
    return Status::Ok();
  }
  std::shared_ptr<const Tokenizer>& tokenizer =
      model.tokenizers[TokenizerFingerprint(config.tokenizer)];
  if (!tokenizer) {
    auto loaded = Tokenizer::Load(config.tokenizer.vocab, config.tokenizer.merges);
    if (!loaded.ok()) return Status::InvalidArgument(loaded.status().message());
    tokenizer = std::make_shared<const Tokenizer>(std::move(loaded.value()));
  }
  auto runner = std::make_shared<GenerateRunner>(config, std::move(scripted.value().front()),
                                                 tokenizer, options_.batching, options_.generate,
                                                 observer_);
  if (Status warm = RunInBackground(BackgroundPriority::kLowest, [&] { return runner->Warmup(); });
      !warm.ok()) {
    return warm;
  }
  model.generators[config.variant] = std::move(runner);
  return Status::Ok();
}

std::shared_ptr<LoadedModel> Engine::LoadModel(const fs::path& directory,
                                               const LoadedModel* before, ReloadReport& report,
                                               bool& changed) {
  auto model = std::make_shared<LoadedModel>();
  ModelState& state = model->state;
  state.name = directory.filename().string();
  if (auto it = options_.default_variants.find(state.name); it != options_.default_variants.end()) {
    state.default_variant = it->second;
  }
  std::optional<Task> task;  // the model's: a serving version's, else its first variant's
  if (before) {
    model->tokenizers = before->tokenizers;
    model->experiment = before->experiment;
    model->shadow = before->shadow;
    if (!before->fingerprints.empty()) task = before->state.task;
  }
  std::set<std::string> present;
  for (const fs::path& variant_dir : VariantDirectories(directory)) {
    const std::string name = variant_dir.filename().string();
    present.insert(name);
    const bool served = before && before->Ready(name);
    StatusOr<VariantConfig> config = LoadVariantConfig(variant_dir);
    if (config.ok() && !task) task = config->task;
    const std::string fingerprint = config.ok() ? VariantFingerprint(variant_dir, config.value()) : "";
    if (served && config.ok() && before->fingerprints.at(name) == fingerprint) {
      KeepVariant(*before, name, *model);
      report.variants.push_back({state.name, name, ReloadAction::kUnchanged, "", false});
      continue;
    }
    Status loaded = config.status();
    if (loaded.ok() && config->task != *task) {
      loaded = Status::InvalidArgument(std::string("model.json: task ") + TaskName(config->task) +
                                       ", but model \"" + state.name + "\" is a " +
                                       TaskName(*task) + " model");
    }
    if (loaded.ok()) loaded = LoadVariant(config.value(), *model);
    if (loaded.ok()) {
      spdlog::info("loaded {}/{} ({})", state.name, name, TaskName(config->task));
      state.variants.push_back({name, true, "", config.value()});
      model->fingerprints[name] = fingerprint;
      report.variants.push_back(
          {state.name, name, served ? ReloadAction::kUpdated : ReloadAction::kAdded, "", false});
      changed = true;
      continue;
    }
    spdlog::error("failed to load {}/{}: {}{}", state.name, name, loaded.message(),
                  served ? "; the loaded version keeps serving" : "");
    report.variants.push_back({state.name, name, ReloadAction::kFailed, loaded.message(), served});
    if (served) {
      KeepVariant(*before, name, *model);
      continue;
    }
    const VariantState* previous = before ? before->Variant(name) : nullptr;
    changed = changed || previous == nullptr || previous->error != loaded.message();
    state.variants.push_back({name, false, loaded.message(),
                              config.ok() ? std::optional<VariantConfig>(config.value())
                                          : std::nullopt});
  }
  if (task) state.task = *task;
  for (const VariantState& gone : before ? before->state.variants : kNoVariants) {
    if (present.count(gone.name) != 0) continue;
    report.variants.push_back({state.name, gone.name, ReloadAction::kRemoved, "", false});
    changed = true;
  }
  return model;
}

Status Engine::CheckReferences(const LoadedModel& model, const LoadedModel& before) const {
  if (model.experiment) {
    for (const std::string& named : NamedVariants(model.experiment->Settings().config)) {
      if (model.Ready(named)) continue;
      return Status::FailedPrecondition(
          "the experiment of \"" + model.state.name + "\" uses variant " + named +
          ", which would not be ready: take it out of the split first (SetTrafficSplit; and "
          "out of the config's experiments: before the next restart)");
    }
  }
  const std::string& fallback = model.state.default_variant;
  if (!fallback.empty() && before.Ready(fallback) && !model.Ready(fallback)) {
    return Status::FailedPrecondition("variant " + fallback + " is the default of \"" +
                                      model.state.name + "\" (models: in the config)" +
                                      " and would not be ready");
  }
  return Status::Ok();
}

StatusOr<ReloadReport> Engine::Reload() {
  std::lock_guard<std::mutex> lock(reload_mutex_);
  if (!fs::is_directory(options_.repository)) {
    return Status::NotFound("model repository " + options_.repository.string() +
                            " is not a directory; nothing was reloaded");
  }
  std::shared_ptr<const ModelMap> now = Snapshot();
  ModelMap next;
  ReloadReport report;
  std::set<std::string> present;
  for (const fs::path& model_dir : SortedSubdirectories(options_.repository)) {
    const std::string name = model_dir.filename().string();
    present.insert(name);
    const auto serving = now->find(name);
    const LoadedModel* before = serving == now->end() ? nullptr : serving->second.get();
    const size_t first = report.variants.size();
    bool changed = false;
    std::shared_ptr<LoadedModel> model = LoadModel(model_dir, before, report, changed);
    if (!changed) {
      if (before) next[name] = serving->second;
      continue;
    }
    Status usable = before ? CheckReferences(*model, *before) : Status::Ok();
    if (usable.ok() && model->shadow) usable = UpdateShadow(*model, *before);
    if (!usable.ok()) {
      spdlog::error("reload of model {} refused: {}", name, usable.message());
      RefuseModel(report, first, usable.message());
      if (before) next[name] = serving->second;
      continue;
    }
    if (!model->state.variants.empty()) next[name] = std::move(model);
  }
  for (const auto& [name, model] : *now) {
    if (present.count(name) != 0) continue;
    const size_t first = report.variants.size();
    for (const VariantState& v : model->state.variants) {
      report.variants.push_back({name, v.name, ReloadAction::kRemoved, "", false});
    }
    if (model->experiment) {
      const std::string why = "model \"" + name + "\" has an experiment: remove it from the "
                              "config's experiments: before removing the model";
      RefuseModel(report, first, why);
      next[name] = model;
    }
  }
  std::sort(report.variants.begin(), report.variants.end(), [](const auto& a, const auto& b) {
    return std::tie(a.model, a.variant) < std::tie(b.model, b.variant);
  });
  RetireTelemetry(*now, next);
  now.reset();  // else the versions it replaces would never look drained
  Swap(std::move(next));
  return report;
}

void Engine::Swap(ModelMap next) {
  std::shared_ptr<const ModelMap> replaced;
  auto published = std::make_shared<const ModelMap>(std::move(next));
  {
    std::lock_guard<std::mutex> lock(models_mutex_);
    replaced = std::exchange(models_, published);
  }
  for (const auto& [name, model] : *replaced) {
    const auto kept = published->find(name);
    if (kept == published->end() || kept->second != model) retired_.push_back(model);
  }
  replaced.reset();
  // A version no request holds any more is freed here, on the reload thread.
  const auto deadline = std::chrono::steady_clock::now() + kDrainTimeout;
  while (true) {
    retired_.erase(std::remove_if(retired_.begin(), retired_.end(),
                                  [](const std::shared_ptr<const LoadedModel>& model) {
                                    if (model.use_count() != 1) return false;
                                    // Pairs with the release of the last request's reference.
                                    std::atomic_thread_fence(std::memory_order_acquire);
                                    return true;
                                  }),
                   retired_.end());
    if (retired_.empty() || std::chrono::steady_clock::now() > deadline) break;
    std::this_thread::sleep_for(kDrainPoll);
  }
  if (!retired_.empty()) {
    spdlog::warn("reload: {} replaced model versions still serve requests", retired_.size());
  }
}

}  // namespace gemserve
