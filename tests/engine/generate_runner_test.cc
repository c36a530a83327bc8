// GenerateRunner on a real GPT-2 variant of the demo repository (gpt2-kjv/gem-n1): the
// same tokens for a request alone and among other streams (greedy, and sampled with a
// seed), and the admission limits (max_sequences, max_kv_positions, the queue).

#include "server/engine/generate_runner.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <future>
#include <memory>
#include <string>
#include <vector>

namespace gemserve {
namespace {

constexpr char kVariantDir[] = GEMSERVE_REPOSITORY "/gpt2-kjv/gem-n1";
constexpr auto kPatience = std::chrono::seconds(60);

// The largest batch of any forward.
class LargestBatch : public InferenceObserver {
 public:
  void OnInference(const VariantKey&, double, int batch_size) override {
    int seen = largest_.load();
    while (batch_size > seen && !largest_.compare_exchange_weak(seen, batch_size)) {
    }
  }
  int value() const { return largest_.load(); }

 private:
  std::atomic<int> largest_{0};
};

// What one request received.
struct Stream {
  std::vector<int32_t> ids;
  std::optional<FinishReason> finish;
  Status error = Status::Ok();
  bool started = false;
  std::promise<void> first_chunk;
  std::promise<void> done;
};

struct Request {
  std::string prompt;
  int max_new_tokens = 20;
  SamplingParams sampling;  // greedy
};

SamplingParams Sampled(uint64_t seed) {
  SamplingParams sampling;
  sampling.temperature = 0.9f;
  sampling.top_p = 0.9f;
  sampling.seed = seed;
  return sampling;
}

class GenerateRunnerTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    StatusOr<VariantConfig> config = LoadVariantConfig(kVariantDir);
    ASSERT_TRUE(config.ok()) << config.status().message();
    config_ = new VariantConfig(config.value());
    StatusOr<Tokenizer> tokenizer = Tokenizer::Load(config->tokenizer.vocab, config->tokenizer.merges);
    ASSERT_TRUE(tokenizer.ok()) << tokenizer.status().message();
    tokenizer_ = new std::shared_ptr<const Tokenizer>(
        std::make_shared<const Tokenizer>(std::move(tokenizer.value())));
  }
  static void TearDownTestSuite() {
    delete tokenizer_;
    delete config_;
  }

  std::unique_ptr<GenerateRunner> Start(GenerateOptions options, BatchingOptions batching = {}) {
    StatusOr<std::unique_ptr<ScriptedModel>> model =
        ScriptedModel::Load(config_->weights, c10::Device(c10::kCPU));
    EXPECT_TRUE(model.ok()) << model.status().message();
    auto runner = std::make_unique<GenerateRunner>(*config_, std::move(model.value()), *tokenizer_,
                                                   batching, options, &largest_batch_);
    EXPECT_TRUE(runner->Warmup().ok());
    return runner;
  }

  int64_t PromptTokens(const std::string& prompt) const {
    return static_cast<int64_t>((*tokenizer_)->Encode(prompt).size());
  }

  // Submits `request`; the stream fills as the runner answers.
  std::shared_ptr<Stream> Submit(GenerateRunner& runner, const Request& request,
                                 RequestContext context = {}, Status* queued = nullptr) {
    auto stream = std::make_shared<Stream>();
    GenerateJob job;
    job.prompt_ids = (*tokenizer_)->Encode(request.prompt);
    job.params.prompt = request.prompt;
    job.params.max_new_tokens = request.max_new_tokens;
    job.params.sampling = request.sampling;
    job.context = std::move(context);
    job.sink.on_chunk = [stream](GenerateChunk chunk) {
      stream->ids.insert(stream->ids.end(), chunk.token_ids.begin(), chunk.token_ids.end());
      if (!stream->started) stream->first_chunk.set_value();
      stream->started = true;
      if (!chunk.finish) return;
      stream->finish = chunk.finish;
      stream->done.set_value();
    };
    job.sink.on_error = [stream](Status error) {
      stream->error = std::move(error);
      if (!stream->started) stream->first_chunk.set_value();
      stream->started = true;
      stream->done.set_value();
    };
    const Status status = runner.Submit(std::move(job));
    if (queued) *queued = status;
    EXPECT_TRUE(queued || status.ok()) << status.message();
    return stream;
  }

  static void Await(const std::shared_ptr<Stream>& stream) {
    ASSERT_EQ(stream->done.get_future().wait_for(kPatience), std::future_status::ready);
  }

  static void AwaitFirstChunk(const std::shared_ptr<Stream>& stream) {
    ASSERT_EQ(stream->first_chunk.get_future().wait_for(kPatience), std::future_status::ready);
  }

  std::vector<int32_t> Alone(const Request& request) {
    std::unique_ptr<GenerateRunner> runner = Start({});
    std::shared_ptr<Stream> stream = Submit(*runner, request);
    Await(stream);
    EXPECT_TRUE(stream->error.ok()) << stream->error.message();
    return stream->ids;
  }

  static VariantConfig* config_;
  static std::shared_ptr<const Tokenizer>* tokenizer_;
  LargestBatch largest_batch_;
};

VariantConfig* GenerateRunnerTest::config_ = nullptr;
std::shared_ptr<const Tokenizer>* GenerateRunnerTest::tokenizer_ = nullptr;

// Others of different prompt lengths and budgets, sampled and greedy: some are generating
// when the two watched requests arrive, some arrive with them, some queue behind them
// (4 sequences at once), so the watched ones are prefilled in a padded group, decoded
// beside rows at other positions, and moved between rows as others retire.
TEST_F(GenerateRunnerTest, SameTokensAloneAndAmongOtherStreams) {
  const Request sampled{"And God said", 40, Sampled(7)};
  const Request greedy{"In the beginning", 30, {}};
  const std::vector<Request> others = {
      {"And Moses", 8, Sampled(1)},
      {"The LORD is my shepherd; I shall not want.", 25, {}},
      {"Blessed are", 3, Sampled(2)},
      {"And it came to pass in those days", 50, Sampled(3)},
      {"Behold", 12, {}},
      {"Thus saith the LORD of hosts, the God of Israel", 20, Sampled(4)},
  };
  const std::vector<int32_t> sampled_alone = Alone(sampled);
  const std::vector<int32_t> greedy_alone = Alone(greedy);

  GenerateOptions options;
  options.max_sequences = 4;
  std::unique_ptr<GenerateRunner> runner = Start(options);
  std::vector<std::shared_ptr<Stream>> streams;
  for (size_t i = 0; i < 2; ++i) streams.push_back(Submit(*runner, others[i]));
  AwaitFirstChunk(streams.back());
  const std::shared_ptr<Stream> sampled_together = Submit(*runner, sampled);
  const std::shared_ptr<Stream> greedy_together = Submit(*runner, greedy);
  for (size_t i = 2; i < others.size(); ++i) streams.push_back(Submit(*runner, others[i]));
  streams.push_back(sampled_together);
  streams.push_back(greedy_together);
  for (const auto& stream : streams) {
    Await(stream);
    EXPECT_TRUE(stream->error.ok()) << stream->error.message();
  }
  EXPECT_EQ(sampled_together->ids, sampled_alone);
  EXPECT_EQ(greedy_together->ids, greedy_alone);
  EXPECT_EQ(largest_batch_.value(), 4);
}

TEST_F(GenerateRunnerTest, RequestsBeyondMaxSequencesQueueAndAllComplete) {
  GenerateOptions options;
  options.max_sequences = 2;
  std::unique_ptr<GenerateRunner> runner = Start(options);
  std::vector<std::shared_ptr<Stream>> streams;
  for (int i = 0; i < 6; ++i) {
    streams.push_back(Submit(*runner, {"And God said", 6 + 3 * i, Sampled(static_cast<uint64_t>(i))}));
  }
  for (const auto& stream : streams) {
    Await(stream);
    EXPECT_TRUE(stream->error.ok()) << stream->error.message();
    EXPECT_TRUE(stream->finish.has_value());
  }
  EXPECT_EQ(largest_batch_.value(), 2);
}

// Each request reserves prompt + max_new_tokens positions; the bound admits two at once.
TEST_F(GenerateRunnerTest, KvPositionsBoundTheSequencesAtOnce) {
  const std::string prompt = "And God said";
  GenerateOptions options;
  options.max_kv_positions = 2 * (PromptTokens(prompt) + 30) + 10;
  std::unique_ptr<GenerateRunner> runner = Start(options);
  std::vector<std::shared_ptr<Stream>> streams;
  for (int i = 0; i < 5; ++i) streams.push_back(Submit(*runner, {prompt, 30, Sampled(static_cast<uint64_t>(i))}));
  for (const auto& stream : streams) {
    Await(stream);
    EXPECT_TRUE(stream->error.ok()) << stream->error.message();
  }
  EXPECT_EQ(largest_batch_.value(), 2);
}

TEST_F(GenerateRunnerTest, ARequestAboveMaxKvPositionsAloneIsResourceExhausted) {
  const std::string prompt = "And God said";
  GenerateOptions options;
  options.max_kv_positions = PromptTokens(prompt) + 20;
  std::unique_ptr<GenerateRunner> runner = Start(options);
  Status queued;
  std::shared_ptr<Stream> refused = Submit(*runner, {prompt, 21, {}}, {}, &queued);
  EXPECT_EQ(queued.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(queued.message().find("generate.max_kv_positions"), std::string::npos)
      << queued.message();
  EXPECT_FALSE(refused->started);
  std::shared_ptr<Stream> fits = Submit(*runner, {prompt, 20, {}});
  Await(fits);
  EXPECT_TRUE(fits->error.ok()) << fits->error.message();
}

// The first request takes the positions; the second waits for them and is cancelled
// while it waits: it is answered at once, while the first goes on.
TEST_F(GenerateRunnerTest, ARequestWaitingForKvPositionsCanBeCancelled) {
  const std::string prompt = "And God said";
  GenerateOptions options;
  options.max_kv_positions = PromptTokens(prompt) + 200;
  std::unique_ptr<GenerateRunner> runner = Start(options);
  std::shared_ptr<Stream> running = Submit(*runner, {prompt, 200, {}});
  AwaitFirstChunk(running);
  RequestContext context;
  std::shared_ptr<Stream> waiting = Submit(*runner, {prompt, 200, {}}, context);
  context.cancelled->store(true);
  Await(waiting);
  EXPECT_EQ(waiting->error.code(), StatusCode::kCancelled);
  EXPECT_TRUE(waiting->ids.empty());
  Await(running);
  EXPECT_TRUE(running->error.ok()) << running->error.message();
}

TEST_F(GenerateRunnerTest, AFullQueueIsResourceExhausted) {
  GenerateOptions options;
  options.max_sequences = 1;
  BatchingOptions batching;
  batching.queue_capacity = 1;
  std::unique_ptr<GenerateRunner> runner = Start(options, batching);
  RequestContext first_context;
  std::shared_ptr<Stream> first = Submit(*runner, {"And God said", 200, {}}, first_context);
  AwaitFirstChunk(first);
  std::shared_ptr<Stream> queued = Submit(*runner, {"And God said", 5, {}});
  Status refused;
  Submit(*runner, {"And God said", 5, {}}, {}, &refused);
  EXPECT_EQ(refused.code(), StatusCode::kResourceExhausted);
  EXPECT_NE(refused.message().find("queue"), std::string::npos) << refused.message();
  first_context.cancelled->store(true);
  Await(first);
  Await(queued);
  EXPECT_TRUE(queued->error.ok()) << queued->error.message();
}

}  // namespace
}  // namespace gemserve
