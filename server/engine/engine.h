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
#include <optional>
#include <string>
#include <vector>

#include "server/engine/classify_runner.h"
#include "server/engine/generate_runner.h"
#include "server/engine/image_input.h"
#include "server/engine/model_config.h"
#include "server/engine/request.h"
#include "server/engine/status.h"

namespace gemserve {

struct GenerationLimits {
  int max_prompt_tokens = 512;     // longer prompts: INVALID_ARGUMENT
  int max_new_tokens = 256;        // larger requests: INVALID_ARGUMENT
  int default_new_tokens = 64;     // when a request says 0
};

struct EngineOptions {
  std::filesystem::path repository = "models/repository";
  std::string device = "cpu";      // cpu, cuda, cuda:N, auto
  int threads = 0;                 // intra-op threads; 0 keeps LibTorch's default
  BatchingOptions batching;
  GenerationLimits generation;
  // model -> variant used when a request names none (until experiments route it).
  std::map<std::string, std::string> default_variants;
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

// A Classify input: pixels or an encoded image (see image_input.h).
struct ClassifyInput {
  std::optional<PixelTensor> pixels;
  std::optional<std::string> encoded_image;
};

class Engine {
 public:
  // Scans options.repository, loads and warms up every variant. A variant that fails is
  // logged and reported (VariantState::error) without stopping the others. Fails only
  // when the repository directory or the device is unusable.
  static StatusOr<std::unique_ptr<Engine>> Create(const EngineOptions& options,
                                                  InferenceObserver* observer);
  ~Engine();

  std::vector<ModelState> Models() const;

  // The ready variant that serves a request for `model` naming `variant` (may be empty).
  // NotFound: unknown model or variant. Unavailable: it failed to load.
  // InvalidArgument: the model's task differs from `task`, or no variant was named and
  // the model has no default (the message lists the variants).
  StatusOr<VariantKey> Route(const std::string& model, const std::string& variant,
                             Task task) const;

  // Preprocesses and queues; `done` runs once with the result or the error.
  void Classify(const VariantKey& key, const ClassifyInput& input, int top_k,
                RequestContext context, std::function<void(StatusOr<ClassifyResult>)> done);

  // Validates (limits, sampling fields, prompt length) and queues. On a returned error
  // nothing was queued and the sink is never called.
  Status Generate(const VariantKey& key, GenerateParams params, RequestContext context,
                  GenerateSink sink);

  const EngineOptions& options() const { return options_; }

 private:
  struct LoadedModel;

  explicit Engine(EngineOptions options);
  void LoadModel(const std::filesystem::path& directory, const c10::Device& device,
                 InferenceObserver* observer);

  const EngineOptions options_;
  std::map<std::string, std::unique_ptr<LoadedModel>> models_;
};

}  // namespace gemserve
