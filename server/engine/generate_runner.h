#pragma once

// Serves one GPT-2 variant with continuous batching, in the manner of llama.cpp's
// server: one worker thread owns the model and a KV cache of `max_batch_size` rows
// (slots). Each iteration runs its phases in a fixed order:
//
//   1. admit   — take queued requests into free slots (block when nothing is active)
//   2. prefill — run each admitted prompt, copy its keys/values into its slot's row
//   3. decode  — one step for every active slot at once (one forward for the batch)
//   4. sample  — choose each slot's next token
//   5. emit    — stream the newly complete UTF-8 text to the request's sink
//   6. retire  — free slots that finished (length, stop string, EOS) or were
//                cancelled / ran past their deadline
//
// Cancellation and deadlines are checked every step, so an abandoned request stops
// costing compute within one decode step.

#include <ATen/core/Tensor.h>

#include <atomic>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "server/engine/model_config.h"
#include "server/engine/request.h"
#include "server/engine/request_queue.h"
#include "server/engine/scripted_model.h"
#include "server/engine/text/sampler.h"
#include "server/engine/text/stop_strings.h"
#include "server/engine/text/tokenizer.h"

namespace gemserve {

enum class FinishReason { kLength, kStop, kEos };

const char* FinishReasonName(FinishReason reason);

// One streamed message: newly decoded text (never a partial UTF-8 character) and the
// token ids it came from. The last chunk of a request has `finish` set.
struct GenerateChunk {
  std::string text;
  std::vector<int32_t> token_ids;
  std::optional<FinishReason> finish;
  int prompt_tokens = 0;
  int completion_tokens = 0;
  Timing timing;
  std::string request_id;           // last chunk, set by the engine (feedback_log.h)
  uint64_t experiment_version = 0;  // last chunk, set by the engine; 0: not routed
};

struct GenerateParams {
  std::string prompt;
  int max_new_tokens = 64;
  SamplingParams sampling;
  std::vector<std::string> stop;
};

// Receives a request's output on the worker thread. Must not block.
struct GenerateSink {
  std::function<void(GenerateChunk)> on_chunk;  // zero or more times; last has finish
  std::function<void(Status)> on_error;         // instead of a final chunk
};

struct GenerateJob {
  std::vector<int32_t> prompt_ids;  // already validated against the context length
  GenerateParams params;
  RequestContext context;
  GenerateSink sink;
};

class GenerateRunner {
 public:
  GenerateRunner(VariantConfig config, std::unique_ptr<ScriptedModel> model,
                 std::shared_ptr<const Tokenizer> tokenizer, BatchingOptions options,
                 InferenceObserver* observer);
  ~GenerateRunner();  // fails queued and active requests with Unavailable, joins

  // A prefill and one decode step, before the variant is reported ready.
  Status Warmup();

  // Queues a request whose prompt ids fit the context (see Engine::Generate);
  // ResourceExhausted when the queue is full, and then the sink is never called.
  Status Submit(GenerateJob job);

  const VariantConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  struct Slot;

  void WorkerLoop();
  size_t FreeSlots() const;
  void Admit(std::vector<GenerateJob> jobs);
  void Prefill(Slot& slot, int64_t row);
  void RetireAbandoned();
  void DecodeActiveSlots();
  void Advance(Slot& slot, const float* logits, double forward_seconds);
  void Finish(Slot& slot, FinishReason reason);
  void Fail(Slot& slot, const Status& error);
  void Release(Slot& slot);
  void FailEverything(const Status& error);

  const VariantConfig config_;
  const VariantKey key_;
  std::unique_ptr<ScriptedModel> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  const BatchingOptions options_;
  InferenceObserver* observer_;
  RequestQueue<GenerateJob> queue_;
  at::Tensor cache_;  // [L, 2, slots, H, P, D]; row i belongs to slots_[i]
  std::vector<std::unique_ptr<Slot>> slots_;
  std::atomic<bool> stopping_{false};
  std::thread worker_;
};

}  // namespace gemserve
