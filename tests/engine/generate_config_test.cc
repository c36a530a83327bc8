// The `generate:` block of gem-server's config: GPT-2 admission limits per variant.

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>

#include "server/server_config.h"

namespace gemserve {
namespace {

GenerateOptions Parse(const std::string& yaml) {
  StatusOr<ServerConfig> config = ParseServerConfig(yaml, "test.yaml");
  EXPECT_TRUE(config.ok()) << config.status().message();
  return config.ok() ? config->engine.generate : GenerateOptions{};
}

void ExpectRefused(const std::string& yaml, const std::string& words) {
  StatusOr<ServerConfig> config = ParseServerConfig(yaml, "test.yaml");
  ASSERT_FALSE(config.ok()) << yaml;
  EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(config.status().message().find(words), std::string::npos)
      << config.status().message();
}

TEST(GenerateConfig, AbsentMeansBatchingRowsAndNoPositionBound) {
  const GenerateOptions options = Parse("batching: {max_batch_size: 4}");
  EXPECT_EQ(options.max_sequences, 0);  // the runner then uses batching.max_batch_size
  EXPECT_EQ(options.max_kv_positions, 0);
}

TEST(GenerateConfig, LimitsAreRead) {
  const GenerateOptions options = Parse("generate: {max_sequences: 12, max_kv_positions: 3000}");
  EXPECT_EQ(options.max_sequences, 12);
  EXPECT_EQ(options.max_kv_positions, 3000);
  EXPECT_EQ(Parse("generate: {max_kv_positions: 500}").max_sequences, 0);
  EXPECT_EQ(Parse("generate: {max_sequences: 2}").max_kv_positions, 0);
}

// deploy/gemserve.yaml documents the block commented out; uncommented, it is valid.
TEST(GenerateConfig, TheShippedBlockParsesUncommented) {
  std::ifstream in(GEMSERVE_SOURCE_DIR "/deploy/gemserve.yaml");
  std::stringstream text;
  text << in.rdbuf();
  const std::string uncommented =
      std::regex_replace(text.str(), std::regex("\\n# (generate:|  max_)"), "\n$1");
  ASSERT_NE(uncommented, text.str()) << "no commented generate: block";
  const GenerateOptions options = Parse(uncommented);
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
  EXPECT_EQ(Parse("limits: {default_new_tokens: 64}\ngenerate: {max_kv_positions: 65}")
                .max_kv_positions,
            65);
}

}  // namespace
}  // namespace gemserve
