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
  EXPECT_EQ(config->engine.batching.max_queue_delay, std::chrono::microseconds(2000));
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
  ExpectRefused("batching: {max_batch: 4}", "batching.max_batch: unknown key");
  ExpectRefused("threads: -1", "threads must be >= 0");
  ExpectRefused("models: {m: {default: x}}", "models.m.default: unknown key");
  ExpectRefused("experiments: [{model: m}]", "experiments: not supported");
  ExpectRefused("listen: [unclosed", "invalid YAML");
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
