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
};

// Reads and validates <variant_dir>/model.json and the files it names (labels).
// On failure: InvalidArgument or NotFound naming the file and the field.
StatusOr<VariantConfig> LoadVariantConfig(const std::filesystem::path& variant_dir);

}  // namespace gemserve
