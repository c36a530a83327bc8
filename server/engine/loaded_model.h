#pragma once

// Engine-private: one version of one model, as a reload published it. Included only by
// the engine's .cc files (engine*.cc).
//
// Immutable once published: a reload that changes anything builds a new LoadedModel
// (sharing the runners of the variants it kept) and swaps it in. A request holds the
// version it was routed on (Routing::model) until it is answered, so a swapped-out
// version drains: its replaced runners are stopped when its last request is done.

#include <filesystem>
#include <map>
#include <memory>
#include <string>

#include "server/engine/engine.h"

namespace gemserve {

struct LoadedModel {
  ModelState state;
  std::map<std::string, std::shared_ptr<ClassifyRunner>> classifiers;
  std::map<std::string, std::shared_ptr<GenerateRunner>> generators;
  // What each ready variant was loaded from (VariantFingerprint): a reload loads the
  // variant again only when it differs.
  std::map<std::string, std::string> fingerprints;
  // Variants of one model usually share one tokenizer: loaded once, keyed by its files'
  // fingerprint, and kept across reloads while the files stay the same.
  std::map<std::string, std::shared_ptr<const Tokenizer>> tokenizers;
  // null: requests name a variant or get the default. Shared by every version of the
  // model, so that a reload keeps its split and statistics.
  std::shared_ptr<Experiment> experiment;
  std::shared_ptr<ShadowWorker> shadow;  // null: the experiment has no shadows
  // The ready variants with activation telemetry (none when it is off); shared with the
  // next version while the variant is unchanged, so that its window carries on.
  std::map<std::string, std::shared_ptr<VariantTelemetry>> telemetry;

  const VariantState* Variant(const std::string& name) const {
    for (const VariantState& v : state.variants) {
      if (v.name == name) return &v;
    }
    return nullptr;
  }
  bool Ready(const std::string& variant) const {
    const VariantState* v = Variant(variant);
    return v != nullptr && v->ready;
  }
  // Stops every runner: what is queued is answered or failed, and the threads joined.
  void Stop() const;
};

}  // namespace gemserve
