// gem-server end to end over real gRPC and HTTP on loopback, serving the committed
// demo repository (models/repository): health, model listing, Classify accuracy per
// variant (tensors and PNG bytes) against the accuracy Python measured, greedy Generate
// against Python's tokens, streaming, cancellation, deadlines, errors and metrics.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <httplib.h>
#include <stb/stb_image_write.h>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <thread>

#include "gemserve/v1/inference.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/integration/fashion_mnist.h"
#include "tests/integration/generate_stream.h"
#include "tests/integration/metrics_scrape.h"
#include "tests/integration/server_process.h"

namespace gemserve::testing {
namespace {

constexpr char kClassifier[] = "resnet20-fashion";
constexpr char kGenerator[] = "gpt2-kjv";
const std::vector<std::string> kVariants = {"relu",   "gelu",          "gem-n1",
                                            "gem-n2", "egem-n1-e1e-4", "segem-n1-e1e-4"};

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  EXPECT_TRUE(in.good()) << "cannot read " << path;
  return nlohmann::json::parse(in);
}

std::string Reference(const std::string& model, const std::string& variant) {
  return std::string(GEMSERVE_REPOSITORY) + "/" + model + "/" + variant + "/reference.json";
}

// One server for the whole suite (loading twelve variants takes a few seconds).
class ServerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    server_ = new ServerProcess(GEM_SERVER_BINARY,
                                {"--config=" GEMSERVE_SOURCE_DIR "/deploy/gemserve.yaml",
                                 "--model-repository=" GEMSERVE_REPOSITORY});
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
  }

  std::unique_ptr<v1::Inference::Stub> Stub() { return v1::Inference::NewStub(*channel_); }

  // The value of one series of the server's /metrics, 0 when absent.
  double Scrape(const std::string& family, const std::map<std::string, std::string>& labels) {
    return testing::Scrape(*server_, family, labels);
  }

  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

ServerProcess* ServerTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* ServerTest::channel_ = nullptr;

TEST_F(ServerTest, HealthIsServingForTheServerAndTheInferenceService) {
  auto health = grpc::health::v1::Health::NewStub(*channel_);
  for (const char* service : {"", "gemserve.v1.Inference"}) {
    grpc::ClientContext context;
    grpc::health::v1::HealthCheckRequest request;
    request.set_service(service);
    grpc::health::v1::HealthCheckResponse response;
    ASSERT_TRUE(health->Check(&context, request, &response).ok());
    EXPECT_EQ(response.status(), grpc::health::v1::HealthCheckResponse::SERVING) << service;
  }
  httplib::Client client("http://" + server_->metrics_address());
  auto healthz = client.Get("/healthz");
  ASSERT_TRUE(healthz);
  EXPECT_EQ(healthz->status, 200);
}

TEST_F(ServerTest, ListsEveryVariantReady) {
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  ASSERT_TRUE(Stub()->ListModels(&context, {}, &response).ok());
  std::map<std::string, std::vector<std::string>> ready;
  for (const auto& model : response.models()) {
    for (const auto& variant : model.variants()) {
      if (variant.state() == "READY") ready[model.name()].push_back(variant.name());
    }
  }
  for (const char* model : {kClassifier, kGenerator}) {
    std::vector<std::string> want = kVariants;
    std::sort(want.begin(), want.end());
    EXPECT_EQ(ready[model], want) << model;
  }
}

std::string Png(const std::vector<uint8_t>& pixels, int width, int height) {
  std::string bytes;
  stbi_write_png_to_func(
      [](void* context, void* data, int size) {
        static_cast<std::string*>(context)->append(static_cast<char*>(data),
                                                   static_cast<size_t>(size));
      },
      &bytes, width, height, 1, pixels.data(), width);
  return bytes;
}

// Under ASan (this test took 171 s there, 49 s in the release build) two variants stand
// for the rest, one per kind of activation: LibTorch's builtin relu and the fused GEM op,
// whose other variants differ from gem-n1 only in parameters. The release build checks all.
std::vector<std::string> AccuracyVariants() {
  if (UnderAddressSanitizer()) return {"relu", "gem-n1"};
  return kVariants;
}

TEST_F(ServerTest, ClassifyAccuracyMatchesPythonForEveryVariant) {
  const ImageSet test = LoadFashionMnistTest(FASHION_MNIST_DIR, 1000);
  auto stub = Stub();
  for (const std::string& variant : AccuracyVariants()) {
    const double python = ReadJson(Reference(kClassifier, variant))["first_images_accuracy"];
    for (const bool as_png : {false, true}) {
      int correct = 0;
      for (size_t i = 0; i < test.images.size(); ++i) {
        v1::ClassifyRequest request;
        request.set_model(kClassifier);
        request.set_variant(variant);
        request.set_top_k(1);
        if (as_png) {
          request.set_image(Png(test.images[i], test.cols, test.rows));
        } else {
          v1::Tensor* tensor = request.mutable_tensor();
          tensor->add_shape(1);
          tensor->add_shape(test.rows);
          tensor->add_shape(test.cols);
          for (uint8_t p : test.images[i]) tensor->add_data(p / 255.0f);
        }
        grpc::ClientContext context;
        v1::ClassifyResponse response;
        const grpc::Status status = stub->Classify(&context, request, &response);
        ASSERT_TRUE(status.ok()) << status.error_message();
        ASSERT_EQ(response.variant(), variant);
        correct += response.predictions(0).index() == test.labels[i];
      }
      EXPECT_NEAR(correct / 1000.0, python, 0.002)
          << variant << (as_png ? " as PNG" : " as tensor");
    }
  }
}

TEST_F(ServerTest, GreedyGenerateMatchesPythonForEveryVariant) {
  auto stub = Stub();
  for (const std::string& variant : kVariants) {
    const nlohmann::json reference = ReadJson(Reference(kGenerator, variant));
    std::vector<int32_t> want = reference["greedy_tokens"];
    const int32_t eos = ReadJson(std::string(GEMSERVE_REPOSITORY) + "/" + kGenerator + "/" +
                                 variant + "/model.json")["eos_id"];
    if (auto at = std::find(want.begin(), want.end(), eos); at != want.end()) want.erase(at, want.end());
    v1::GenerateRequest request;
    request.set_model(kGenerator);
    request.set_variant(variant);
    request.set_prompt(reference["prompt"].get<std::string>());
    request.set_max_new_tokens(static_cast<int>(want.size()));
    const Generated got = Generate(*stub, request);
    ASSERT_TRUE(got.status.ok()) << got.status.error_message();
    EXPECT_EQ(got.ids, want) << variant;
    EXPECT_EQ(got.text, reference["greedy_text"].get<std::string>().substr(0, got.text.size()))
        << variant;
  }
}

// Concurrent streams share decode steps (continuous batching). Different prompts and
// lengths make rows finish at different times, so later steps decode with idle rows in
// between; every stream must still get exactly what it gets alone.
TEST_F(ServerTest, ConcurrentGreedyStreamsEqualTheirSoloRuns) {
  const std::vector<std::pair<std::string, int>> prompts = {
      {"And God said", 30}, {"In the beginning", 6}, {"The LORD is my shepherd", 18},
      {"Blessed are", 3}, {"And Moses", 24}};
  std::vector<v1::GenerateRequest> requests;
  for (const auto& [prompt, tokens] : prompts) {
    v1::GenerateRequest request;
    request.set_model(kGenerator);
    request.set_variant("gem-n1");
    request.set_prompt(prompt);
    request.set_max_new_tokens(tokens);
    requests.push_back(request);
  }
  const AloneAndTogether got = GenerateAloneThenTogether(*Stub(), requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(got.together[i].status.ok()) << got.together[i].status.error_message();
    EXPECT_EQ(got.together[i].ids, got.alone[i].ids) << requests[i].prompt();
  }
}

TEST_F(ServerTest, StreamsPiecesBeforeTheLastToken) {
  v1::GenerateRequest request;
  request.set_model(kGenerator);
  request.set_variant("gem-n2");
  request.set_prompt("And God said");
  request.set_max_new_tokens(40);
  request.set_temperature(0.8f);
  request.set_seed(7);
  const Generated got = Generate(*Stub(), request);
  ASSERT_TRUE(got.status.ok()) << got.status.error_message();
  ASSERT_GT(got.messages.size(), 2u);
  const v1::GenerateResponse& first = got.messages.front();
  const v1::GenerateResponse& last = got.messages.back();
  EXPECT_EQ(first.finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
  EXPECT_LT(first.token_ids_size(), last.usage().completion_tokens());
  EXPECT_NE(last.finish_reason(), v1::FINISH_REASON_UNSPECIFIED);
  EXPECT_EQ(static_cast<int>(got.ids.size()), last.usage().completion_tokens());
  EXPECT_GT(last.timing().total_us(), 0);
}

TEST_F(ServerTest, SameSeedSameTextAndStopStringsEndTheStream) {
  v1::GenerateRequest request;
  request.set_model(kGenerator);
  request.set_variant("gelu");
  request.set_prompt("In the beginning");
  request.set_max_new_tokens(30);
  request.set_temperature(1.0f);
  request.set_top_p(0.9f);
  request.set_seed(42);
  auto stub = Stub();
  const Generated a = Generate(*stub, request);
  const Generated b = Generate(*stub, request);
  ASSERT_TRUE(a.status.ok() && b.status.ok());
  EXPECT_EQ(a.ids, b.ids);
  ASSERT_GT(a.text.size(), 4u);
  const std::string stop = a.text.substr(a.text.size() / 2, 3);
  request.add_stop(stop);
  const Generated stopped = Generate(*stub, request);
  ASSERT_TRUE(stopped.status.ok());
  EXPECT_EQ(stopped.messages.back().finish_reason(), v1::STOP);
  EXPECT_EQ(stopped.text, a.text.substr(0, a.text.find(stop)));
}

TEST_F(ServerTest, CancelMidStreamReturnsCancelledAndTheServerGoesOn) {
  auto stub = Stub();
  v1::GenerateRequest request;
  request.set_model(kGenerator);
  request.set_variant("gem-n1");
  request.set_prompt("And the LORD spake unto Moses, saying");
  request.set_max_new_tokens(200);
  grpc::ClientContext context;
  auto reader = stub->Generate(&context, request);
  v1::GenerateResponse message;
  ASSERT_TRUE(reader->Read(&message));
  context.TryCancel();
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::CANCELLED);
  request.set_max_new_tokens(5);
  EXPECT_TRUE(Generate(*stub, request).status.ok());
  EXPECT_TRUE(server_->running());
}

TEST_F(ServerTest, DeadlinesAreHonoured) {
  v1::GenerateRequest request;
  request.set_model(kGenerator);
  request.set_variant("relu");
  request.set_prompt("And God said");
  request.set_max_new_tokens(250);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(50));
  auto reader = Stub()->Generate(&context, request);
  v1::GenerateResponse message;
  while (reader->Read(&message)) {
  }
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
}

grpc::Status Classify(v1::Inference::Stub& stub, const v1::ClassifyRequest& request) {
  grpc::ClientContext context;
  v1::ClassifyResponse response;
  return stub.Classify(&context, request, &response);
}

TEST_F(ServerTest, BadRequestsGetCodesAndMessagesNamingTheField) {
  auto stub = Stub();
  v1::ClassifyRequest classify;
  classify.set_model("no-such-model");
  EXPECT_EQ(Classify(*stub, classify).error_code(), grpc::StatusCode::NOT_FOUND);
  classify.set_model(kClassifier);
  classify.set_variant("no-such-variant");
  EXPECT_EQ(Classify(*stub, classify).error_code(), grpc::StatusCode::NOT_FOUND);
  classify.set_variant("gem-n1");
  classify.mutable_tensor()->add_shape(3);
  classify.mutable_tensor()->add_data(0.5f);
  grpc::Status status = Classify(*stub, classify);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("tensor.shape"), std::string::npos);
  classify.set_image("definitely not a PNG");
  status = Classify(*stub, classify);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(status.error_message().find("image"), std::string::npos);
  classify.set_model(kGenerator);
  EXPECT_EQ(Classify(*stub, classify).error_code(), grpc::StatusCode::INVALID_ARGUMENT);

  v1::GenerateRequest generate;
  generate.set_model(kGenerator);
  generate.set_variant("gem-n2");
  generate.set_prompt("x");
  generate.set_temperature(-1);
  Generated got = Generate(*stub, generate);
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(got.status.error_message().find("temperature"), std::string::npos);
  generate.set_temperature(0);
  generate.set_max_new_tokens(100000);
  got = Generate(*stub, generate);
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(got.status.error_message().find("max_new_tokens"), std::string::npos);
  generate.set_max_new_tokens(4);
  std::string long_prompt;
  for (int i = 0; i < 400; ++i) long_prompt += " and";
  generate.set_prompt(long_prompt);
  got = Generate(*stub, generate);
  EXPECT_EQ(got.status.error_code(), grpc::StatusCode::INVALID_ARGUMENT);
  EXPECT_NE(got.status.error_message().find("prompt"), std::string::npos);
  EXPECT_TRUE(server_->running());
}

TEST_F(ServerTest, MetricsCountExactlyTheRequestsSent) {
  const std::map<std::string, std::string> ok = {
      {"rpc", "Classify"}, {"model", kClassifier}, {"variant", "egem-n1-e1e-4"}, {"code", "OK"}};
  const double before = Scrape("gemserve_requests_total", ok);
  const double tokens_before =
      Scrape("gemserve_generated_tokens_total", {{"model", kGenerator}, {"variant", "gem-n1"}});
  auto stub = Stub();
  v1::ClassifyRequest request;
  request.set_model(kClassifier);
  request.set_variant("egem-n1-e1e-4");
  v1::Tensor* tensor = request.mutable_tensor();
  for (int64_t d : {1, 28, 28}) tensor->add_shape(d);
  for (int i = 0; i < 28 * 28; ++i) tensor->add_data(0.25f);
  for (int i = 0; i < 7; ++i) ASSERT_TRUE(Classify(*stub, request).ok());
  EXPECT_EQ(ScrapeUntil(*server_, "gemserve_requests_total", ok, before + 7) - before, 7);

  v1::GenerateRequest generate;
  generate.set_model(kGenerator);
  generate.set_variant("gem-n1");
  generate.set_prompt("And it came to pass");
  generate.set_max_new_tokens(12);
  const Generated got = Generate(*stub, generate);
  ASSERT_TRUE(got.status.ok());
  EXPECT_EQ(Scrape("gemserve_generated_tokens_total", {{"model", kGenerator}, {"variant", "gem-n1"}}) -
                tokens_before,
            got.messages.back().usage().completion_tokens());
  EXPECT_EQ(Scrape("gemserve_model_info", {{"model", kClassifier}, {"variant", "segem-n1-e1e-4"},
                                           {"neg_slope", "0.01"}}),
            1);
}

// A repository with one good and one broken variant: the broken one is reported and
// answers UNAVAILABLE; the good one serves.
TEST(BrokenVariant, IsReportedAndDoesNotStopTheOthers) {
  namespace fs = std::filesystem;
  const fs::path repository = fs::temp_directory_path() / ("gemserve-broken-" + std::to_string(getpid()));
  const fs::path model = repository / kClassifier;
  fs::create_directories(model);
  fs::copy(std::string(GEMSERVE_REPOSITORY) + "/" + kClassifier + "/labels.txt", model);
  fs::copy(std::string(GEMSERVE_REPOSITORY) + "/" + kClassifier + "/gem-n1", model / "gem-n1");
  fs::copy(std::string(GEMSERVE_REPOSITORY) + "/" + kClassifier + "/relu", model / "relu");
  std::ofstream(model / "relu" / "model.pt", std::ios::trunc) << "not TorchScript";
  const fs::path config = repository / "gemserve.yaml";  // the shipped one's experiment needs gelu
  std::ofstream(config) << "models: {" << kClassifier << ": {default_variant: gem-n1}}\n";
  {
    ServerProcess server(GEM_SERVER_BINARY, {"--config=" + config.string(),
                                             "--model-repository=" + repository.string()});
    auto channel = grpc::CreateChannel(server.grpc_address(), grpc::InsecureChannelCredentials());
    auto stub = v1::Inference::NewStub(channel);
    grpc::ClientContext list_context;
    v1::ListModelsResponse models;
    ASSERT_TRUE(stub->ListModels(&list_context, {}, &models).ok());
    ASSERT_EQ(models.models_size(), 1);
    std::map<std::string, v1::VariantInfo> variants;
    for (const auto& v : models.models(0).variants()) variants[v.name()] = v;
    EXPECT_EQ(variants["gem-n1"].state(), "READY");
    EXPECT_EQ(variants["relu"].state(), "FAILED");
    EXPECT_NE(variants["relu"].error().find("model.pt"), std::string::npos);

    auto health = grpc::health::v1::Health::NewStub(channel);
    for (const auto& [name, want] :
         std::map<std::string, int>{{std::string(kClassifier) + "/relu", 2},
                                    {std::string(kClassifier) + "/gem-n1", 1}}) {
      grpc::ClientContext context;
      grpc::health::v1::HealthCheckRequest request;
      request.set_service(name);
      grpc::health::v1::HealthCheckResponse response;
      ASSERT_TRUE(health->Check(&context, request, &response).ok());
      EXPECT_EQ(static_cast<int>(response.status()), want) << name;
    }

    v1::ClassifyRequest request;
    request.set_model(kClassifier);
    request.set_variant("relu");
    EXPECT_EQ(Classify(*stub, request).error_code(), grpc::StatusCode::UNAVAILABLE);
    request.set_variant("gem-n1");
    v1::Tensor* tensor = request.mutable_tensor();
    for (int64_t d : {1, 28, 28}) tensor->add_shape(d);
    for (int i = 0; i < 28 * 28; ++i) tensor->add_data(0.5f);
    EXPECT_TRUE(Classify(*stub, request).ok());
  }
  fs::remove_all(repository);
}

}  // namespace
}  // namespace gemserve::testing
