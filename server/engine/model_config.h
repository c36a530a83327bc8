#pragma once

// The per-variant config of the model repository, read from
// models/repository/<model>/<variant>/model.json (written by models/export.py).

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "server/engine/status.h"

namespace gemserve {

enum class Task { kClassify, kGenerate };

const char* TaskName(Task task);

// The activation of the variant, as in shared/ACTIVATIONS.md.
struct ActivationSpec {
  std::string slug;        // e.g. "segem-n1-e1e-4"
  std::string kind;        // relu, gelu, gem, egem, segem
  int64_t n = 0;
  double eps = 0;
  double neg_slope = 0;
};

// Classify input: one image [channels, height, width]; pixels in [0, 1] are
// normalised per channel as (x - mean) / std before the forward.
struct ImageSpec {
  int64_t channels = 1;
  int64_t height = 0;
  int64_t width = 0;
  std::vector<float> mean;  // one per channel
  std::vector<float> std;   // one per channel, > 0
};

struct TokenizerSpec {
  std::filesystem::path vocab;   // absolute, GPT-2 vocab.json
  std::filesystem::path merges;  // absolute, GPT-2 merges.txt
  int64_t max_positions = 0;     // context length of the model
  int64_t vocab_size = 0;
  int32_t eos_id = -1;
};

// The quality the variant was measured at, e.g. test_accuracy 0.91 on
// "fashion-mnist test (10k)".
struct Quality {
  std::string metric;
  double value = 0;
  std::string split;
};

// One activation site of the model's statistics method (model.json "activation_sites",
// in the order the method returns them; see docs/TELEMETRY.md), with the figures
// recorded at export on the training data.
struct ActivationSite {
  std::string name;                // e.g. "stage2.block1.act2", "h.3.mlp.act"
  int64_t units = 0;               // channels / hidden units, 1 .. kMaxSiteUnits
  double train_input_mean = 0;     // of the activation's input
  double train_input_std = 0;      // population std of the input, >= 0
  double train_zero_fraction = 0;  // of the output, in [0, 1]
  int64_t train_dead_units = 0;    // units never non-zero, 0 .. units
};

// Bounds of activation_sites: a model.json past them fails to load (each site is a
// metric series per variant, and a window holds units bits per sampled request).
constexpr size_t kMaxActivationSites = 64;
constexpr int64_t kMaxSiteUnits = 65536;

struct VariantConfig {
  std::string model;
  std::string variant;
  Task task = Task::kClassify;
  std::string architecture;          // architecture.name, e.g. resnet20, gpt2-kjv-small
  ActivationSpec activation;
  std::filesystem::path directory;   // the variant's directory
  std::filesystem::path weights;     // model.pt
  ImageSpec image;                   // classify only
  std::vector<std::string> labels;   // classify only, index -> class name
  TokenizerSpec tokenizer;           // generate only
  Quality quality;
  // Activation telemetry: the method that returns the statistics (model.json methods
  // key "activation_statistics") and its sites. Both empty: the variant has none (its
  // model.json lacks methods.activation_statistics or activation_sites).
  std::string statistics_method;
  std::vector<ActivationSite> activation_sites;
  bool has_telemetry() const { return !statistics_method.empty(); }
};

// Reads and validates <variant_dir>/model.json and the files it names (labels).
// On failure: InvalidArgument or NotFound naming the file and the field; for
// activation_sites (with methods.activation_statistics): not a non-empty list, more than
// kMaxActivationSites, a site without a unique non-empty name, units outside
// 1 .. kMaxSiteUnits, or train_* figures missing or out of range.
StatusOr<VariantConfig> LoadVariantConfig(const std::filesystem::path& variant_dir);

}  // namespace gemserve
