#include "server/engine/engine.h"

#include <ATen/Parallel.h>
#include <spdlog/spdlog.h>

#include <algorithm>

#include "server/engine/device.h"

namespace gemserve {

namespace fs = std::filesystem;

struct Engine::LoadedModel {
  ModelState state;
  std::map<std::string, std::unique_ptr<ClassifyRunner>> classifiers;
  std::map<std::string, std::unique_ptr<GenerateRunner>> generators;
  // Variants of one model usually share one tokenizer directory: load it once.
  std::map<fs::path, std::shared_ptr<const Tokenizer>> tokenizers;
};

namespace {

std::vector<fs::path> sorted_subdirectories(const fs::path& directory) {
  std::vector<fs::path> out;
  for (const auto& entry : fs::directory_iterator(directory)) {
    if (entry.is_directory()) out.push_back(entry.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::string variant_list(const ModelState& model) {
  std::string names;
  for (const VariantState& v : model.variants) names += (names.empty() ? "" : ", ") + v.name;
  return names;
}

}  // namespace

Engine::Engine(EngineOptions options) : options_(std::move(options)) {}

Engine::~Engine() = default;

StatusOr<std::unique_ptr<Engine>> Engine::Create(const EngineOptions& options,
                                                 InferenceObserver* observer) {
  if (!fs::is_directory(options.repository)) {
    return Status::NotFound("model repository " + options.repository.string() +
                            " is not a directory");
  }
  StatusOr<c10::Device> device = ParseDevice(options.device);
  if (!device.ok()) return device.status();
  if (options.threads > 0) at::set_num_threads(options.threads);
  std::unique_ptr<Engine> engine(new Engine(options));
  for (const fs::path& model_dir : sorted_subdirectories(options.repository)) {
    engine->LoadModel(model_dir, device.value(), observer);
  }
  return engine;
}

void Engine::LoadModel(const fs::path& directory, const c10::Device& device,
                       InferenceObserver* observer) {
  auto model = std::make_unique<LoadedModel>();
  model->state.name = directory.filename().string();
  for (const fs::path& variant_dir : sorted_subdirectories(directory)) {
    if (!fs::exists(variant_dir / "model.json")) continue;  // shared files (tokenizer/)
    VariantState variant{variant_dir.filename().string(), false, "", std::nullopt};
    const Status status = [&]() -> Status {
      StatusOr<VariantConfig> config = LoadVariantConfig(variant_dir);
      if (!config.ok()) return config.status();
      variant.config = config.value();
      model->state.task = config->task;
      StatusOr<std::unique_ptr<ScriptedModel>> scripted =
          ScriptedModel::Load(config->weights, device);
      if (!scripted.ok()) return scripted.status();
      if (config->task == Task::kClassify) {
        auto runner = std::make_unique<ClassifyRunner>(config.value(), std::move(scripted.value()),
                                                       options_.batching, observer);
        if (Status warm = runner->Warmup(); !warm.ok()) return warm;
        model->classifiers[variant.name] = std::move(runner);
        return Status::Ok();
      }
      auto& tokenizer = model->tokenizers[config->tokenizer.vocab];
      if (!tokenizer) {
        auto loaded = Tokenizer::Load(config->tokenizer.vocab, config->tokenizer.merges);
        if (!loaded.ok()) return Status::InvalidArgument(loaded.status().message());
        tokenizer = std::make_shared<const Tokenizer>(std::move(loaded.value()));
      }
      auto runner = std::make_unique<GenerateRunner>(config.value(), std::move(scripted.value()),
                                                     tokenizer, options_.batching, observer);
      if (Status warm = runner->Warmup(); !warm.ok()) return warm;
      model->generators[variant.name] = std::move(runner);
      return Status::Ok();
    }();
    variant.ready = status.ok();
    variant.error = status.message();
    if (variant.ready) {
      spdlog::info("loaded {}/{} ({})", model->state.name, variant.name,
                   TaskName(model->state.task));
    } else {
      spdlog::error("failed to load {}/{}: {}", model->state.name, variant.name, status.message());
    }
    model->state.variants.push_back(std::move(variant));
  }
  if (model->state.variants.empty()) return;
  if (auto it = options_.default_variants.find(model->state.name);
      it != options_.default_variants.end()) {
    model->state.default_variant = it->second;
  }
  models_[model->state.name] = std::move(model);
}

std::vector<ModelState> Engine::Models() const {
  std::vector<ModelState> out;
  for (const auto& [name, model] : models_) out.push_back(model->state);
  return out;
}

StatusOr<VariantKey> Engine::Route(const std::string& model, const std::string& variant,
                                   Task task) const {
  const auto it = models_.find(model);
  if (it == models_.end()) return Status::NotFound("unknown model \"" + model + "\"");
  const ModelState& state = it->second->state;
  if (state.task != task) {
    return Status::InvalidArgument("model \"" + model + "\" is a " + TaskName(state.task) +
                                   " model; use the matching RPC");
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
    return VariantKey{model, chosen};
  }
  return Status::NotFound("model \"" + model + "\" has no variant \"" + chosen +
                          "\"; variants: " + variant_list(state));
}

void Engine::Classify(const VariantKey& key, const ClassifyInput& input, int top_k,
                      RequestContext context,
                      std::function<void(StatusOr<ClassifyResult>)> done) {
  ClassifyRunner& runner = *models_.at(key.model)->classifiers.at(key.variant);
  if (top_k < 0) return done(Status::InvalidArgument("top_k must be >= 0, got " + std::to_string(top_k)));
  StatusOr<at::Tensor> tensor =
      input.pixels ? PixelsToModelInput(*input.pixels, runner.config().image)
      : input.encoded_image
          ? ImageToModelInput(*input.encoded_image, runner.config().image)
          : StatusOr<at::Tensor>(Status::InvalidArgument("input is empty: set tensor or image"));
  if (!tensor.ok()) return done(tensor.status());
  runner.Submit({std::move(tensor.value()), top_k == 0 ? 5 : top_k, std::move(context),
                 std::move(done)});
}

Status Engine::Generate(const VariantKey& key, GenerateParams params, RequestContext context,
                        GenerateSink sink) {
  GenerateRunner& runner = *models_.at(key.model)->generators.at(key.variant);
  const GenerationLimits& limits = options_.generation;
  if (params.max_new_tokens < 0 || params.max_new_tokens > limits.max_new_tokens) {
    return Status::InvalidArgument("max_new_tokens must be in [0, " +
                                   std::to_string(limits.max_new_tokens) + "], got " +
                                   std::to_string(params.max_new_tokens));
  }
  if (params.max_new_tokens == 0) params.max_new_tokens = limits.default_new_tokens;
  if (Status valid = ValidateSamplingParams(params.sampling); !valid.ok()) return valid;
  for (const std::string& stop : params.stop) {
    if (stop.empty()) return Status::InvalidArgument("stop strings must not be empty");
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
  return runner.Submit({std::move(ids), std::move(params), std::move(context), std::move(sink)});
}

}  // namespace gemserve
