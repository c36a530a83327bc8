#pragma once

// Engine-private: what the engine holds per model. Included only by the engine's .cc
// files (engine.cc, engine_compare.cc, engine_experiments.cc).

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "server/engine/engine.h"

namespace gemserve {

struct Engine::LoadedModel {
  ModelState state;
  std::map<std::string, std::unique_ptr<ClassifyRunner>> classifiers;
  std::map<std::string, std::unique_ptr<GenerateRunner>> generators;
  // Variants of one model usually share one tokenizer directory: load it once.
  std::map<std::filesystem::path, std::shared_ptr<const Tokenizer>> tokenizers;
  std::unique_ptr<Experiment> experiment;  // null: requests name a variant or get the default
  std::unique_ptr<ShadowWorker> shadow;    // null: the experiment has no shadows
};

}  // namespace gemserve
