#include "server/engine/model_config.h"

#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <set>
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

ActivationSite parse_site(const json& entry, const std::string& where) {
  ActivationSite site{typed_field<std::string>(entry, "name", where),
                      typed_field<int64_t>(entry, "units", where),
                      typed_field<double>(entry, "train_input_mean", where),
                      typed_field<double>(entry, "train_input_std", where),
                      typed_field<double>(entry, "train_zero_fraction", where),
                      typed_field<int64_t>(entry, "train_dead_units", where)};
  if (site.name.empty()) throw ConfigError{where + ": name must not be empty"};
  if (site.units < 1 || site.units > kMaxSiteUnits) {
    throw ConfigError{where + ": units must be in [1, " + std::to_string(kMaxSiteUnits) + "]"};
  }
  if (!std::isfinite(site.train_input_mean) || !(site.train_input_std >= 0) ||
      !std::isfinite(site.train_input_std)) {
    throw ConfigError{where + ": train_input_mean and train_input_std must be finite, the std >= 0"};
  }
  if (!(site.train_zero_fraction >= 0 && site.train_zero_fraction <= 1)) {
    throw ConfigError{where + ": train_zero_fraction must be in [0, 1]"};
  }
  if (site.train_dead_units < 0 || site.train_dead_units > site.units) {
    throw ConfigError{where + ": train_dead_units must be in [0, units]"};
  }
  return site;
}

// Telemetry only when model.json has both methods.activation_statistics and
// activation_sites (the contract of docs/TELEMETRY.md).
void parse_telemetry(const json& root, const std::string& where, VariantConfig& config) {
  constexpr const char* kMethod = "activation_statistics";
  const bool has_method = root.contains("methods") && root.at("methods").is_object() &&
                          root.at("methods").contains(kMethod);
  if (!has_method || !root.contains("activation_sites")) return;
  const json& sites = root.at("activation_sites");
  if (!sites.is_array() || sites.empty()) {
    throw ConfigError{where + ": activation_sites must be a non-empty list"};
  }
  if (sites.size() > kMaxActivationSites) {
    throw ConfigError{where + ": activation_sites has " + std::to_string(sites.size()) +
                      " sites; at most " + std::to_string(kMaxActivationSites) + " are served"};
  }
  std::set<std::string> names;
  for (size_t i = 0; i < sites.size(); ++i) {
    const std::string at = where + " activation_sites[" + std::to_string(i) + "]";
    ActivationSite site = parse_site(sites[i], at);
    if (!names.insert(site.name).second) {
      throw ConfigError{at + ": site \"" + site.name + "\" is named twice"};
    }
    config.activation_sites.push_back(std::move(site));
  }
  config.statistics_method = kMethod;
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
  parse_telemetry(root, where, config);
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
