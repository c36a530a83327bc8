// Activation telemetry settings: the config's `telemetry:` section and model.json's
// activation_sites (the contract of docs/TELEMETRY.md).

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "server/engine/model_config.h"
#include "server/server_config.h"

namespace gemserve {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

void ExpectRefused(const std::string& yaml, const std::string& words) {
  StatusOr<ServerConfig> config = ParseServerConfig(yaml, "test.yaml");
  ASSERT_FALSE(config.ok()) << yaml;
  EXPECT_NE(config.status().message().find(words), std::string::npos)
      << config.status().message();
}

TEST(TelemetryConfig, DefaultsAreSmallAndBounded) {
  StatusOr<ServerConfig> config = ParseServerConfig("", "test");
  ASSERT_TRUE(config.ok());
  const TelemetryOptions& t = config->engine.telemetry;
  EXPECT_DOUBLE_EQ(t.sample_rate, 0.01);
  EXPECT_EQ(t.window, 1000u);
  EXPECT_EQ(t.queue_size, 64u);
}

TEST(TelemetryConfig, TheSectionIsRead) {
  StatusOr<ServerConfig> config =
      ParseServerConfig("telemetry: {sample_rate: 1, window: 5, queue_size: 2}", "test");
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_DOUBLE_EQ(config->engine.telemetry.sample_rate, 1.0);
  EXPECT_EQ(config->engine.telemetry.window, 5u);
  EXPECT_EQ(config->engine.telemetry.queue_size, 2u);
  EXPECT_TRUE(ParseServerConfig("telemetry: {sample_rate: 0}", "t")->engine.telemetry.sample_rate == 0);
}

TEST(TelemetryConfig, AModelsEntryOverridesTheSampleRateForItsModel) {
  StatusOr<ServerConfig> config = ParseServerConfig(
      "telemetry: {sample_rate: 0}\n"
      "models:\n  gpt2-kjv: {telemetry_sample_rate: 0.25}\n"
      "  resnet20-fashion: {default_variant: gem-n1}\n", "test");
  ASSERT_TRUE(config.ok()) << config.status().message();
  const EngineOptions& engine = config->engine;
  EXPECT_DOUBLE_EQ(engine.telemetry.RateFor("gpt2-kjv"), 0.25);
  EXPECT_DOUBLE_EQ(engine.telemetry.RateFor("resnet20-fashion"), 0.0);
  EXPECT_TRUE(engine.telemetry.enabled()) << "one model is sampled";
  EXPECT_EQ(engine.default_variants.count("gpt2-kjv"), 0u) << "no default_variant was given";
  EXPECT_FALSE(ParseServerConfig("telemetry: {sample_rate: 0}\n"
                                 "models: {gpt2-kjv: {telemetry_sample_rate: 0}}", "t")
                   ->engine.telemetry.enabled());
  ExpectRefused("models: {gpt2-kjv: {telemetry_sample_rate: 2}}",
                "models.gpt2-kjv.telemetry_sample_rate must be in [0, 1]");
  ExpectRefused("models: {gpt2-kjv: {telemetry_rate: 1}}",
                "models.gpt2-kjv.telemetry_rate: unknown key");
}

TEST(TelemetryConfig, BadEntriesAreRefusedNamingTheKey) {
  ExpectRefused("telemetry: {rate: 1}", "telemetry.rate: unknown key");
  ExpectRefused("telemetry: {sample_rate: 1.5}", "telemetry.sample_rate must be in [0, 1]");
  ExpectRefused("telemetry: {sample_rate: -0.1}", "telemetry.sample_rate must be in [0, 1]");
  ExpectRefused("telemetry: {window: 0}", "telemetry.window must be > 0");
  ExpectRefused("telemetry: {window: 10001}", "telemetry.window must be at most 10000");
  ExpectRefused("telemetry: {queue_size: 0}", "telemetry.queue_size must be > 0");
  ExpectRefused("telemetry: {queue_size: 10001}", "telemetry.queue_size must be at most 10000");
  ExpectRefused("telemetry: 3", "telemetry must be a mapping");
}

// A copy of a demo variant's model.json in a directory of its own, changed by `edit`.
class ActivationSites : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() /
           ("gemserve-sites-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()) +
            "-" + ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::create_directories(dir_);
    std::ofstream(dir_ / "labels.txt") << "a\nb\n";
  }
  void TearDown() override { fs::remove_all(dir_); }

  // A classify model.json with `sites` (absent when null) and the method unless told not.
  StatusOr<VariantConfig> Load(const json& sites, bool method = true) {
    json root = {{"name", "m"}, {"variant", "v"}, {"task", "classify"},
                 {"architecture", {{"name", "tiny"}}},
                 {"activation", {{"slug", "relu"}, {"kind", "relu"}, {"n", 0}, {"eps", 0},
                                 {"neg_slope", 0}}},
                 {"input", {{"shape", {1, 2, 2}}, {"mean", {0.5}}, {"std", {0.5}}}},
                 {"labels", "labels.txt"}, {"test_accuracy", 0.5}, {"evaluated_on", "x"},
                 {"methods", {{"forward", "x -> logits"}}}};
    if (method) root["methods"]["activation_statistics"] = "x -> (logits, stats)";
    if (!sites.is_null()) root["activation_sites"] = sites;
    std::ofstream(dir_ / "model.json") << root.dump();
    return LoadVariantConfig(dir_);
  }

  static json SiteJson(const std::string& name, int64_t units = 4) {
    return {{"name", name}, {"units", units}, {"train_input_mean", 0.1},
            {"train_input_std", 0.9}, {"train_zero_fraction", 0.4}, {"train_dead_units", 0}};
  }

  void ExpectError(const json& sites, const std::string& words) {
    StatusOr<VariantConfig> config = Load(sites);
    ASSERT_FALSE(config.ok()) << sites.dump();
    EXPECT_EQ(config.status().code(), StatusCode::kInvalidArgument);
    EXPECT_NE(config.status().message().find(words), std::string::npos)
        << config.status().message();
  }

  fs::path dir_;
};

TEST_F(ActivationSites, AreReadWithTheTrainingFigures) {
  StatusOr<VariantConfig> config = Load(json::array({SiteJson("stem.act", 16), SiteJson("b")}));
  ASSERT_TRUE(config.ok()) << config.status().message();
  EXPECT_TRUE(config->has_telemetry());
  EXPECT_EQ(config->statistics_method, "activation_statistics");
  ASSERT_EQ(config->activation_sites.size(), 2u);
  const ActivationSite& stem = config->activation_sites[0];
  EXPECT_EQ(stem.name, "stem.act");
  EXPECT_EQ(stem.units, 16);
  EXPECT_DOUBLE_EQ(stem.train_input_mean, 0.1);
  EXPECT_DOUBLE_EQ(stem.train_input_std, 0.9);
  EXPECT_DOUBLE_EQ(stem.train_zero_fraction, 0.4);
  EXPECT_EQ(stem.train_dead_units, 0);
}

TEST_F(ActivationSites, WithoutTheMethodOrTheSitesThereIsNoTelemetry) {
  StatusOr<VariantConfig> no_sites = Load(nullptr);
  ASSERT_TRUE(no_sites.ok());
  EXPECT_FALSE(no_sites->has_telemetry());
  StatusOr<VariantConfig> no_method = Load(json::array({SiteJson("a")}), false);
  ASSERT_TRUE(no_method.ok());
  EXPECT_FALSE(no_method->has_telemetry());
  EXPECT_TRUE(no_method->activation_sites.empty());
}

TEST_F(ActivationSites, MoreThan64AreRefused) {
  json sites = json::array();
  for (int i = 0; i < 65; ++i) sites.push_back(SiteJson("s" + std::to_string(i)));
  ExpectError(sites, "activation_sites has 65 sites; at most 64 are served");
  sites.erase(sites.size() - 1);
  EXPECT_TRUE(Load(sites).ok());
}

TEST_F(ActivationSites, MalformedSitesGiveAClearError) {
  ExpectError(json::object(), "activation_sites must be a non-empty list");
  ExpectError(json::array(), "activation_sites must be a non-empty list");
  ExpectError(json::array({1}), "activation_sites[0]: missing field 'name'");
  json site = SiteJson("a");
  site.erase("units");
  ExpectError(json::array({site}), "activation_sites[0]: missing field 'units'");
  site = SiteJson("a");
  site["units"] = "16";
  ExpectError(json::array({site}), "field 'units' has the wrong type");
  ExpectError(json::array({SiteJson("a", 0)}), "units must be in [1, 65536]");
  ExpectError(json::array({SiteJson("a", 65537)}), "units must be in [1, 65536]");
  ExpectError(json::array({SiteJson("")}), "name must not be empty");
  ExpectError(json::array({SiteJson("a"), SiteJson("a")}), "activation_sites[1]: site \"a\" is named twice");
  site = SiteJson("a");
  site["train_zero_fraction"] = 1.5;
  ExpectError(json::array({site}), "train_zero_fraction must be in [0, 1]");
  site = SiteJson("a");
  site["train_dead_units"] = 5;
  ExpectError(json::array({site}), "train_dead_units must be in [0, units]");
  site = SiteJson("a");
  site["train_input_std"] = -1;
  ExpectError(json::array({site}), "the std >= 0");
}

}  // namespace
}  // namespace gemserve
