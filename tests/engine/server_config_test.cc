// Config validation: deploy/gemserve.yaml parses, and bad entries are refused with a
// message naming the key.

#include <gtest/gtest.h>

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
  ExpectRefused("tls: {cert_file: a.pem}", "tls: not supported");
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
  ExpectRefused("auth: {inference_token_file: t}", "auth.inference_token_file: not supported");
  ExpectRefused("limits: {feedback_window: 0}", "limits.feedback_window must be > 0");
}

TEST(ServerConfig, Durations) {
  EXPECT_EQ(ParseDuration("250us").value(), std::chrono::microseconds(250));
  EXPECT_EQ(ParseDuration("2ms").value(), std::chrono::microseconds(2000));
  EXPECT_EQ(ParseDuration("1.5s").value(), std::chrono::microseconds(1500000));
  EXPECT_EQ(ParseDuration("1m").value(), std::chrono::microseconds(60000000));
  EXPECT_FALSE(ParseDuration("ms").ok());
  EXPECT_FALSE(ParseDuration("-1s").ok());
  EXPECT_FALSE(ParseDuration("3h").ok());
}

}  // namespace
}  // namespace gemserve
