// Live experiments end to end: real gem-server processes over loopback gRPC and HTTP.
// Routing (weighted, sticky across processes and salts), request ids and experiment
// versions, Admin SetTrafficSplit and GetExperiments (with auth), the statistics and
// shadow pairs, the /api/v1 JSON, Compare and Feedback.
//
// Every server gets its own temporary config (and, where a test needs an odd repository,
// its own copy of the demo models). Counters are read as differences, so that tests
// sharing a server do not depend on each other or on their order.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <thread>

#include "gemserve/v1/inference.grpc.pb.h"
#include "tests/integration/fashion_mnist.h"
#include "tests/integration/generate_stream.h"
#include "tests/integration/metrics_scrape.h"
#include "tests/integration/server_process.h"

namespace gemserve::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kClassifier[] = "resnet20-fashion";
constexpr char kGenerator[] = "gpt2-kjv";
constexpr char kShadow[] = "segem-n1-e1e-4";
const std::vector<std::string> kVariants = {"egem-n1-e1e-4", "gelu", "gem-n1",
                                            "gem-n2",        "relu", "segem-n1-e1e-4"};
const std::set<std::string> kArms = {"gelu", "gem-n1"};

// ---- Temporary files, repositories and configs ----

// A fresh directory under the system's temporary directory, removed with everything in it.
class TempDir {
 public:
  explicit TempDir(const std::string& name)
      : path_(fs::temp_directory_path() /
              (name + "-" + std::to_string(getpid()) + "-" + std::to_string(next_++))) {
    fs::remove_all(path_);
    fs::create_directories(path_);
  }
  ~TempDir() { fs::remove_all(path_); }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const fs::path& path() const { return path_; }

  // Writes `text` to the file `name` in the directory; returns its path.
  std::string Write(const std::string& name, const std::string& text) const {
    std::ofstream(path_ / name, std::ios::trunc) << text;
    return (path_ / name).string();
  }

 private:
  static inline int next_ = 0;
  fs::path path_;
};

// Copies `variants` of the demo repository's `model` into `repository`, with the model's
// shared files (labels.txt, tokenizer/).
void CopyModel(const fs::path& repository, const std::string& model,
               const std::vector<std::string>& variants) {
  const fs::path from = fs::path(GEMSERVE_REPOSITORY) / model;
  fs::create_directories(repository / model);
  for (const auto& entry : fs::directory_iterator(from)) {
    const std::string name = entry.path().filename().string();
    const bool is_variant = fs::exists(entry.path() / "model.json");
    if (is_variant && std::find(variants.begin(), variants.end(), name) == variants.end()) continue;
    fs::copy(entry.path(), repository / model / name, fs::copy_options::recursive);
  }
}

// Makes `variant` of `model` in `repository` fail to load.
void Break(const fs::path& repository, const std::string& model, const std::string& variant) {
  std::ofstream(repository / model / variant / "model.pt", std::ios::trunc) << "not TorchScript";
}

struct ConfigOptions {
  std::string salt = "exp-test";
  std::string shadow = "{variants: [segem-n1-e1e-4], sample_rate: 1.0, queue_size: 1000}";
  std::string extra;  // more top-level YAML
};

// A gem-server config with a sticky gelu 50 / gem-n1 50 experiment on the classifier.
std::string ConfigYaml(const ConfigOptions& options) {
  std::string yaml =
      "models:\n"
      "  resnet20-fashion: {default_variant: gem-n1}\n"
      "  gpt2-kjv: {default_variant: gem-n2}\n"
      "experiments:\n"
      "  - model: resnet20-fashion\n"
      "    split: {gelu: 50, gem-n1: 50}\n"
      "    sticky: true\n"
      "    salt: " + options.salt + "\n";
  if (!options.shadow.empty()) yaml += "    shadow: " + options.shadow + "\n";
  return yaml + options.extra;
}

std::unique_ptr<ServerProcess> StartServer(const std::string& config,
                                           const std::string& repository = GEMSERVE_REPOSITORY,
                                           bool capture_stderr = false) {
  return std::make_unique<ServerProcess>(
      GEM_SERVER_BINARY,
      std::vector<std::string>{"--config=" + config, "--model-repository=" + repository}, 120,
      capture_stderr);
}

std::shared_ptr<grpc::Channel> Connect(const ServerProcess& server) {
  return grpc::CreateChannel(server.grpc_address(), grpc::InsecureChannelCredentials());
}

// ---- Requests ----

const ImageSet& TestImages() {
  static const ImageSet images = LoadFashionMnistTest(FASHION_MNIST_DIR, 200);
  return images;
}

// Test image `index` (mod 200) as a [1, 28, 28] tensor in [0, 1].
v1::Tensor ImageTensor(int index) {
  const ImageSet& images = TestImages();
  const std::vector<uint8_t>& pixels = images.images[index % images.images.size()];
  v1::Tensor tensor;
  for (int64_t d : {1, images.rows, images.cols}) tensor.add_shape(d);
  for (uint8_t p : pixels) tensor.add_data(p / 255.0f);
  return tensor;
}

int TrueLabel(int index) { return TestImages().labels[index % TestImages().labels.size()]; }

v1::ClassifyRequest ClassifyRequest(const std::string& variant, const std::string& routing_key,
                                    int image = 0) {
  v1::ClassifyRequest request;
  request.set_model(kClassifier);
  request.set_variant(variant);
  request.set_routing_key(routing_key);
  *request.mutable_tensor() = ImageTensor(image);
  return request;
}

// Classify, asserting success.
v1::ClassifyResponse Classify(v1::Inference::Stub& stub, const v1::ClassifyRequest& request) {
  grpc::ClientContext context;
  v1::ClassifyResponse response;
  const grpc::Status status = stub.Classify(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  return response;
}

// The variant an experiment routes `routing_key` to (image 0, no variant named).
std::string RoutedVariant(v1::Inference::Stub& stub, const std::string& routing_key) {
  return Classify(stub, ClassifyRequest("", routing_key)).variant();
}

v1::GenerateRequest GenerateRequest(const std::string& variant, const std::string& prompt,
                                    int max_new_tokens) {
  v1::GenerateRequest request;
  request.set_model(kGenerator);
  request.set_variant(variant);
  request.set_prompt(prompt);
  request.set_max_new_tokens(max_new_tokens);
  return request;
}

grpc::Status Compare(v1::Inference::Stub& stub, const v1::CompareRequest& request,
                     v1::CompareResponse* response) {
  grpc::ClientContext context;
  return stub.Compare(&context, request, response);
}

v1::FeedbackRequest Label(const std::string& request_id, int label) {
  v1::FeedbackRequest request;
  request.set_request_id(request_id);
  request.set_label(label);
  return request;
}

v1::FeedbackRequest Reward(const std::string& request_id, double reward) {
  v1::FeedbackRequest request;
  request.set_request_id(request_id);
  request.set_reward(reward);
  return request;
}

grpc::Status Feedback(v1::Inference::Stub& stub, const v1::FeedbackRequest& request,
                      v1::FeedbackResponse* response = nullptr) {
  grpc::ClientContext context;
  v1::FeedbackResponse ignored;
  return stub.Feedback(&context, request, response ? response : &ignored);
}

// ---- Admin ----

// `authorization`: the metadata value to send; empty: none.
grpc::Status SetTrafficSplit(v1::Admin::Stub& stub, const std::string& model,
                             const std::map<std::string, uint32_t>& split,
                             v1::Experiment* response, const std::string& authorization = "") {
  grpc::ClientContext context;
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  v1::SetTrafficSplitRequest request;
  request.set_model(model);
  for (const auto& [variant, weight] : split) (*request.mutable_split())[variant] = weight;
  return stub.SetTrafficSplit(&context, request, response);
}

grpc::Status GetExperiments(v1::Admin::Stub& stub, v1::GetExperimentsResponse* response,
                            const std::string& authorization = "") {
  grpc::ClientContext context;
  if (!authorization.empty()) context.AddMetadata("authorization", authorization);
  return stub.GetExperiments(&context, {}, response);
}

// The classifier's experiment statistics, asserting that GetExperiments succeeds.
v1::ExperimentStatistics ClassifierStatistics(v1::Admin::Stub& stub) {
  v1::GetExperimentsResponse response;
  const grpc::Status status = GetExperiments(stub, &response);
  EXPECT_TRUE(status.ok()) << status.error_message();
  for (const auto& experiment : response.experiments()) {
    if (experiment.experiment().model() == kClassifier) return experiment;
  }
  ADD_FAILURE() << "no experiment for " << kClassifier;
  return {};
}

std::map<std::string, uint64_t> RequestsPerArm(const v1::ExperimentStatistics& statistics) {
  std::map<std::string, uint64_t> out;
  for (const auto& arm : statistics.arms()) out[arm.variant()] = arm.requests();
  return out;
}

std::map<std::string, uint64_t> LabelledPerArm(const v1::ExperimentStatistics& statistics) {
  std::map<std::string, uint64_t> out;
  for (const auto& arm : statistics.arms()) out[arm.variant()] = arm.labelled();
  return out;
}

// after - before, per key (keys of `after` only).
std::map<std::string, uint64_t> Difference(const std::map<std::string, uint64_t>& after,
                                           const std::map<std::string, uint64_t>& before) {
  std::map<std::string, uint64_t> out;
  for (const auto& [key, value] : after) {
    const auto it = before.find(key);
    const uint64_t delta = value - (it == before.end() ? 0 : it->second);
    if (delta != 0) out[key] = delta;
  }
  return out;
}

const v1::PairStatistics* FindPair(const v1::ExperimentStatistics& statistics,
                                   const std::string& baseline, const std::string& candidate,
                                   bool shadow) {
  for (const auto& pair : statistics.pairs()) {
    if (pair.baseline() == baseline && pair.candidate() == candidate && pair.shadow() == shadow) {
      return &pair;
    }
  }
  return nullptr;
}

const v1::Comparison* FindComparison(const v1::PairStatistics& pair, const std::string& metric) {
  for (const auto& comparison : pair.comparisons()) {
    if (comparison.metric() == metric) return &comparison;
  }
  return nullptr;
}

// Shadow comparisons made so far (shadow_agreement observations over every shadow pair).
uint64_t ShadowObservations(const v1::ExperimentStatistics& statistics) {
  uint64_t total = 0;
  for (const auto& pair : statistics.pairs()) {
    if (!pair.shadow()) continue;
    if (const v1::Comparison* c = FindComparison(pair, "shadow_agreement")) total += c->observations();
  }
  return total;
}

// ---- HTTP ----

double Assignments(const ServerProcess& server, const std::string& variant) {
  return Scrape(server, "gemserve_ab_assignments_total", {{"model", kClassifier}, {"variant", variant}});
}

// Protobuf's JSON writes 64-bit integers as strings.
uint64_t JsonUint(const nlohmann::json& value) {
  return value.is_string() ? std::stoull(value.get<std::string>()) : value.get<uint64_t>();
}

bool Contains(const std::string& text, const std::string& part) {
  return text.find(part) != std::string::npos;
}

// ---- One shared server on the demo repository, every routed request shadowed ----

class ExperimentsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("gemserve-experiments");
    config_ = new std::string(dir_->Write("gemserve.yaml", ConfigYaml({})));
    server_ = StartServer(*config_).release();
    channel_ = new std::shared_ptr<grpc::Channel>(Connect(*server_));
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
    delete config_;
    delete dir_;
  }

  std::unique_ptr<v1::Inference::Stub> Inference() { return v1::Inference::NewStub(*channel_); }
  std::unique_ptr<v1::Admin::Stub> Admin() { return v1::Admin::NewStub(*channel_); }

  static TempDir* dir_;
  static std::string* config_;
  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

TempDir* ExperimentsTest::dir_ = nullptr;
std::string* ExperimentsTest::config_ = nullptr;
ServerProcess* ExperimentsTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* ExperimentsTest::channel_ = nullptr;

TEST_F(ExperimentsTest, RoutedRequestsNameTheirVariantAndAreCountedPerVariant) {
  auto stub = Inference();
  std::map<std::string, double> before;
  for (const std::string& arm : kArms) before[arm] = Assignments(*server_, arm);
  std::map<std::string, int> served;
  std::set<std::string> ids;
  for (int i = 0; i < 40; ++i) {
    // Half with a routing key (sticky), half without (a weighted draw).
    const v1::ClassifyResponse response =
        Classify(*stub, ClassifyRequest("", i % 2 ? "routed-" + std::to_string(i) : "", i));
    EXPECT_EQ(response.model(), kClassifier);
    EXPECT_TRUE(kArms.count(response.variant())) << response.variant();
    EXPECT_EQ(response.experiment_version(), 1u);
    EXPECT_FALSE(response.request_id().empty());
    EXPECT_TRUE(ids.insert(response.request_id()).second) << "repeated " << response.request_id();
    ++served[response.variant()];
  }
  for (const std::string& arm : kArms) {
    EXPECT_EQ(Assignments(*server_, arm) - before[arm], served[arm]) << arm;
  }
  // The generator has no experiment: its default variant serves, not routed.
  const Generated generated = Generate(*stub, GenerateRequest("", "And God said", 3));
  ASSERT_TRUE(generated.status.ok()) << generated.status.error_message();
  EXPECT_EQ(generated.last().variant(), "gem-n2");
  EXPECT_EQ(generated.last().experiment_version(), 0u);
  EXPECT_FALSE(generated.last().request_id().empty());
  EXPECT_TRUE(ids.insert(generated.last().request_id()).second);
}

TEST_F(ExperimentsTest, NamedVariantIsNotRoutedNorCountedAsAnAssignment) {
  auto stub = Inference();
  const double gelu_before = Assignments(*server_, "gelu");
  const double gem_before = Assignments(*server_, "gem-n1");
  for (int i = 0; i < 5; ++i) {
    const v1::ClassifyResponse response = Classify(*stub, ClassifyRequest("gelu", "named-key", i));
    EXPECT_EQ(response.variant(), "gelu");
    EXPECT_EQ(response.experiment_version(), 0u);
    EXPECT_FALSE(response.request_id().empty());
  }
  EXPECT_EQ(Assignments(*server_, "gelu"), gelu_before);
  EXPECT_EQ(Assignments(*server_, "gem-n1"), gem_before);
}

TEST_F(ExperimentsTest, AnOverlongRoutingKeyIsRefusedNamingTheField) {
  auto stub = Inference();
  const double gelu_before = Assignments(*server_, "gelu");
  const double gem_before = Assignments(*server_, "gem-n1");
  grpc::ClientContext context;
  v1::ClassifyResponse response;
  const grpc::Status status =
      stub->Classify(&context, ClassifyRequest("", std::string(100000, 'k')), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("routing_key"), std::string::npos);
  EXPECT_LT(status.error_message().size(), 200u);
  EXPECT_EQ(Assignments(*server_, "gelu"), gelu_before);
  EXPECT_EQ(Assignments(*server_, "gem-n1"), gem_before);
  EXPECT_FALSE(RoutedVariant(*stub, std::string(256, 'k')).empty());  // the limit itself is fine
}

TEST_F(ExperimentsTest, StickyKeysKeepTheirVariant) {
  auto stub = Inference();
  std::set<std::string> seen;
  for (int i = 0; i < 100; ++i) {
    const std::string key = "user-" + std::to_string(i);
    const std::string first = RoutedVariant(*stub, key);
    EXPECT_EQ(RoutedVariant(*stub, key), first) << key;
    seen.insert(first);
  }
  EXPECT_EQ(seen, kArms);
}

// The variant of each of `keys` on `server`.
std::vector<std::string> Assign(const ServerProcess& server, const std::vector<std::string>& keys) {
  auto stub = v1::Inference::NewStub(Connect(server));
  std::vector<std::string> out;
  for (const std::string& key : keys) out.push_back(RoutedVariant(*stub, key));
  return out;
}

TEST_F(ExperimentsTest, StickyAssignmentHoldsAcrossProcessesAndChangesWithTheSalt) {
  std::vector<std::string> keys;
  for (int i = 0; i < 200; ++i) keys.push_back("customer-" + std::to_string(i));
  const std::vector<std::string> here = Assign(*server_, keys);
  EXPECT_EQ(std::set<std::string>(here.begin(), here.end()), kArms);

  // The other processes serve the classifier's arms and shadow alone: assignment depends
  // on the salt, the key and the arms, and they start in a fraction of the time.
  TempDir dir("gemserve-sticky");
  const fs::path repository = dir.path() / "repository";
  CopyModel(repository, kClassifier, {"gelu", "gem-n1", kShadow});
  const std::vector<std::string> twin = Assign(*StartServer(*config_, repository), keys);
  for (size_t i = 0; i < keys.size(); ++i) EXPECT_EQ(twin[i], here[i]) << keys[i];

  ConfigOptions resalted;
  resalted.salt = "another-salt";
  const std::vector<std::string> other =
      Assign(*StartServer(dir.Write("resalted.yaml", ConfigYaml(resalted)), repository), keys);
  size_t moved = 0;
  for (size_t i = 0; i < keys.size(); ++i) moved += other[i] != here[i];
  EXPECT_GT(moved, 0u) << "a new salt should reshuffle some of 200 keys";
  EXPECT_LT(moved, keys.size()) << "a new salt is not a swap of the arms";
}

TEST_F(ExperimentsTest, GetExperimentsCountsRoutedRequestsAndFeedbackPerArm) {
  auto stub = Inference();
  auto admin = Admin();
  const v1::ExperimentStatistics before = ClassifierStatistics(*admin);
  std::map<std::string, uint64_t> served, labelled;
  for (int i = 0; i < 30; ++i) {
    const v1::ClassifyResponse response =
        Classify(*stub, ClassifyRequest("", "stats-" + std::to_string(i), i));
    ++served[response.variant()];
    if (i % 3 != 0) continue;
    ASSERT_TRUE(Feedback(*stub, Label(response.request_id(), TrueLabel(i))).ok());
    ++labelled[response.variant()];
  }
  Classify(*stub, ClassifyRequest("gem-n1", "stats-named"));  // named: not in the statistics
  const v1::ExperimentStatistics after = ClassifierStatistics(*admin);

  EXPECT_EQ(after.experiment().version(), 1u);
  EXPECT_EQ(after.experiment().baseline(), "gelu");
  EXPECT_EQ(Difference(RequestsPerArm(after), RequestsPerArm(before)), served);
  EXPECT_EQ(Difference(LabelledPerArm(after), LabelledPerArm(before)), labelled);
  const v1::PairStatistics* routed = FindPair(after, "gelu", "gem-n1", false);
  ASSERT_NE(routed, nullptr);
  for (const char* metric : {"latency_ratio", "error_rate_diff"}) {
    const v1::Comparison* comparison = FindComparison(*routed, metric);
    ASSERT_NE(comparison, nullptr) << metric;
    EXPECT_GT(comparison->observations(), 0u) << metric;
    EXPECT_TRUE(comparison->verdict() == "better" || comparison->verdict() == "worse" ||
                comparison->verdict() == "no difference yet")
        << comparison->verdict();
  }
  const auto arms = LabelledPerArm(after);
  if (arms.at("gelu") > 0 && arms.at("gem-n1") > 0) {
    EXPECT_NE(FindComparison(*routed, "accuracy_diff"), nullptr);
  }
}

TEST_F(ExperimentsTest, ShadowsArePairedWithEveryPrimary) {
  auto stub = Inference();
  auto admin = Admin();
  std::set<std::string> primaries;
  for (int i = 0; i < 20; ++i) {
    primaries.insert(Classify(*stub, ClassifyRequest("", "shadowed-" + std::to_string(i), i)).variant());
  }
  // Every routed request is mirrored (sample_rate 1.0) off the request path: wait until
  // the shadow worker has compared as many as were routed so far.
  v1::ExperimentStatistics statistics;
  uint64_t routed = 0;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  do {
    std::this_thread::sleep_for(std::chrono::milliseconds(200));
    statistics = ClassifierStatistics(*admin);
    routed = 0;
    for (const auto& [arm, requests] : RequestsPerArm(statistics)) routed += requests;
  } while (ShadowObservations(statistics) + statistics.shadow_dropped() < routed &&
           std::chrono::steady_clock::now() < give_up);
  EXPECT_EQ(ShadowObservations(statistics) + statistics.shadow_dropped(), routed);
  EXPECT_EQ(statistics.shadow_dropped(), 0u) << "queue_size 1000 holds every mirror here";
  for (const std::string& primary : primaries) {
    const v1::PairStatistics* pair = FindPair(statistics, primary, kShadow, true);
    ASSERT_NE(pair, nullptr) << primary;
    for (const char* metric : {"shadow_agreement", "shadow_kl", "shadow_latency_ratio"}) {
      const v1::Comparison* comparison = FindComparison(*pair, metric);
      ASSERT_NE(comparison, nullptr) << primary << " " << metric;
      EXPECT_GT(comparison->observations(), 0u) << primary << " " << metric;
    }
    const v1::Interval& agreement = FindComparison(*pair, "shadow_agreement")->value();
    EXPECT_GE(agreement.estimate(), 0);
    EXPECT_LE(agreement.estimate(), 1);
  }
}

TEST_F(ExperimentsTest, HttpApiAnswersLikeGetExperimentsAndListsTheModels) {
  auto stub = Inference();
  for (int i = 0; i < 4; ++i) Classify(*stub, ClassifyRequest("", "http-" + std::to_string(i), i));
  const v1::ExperimentStatistics statistics = ClassifierStatistics(*Admin());
  const nlohmann::json experiments = nlohmann::json::parse(HttpGet(*server_, "/api/v1/experiments"));
  ASSERT_EQ(experiments["experiments"].size(), 1u);
  const nlohmann::json& experiment = experiments["experiments"][0];
  EXPECT_EQ(experiment["experiment"]["model"], kClassifier);
  EXPECT_EQ(JsonUint(experiment["experiment"]["version"]), statistics.experiment().version());
  std::map<std::string, uint64_t> arms;
  for (const nlohmann::json& arm : experiment["arms"]) {
    arms[arm["variant"].get<std::string>()] = JsonUint(arm["requests"]);
  }
  EXPECT_EQ(arms, RequestsPerArm(statistics));

  const nlohmann::json models = nlohmann::json::parse(HttpGet(*server_, "/api/v1/models"));
  std::set<std::string> names;
  for (const nlohmann::json& model : models["models"]) names.insert(model["name"].get<std::string>());
  EXPECT_EQ(names, (std::set<std::string>{kClassifier, kGenerator}));
}

// ---- Compare ----

v1::CompareRequest CompareImage(int image) {
  v1::CompareRequest request;
  request.set_model(kClassifier);
  *request.mutable_tensor() = ImageTensor(image);
  return request;
}

// Checks that `response` has one pair per unordered pair of results, in results order,
// each agreeing as `agree(a, b)` says, and that `agreement` is the agreeing fraction.
template <typename Agree>
void ExpectPairsConsistent(const v1::CompareResponse& response, Agree agree) {
  const auto& results = response.results();
  ASSERT_EQ(response.pairs_size(), results.size() * (results.size() - 1) / 2);
  int next = 0, agreeing = 0;
  for (int i = 0; i < results.size(); ++i) {
    for (int j = i + 1; j < results.size(); ++j) {
      const v1::PairAgreement& pair = response.pairs(next++);
      EXPECT_EQ(pair.a(), results[i].variant());
      EXPECT_EQ(pair.b(), results[j].variant());
      agree(results[i], results[j], pair);
      agreeing += pair.agree();
    }
  }
  EXPECT_DOUBLE_EQ(response.agreement(), static_cast<double>(agreeing) / response.pairs_size());
}

TEST_F(ExperimentsTest, CompareClassifyCoversEveryVariantAsADirectClassifyWould) {
  auto stub = Inference();
  // An image the variants disagree on, so that agreement is not trivially 1.
  v1::CompareResponse response;
  int image = -1;
  do {
    response.Clear();
    ASSERT_TRUE(Compare(*stub, CompareImage(++image), &response).ok());
  } while (response.agreement() == 1 && image < 99);
  std::vector<std::string> variants;
  for (const auto& result : response.results()) {
    variants.push_back(result.variant());
    ASSERT_GT(result.predictions_size(), 0) << result.variant();
    const v1::ClassifyResponse direct = Classify(*stub, ClassifyRequest(result.variant(), "", image));
    ASSERT_GT(direct.predictions_size(), 0);
    EXPECT_EQ(result.predictions(0).index(), direct.predictions(0).index()) << result.variant();
  }
  std::sort(variants.begin(), variants.end());
  EXPECT_EQ(variants, kVariants);
  EXPECT_EQ(response.pairs_size(), 15);
  ExpectPairsConsistent(response, [](const v1::VariantResult& a, const v1::VariantResult& b,
                                     const v1::PairAgreement& pair) {
    EXPECT_EQ(pair.agree(), a.predictions(0).index() == b.predictions(0).index());
  });
}

TEST_F(ExperimentsTest, CompareGenerateEqualsGreedyGeneratePerVariant) {
  auto stub = Inference();
  v1::CompareRequest request;
  request.set_model(kGenerator);
  request.set_prompt("And the LORD said unto");
  request.set_max_new_tokens(8);
  v1::CompareResponse response;
  const grpc::Status status = Compare(*stub, request, &response);
  ASSERT_TRUE(status.ok()) << status.error_message();
  std::vector<std::string> variants;
  for (const auto& result : response.results()) {
    variants.push_back(result.variant());
    v1::GenerateRequest greedy = GenerateRequest(result.variant(), request.prompt(), 8);
    greedy.set_temperature(0);
    const Generated direct = Generate(*stub, greedy);
    ASSERT_TRUE(direct.status.ok()) << direct.status.error_message();
    EXPECT_EQ(result.text(), direct.text) << result.variant();
    EXPECT_EQ(std::vector<int32_t>(result.token_ids().begin(), result.token_ids().end()), direct.ids)
        << result.variant();
  }
  std::sort(variants.begin(), variants.end());
  EXPECT_EQ(variants, kVariants);
  ExpectPairsConsistent(response, [](const v1::VariantResult& a, const v1::VariantResult& b,
                                     const v1::PairAgreement& pair) {
    const auto& x = a.token_ids();
    const auto& y = b.token_ids();
    const auto prefix = std::mismatch(x.begin(), x.end(), y.begin(), y.end()).first - x.begin();
    EXPECT_EQ(pair.common_prefix(), prefix) << pair.a() << " vs " << pair.b();
    EXPECT_EQ(pair.agree(), std::equal(x.begin(), x.end(), y.begin(), y.end()));
  });
}

TEST_F(ExperimentsTest, CompareRejectsBadInput) {
  auto stub = Inference();
  v1::CompareResponse response;
  v1::CompareRequest request = CompareImage(0);
  request.add_variants("gelu");
  request.add_variants("no-such-variant");
  grpc::Status status = Compare(*stub, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(status.error_message(), "no-such-variant")) << status.error_message();

  request.set_variants(1, "gelu");
  status = Compare(*stub, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(status.error_message(), "twice")) << status.error_message();

  request.clear_variants();
  request.set_prompt("And God said");
  status = Compare(*stub, request, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(status.error_message(), "input")) << status.error_message();

  request.set_model("no-such-model");
  EXPECT_EQ(Compare(*stub, request, &response).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_TRUE(server_->running());
}

// ---- Feedback ----

double FeedbackCount(const ServerProcess& server, const std::string& variant,
                     const std::string& outcome) {
  return Scrape(server, "gemserve_feedback_total",
                {{"model", kClassifier}, {"variant", variant}, {"outcome", outcome}});
}

TEST_F(ExperimentsTest, FeedbackCreditsTheVariantThatServed) {
  auto stub = Inference();
  for (const bool right : {true, false}) {
    const v1::ClassifyResponse served = Classify(*stub, ClassifyRequest("", "", right ? 1 : 2));
    const int top1 = served.predictions(0).index();
    const std::string outcome = right ? "correct" : "incorrect";
    const double before = FeedbackCount(*server_, served.variant(), outcome);
    v1::FeedbackResponse response;
    const grpc::Status status =
        Feedback(*stub, Label(served.request_id(), right ? top1 : (top1 + 1) % 10), &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(response.model(), kClassifier);
    EXPECT_EQ(response.variant(), served.variant());
    EXPECT_EQ(response.correct(), right);
    EXPECT_EQ(FeedbackCount(*server_, served.variant(), outcome) - before, 1) << outcome;

    const grpc::Status again = Feedback(*stub, Label(served.request_id(), top1));
    EXPECT_EQ(again.error_code(), grpc::StatusCode::ALREADY_EXISTS) << again.error_message();
  }
  const std::string unknown = Classify(*stub, ClassifyRequest("gelu", "")).request_id() + "0000";
  EXPECT_EQ(Feedback(*stub, Label(unknown, 0)).error_code(), grpc::StatusCode::NOT_FOUND);
  EXPECT_EQ(Feedback(*stub, Reward("no-such-request", 1)).error_code(), grpc::StatusCode::NOT_FOUND);
}

TEST_F(ExperimentsTest, RejectedFeedbackNamesTheFieldAndLeavesTheIdUnclaimed) {
  auto stub = Inference();
  const std::string id = Classify(*stub, ClassifyRequest("", "feedback-key")).request_id();
  v1::FeedbackRequest no_outcome;
  no_outcome.set_request_id(id);
  const std::vector<std::pair<v1::FeedbackRequest, std::string>> bad = {
      {Label("", 0), "request_id"},
      {no_outcome, "outcome"},
      {Reward(id, 1.5), "reward"},
      {Reward(id, std::numeric_limits<double>::quiet_NaN()), "reward"},
      {Reward(id, -0.1), "reward"},
      {Label(id, -1), "label"},
      {Label(id, 10), "label"},
  };
  for (const auto& [request, field] : bad) {
    const grpc::Status status = Feedback(*stub, request);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << request.ShortDebugString();
    EXPECT_TRUE(Contains(status.error_message(), field))
        << request.ShortDebugString() << ": " << status.error_message();
  }
  const grpc::Status status = Feedback(*stub, Label(id, 9));
  EXPECT_TRUE(status.ok()) << status.error_message();
}

TEST_F(ExperimentsTest, FeedbackOnGenerateTakesARewardNotALabel) {
  auto stub = Inference();
  const Generated generated = Generate(*stub, GenerateRequest("gelu", "In the beginning", 4));
  ASSERT_TRUE(generated.status.ok()) << generated.status.error_message();
  const std::string id = generated.last().request_id();
  const grpc::Status label = Feedback(*stub, Label(id, 1));
  EXPECT_EQ(label.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_TRUE(Contains(label.error_message(), "label")) << label.error_message();
  const double before = Scrape(*server_, "gemserve_feedback_total",
                               {{"model", kGenerator}, {"variant", "gelu"}, {"outcome", "reward"}});
  v1::FeedbackResponse response;
  const grpc::Status reward = Feedback(*stub, Reward(id, 0.75), &response);
  ASSERT_TRUE(reward.ok()) << reward.error_message();
  EXPECT_EQ(response.model(), kGenerator);
  EXPECT_EQ(response.variant(), "gelu");
  EXPECT_EQ(Scrape(*server_, "gemserve_feedback_total",
                   {{"model", kGenerator}, {"variant", "gelu"}, {"outcome", "reward"}}) - before,
            1);
}

// A small repository (the classifier's two arms) and a feedback window of 3 ids.
TEST(FeedbackWindow, ForgetsTheOldestIds) {
  TempDir dir("gemserve-window");
  CopyModel(dir.path() / "repository", kClassifier, {"gelu", "gem-n1"});
  ConfigOptions options;
  options.shadow = "";
  options.extra = "limits: {feedback_window: 3}\n";
  const auto server =
      StartServer(dir.Write("gemserve.yaml", ConfigYaml(options)), (dir.path() / "repository").string());
  auto stub = v1::Inference::NewStub(Connect(*server));
  std::vector<std::string> ids;
  for (int i = 0; i < 5; ++i) ids.push_back(Classify(*stub, ClassifyRequest("", "", i)).request_id());
  const grpc::Status oldest = Feedback(*stub, Reward(ids.front(), 1));
  EXPECT_EQ(oldest.error_code(), grpc::StatusCode::NOT_FOUND) << oldest.error_message();
  const grpc::Status newest = Feedback(*stub, Reward(ids.back(), 1));
  EXPECT_TRUE(newest.ok()) << newest.error_message();
}

// ---- SetTrafficSplit, on a repository with a variant that fails to load ----

class SetTrafficSplitTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new TempDir("gemserve-split");
    const fs::path repository = dir_->path() / "repository";
    CopyModel(repository, kClassifier, {"gelu", "gem-n1", "relu", kShadow});
    Break(repository, kClassifier, "relu");
    CopyModel(repository, kGenerator, {"gem-n2"});
    ConfigOptions options;
    options.shadow = "{variants: [segem-n1-e1e-4], sample_rate: 0.5, queue_size: 64}";
    server_ = StartServer(dir_->Write("gemserve.yaml", ConfigYaml(options)), repository.string())
                  .release();
    channel_ = new std::shared_ptr<grpc::Channel>(Connect(*server_));
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
    delete dir_;
  }

  std::unique_ptr<v1::Inference::Stub> Inference() { return v1::Inference::NewStub(*channel_); }
  std::unique_ptr<v1::Admin::Stub> Admin() { return v1::Admin::NewStub(*channel_); }

  double Weight(const std::string& variant) {
    return Scrape(*server_, "gemserve_experiment_weight", {{"model", kClassifier}, {"variant", variant}});
  }

  static TempDir* dir_;
  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

TempDir* SetTrafficSplitTest::dir_ = nullptr;
ServerProcess* SetTrafficSplitTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* SetTrafficSplitTest::channel_ = nullptr;

using Split = std::map<std::string, uint32_t>;

Split SplitOf(const v1::Experiment& experiment) {
  return {experiment.split().begin(), experiment.split().end()};
}

TEST_F(SetTrafficSplitTest, MovesTheNextRequestsAndEchoesTheExperiment) {
  auto admin = Admin();
  auto stub = Inference();
  const v1::Experiment before = ClassifierStatistics(*admin).experiment();
  ASSERT_EQ(SplitOf(before), (Split{{"gelu", 50}, {"gem-n1", 50}}));
  EXPECT_EQ(Weight("gelu"), 50);

  v1::Experiment after;
  grpc::Status status = SetTrafficSplit(*admin, kClassifier, {{"gem-n1", 100}}, &after);
  ASSERT_TRUE(status.ok()) << status.error_message();
  EXPECT_EQ(after.model(), kClassifier);
  EXPECT_EQ(SplitOf(after), (Split{{"gem-n1", 100}}));
  EXPECT_TRUE(after.sticky());
  EXPECT_EQ(after.salt(), "exp-test");
  ASSERT_EQ(after.shadow().variants_size(), 1);
  EXPECT_EQ(after.shadow().variants(0), kShadow);
  EXPECT_DOUBLE_EQ(after.shadow().sample_rate(), 0.5);
  EXPECT_EQ(after.shadow().queue_size(), 64u);
  EXPECT_EQ(after.version(), before.version() + 1);

  for (int i = 0; i < 20; ++i) {
    const v1::ClassifyResponse response =
        Classify(*stub, ClassifyRequest("", i % 2 ? "moved-" + std::to_string(i) : "", i));
    EXPECT_EQ(response.variant(), "gem-n1");
    EXPECT_EQ(response.experiment_version(), after.version());
  }
  EXPECT_EQ(Weight("gelu"), 0);
  EXPECT_EQ(Weight("gem-n1"), 100);
  EXPECT_EQ(ClassifierStatistics(*admin).experiment().version(), after.version());

  v1::Experiment same;
  ASSERT_TRUE(SetTrafficSplit(*admin, kClassifier, {{"gem-n1", 100}}, &same).ok());
  EXPECT_EQ(same.version(), after.version()) << "an unchanged split is not a new version";

  // Back to the configured split, for whatever runs next on this server.
  v1::Experiment restored;
  ASSERT_TRUE(SetTrafficSplit(*admin, kClassifier, {{"gelu", 50}, {"gem-n1", 50}}, &restored).ok());
  EXPECT_EQ(restored.version(), after.version() + 1);
  EXPECT_EQ(Weight("gelu"), 50);
}

TEST_F(SetTrafficSplitTest, RejectsBadSplitsNamingTheField) {
  auto admin = Admin();
  const uint64_t version = ClassifierStatistics(*admin).experiment().version();
  struct Case {
    std::string model;
    Split split;
    grpc::StatusCode code;
    std::vector<std::string> words;  // the message must name these
  };
  const std::vector<Case> cases = {
      {kClassifier, {{"gelu", 50}, {"no-such-variant", 50}}, grpc::StatusCode::INVALID_ARGUMENT,
       {"split", "no-such-variant"}},
      {kClassifier, {{"gelu", 0}, {"gem-n1", 0}}, grpc::StatusCode::INVALID_ARGUMENT, {"split"}},
      {kClassifier, {}, grpc::StatusCode::INVALID_ARGUMENT, {"split"}},
      {kClassifier, {{"gelu", 2000000}}, grpc::StatusCode::INVALID_ARGUMENT, {"split", "gelu"}},
      {kClassifier, {{"gelu", 50}, {"relu", 50}}, grpc::StatusCode::INVALID_ARGUMENT,
       {"split", "relu"}},  // relu failed to load
      {kGenerator, {{"gem-n2", 1}}, grpc::StatusCode::INVALID_ARGUMENT, {"model"}},
      {"", {{"gelu", 1}}, grpc::StatusCode::INVALID_ARGUMENT, {"model"}},
      {"no-such-model", {{"gelu", 1}}, grpc::StatusCode::NOT_FOUND, {"no-such-model"}},
  };
  for (const Case& c : cases) {
    v1::Experiment response;
    const grpc::Status status = SetTrafficSplit(*admin, c.model, c.split, &response);
    EXPECT_EQ(status.error_code(), c.code) << c.model << " " << status.error_message();
    for (const std::string& word : c.words) {
      EXPECT_TRUE(Contains(status.error_message(), word)) << word << ": " << status.error_message();
    }
  }
  EXPECT_EQ(ClassifierStatistics(*admin).experiment().version(), version);
  EXPECT_TRUE(server_->running());
  EXPECT_TRUE(kArms.count(RoutedVariant(*Inference(), "after-bad-splits")));
}

// ---- Admin auth ----

std::string RandomToken() {
  std::random_device random;
  std::string token;
  for (int i = 0; i < 32; ++i) token += "0123456789abcdef"[random() % 16];
  return token;
}

TEST(AdminAuth, NeedsTheBearerTokenAndNeverPrintsIt) {
  TempDir dir("gemserve-auth");
  CopyModel(dir.path() / "repository", kClassifier, {"gelu", "gem-n1"});
  const std::string token = RandomToken();
  const std::string token_file = dir.Write("admin-token", token + "\n");
  ConfigOptions options;
  options.shadow = "";
  options.extra = "auth: {admin_token_file: " + token_file + "}\n";
  const auto server = StartServer(dir.Write("gemserve.yaml", ConfigYaml(options)),
                                  (dir.path() / "repository").string(), true);
  auto admin = v1::Admin::NewStub(Connect(*server));

  const std::vector<std::string> refused = {"", "Bearer wrong-token", token,
                                            "Bearer " + token + "x", "bearer " + token};
  for (const std::string& authorization : refused) {
    v1::GetExperimentsResponse experiments;
    EXPECT_EQ(GetExperiments(*admin, &experiments, authorization).error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << "authorization: " << authorization;
    v1::Experiment experiment;
    EXPECT_EQ(SetTrafficSplit(*admin, kClassifier, {{"gem-n1", 100}}, &experiment, authorization)
                  .error_code(),
              grpc::StatusCode::UNAUTHENTICATED)
        << "authorization: " << authorization;
  }
  const std::string bearer = "Bearer " + token;
  v1::GetExperimentsResponse experiments;
  const grpc::Status got = GetExperiments(*admin, &experiments, bearer);
  ASSERT_TRUE(got.ok()) << got.error_message();
  ASSERT_EQ(experiments.experiments_size(), 1);
  EXPECT_EQ(experiments.experiments(0).experiment().version(), 1u)
      << "the refused SetTrafficSplit calls changed nothing";
  v1::Experiment experiment;
  const grpc::Status set = SetTrafficSplit(*admin, kClassifier, {{"gem-n1", 100}}, &experiment, bearer);
  ASSERT_TRUE(set.ok()) << set.error_message();
  EXPECT_EQ(experiment.version(), 2u);

  admin.reset();  // the client hangs up first; else the server's drain waits for it
  server->Stop();
  const std::string output = server->output();
  EXPECT_TRUE(Contains(output, "grpc listening on")) << "the output was not captured";
  EXPECT_FALSE(Contains(output, token)) << output;
}

}  // namespace
}  // namespace gemserve::testing
