// Engine::Reload on a copy of the demo repository: what it reports per variant, that a
// changed variant is swapped in while requests routed before the swap finish on the old
// version, that a corrupt or missing model.pt leaves the old version serving, and that a
// reload an experiment or a default variant depends on is refused. Also what Create
// checks of the config's models: entries, and what an unknown model's error says.

#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>

#include "server/engine/engine.h"

namespace gemserve {
namespace {

namespace fs = std::filesystem;
using namespace std::chrono_literals;

// A repository of its own per test: resnet20-fashion with relu and gem-n1, gpt2-kjv with
// gem-n1 and its tokenizer.
class EngineReloadTest : public ::testing::Test {
 protected:
  void SetUp() override {
    repository_ = fs::path(::testing::TempDir()) /
                  ("reload-" + std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(repository_);
    for (const char* part : {"resnet20-fashion/relu", "resnet20-fashion/gem-n1", "gpt2-kjv/gem-n1",
                             "gpt2-kjv/tokenizer"}) {
      Copy(part);
    }
    fs::copy_file(Source("resnet20-fashion/labels.txt"), repository_ / "resnet20-fashion/labels.txt");
    options_.repository = repository_;
    options_.threads = 1;
    options_.batching.workers = 1;
  }

  void TearDown() override {
    engine_.reset();
    fs::remove_all(repository_);
  }

  static fs::path Source(const std::string& part) { return fs::path(GEMSERVE_REPOSITORY) / part; }
  void Copy(const std::string& part) {
    fs::create_directories(repository_ / part);
    fs::copy(Source(part), repository_ / part, fs::copy_options::recursive);
  }

  void Start() {
    StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(options_, &observer_);
    ASSERT_TRUE(engine.ok()) << engine.status().message();
    engine_ = std::move(engine.value());
  }

  // What the reload did, per "model/variant".
  std::map<std::string, VariantReload> Reload() {
    StatusOr<ReloadReport> report = engine_->Reload();
    EXPECT_TRUE(report.ok()) << report.status().message();
    std::map<std::string, VariantReload> out;
    for (const VariantReload& v : report.value().variants) out[v.model + "/" + v.variant] = v;
    return out;
  }

  // A deploy replacing the file: its modification time moves.
  void Touch(const std::string& part) {
    const fs::path path = repository_ / part;
    fs::last_write_time(path, fs::last_write_time(path) + 1s);
  }

  Routing Route(const std::string& model, const std::string& variant, Task task) {
    StatusOr<Routing> routing = engine_->Route(model, variant, "", task);
    EXPECT_TRUE(routing.ok()) << routing.status().message();
    return routing.ok() ? routing.value() : Routing{};
  }

  // The top-1 class of a grey image on the variant `routing` chose.
  StatusOr<int> Classify(const Routing& routing) {
    ClassifyInput input;
    input.pixels = PixelTensor{{1, 28, 28}, std::vector<float>(28 * 28, 0.5f)};
    std::promise<StatusOr<ClassifyResult>> answer;
    engine_->Classify(routing, std::move(input), 1, RequestContext{},
                      [&](StatusOr<ClassifyResult> result) { answer.set_value(std::move(result)); });
    StatusOr<ClassifyResult> result = answer.get_future().get();
    if (!result.ok()) return result.status();
    return result->predictions.front().index;
  }

  fs::path repository_;
  EngineOptions options_;
  InferenceObserver observer_;
  std::unique_ptr<Engine> engine_;
};

TEST_F(EngineReloadTest, AnUnchangedRepositoryLeavesEveryVariantAsItWas) {
  Start();
  const Routing before = Route("resnet20-fashion", "relu", Task::kClassify);
  const auto report = Reload();
  ASSERT_EQ(report.size(), 3u);
  for (const auto& [name, v] : report) {
    EXPECT_EQ(v.action, ReloadAction::kUnchanged) << name;
  }
  EXPECT_EQ(Route("resnet20-fashion", "relu", Task::kClassify).model, before.model);
}

TEST_F(EngineReloadTest, ChangedNewAndRemovedVariantsAreReportedAndServedAccordingly) {
  Start();
  const StatusOr<int> before = Classify(Route("resnet20-fashion", "relu", Task::kClassify));
  std::weak_ptr<const LoadedModel> old_version =
      Route("resnet20-fashion", "relu", Task::kClassify).model;
  Touch("resnet20-fashion/relu/model.pt");
  Copy("resnet20-fashion/gelu");
  fs::remove_all(repository_ / "resnet20-fashion/gem-n1");
  const auto report = Reload();
  EXPECT_EQ(report.at("resnet20-fashion/relu").action, ReloadAction::kUpdated);
  EXPECT_EQ(report.at("resnet20-fashion/gelu").action, ReloadAction::kAdded);
  EXPECT_EQ(report.at("resnet20-fashion/gem-n1").action, ReloadAction::kRemoved);
  EXPECT_EQ(report.at("gpt2-kjv/gem-n1").action, ReloadAction::kUnchanged);

  EXPECT_TRUE(old_version.expired()) << "the replaced version was freed";
  const StatusOr<int> after = Classify(Route("resnet20-fashion", "relu", Task::kClassify));
  ASSERT_TRUE(before.ok() && after.ok());
  EXPECT_EQ(before.value(), after.value());  // the same weights, loaded again
  EXPECT_TRUE(Classify(Route("resnet20-fashion", "gelu", Task::kClassify)).ok());
  EXPECT_EQ(engine_->Route("resnet20-fashion", "gem-n1", "", Task::kClassify).status().code(),
            StatusCode::kNotFound);
}

TEST_F(EngineReloadTest, AReloadWaitsForRequestsOnTheReplacedVersionWhichKeepsServing) {
  Start();
  std::optional<Routing> in_flight = Route("resnet20-fashion", "relu", Task::kClassify);
  Touch("resnet20-fashion/relu/model.pt");
  std::future<StatusOr<ReloadReport>> reload =
      std::async(std::launch::async, [&] { return engine_->Reload(); });
  // The new version comes in (the load runs at background priority: wait for it)...
  for (int tries = 0; tries < 6000; ++tries) {
    if (Route("resnet20-fashion", "relu", Task::kClassify).model != in_flight->model) break;
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_NE(Route("resnet20-fashion", "relu", Task::kClassify).model, in_flight->model);
  // ...but the reload waits for the request on the old one, which still serves it.
  EXPECT_EQ(reload.wait_for(100ms), std::future_status::timeout);
  EXPECT_TRUE(Classify(*in_flight).ok());
  in_flight.reset();  // the last request on the old version is done
  StatusOr<ReloadReport> report = reload.get();
  ASSERT_TRUE(report.ok());
  EXPECT_EQ(report->failed(), 0);
}

TEST_F(EngineReloadTest, AGenerateStreamRoutedBeforeASwapRunsToItsEnd) {
  Start();
  GenerateParams params;
  params.prompt = "In the beginning";
  params.max_new_tokens = 120;
  std::promise<Status> finished;
  int tokens = 0;
  Status queued = engine_->Generate(
      Route("gpt2-kjv", "gem-n1", Task::kGenerate), params, RequestContext{},
      {[&](GenerateChunk chunk) {
         tokens += static_cast<int>(chunk.token_ids.size());
         if (chunk.finish) finished.set_value(Status::Ok());
       },
       [&](Status error) { finished.set_value(error); }});
  ASSERT_TRUE(queued.ok()) << queued.message();
  Touch("gpt2-kjv/gem-n1/model.pt");
  const auto report = Reload();  // returns once the stream is done
  EXPECT_EQ(report.at("gpt2-kjv/gem-n1").action, ReloadAction::kUpdated);
  const Status status = finished.get_future().get();
  EXPECT_TRUE(status.ok()) << status.message();
  EXPECT_EQ(tokens, 120);
}

TEST_F(EngineReloadTest, ACorruptOrMissingModelFailsItsReloadAndTheOldVersionKeepsServing) {
  Start();
  const StatusOr<int> served = Classify(Route("resnet20-fashion", "relu", Task::kClassify));
  std::ofstream(repository_ / "resnet20-fashion/relu/model.pt", std::ios::trunc) << "not a zip";
  auto report = Reload();
  VariantReload relu = report.at("resnet20-fashion/relu");
  EXPECT_EQ(relu.action, ReloadAction::kFailed);
  EXPECT_TRUE(relu.kept_previous);
  EXPECT_NE(relu.error.find("model.pt"), std::string::npos) << relu.error;
  EXPECT_EQ(Classify(Route("resnet20-fashion", "relu", Task::kClassify)).value(), served.value());

  fs::remove(repository_ / "resnet20-fashion/relu/model.pt");
  report = Reload();
  relu = report.at("resnet20-fashion/relu");
  EXPECT_EQ(relu.action, ReloadAction::kFailed);
  EXPECT_TRUE(relu.kept_previous);
  EXPECT_TRUE(Classify(Route("resnet20-fashion", "relu", Task::kClassify)).ok());

  fs::copy_file(Source("resnet20-fashion/relu/model.pt"), repository_ / "resnet20-fashion/relu/model.pt");
  EXPECT_EQ(Reload().at("resnet20-fashion/relu").action, ReloadAction::kUpdated);
}

TEST_F(EngineReloadTest, AVariantOfAnotherTaskFailsToLoadNamingTheTask) {
  Start();
  fs::create_directories(repository_ / "resnet20-fashion/tokenizer");
  fs::copy(Source("gpt2-kjv/tokenizer"), repository_ / "resnet20-fashion/tokenizer",
           fs::copy_options::overwrite_existing);
  fs::create_directories(repository_ / "resnet20-fashion/words");
  fs::copy(Source("gpt2-kjv/gem-n1"), repository_ / "resnet20-fashion/words");
  const VariantReload words = Reload().at("resnet20-fashion/words");
  EXPECT_EQ(words.action, ReloadAction::kFailed);
  EXPECT_FALSE(words.kept_previous);
  EXPECT_NE(words.error.find("classify model"), std::string::npos) << words.error;
  EXPECT_EQ(engine_->Route("resnet20-fashion", "words", "", Task::kClassify).status().code(),
            StatusCode::kUnavailable);
}

TEST_F(EngineReloadTest, RemovingAVariantTheExperimentSplitsTrafficToIsRefused) {
  ExperimentConfig experiment;
  experiment.model = "resnet20-fashion";
  experiment.split = {{"relu", 1}, {"gem-n1", 1}};
  options_.experiments = {experiment};
  Start();
  ASSERT_TRUE(Classify(Route("resnet20-fashion", "", Task::kClassify)).ok());
  fs::remove_all(repository_ / "resnet20-fashion/gem-n1");
  Touch("resnet20-fashion/relu/model.pt");
  const auto report = Reload();
  for (const char* variant : {"resnet20-fashion/gem-n1", "resnet20-fashion/relu"}) {
    EXPECT_EQ(report.at(variant).action, ReloadAction::kFailed) << variant;
    EXPECT_TRUE(report.at(variant).kept_previous) << variant;
    EXPECT_NE(report.at(variant).error.find("experiment"), std::string::npos)
        << report.at(variant).error;
  }
  EXPECT_TRUE(Classify(Route("resnet20-fashion", "gem-n1", Task::kClassify)).ok());
  StatusOr<std::vector<ExperimentSnapshot>> experiments = engine_->Experiments("resnet20-fashion");
  ASSERT_TRUE(experiments.ok());
  uint64_t requests = 0;
  for (const auto& arm : experiments->front().report.arms) requests += arm.requests;
  EXPECT_EQ(requests, 1u);  // the statistics survived the reload

  // Out of the split, the variant may go.
  ASSERT_TRUE(engine_->SetTrafficSplit("resnet20-fashion", {{"relu", 1}}).ok());
  EXPECT_EQ(Reload().at("resnet20-fashion/gem-n1").action, ReloadAction::kRemoved);
  EXPECT_EQ(Route("resnet20-fashion", "", Task::kClassify).key.variant, "relu");
}

// Shadow comparisons of relu against gem-n1 seen in the experiment's statistics.
uint64_t ShadowComparisons(Engine& engine) {
  StatusOr<std::vector<ExperimentSnapshot>> experiments = engine.Experiments("resnet20-fashion");
  for (const stats::PairReport& pair : experiments.value().front().report.pairs) {
    if (pair.shadow && !pair.comparisons.empty()) return pair.comparisons.front().observations;
  }
  return 0;
}

TEST_F(EngineReloadTest, TheShadowWorkerComparesWithTheReloadedVersion) {
  ExperimentConfig experiment;
  experiment.model = "resnet20-fashion";
  experiment.split = {{"relu", 1}};
  experiment.shadow = {{"gem-n1"}, 1.0, 64};
  options_.experiments = {experiment};
  Start();
  auto mirrored = [&](uint64_t at_least) {
    for (int tries = 0; tries < 3000 && ShadowComparisons(*engine_) < at_least; ++tries) {
      std::this_thread::sleep_for(10ms);
    }
    return ShadowComparisons(*engine_);
  };
  ASSERT_TRUE(Classify(Route("resnet20-fashion", "", Task::kClassify)).ok());
  ASSERT_EQ(mirrored(1), 1u);
  fs::remove(repository_ / "resnet20-fashion/gem-n1/model.pt");
  fs::copy_file(Source("resnet20-fashion/gelu/model.pt"), repository_ / "resnet20-fashion/gem-n1/model.pt");
  EXPECT_EQ(Reload().at("resnet20-fashion/gem-n1").action, ReloadAction::kUpdated);
  ASSERT_TRUE(Classify(Route("resnet20-fashion", "", Task::kClassify)).ok());
  EXPECT_EQ(mirrored(2), 2u) << "the shadow keeps comparing after its model was replaced";
}

TEST_F(EngineReloadTest, RemovingTheDefaultVariantIsRefused) {
  options_.default_variants["resnet20-fashion"] = "gem-n1";
  Start();
  fs::remove_all(repository_ / "resnet20-fashion/gem-n1");
  const VariantReload gone = Reload().at("resnet20-fashion/gem-n1");
  EXPECT_EQ(gone.action, ReloadAction::kFailed);
  EXPECT_NE(gone.error.find("default"), std::string::npos) << gone.error;
  EXPECT_TRUE(Classify(Route("resnet20-fashion", "", Task::kClassify)).ok());
}

TEST_F(EngineReloadTest, ADefaultVariantTheModelDoesNotHaveFailsTheStartNamingTheVariants) {
  options_.default_variants["resnet20-fashion"] = "gem-n9";
  StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(options_, &observer_);
  ASSERT_EQ(engine.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(engine.status().message().find("default_variant \"gem-n9\""), std::string::npos)
      << engine.status().message();
  EXPECT_NE(engine.status().message().find("variants: gem-n1, relu"), std::string::npos)
      << engine.status().message();
}

TEST_F(EngineReloadTest, AModelsEntryForAModelAReloadAddsLaterTakesEffectThen) {
  options_.default_variants["resnet20-fashion"] = "gem-n1";
  options_.default_variants["resnet20-copy"] = "relu";
  Start();
  EXPECT_EQ(engine_->Route("resnet20-copy", "", "", Task::kClassify).status().code(),
            StatusCode::kNotFound);
  fs::create_directories(repository_ / "resnet20-copy");
  fs::copy(repository_ / "resnet20-fashion", repository_ / "resnet20-copy",
           fs::copy_options::recursive);
  EXPECT_EQ(Reload().at("resnet20-copy/relu").action, ReloadAction::kAdded);
  EXPECT_EQ(Route("resnet20-copy", "", Task::kClassify).key.variant, "relu");
}

TEST_F(EngineReloadTest, AnUnknownModelIsNotFoundAndTheMessageListsTheModels) {
  Start();
  StatusOr<Routing> routing = engine_->Route("resnet-typo", "", "", Task::kClassify);
  ASSERT_EQ(routing.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(routing.status().message(),
            "unknown model \"resnet-typo\"; models: gpt2-kjv, resnet20-fashion");
}

TEST_F(EngineReloadTest, AMissingRepositoryFailsTheReloadAndChangesNothing) {
  Start();
  fs::rename(repository_, repository_.string() + "-moved");
  StatusOr<ReloadReport> report = engine_->Reload();
  fs::rename(repository_.string() + "-moved", repository_);
  EXPECT_EQ(report.status().code(), StatusCode::kNotFound);
  EXPECT_TRUE(Classify(Route("resnet20-fashion", "relu", Task::kClassify)).ok());
}

}  // namespace
}  // namespace gemserve
