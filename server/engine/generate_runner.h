#pragma once

// Serves one GPT-2 variant with continuous batching, in the manner of llama.cpp's
// server: one worker thread owns the model and a KV cache of one row per slot
// (GenerateOptions::max_sequences). A slot's index is its cache row, and the generating
// slots always hold rows [0, active). Each iteration runs its phases in a fixed order:
//
//   1. admit   — take queued requests, oldest first, while a slot is free and their KV
//                positions fit (block when nothing is generating)
//   2. prefill — the admitted prompts in groups of similar length, right-padded, one
//                forward per group; each prompt's keys/values go into its slot's row
//   3. decode  — one step for rows [0, active) at once (one forward, no idle rows)
//   4. sample  — choose each slot's next token
//   5. emit    — post the newly complete UTF-8 text to the sink thread, which calls the
//                request's sink (a gRPC write sends inline: not on the worker's path)
//   6. retire  — free slots that finished (length, stop string, EOS) or were
//                cancelled / ran past their deadline, and move the last generating rows
//                into the freed ones (one copy of a row's cached positions each)
//
// The prefill is followed by 4-6 as well: each prompt's first token comes from it.
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

// Receives a request's output, in order, on the runner's sink thread (one per variant,
// shared by its requests). Must not block.
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

// Admission limits of one variant's worker (config: the `generate:` block). Requests
// beyond them wait in the queue (BatchingOptions::queue_capacity); the oldest of them may
// wait in the worker instead, which holds at most one.
struct GenerateOptions {
  // Sequences generating at once: the KV cache's rows (each preallocated for the whole
  // context) and the largest decode batch. 0: BatchingOptions::max_batch_size.
  int max_sequences = 0;
  // The KV positions the generating sequences may reserve together. Each reserves its
  // prompt tokens + max_new_tokens (at most the context length) when admitted, so none
  // can run out mid-stream. Bounds the attention work of a step (the cache itself is
  // preallocated by max_sequences). 0: no bound.
  int64_t max_kv_positions = 0;
};

class GenerateRunner {
 public:
  GenerateRunner(VariantConfig config, std::unique_ptr<ScriptedModel> model,
                 std::shared_ptr<const Tokenizer> tokenizer, BatchingOptions batching,
                 GenerateOptions options, InferenceObserver* observer);
  ~GenerateRunner();  // Stop()

  // Fails queued and active requests with Unavailable, makes the sinks' last calls, joins.
  // Idempotent; call it from a thread other than the runner's.
  void Stop();

  // Prefills and decode steps on the calling thread until TorchScript has optimized the
  // graphs; before the first Submit.
  Status Warmup();

  // Queues a request whose prompt ids fit the context (see Engine::Generate);
  // ResourceExhausted when the queue is full or when the request alone needs more KV
  // positions than max_kv_positions, and then the sink is never called.
  Status Submit(GenerateJob job);

  const VariantConfig& config() const { return config_; }
  const Tokenizer& tokenizer() const { return *tokenizer_; }

 private:
  class SinkThread;
  struct Slot;

  void WorkerLoop();
  int64_t Reservation(const GenerateJob& job) const;
  std::vector<GenerateJob> Admit();
  bool TakeNextQueued(bool block);
  int64_t StartSlots(std::vector<GenerateJob> jobs);
  void PrefillNewRows(int64_t first);
  int64_t PrefillGroupEnd(int64_t begin) const;
  void PrefillGroup(int64_t begin, int64_t end);
  void RetireAbandoned();
  void DecodeActiveRows();
  void Advance(Slot& slot, const float* logits, double forward_seconds);
  void Finish(Slot& slot, FinishReason reason);
  void Fail(Slot& slot, const Status& error);
  void PostChunk(const Slot& slot, GenerateChunk chunk);
  void PostError(GenerateSink sink, const Status& error);
  void Release(Slot& slot);
  void CompactRows();
  // Tells the observer the generating rows and reserved KV positions, when they changed.
  void ReportSequences();
  void CopyCachedPositions(int64_t from, int64_t to);
  void FailEverything(const Status& error);

  const VariantConfig config_;
  const VariantKey key_;
  std::unique_ptr<ScriptedModel> model_;
  std::shared_ptr<const Tokenizer> tokenizer_;
  const GenerateOptions options_;
  InferenceObserver* observer_;
  RequestQueue<GenerateJob> queue_;
  at::Tensor cache_;  // [L, 2, slots, H, P, D]; row i belongs to slots_[i]
  std::vector<std::unique_ptr<Slot>> slots_;
  int64_t active_rows_ = 0;         // slots_[0, active_rows_) generate (after each phase 6)
  int64_t reserved_positions_ = 0;  // KV positions reserved by the generating slots
  int64_t reported_rows_ = 0;       // the observer's last OnSequences
  int64_t reported_positions_ = 0;
  std::optional<GenerateJob> waiting_;  // the oldest request, until its positions fit
  std::unique_ptr<SinkThread> sink_thread_;  // outlives the worker: makes its last calls
  std::atomic<bool> stopping_{false};
  std::thread worker_;
};

}  // namespace gemserve
