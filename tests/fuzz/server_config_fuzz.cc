// Fuzz target: gem-server's configuration parser, ParseServerConfig(yaml, where) in
// server/server_config.h (yaml-cpp underneath).
//
// Feeds: the input bytes as the text of a config file. It runs in a scratch directory
// holding the files a config may name (server.pem, server.key, ca.pem, admin.token,
// inference.token, blank.token), so that tls: and auth: entries are read for real.
// A dictionary of the config's keys (tests/fuzz/server_config.dict) helps mutations.
//
// Asserts, beyond no crash, leak or undefined behaviour (an exception escaping
// ParseServerConfig is a crash: errors are values):
//   - a refused config is InvalidArgument with the message "<where>: <what>", where <what>
//     names what is wrong: "invalid YAML: ...", an unknown key, or a sentence that starts
//     with the config's own key path ("limits.max_new_tokens must be > 0",
//     "experiments[0].split ...", "tls needs ...", or "the config ..." for the top level);
//   - an accepted config keeps the bounds the parser documents and the server relies on:
//     limits and sizes > 0, default_new_tokens <= max_new_tokens, 0 < default_deadline
//     <= max_deadline, max_image_pixels <= 2^28, max_queue_delay <= 1 s, every
//     experiment with a model and a non-empty split, shadow sample rates in [0, 1], TLS
//     with both a certificate and a key.
// Seeds: tests/fuzz/corpus/server_config (deploy/gemserve.yaml and smaller configs).

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <string_view>

#include "server/server_config.h"
#include "tests/fuzz/fuzz_check.h"

namespace gemserve::fuzz {
namespace {

constexpr std::string_view kWhere = "fuzz.yaml";

// The top-level keys, with which every message about a key path starts.
constexpr std::string_view kKeys[] = {
    "listen", "metrics_listen", "model_repository", "device", "threads", "limits", "batching",
    "generate", "models", "experiments", "tls", "auth", "shutdown", "http", "telemetry"};

bool StartsWith(std::string_view text, std::string_view prefix) {
  return text.substr(0, prefix.size()) == prefix;
}

bool NamesWhatIsWrong(std::string_view what) {
  if (StartsWith(what, "invalid YAML: ") && what.size() > 14) return true;
  if (StartsWith(what, "the config ")) return true;  // the top level, which has no key
  if (what.find(": unknown key (known: ") != std::string_view::npos) return true;
  for (const std::string_view key : kKeys) {
    if (StartsWith(what, key)) return true;
  }
  return false;
}

void CheckAccepted(const ServerConfig& config) {
  const EngineOptions& e = config.engine;
  const GenerationLimits& g = e.generation;
  FUZZ_CHECK(config.max_message_bytes > 0, "max_message_bytes");
  FUZZ_CHECK(g.max_prompt_tokens > 0 && g.max_new_tokens > 0 && g.default_new_tokens > 0,
             "token limits");
  FUZZ_CHECK(g.default_new_tokens <= g.max_new_tokens, "default_new_tokens > max_new_tokens");
  FUZZ_CHECK(g.max_stop_strings > 0 && g.max_stop_strings <= 1024, "max_stop_strings");
  FUZZ_CHECK(g.max_stop_bytes > 0 && g.max_stop_bytes <= 65536, "max_stop_bytes");
  FUZZ_CHECK(config.default_deadline.count() > 0, "default_deadline");
  FUZZ_CHECK(config.max_deadline >= config.default_deadline, "max_deadline < default_deadline");
  FUZZ_CHECK(config.shutdown_grace.count() >= 0, "shutdown.grace_period");
  FUZZ_CHECK(config.max_connection_idle.count() > 0 &&
                 config.max_connection_idle <= std::chrono::hours(24),
             "max_connection_idle");
  FUZZ_CHECK(config.handshake_timeout.count() > 0 &&
                 config.handshake_timeout <= std::chrono::hours(24),
             "handshake_timeout");
  FUZZ_CHECK(e.max_image_pixels > 0 && e.max_image_pixels <= (int64_t{1} << 28), "max_image_pixels");
  FUZZ_CHECK(e.threads >= 0, "threads");
  FUZZ_CHECK(e.batching.queue_capacity > 0 && e.batching.max_batch_size > 0 &&
                 e.batching.max_batch_size <= 1024 && e.batching.workers > 0 &&
                 e.batching.workers <= 64,
             "batching bounds");
  FUZZ_CHECK(e.batching.max_queue_delay.count() >= 0 &&
                 e.batching.max_queue_delay <= std::chrono::seconds(1),
             "max_queue_delay");
  FUZZ_CHECK(e.generate.max_sequences >= 0 && e.generate.max_sequences <= 1024, "max_sequences");
  FUZZ_CHECK(e.feedback_window > 0, "feedback_window");
  FUZZ_CHECK(config.http.threads > 0 && config.http.threads <= 256 &&
                 config.http.read_timeout.count() > 0 && config.http.max_body_bytes > 0,
             "http bounds");
  for (const ExperimentConfig& experiment : e.experiments) {
    FUZZ_CHECK(!experiment.model.empty() && !experiment.split.empty(), "experiment");
    for (const auto& arm : experiment.split) FUZZ_CHECK(arm.second <= 1000000, "weight");
    FUZZ_CHECK(experiment.shadow.sample_rate >= 0 && experiment.shadow.sample_rate <= 1,
               "sample_rate");
    FUZZ_CHECK(experiment.shadow.queue_size > 0 && experiment.shadow.queue_size <= 100000,
               "shadow queue_size");
  }
  FUZZ_CHECK(!config.tls.enabled() || !config.tls.key_pem.empty(), "TLS without a key");
}

void WriteFile(const std::filesystem::path& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

std::filesystem::path g_scratch;

void RemoveScratch() {
  std::error_code ignored;
  std::filesystem::remove_all(g_scratch, ignored);
}

}  // namespace
}  // namespace gemserve::fuzz

extern "C" int LLVMFuzzerInitialize(int*, char***) {
  using namespace gemserve::fuzz;
  std::string scratch = (std::filesystem::temp_directory_path() / "server_config_fuzz.XXXXXX").string();
  if (!mkdtemp(scratch.data())) {
    std::perror("server_config_fuzz: mkdtemp");
    std::exit(2);
  }
  g_scratch = scratch;
  std::atexit(RemoveScratch);
  WriteFile(g_scratch / "server.pem", "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n");
  WriteFile(g_scratch / "server.key", "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n");
  WriteFile(g_scratch / "ca.pem", "-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----\n");
  WriteFile(g_scratch / "admin.token", "  admin-secret\n");
  WriteFile(g_scratch / "inference.token", "inference-secret");
  WriteFile(g_scratch / "blank.token", " \t\n");
  std::filesystem::current_path(g_scratch);
  return 0;
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace gemserve;
  using namespace gemserve::fuzz;
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  const StatusOr<ServerConfig> config = ParseServerConfig(yaml, std::string(kWhere));
  if (config.ok()) {
    CheckAccepted(config.value());
    return 0;
  }
  const std::string prefix = std::string(kWhere) + ": ";
  CheckRefusal(config.status(), prefix);
  FUZZ_CHECK(NamesWhatIsWrong(std::string_view(config.status().message()).substr(prefix.size())),
             "the message names no field: " + config.status().message());
  return 0;
}
