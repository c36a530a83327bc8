// Generate over real gRPC against a gem-server with GPT-2 admission limits
// (`generate: {max_sequences, max_kv_positions}`): streams beyond the limits queue and
// all complete, each with the tokens it gets alone (greedy, and sampled with a seed); a
// request that could never fit is RESOURCE_EXHAUSTED naming the limit; cancelled streams
// give back their slots, KV positions and memory.

#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "gemserve/v1/inference.grpc.pb.h"
#include "tests/integration/generate_stream.h"
#include "tests/integration/metrics_scrape.h"
#include "tests/integration/server_process.h"

namespace gemserve::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kGenerator[] = "gpt2-kjv";
constexpr char kVariant[] = "gem-n1";
constexpr int kMaxSequences = 3;
constexpr int kMaxKvPositions = 200;

v1::GenerateRequest Request(const std::string& prompt, int max_new_tokens, float temperature = 0,
                            uint64_t seed = 0) {
  v1::GenerateRequest request;
  request.set_model(kGenerator);
  request.set_variant(kVariant);
  request.set_prompt(prompt);
  request.set_max_new_tokens(max_new_tokens);
  request.set_temperature(temperature);
  request.set_top_p(temperature > 0 ? 0.9f : 1.0f);
  request.set_seed(seed);
  return request;
}

// One server on a repository of the one variant (links into the demo repository).
class GenerateLimitsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    directory_ = new fs::path(fs::temp_directory_path() /
                              ("gemserve-generate-" + std::to_string(getpid())));
    const fs::path model = *directory_ / "repository" / kGenerator;
    fs::create_directories(model);
    const fs::path demo = fs::path(GEMSERVE_REPOSITORY) / kGenerator;
    fs::create_directory_symlink(demo / kVariant, model / kVariant);
    fs::create_directory_symlink(demo / "tokenizer", model / "tokenizer");
    const fs::path config = *directory_ / "gemserve.yaml";
    std::ofstream(config) << "threads: 1\n"
                          << "generate: {max_sequences: " << kMaxSequences
                          << ", max_kv_positions: " << kMaxKvPositions << "}\n";
    server_ = new ServerProcess(GEM_SERVER_BINARY,
                                {"--config=" + config.string(),
                                 "--model-repository=" + (*directory_ / "repository").string()});
    channel_ = new std::shared_ptr<grpc::Channel>(
        grpc::CreateChannel(server_->grpc_address(), grpc::InsecureChannelCredentials()));
  }
  static void TearDownTestSuite() {
    delete channel_;
    delete server_;
    fs::remove_all(*directory_);
    delete directory_;
  }

  std::unique_ptr<v1::Inference::Stub> Stub() { return v1::Inference::NewStub(*channel_); }

  static fs::path* directory_;
  static ServerProcess* server_;
  static std::shared_ptr<grpc::Channel>* channel_;
};

fs::path* GenerateLimitsTest::directory_ = nullptr;
ServerProcess* GenerateLimitsTest::server_ = nullptr;
std::shared_ptr<grpc::Channel>* GenerateLimitsTest::channel_ = nullptr;

// Eight streams at once over three sequences: they queue, join as others retire, and
// each gets what it gets alone.
TEST_F(GenerateLimitsTest, StreamsBeyondTheLimitsQueueAndGetTheirSoloTokens) {
  const std::vector<v1::GenerateRequest> requests = {
      Request("And God said", 40, 0.8f, 11),
      Request("In the beginning", 30),
      Request("The LORD is my shepherd", 25, 1.0f, 5),
      Request("Blessed are", 6),
      Request("And Moses", 35, 0.7f, 3),
      Request("And it came to pass in those days, that", 18),
      Request("Behold", 12, 1.2f, 8),
      Request("Thus saith the LORD", 22),
  };
  const AloneAndTogether got = GenerateAloneThenTogether(*Stub(), requests);
  for (size_t i = 0; i < requests.size(); ++i) {
    ASSERT_TRUE(got.alone[i].status.ok()) << got.alone[i].status.error_message();
    ASSERT_TRUE(got.together[i].status.ok()) << got.together[i].status.error_message();
    EXPECT_EQ(got.together[i].ids, got.alone[i].ids) << requests[i].prompt();
    EXPECT_EQ(got.together[i].last().usage().completion_tokens(),
              static_cast<int>(got.together[i].ids.size()));
  }
}

TEST_F(GenerateLimitsTest, ARequestThatCouldNeverFitIsResourceExhaustedNamingTheLimit) {
  const Generated refused = Generate(*Stub(), Request("And God said", kMaxKvPositions));
  EXPECT_EQ(refused.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  EXPECT_NE(refused.status.error_message().find("generate.max_kv_positions"), std::string::npos)
      << refused.status.error_message();
  EXPECT_TRUE(refused.ids.empty());
  EXPECT_TRUE(server_->running());
}

// Starts `count` streams at once, cancels each after its first message, and returns how
// many ended CANCELLED.
int CancelMidFlight(v1::Inference::Stub& stub, int count) {
  std::vector<std::thread> streams;
  std::atomic<int> cancelled{0};
  for (int i = 0; i < count; ++i) {
    streams.emplace_back([&stub, &cancelled, i] {
      grpc::ClientContext context;
      auto reader = stub.Generate(&context, Request("And God said " + std::to_string(i), 150));
      v1::GenerateResponse message;
      if (reader->Read(&message)) context.TryCancel();
      while (reader->Read(&message)) {
      }
      if (reader->Finish().error_code() == grpc::StatusCode::CANCELLED) ++cancelled;
    });
  }
  for (std::thread& stream : streams) stream.join();
  return cancelled;
}

// The server's gauges once nothing generates: polls until both read 0 (or 10 s pass).
bool SlotsAndPositionsReturnToZero(const ServerProcess& server) {
  const std::map<std::string, std::string> labels = {{"model", kGenerator}, {"variant", kVariant}};
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (std::chrono::steady_clock::now() < give_up) {
    if (Scrape(server, "gemserve_generate_sequences", labels) == 0 &&
        Scrape(server, "gemserve_kv_positions_reserved", labels) == 0) {
      return true;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return false;
}

TEST_F(GenerateLimitsTest, CancellingAHundredStreamsMidFlightFreesTheirSlotsAndMemory) {
  auto stub = Stub();
  ASSERT_EQ(CancelMidFlight(*stub, 100), 100);  // the first round warms the allocator up
  ASSERT_TRUE(SlotsAndPositionsReturnToZero(*server_));
  const double warm_rss = Scrape(*server_, "process_resident_memory_bytes", {});
  ASSERT_EQ(CancelMidFlight(*stub, 100), 100);
  EXPECT_TRUE(SlotsAndPositionsReturnToZero(*server_));
  const double rss = Scrape(*server_, "process_resident_memory_bytes", {});
  EXPECT_LT(rss, warm_rss * 1.10) << "RSS " << warm_rss << " -> " << rss << " bytes";
  EXPECT_TRUE(Generate(*stub, Request("And God said", 5)).status.ok());
}

}  // namespace
}  // namespace gemserve::testing
