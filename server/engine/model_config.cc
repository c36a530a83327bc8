#include "server/engine/model_config.h"

#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

namespace gemserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

// Thrown inside this file only, turned into a Status at the API boundary.
struct ConfigError {
  std::string message;
};

const json& field(const json& object, const char* name, const std::string& where) {
  if (!object.is_object() || !object.contains(name)) {
    throw ConfigError{where + ": missing field '" + name + "'"};
  }
  return object.at(name);
}

template <typename T>
T typed_field(const json& object, const char* name, const std::string& where) {
  const json& value = field(object, name, where);
  try {
    return value.get<T>();
  } catch (const json::exception&) {
    throw ConfigError{where + ": field '" + name + "' has the wrong type (" +
                      value.type_name() + ")"};
  }
}

std::vector<std::string> read_lines(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw ConfigError{"cannot read " + path.string()};
  std::vector<std::string> lines;
  for (std::string line; std::getline(in, line);) {
    if (!line.empty()) lines.push_back(line);
  }
  return lines;
}

ActivationSpec parse_activation(const json& root, const std::string& where) {
  const json& a = field(root, "activation", where);
  const std::string at = where + " activation";
  return {typed_field<std::string>(a, "slug", at), typed_field<std::string>(a, "kind", at),
          typed_field<int64_t>(a, "n", at), typed_field<double>(a, "eps", at),
          typed_field<double>(a, "neg_slope", at)};
}

void parse_classify(const json& root, const std::string& where, VariantConfig& config) {
  const json& input = field(root, "input", where);
  const auto shape = typed_field<std::vector<int64_t>>(input, "shape", where + " input");
  if (shape.size() != 3 || shape[0] < 1 || shape[1] < 1 || shape[2] < 1) {
    throw ConfigError{where + ": input.shape must be [channels, height, width]"};
  }
  config.image = {shape[0], shape[1], shape[2],
                  typed_field<std::vector<float>>(input, "mean", where + " input"),
                  typed_field<std::vector<float>>(input, "std", where + " input")};
  const auto channels = static_cast<size_t>(shape[0]);
  if (config.image.mean.size() != channels || config.image.std.size() != channels) {
    throw ConfigError{where + ": input.mean and input.std need one value per channel"};
  }
  for (float s : config.image.std) {
    if (!(s > 0)) throw ConfigError{where + ": input.std values must be > 0"};
  }
  config.labels = read_lines(config.directory / typed_field<std::string>(root, "labels", where));
  config.quality = {"test_accuracy", typed_field<double>(root, "test_accuracy", where),
                    typed_field<std::string>(root, "evaluated_on", where)};
}

void parse_generate(const json& root, const std::string& where, VariantConfig& config) {
  const json& tokenizer = field(root, "tokenizer", where);
  config.tokenizer = {
      fs::weakly_canonical(config.directory /
                           typed_field<std::string>(tokenizer, "vocab", where + " tokenizer")),
      fs::weakly_canonical(config.directory /
                           typed_field<std::string>(tokenizer, "merges", where + " tokenizer")),
      typed_field<int64_t>(root, "max_positions", where),
      typed_field<int64_t>(root, "vocab_size", where),
      typed_field<int32_t>(root, "eos_id", where)};
  if (config.tokenizer.max_positions < 2) {
    throw ConfigError{where + ": max_positions must be at least 2"};
  }
  config.quality = {"val_perplexity", typed_field<double>(root, "val_perplexity", where),
                    typed_field<std::string>(root, "evaluated_on", where)};
}

VariantConfig parse(const fs::path& variant_dir) {
  const fs::path file = variant_dir / "model.json";
  const std::string where = file.string();
  std::ifstream in(file);
  if (!in) throw ConfigError{"cannot read " + where};
  json root;
  try {
    root = json::parse(in);
  } catch (const json::parse_error& e) {
    throw ConfigError{where + ": invalid JSON: " + e.what()};
  }
  VariantConfig config;
  config.directory = fs::weakly_canonical(variant_dir);
  config.weights = config.directory / "model.pt";
  config.model = typed_field<std::string>(root, "name", where);
  config.variant = typed_field<std::string>(root, "variant", where);
  config.architecture =
      typed_field<std::string>(field(root, "architecture", where), "name", where + " architecture");
  config.activation = parse_activation(root, where);
  const std::string task = typed_field<std::string>(root, "task", where);
  if (task == "classify") {
    config.task = Task::kClassify;
    parse_classify(root, where, config);
  } else if (task == "generate") {
    config.task = Task::kGenerate;
    parse_generate(root, where, config);
  } else {
    throw ConfigError{where + ": task must be \"classify\" or \"generate\", got \"" + task + "\""};
  }
  return config;
}

}  // namespace

const char* TaskName(Task task) { return task == Task::kClassify ? "classify" : "generate"; }

StatusOr<VariantConfig> LoadVariantConfig(const fs::path& variant_dir) {
  try {
    return parse(variant_dir);
  } catch (const ConfigError& e) {
    return Status::InvalidArgument(e.message);
  }
}

}  // namespace gemserve
