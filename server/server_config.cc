#include "server/server_config.h"

#include <yaml-cpp/yaml.h>

#include <fstream>
#include <set>
#include <sstream>

namespace gemserve {
namespace {

struct ConfigError {
  std::string message;
};

// `path` for messages: the key path, or "the config" for the top level.
std::string named(const std::string& path) { return path.empty() ? "the config" : path; }

// A key of the mapping at `path` as text. YAML also allows null, sequence and mapping
// keys ("? :", "[a]: 1"), which name nothing here.
std::string key_name(const YAML::Node& key, const std::string& path) {
  if (!key.IsScalar()) throw ConfigError{named(path) + " has a key that is not a name"};
  return key.Scalar();
}

// Rejects keys of `node` that are not in `known`.
void check_keys(const YAML::Node& node, const std::string& path,
                const std::set<std::string>& known) {
  if (!node.IsMap()) throw ConfigError{named(path) + " must be a mapping"};
  for (const auto& entry : node) {
    const std::string key = key_name(entry.first, path);
    if (!known.count(key)) {
      std::string list;
      for (const std::string& k : known) list += (list.empty() ? "" : ", ") + k;
      throw ConfigError{path + (path.empty() ? "" : ".") + key + ": unknown key (known: " + list + ")"};
    }
  }
}

template <typename T>
void read(const YAML::Node& node, const char* key, const std::string& path, T& out) {
  if (!node[key]) return;
  try {
    out = node[key].as<T>();
  } catch (const YAML::Exception&) {
    throw ConfigError{path + key + ": cannot read \"" + YAML::Dump(node[key]) + "\""};
  }
}

template <typename T>
void read_positive(const YAML::Node& node, const char* key, const std::string& path, T& out) {
  read(node, key, path, out);
  if (out <= 0) throw ConfigError{path + key + " must be > 0"};
}

// read_positive, and at most `most`: bounds what one config line can make the server hold.
template <typename T>
void read_bounded(const YAML::Node& node, const char* key, const std::string& path, T most, T& out) {
  read_positive(node, key, path, out);
  if (out > most) throw ConfigError{path + key + " must be at most " + std::to_string(most)};
}

std::chrono::microseconds read_duration(const YAML::Node& node, const char* key,
                                        const std::string& path,
                                        std::chrono::microseconds fallback) {
  if (!node[key]) return fallback;
  std::string text;
  read(node, key, path, text);  // a sequence or mapping: "cannot read", naming the key
  StatusOr<std::chrono::microseconds> parsed = ParseDuration(text);
  if (!parsed.ok()) throw ConfigError{path + key + ": " + parsed.status().message()};
  return parsed.value();
}

// A duration of at least 1ms, in milliseconds, into `out` (left as it is when absent).
void read_milliseconds(const YAML::Node& node, const char* key, const std::string& path,
                       std::chrono::milliseconds& out) {
  out = std::chrono::duration_cast<std::chrono::milliseconds>(read_duration(node, key, path, out));
  if (out.count() <= 0) throw ConfigError{path + key + " must be at least 1ms"};
}

// limits.max_image_pixels bounds what one image may cost to decode: 4 bytes a pixel.
constexpr int64_t kMostImagePixels = int64_t{1} << 28;

void parse_limits(const YAML::Node& node, ServerConfig& config) {
  check_keys(node, "limits", {"max_message_bytes", "max_prompt_tokens", "max_new_tokens",
                              "default_new_tokens", "queue_size", "default_deadline",
                              "max_deadline", "feedback_window", "max_image_pixels",
                              "max_stop_strings", "max_stop_bytes", "max_connection_idle",
                              "handshake_timeout"});
  GenerationLimits& g = config.engine.generation;
  read_positive(node, "max_message_bytes", "limits.", config.max_message_bytes);
  read_positive(node, "max_prompt_tokens", "limits.", g.max_prompt_tokens);
  read_positive(node, "max_new_tokens", "limits.", g.max_new_tokens);
  read_positive(node, "default_new_tokens", "limits.", g.default_new_tokens);
  read_bounded(node, "max_stop_strings", "limits.", 1024, g.max_stop_strings);
  read_bounded(node, "max_stop_bytes", "limits.", 65536, g.max_stop_bytes);
  if (g.default_new_tokens > g.max_new_tokens) {
    throw ConfigError{"limits.default_new_tokens must not exceed limits.max_new_tokens"};
  }
  read_positive(node, "queue_size", "limits.", config.engine.batching.queue_capacity);
  read_positive(node, "feedback_window", "limits.", config.engine.feedback_window);
  config.default_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
      read_duration(node, "default_deadline", "limits.", config.default_deadline));
  if (config.default_deadline.count() <= 0) throw ConfigError{"limits.default_deadline must be > 0"};
  config.max_deadline = std::chrono::duration_cast<std::chrono::milliseconds>(
      read_duration(node, "max_deadline", "limits.", config.max_deadline));
  if (config.max_deadline < config.default_deadline) {
    throw ConfigError{"limits.max_deadline must be at least limits.default_deadline"};
  }
  read_bounded(node, "max_image_pixels", "limits.", kMostImagePixels, config.engine.max_image_pixels);
  read_milliseconds(node, "max_connection_idle", "limits.", config.max_connection_idle);
  read_milliseconds(node, "handshake_timeout", "limits.", config.handshake_timeout);
}

void parse_shutdown(const YAML::Node& node, ServerConfig& config) {
  check_keys(node, "shutdown", {"grace_period"});
  config.shutdown_grace = std::chrono::duration_cast<std::chrono::milliseconds>(
      read_duration(node, "grace_period", "shutdown.", config.shutdown_grace));
}

// The metrics port serves scrapes, probes and the status page: few threads, small bodies.
void parse_http(const YAML::Node& node, ServerConfig& config) {
  check_keys(node, "http", {"threads", "read_timeout", "max_body_bytes"});
  HttpLimits& h = config.http;
  read_bounded(node, "threads", "http.", 256, h.threads);
  read_milliseconds(node, "read_timeout", "http.", h.read_timeout);
  read_bounded(node, "max_body_bytes", "http.", int64_t{1} << 30, h.max_body_bytes);
}

// Bounds of the batching keys. Each Classify worker holds a copy of its variant's model;
// a Generate variant holds a KV cache of max_batch_size rows.
constexpr int kMaxWorkers = 64;
constexpr int kMaxBatchSize = 1024;
constexpr std::chrono::microseconds kMaxQueueDelay = std::chrono::seconds(1);

void parse_batching(const YAML::Node& node, ServerConfig& config) {
  check_keys(node, "batching", {"max_batch_size", "max_queue_delay", "workers"});
  BatchingOptions& b = config.engine.batching;
  read_bounded(node, "max_batch_size", "batching.", kMaxBatchSize, b.max_batch_size);
  b.max_queue_delay = read_duration(node, "max_queue_delay", "batching.", b.max_queue_delay);
  if (b.max_queue_delay > kMaxQueueDelay) throw ConfigError{"batching.max_queue_delay must be at most 1s"};
  read_bounded(node, "workers", "batching.", kMaxWorkers, b.workers);
}

void parse_models(const YAML::Node& node, ServerConfig& config) {
  if (!node.IsMap()) throw ConfigError{"models must map model names to settings"};
  for (const auto& entry : node) {
    const std::string model = key_name(entry.first, "models");
    const std::string path = "models." + model + ".";
    check_keys(entry.second, path.substr(0, path.size() - 1),
               {"default_variant", "telemetry_sample_rate"});
    if (entry.second["default_variant"]) {
      read(entry.second, "default_variant", path, config.engine.default_variants[model]);
    }
    if (entry.second["telemetry_sample_rate"]) {
      double& rate = config.engine.telemetry.model_sample_rates[model];
      read(entry.second, "telemetry_sample_rate", path, rate);
      if (!(rate >= 0 && rate <= 1)) {
        throw ConfigError{path + "telemetry_sample_rate must be in [0, 1]"};
      }
    }
  }
}

// After parse_limits: a bound below 1 + limits.default_new_tokens would refuse every
// one-token prompt that asks for the default completion. max_sequences are KV-cache rows,
// bounded as batching.max_batch_size is.
void parse_generate(const YAML::Node& node, ServerConfig& config) {
  check_keys(node, "generate", {"max_sequences", "max_kv_positions"});
  GenerateOptions& g = config.engine.generate;
  if (node["max_sequences"]) {
    read_bounded(node, "max_sequences", "generate.", kMaxBatchSize, g.max_sequences);
  }
  if (!node["max_kv_positions"]) return;
  read_positive(node, "max_kv_positions", "generate.", g.max_kv_positions);
  const int smallest = 1 + config.engine.generation.default_new_tokens;
  if (g.max_kv_positions < smallest) {
    throw ConfigError{"generate.max_kv_positions must be at least " + std::to_string(smallest) +
                      " (a one-token prompt + limits.default_new_tokens)"};
  }
}

ShadowSettings parse_shadow(const YAML::Node& node, const std::string& path) {
  check_keys(node, path, {"variants", "sample_rate", "queue_size"});
  ShadowSettings shadow;
  read(node, "variants", path + ".", shadow.variants);
  read(node, "sample_rate", path + ".", shadow.sample_rate);
  if (!(shadow.sample_rate >= 0 && shadow.sample_rate <= 1)) {
    throw ConfigError{path + ".sample_rate must be in [0, 1]"};
  }
  read_positive(node, "queue_size", path + ".", shadow.queue_size);
  if (shadow.queue_size > 100000) throw ConfigError{path + ".queue_size must be <= 100000"};
  return shadow;
}

ExperimentConfig parse_experiment(const YAML::Node& node, const std::string& path) {
  check_keys(node, path, {"model", "split", "sticky", "salt", "baseline", "shadow"});
  ExperimentConfig experiment;
  read(node, "model", path + ".", experiment.model);
  if (experiment.model.empty()) throw ConfigError{path + ".model is required"};
  const YAML::Node split = node["split"];
  if (!split || !split.IsMap() || split.size() == 0) {
    throw ConfigError{path + ".split must map variants to weights, e.g. {gelu: 50, gem-n1: 50}"};
  }
  for (const auto& entry : split) {  // yaml-cpp keeps the written order
    const std::string arm = key_name(entry.first, path + ".split");
    int64_t weight = -1;
    try {
      weight = entry.second.as<int64_t>();
    } catch (const YAML::Exception&) {
    }
    if (weight < 0 || weight > 1000000) {
      throw ConfigError{path + ".split." + arm + " must be a whole number in [0, 1000000]"};
    }
    experiment.split.emplace_back(arm, static_cast<uint32_t>(weight));
  }
  read(node, "sticky", path + ".", experiment.sticky);
  read(node, "salt", path + ".", experiment.salt);
  read(node, "baseline", path + ".", experiment.baseline);
  if (node["shadow"]) experiment.shadow = parse_shadow(node["shadow"], path + ".shadow");
  return experiment;
}

// Bounds of the telemetry keys: a window holds, per variant and site, units bits and three
// doubles per sample; each queued job holds one request's input.
constexpr size_t kMaxTelemetryWindow = 10000;
constexpr size_t kMaxTelemetryQueue = 10000;

void parse_telemetry(const YAML::Node& node, ServerConfig& config) {
  check_keys(node, "telemetry", {"sample_rate", "window", "queue_size"});
  TelemetryOptions& t = config.engine.telemetry;
  read(node, "sample_rate", "telemetry.", t.sample_rate);
  if (!(t.sample_rate >= 0 && t.sample_rate <= 1)) {
    throw ConfigError{"telemetry.sample_rate must be in [0, 1]"};
  }
  read_bounded(node, "window", "telemetry.", kMaxTelemetryWindow, t.window);
  read_bounded(node, "queue_size", "telemetry.", kMaxTelemetryQueue, t.queue_size);
}

void parse_experiments(const YAML::Node& node, ServerConfig& config) {
  if (node.IsNull()) return;
  if (!node.IsSequence()) throw ConfigError{"experiments must be a list, one entry per model"};
  for (size_t i = 0; i < node.size(); ++i) {
    config.engine.experiments.push_back(
        parse_experiment(node[i], "experiments[" + std::to_string(i) + "]"));
  }
}

// The whole of a file named by `key`; ConfigError naming the key when it cannot be read.
std::string read_named_file(const std::string& key, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  if (!in || !(text << in.rdbuf())) throw ConfigError{key + ": cannot read " + path};
  return text.str();
}

// A token file's content without surrounding whitespace; it must not be empty.
std::string read_token_file(const YAML::Node& node, const char* key) {
  std::string path;
  read(node, key, "auth.", path);
  if (path.empty()) return "";
  const std::string token = read_named_file(std::string("auth.") + key, path);
  const size_t first = token.find_first_not_of(" \t\r\n");
  if (first == std::string::npos) throw ConfigError{std::string("auth.") + key + ": " + path + " is empty"};
  return token.substr(first, token.find_last_not_of(" \t\r\n") - first + 1);
}

void parse_auth(const YAML::Node& node, ServerConfig& config) {
  if (node.IsNull()) return;
  check_keys(node, "auth", {"admin_token_file", "inference_token_file"});
  config.admin_token = read_token_file(node, "admin_token_file");
  config.inference_token = read_token_file(node, "inference_token_file");
}

void parse_tls(const YAML::Node& node, ServerConfig& config) {
  if (node.IsNull()) return;
  check_keys(node, "tls", {"cert_file", "key_file", "client_ca_file"});
  std::string cert, key, client_ca;
  read(node, "cert_file", "tls.", cert);
  read(node, "key_file", "tls.", key);
  read(node, "client_ca_file", "tls.", client_ca);
  if (cert.empty() || key.empty()) throw ConfigError{"tls needs both cert_file and key_file"};
  config.tls.cert_pem = read_named_file("tls.cert_file", cert);
  config.tls.key_pem = read_named_file("tls.key_file", key);
  if (!client_ca.empty()) config.tls.client_ca_pem = read_named_file("tls.client_ca_file", client_ca);
}

ServerConfig parse(const std::string& text) {
  YAML::Node root;
  try {
    root = YAML::Load(text);
  } catch (const YAML::Exception& e) {
    throw ConfigError{std::string("invalid YAML: ") + e.what()};
  }
  ServerConfig config;
  if (root.IsNull()) return config;
  check_keys(root, "", {"listen", "metrics_listen", "model_repository", "device", "threads",
                        "limits", "batching", "generate", "models", "experiments", "tls",
                        "auth", "shutdown", "http", "telemetry"});
  read(root, "listen", "", config.listen);
  read(root, "metrics_listen", "", config.metrics_listen);
  std::string repository = config.engine.repository.string();
  read(root, "model_repository", "", repository);
  config.engine.repository = repository;
  read(root, "device", "", config.engine.device);
  read(root, "threads", "", config.engine.threads);
  if (config.engine.threads < 0) throw ConfigError{"threads must be >= 0"};
  if (root["limits"]) parse_limits(root["limits"], config);
  if (root["batching"]) parse_batching(root["batching"], config);
  if (root["generate"]) parse_generate(root["generate"], config);
  if (root["models"]) parse_models(root["models"], config);
  if (root["experiments"]) parse_experiments(root["experiments"], config);
  if (root["auth"]) parse_auth(root["auth"], config);
  if (root["tls"]) parse_tls(root["tls"], config);
  if (root["shutdown"]) parse_shutdown(root["shutdown"], config);
  if (root["http"]) parse_http(root["http"], config);
  if (root["telemetry"]) parse_telemetry(root["telemetry"], config);
  return config;
}

}  // namespace

StatusOr<std::chrono::microseconds> ParseDuration(const std::string& text) {
  std::istringstream in(text);
  double value = 0;
  std::string unit;
  std::string rest;
  if (!(in >> value) || !(in >> unit) || value < 0 || (in >> rest)) {
    return Status::InvalidArgument("duration \"" + text + "\": expected e.g. 2ms, 30s, 1m");
  }
  const double scale = unit == "us" ? 1 : unit == "ms" ? 1e3 : unit == "s" ? 1e6 : unit == "m" ? 6e7 : -1;
  if (scale < 0) {
    return Status::InvalidArgument("duration \"" + text + "\": unit must be us, ms, s or m");
  }
  constexpr double kDayMicroseconds = 86400e6;
  if (!(value * scale <= kDayMicroseconds)) {
    return Status::InvalidArgument("duration \"" + text + "\": at most a day (1440m)");
  }
  return std::chrono::microseconds(static_cast<int64_t>(value * scale));
}

StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml, const std::string& where) {
  try {
    return parse(yaml);
  } catch (const ConfigError& e) {
    return Status::InvalidArgument(where + ": " + e.message);
  }
}

StatusOr<ServerConfig> LoadServerConfig(const std::filesystem::path& path) {
  std::ifstream in(path);
  if (!in) return Status::NotFound("cannot read config file " + path.string());
  std::stringstream text;
  text << in.rdbuf();
  return ParseServerConfig(text.str(), path.string());
}

}  // namespace gemserve
