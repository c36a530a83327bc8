// Config validation: deploy/gemserve.yaml parses, and bad entries are refused with a
// message naming the key; the `generate:` block (GPT-2 admission limits per variant).

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "server/server_config.h"

namespace gemserve {
namespace {

TEST(ServerConfig, TheShippedConfigParses) {
  StatusOr<ServerConfig> config = LoadServerConfig(GEMSERVE_SOURCE_DIR "/deploy/gemserve.yaml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->listen, "127.0.0.1:50051");
  EXPECT_EQ(config->metrics_listen, "127.0.0.1:9464");
  EXPECT_EQ(config->engine.default_variants.at("resnet20-fashion"), "gem-n1");
  EXPECT_EQ(config->engine.batching.max_queue_delay, std::chrono::microseconds(0));
  EXPECT_EQ(config->engine.batching.workers, 2);
  EXPECT_EQ(config->default_deadline, std::chrono::seconds(30));
}

TEST(ServerConfig, EmptyTextGivesDefaults) {
  StatusOr<ServerConfig> config = ParseServerConfig("", "test");
  ASSERT_TRUE(config.ok());
  EXPECT_EQ(config->engine.device, "cpu");
}

void ExpectRefused(const std::string& yaml, const std::string& words) {
  StatusOr<ServerConfig> config = ParseServerConfig(yaml, "test.yaml");
  ASSERT_FALSE(config.ok()) << yaml;
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find(words), std::string::npos)
      << config.status().message();
}

TEST(ServerConfig, BadEntriesAreRefusedNamingTheKey) {
  ExpectRefused("lisen: 1.2.3.4:5", "lisen: unknown key");
  ExpectRefused("limits: {max_new_tokens: -3}", "limits.max_new_tokens must be > 0");
  ExpectRefused("limits: {max_new_tokens: many}", "limits.max_new_tokens");
  ExpectRefused("limits: {max_new_tokens: 10, default_new_tokens: 20}", "default_new_tokens");
  ExpectRefused("limits: {default_deadline: 5 parsecs}", "unit must be");
  ExpectRefused("batching: {workers: 0}", "batching.workers must be > 0");
  ExpectRefused("batching: {workers: 1000}", "batching.workers must be at most 64");
  ExpectRefused("batching: {max_batch_size: 100000000}", "batching.max_batch_size must be at most 1024");
  ExpectRefused("batching: {max_queue_delay: 2m}", "batching.max_queue_delay must be at most 1s");
  ExpectRefused("batching: {max_batch: 4}", "batching.max_batch: unknown key");
  ExpectRefused("threads: -1", "threads must be >= 0");
  ExpectRefused("models: {m: {default: x}}", "models.m.default: unknown key");
  ExpectRefused("tls: {cert_file: a.pem}", "tls needs both cert_file and key_file");
  ExpectRefused("tls: {cert_file: /nonexistent.pem, key_file: k}", "tls.cert_file: cannot read");
  ExpectRefused("tls: {cert: a.pem}", "tls.cert: unknown key");
  ExpectRefused("listen: [unclosed", "invalid YAML");
}

TEST(ServerConfig, TheShippedExperimentIsRead) {
  StatusOr<ServerConfig> config = LoadServerConfig(GEMSERVE_SOURCE_DIR "/deploy/gemserve.yaml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  ASSERT_EQ(config->engine.experiments.size(), 1u);
  const ExperimentConfig& experiment = config->engine.experiments[0];
  EXPECT_EQ(experiment.model, "resnet20-fashion");
  EXPECT_EQ(experiment.split, (Weights{{"gelu", 50}, {"gem-n1", 50}}));  // written order
  EXPECT_TRUE(experiment.sticky);
  EXPECT_EQ(experiment.shadow.variants, std::vector<std::string>{"segem-n1-e1e-4"});
  EXPECT_DOUBLE_EQ(experiment.shadow.sample_rate, 0.1);
}

TEST(ServerConfig, BadExperimentsAreRefusedNamingTheKey) {
  ExpectRefused("experiments: {model: m}", "experiments must be a list");
  ExpectRefused("experiments: [{split: {a: 1}}]", "experiments[0].model is required");
  ExpectRefused("experiments: [{model: m}]", "experiments[0].split must map");
  ExpectRefused("experiments: [{model: m, split: {}}]", "experiments[0].split must map");
  ExpectRefused("experiments: [{model: m, split: {a: -1}}]", "experiments[0].split.a must be");
  ExpectRefused("experiments: [{model: m, split: {a: 0.5}}]", "experiments[0].split.a must be");
  ExpectRefused("experiments: [{model: m, split: {a: 2000000}}]", "split.a must be");
  ExpectRefused("experiments: [{model: m, split: {a: 1}, stiky: true}]", "stiky: unknown key");
  ExpectRefused("experiments: [{model: m, split: {a: 1}, shadow: {sample_rate: 2}}]",
                "experiments[0].shadow.sample_rate must be in [0, 1]");
  ExpectRefused("experiments: [{model: m, split: {a: 1}, shadow: {queue_size: 0}}]",
                "shadow.queue_size must be > 0");
  ExpectRefused("experiments: [{model: m, split: {a: 1}, shadow: {queue_size: 1000000000}}]",
                "shadow.queue_size must be <=");
  ExpectRefused("auth: {admin_token_file: /nonexistent/token}", "auth.admin_token_file: cannot read");
  ExpectRefused("auth: {inference_token_file: /nonexistent/t}",
                "auth.inference_token_file: cannot read");
  ExpectRefused("limits: {feedback_window: 0}", "limits.feedback_window must be > 0");
}

// Found by tests/fuzz/server_config_fuzz (the inputs are its regression-* seeds): a
// top level that is not a mapping was "test.yaml:  must be a mapping", naming nothing;
// a key that is not a name and a duration that is not a scalar threw yaml-cpp's
// TypedBadConversion out of ParseServerConfig (gem-server, which catches nothing around
// it, aborted in std::terminate).
TEST(ServerConfig, MalformedStructureIsRefusedNamingWhere) {
  ExpectRefused("o", "test.yaml: the config must be a mapping");
  ExpectRefused("[listen]", "the config must be a mapping");
  ExpectRefused("? :", "test.yaml: the config has a key that is not a name");
  ExpectRefused("[listen]: 1", "the config has a key that is not a name");
  ExpectRefused("limits: {[1, 2]: 3}", "limits has a key that is not a name");
  ExpectRefused("models: {{a: 1}: {}}", "models has a key that is not a name");
  ExpectRefused("experiments: [{model: m, split: {[a]: 1}}]",
                "experiments[0].split has a key that is not a name");
  ExpectRefused("shutdown: {grace_period: :}", "shutdown.grace_period: cannot read");
  ExpectRefused("limits: {default_deadline: [1s]}", "limits.default_deadline: cannot read");
  ExpectRefused("http: {read_timeout: {s: 1}}", "http.read_timeout: cannot read");
}

TEST(ServerConfig, Durations) {
  EXPECT_EQ(ParseDuration("250us").value(), std::chrono::microseconds(250));
  EXPECT_EQ(ParseDuration("2ms").value(), std::chrono::microseconds(2000));
  EXPECT_EQ(ParseDuration("1.5s").value(), std::chrono::microseconds(1500000));
  EXPECT_EQ(ParseDuration("1m").value(), std::chrono::microseconds(60000000));
  EXPECT_FALSE(ParseDuration("ms").ok());
  EXPECT_FALSE(ParseDuration("-1s").ok());
  EXPECT_FALSE(ParseDuration("3h").ok());
  EXPECT_FALSE(ParseDuration("2ms later").ok());
  EXPECT_EQ(ParseDuration("1440m").value(), std::chrono::hours(24));
  EXPECT_FALSE(ParseDuration("1441m").ok());
  EXPECT_FALSE(ParseDuration("1e30s").ok());  // would overflow the microseconds
  EXPECT_FALSE(ParseDuration("nan s").ok());
}

TEST(ServerConfig, LimitsForShutdownDeadlinesImagesAndHttpAreRead) {
  StatusOr<ServerConfig> config = ParseServerConfig(
      "limits: {max_deadline: 2m, max_image_pixels: 1000000, max_connection_idle: 90s,\n"
      "         handshake_timeout: 5s}\n"
      "shutdown: {grace_period: 5s}\n"
      "http: {threads: 3, read_timeout: 500ms, max_body_bytes: 1024}\n",
      "test.yaml");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_EQ(config->max_deadline, std::chrono::minutes(2));
  EXPECT_EQ(config->engine.max_image_pixels, 1000000);
  EXPECT_EQ(config->max_connection_idle, std::chrono::seconds(90));
  EXPECT_EQ(config->handshake_timeout, std::chrono::seconds(5));
  EXPECT_EQ(config->shutdown_grace, std::chrono::seconds(5));
  EXPECT_EQ(config->http.threads, 3);
  EXPECT_EQ(config->http.read_timeout, std::chrono::milliseconds(500));
  EXPECT_EQ(config->http.max_body_bytes, 1024);
  ExpectRefused("limits: {max_deadline: 1s}", "limits.max_deadline must be at least");
  ExpectRefused("limits: {max_image_pixels: 0}", "limits.max_image_pixels must be > 0");
  ExpectRefused("limits: {max_image_pixels: 100000000000}", "limits.max_image_pixels must be at most");
  ExpectRefused("limits: {max_connection_idle: 0s}", "limits.max_connection_idle must be at least 1ms");
  ExpectRefused("limits: {max_connection_idle: 2d}", "limits.max_connection_idle: ");
  ExpectRefused("limits: {handshake_timeout: 0ms}", "limits.handshake_timeout must be at least 1ms");
  ExpectRefused("limits: {handshake_timeout: [1s]}", "limits.handshake_timeout: cannot read");
  ExpectRefused("shutdown: {grace: 1s}", "shutdown.grace: unknown key");
  ExpectRefused("http: {threads: 0}", "http.threads must be > 0");
  ExpectRefused("http: {threads: 100000}", "http.threads must be at most 256");
  ExpectRefused("http: {read_timeout: 0ms}", "http.read_timeout must be at least 1ms");
  ExpectRefused("http: {max_body_bytes: -1}", "http.max_body_bytes must be > 0");
}

GenerateOptions ParseGenerate(const std::string& yaml) {
  StatusOr<ServerConfig> config = ParseServerConfig(yaml, "test.yaml");
  EXPECT_TRUE(config.ok()) << config.status().message();
  return config.ok() ? config->engine.generate : GenerateOptions{};
}

TEST(GenerateConfig, AbsentMeansBatchingRowsAndNoPositionBound) {
  const GenerateOptions options = ParseGenerate("batching: {max_batch_size: 4}");
  EXPECT_EQ(options.max_sequences, 0);  // the runner then uses batching.max_batch_size
  EXPECT_EQ(options.max_kv_positions, 0);
}

TEST(GenerateConfig, LimitsAreRead) {
  const GenerateOptions options =
      ParseGenerate("generate: {max_sequences: 12, max_kv_positions: 3000}");
  EXPECT_EQ(options.max_sequences, 12);
  EXPECT_EQ(options.max_kv_positions, 3000);
  EXPECT_EQ(ParseGenerate("generate: {max_kv_positions: 500}").max_sequences, 0);
  EXPECT_EQ(ParseGenerate("generate: {max_sequences: 2}").max_kv_positions, 0);
}

// deploy/gemserve.yaml documents the block commented out; uncommented, it is valid.
TEST(GenerateConfig, TheShippedBlockParsesUncommented) {
  std::ifstream in(GEMSERVE_SOURCE_DIR "/deploy/gemserve.yaml");
  std::stringstream text;
  text << in.rdbuf();
  const std::string uncommented =
      std::regex_replace(text.str(), std::regex("\\n# (generate:|  max_)"), "\n$1");
  ASSERT_NE(uncommented, text.str()) << "no commented generate: block";
  const GenerateOptions options = ParseGenerate(uncommented);
  EXPECT_GT(options.max_sequences, 0);
  EXPECT_GT(options.max_kv_positions, 0);
}

TEST(GenerateConfig, BadEntriesAreRefusedNamingTheKey) {
  ExpectRefused("generate: {max_sequences: 0}", "generate.max_sequences must be > 0");
  ExpectRefused("generate: {max_sequences: many}", "generate.max_sequences");
  ExpectRefused("generate: {max_sequences: 5000}", "generate.max_sequences must be at most 1024");
  ExpectRefused("generate: {max_kv_positions: -5}", "generate.max_kv_positions must be > 0");
  ExpectRefused("generate: {max_kv: 5}", "generate.max_kv: unknown key");
  ExpectRefused("generate: [1, 2]", "generate must be a mapping");
  // Below a one-token prompt + the default completion: every such request would be refused.
  ExpectRefused("limits: {default_new_tokens: 64}\ngenerate: {max_kv_positions: 64}",
                "generate.max_kv_positions must be at least 65");
  EXPECT_EQ(ParseGenerate("limits: {default_new_tokens: 64}\ngenerate: {max_kv_positions: 65}")
                .max_kv_positions,
            65);
}

}  // namespace
}  // namespace gemserve
