#include "server/engine/generate_runner.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/tensor.h>
#include <ATen/ops/zeros.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

#include "server/engine/text/utf8_stream.h"

namespace gemserve {

const char* FinishReasonName(FinishReason reason) {
  switch (reason) {
    case FinishReason::kLength: return "LENGTH";
    case FinishReason::kStop: return "STOP";
    case FinishReason::kEos: return "EOS";
  }
  return "UNKNOWN";
}

// One generation in progress; its index in slots_ is its row in the KV cache.
struct GenerateRunner::Slot {
  bool active = false;
  GenerateJob job;
  std::unique_ptr<Sampler> sampler;
  Utf8StreamDecoder utf8;
  std::unique_ptr<StopStringMatcher> stop;
  int64_t position = 0;       // where next_token goes: the number of cached positions
  int32_t next_token = 0;     // the last sampled token, fed to the next decode step
  int generated = 0;
  std::vector<int32_t> unsent_ids;  // sampled, not yet in a chunk
  Clock::time_point admitted;
  Clock::time_point last_token;
  int64_t inference_us = 0;
  std::string pending_text;  // text before a stop string, sent with the last chunk
};

GenerateRunner::GenerateRunner(VariantConfig config, std::unique_ptr<ScriptedModel> model,
                               std::shared_ptr<const Tokenizer> tokenizer,
                               BatchingOptions options, InferenceObserver* observer)
    : config_(std::move(config)),
      key_{config_.model, config_.variant},
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      options_(options),
      observer_(observer),
      queue_(options.queue_capacity) {
  c10::InferenceMode inference;
  cache_ = model_->NewCache(options_.max_batch_size);
  for (int i = 0; i < options_.max_batch_size; ++i) slots_.push_back(std::make_unique<Slot>());
  worker_ = std::thread([this] { WorkerLoop(); });
}

GenerateRunner::~GenerateRunner() {
  stopping_ = true;
  queue_.Close();
  worker_.join();
}

Status GenerateRunner::Warmup() {
  try {
    c10::InferenceMode inference;
    const int32_t eos = config_.tokenizer.eos_id;
    for (int run = 0; run < ScriptedModel::WarmupRuns(); ++run) {
      auto [logits, kv] =
          model_->Prefill(at::tensor({int64_t{eos}, int64_t{eos}}).view({1, 2}));
      model_->Decode(at::tensor({int64_t{eos}}).view({1, 1}), at::tensor({int64_t{2}}), kv);
    }
    return Status::Ok();
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("warm-up failed: ") + e.what_without_backtrace());
  }
}

Status GenerateRunner::Submit(GenerateJob job) {
  if (!queue_.Push(job)) {
    return Status::ResourceExhausted("the queue of " + key_.model + "/" + key_.variant +
                                     " is full; retry later");
  }
  return Status::Ok();
}

size_t GenerateRunner::FreeSlots() const {
  return static_cast<size_t>(std::count_if(slots_.begin(), slots_.end(),
                                           [](const auto& s) { return !s->active; }));
}

void GenerateRunner::WorkerLoop() {
  c10::InferenceMode inference;
  while (!stopping_) {
    // 1. admit: block for work only when no slot is generating.
    const bool idle = FreeSlots() == slots_.size();
    std::vector<GenerateJob> jobs = idle ? queue_.PopBatch(FreeSlots(), std::chrono::microseconds(0))
                                         : queue_.TryPopBatch(FreeSlots());
    if (idle && jobs.empty()) break;  // closed
    // 2. prefill, then sample, emit and retire the first token of each.
    Admit(std::move(jobs));
    // 3-6. one decode step for every active slot, then sample, emit, retire.
    RetireAbandoned();
    if (FreeSlots() < slots_.size()) DecodeActiveSlots();
  }
  FailEverything(Status::Unavailable("the server is shutting down"));
}

void GenerateRunner::Admit(std::vector<GenerateJob> jobs) {
  for (GenerateJob& job : jobs) {
    observer_->OnQueued(key_, SecondsBetween(job.context.arrival, Clock::now()));
    if (Status alive = job.context.CheckAlive(); !alive.ok()) {
      job.sink.on_error(alive);
      continue;
    }
    const auto row = static_cast<int64_t>(
        std::find_if(slots_.begin(), slots_.end(), [](const auto& s) { return !s->active; }) -
        slots_.begin());
    Slot& slot = *slots_[row];
    slot.active = true;
    slot.admitted = Clock::now();
    slot.job = std::move(job);
    slot.sampler = std::make_unique<Sampler>(slot.job.params.sampling);
    slot.utf8 = Utf8StreamDecoder();
    slot.stop = std::make_unique<StopStringMatcher>(slot.job.params.stop);
    slot.generated = 0;
    slot.unsent_ids.clear();
    slot.inference_us = 0;
    Prefill(slot, row);
  }
}

void GenerateRunner::Prefill(Slot& slot, int64_t row) {
  const std::vector<int32_t>& ids = slot.job.prompt_ids;
  const auto length = static_cast<int64_t>(ids.size());
  try {
    const Clock::time_point start = Clock::now();
    at::Tensor tokens = at::empty({1, length}, at::kLong);
    std::copy(ids.begin(), ids.end(), tokens.data_ptr<int64_t>());
    auto [logits, kv] = model_->Prefill(tokens.to(model_->device()));
    cache_.select(2, row).copy_(kv.select(2, 0));
    const at::Tensor last = logits.select(0, 0).select(0, length - 1).to(at::kCPU).to(at::kFloat);
    const double seconds = SecondsBetween(start, Clock::now());
    observer_->OnInference(key_, seconds, 1);
    slot.position = length;
    Advance(slot, last.data_ptr<float>(), seconds);
  } catch (const c10::Error& e) {
    Fail(slot, Status::Internal(std::string("prefill failed: ") + e.what_without_backtrace()));
  }
}

void GenerateRunner::RetireAbandoned() {
  for (auto& slot : slots_) {
    if (!slot->active) continue;
    if (Status alive = slot->job.context.CheckAlive(); !alive.ok()) Fail(*slot, alive);
  }
}

void GenerateRunner::DecodeActiveSlots() {
  // Slots are taken lowest row first, so the active rows sit at the front: decode only
  // rows [0, rows) of the cache, not all max_batch_size of them.
  int64_t rows = 0;
  for (int64_t row = 0; row < static_cast<int64_t>(slots_.size()); ++row) {
    if (slots_[row]->active) rows = row + 1;
  }
  at::Tensor tokens = at::zeros({rows, 1}, at::kLong);
  at::Tensor positions = at::zeros({rows}, at::kLong);
  auto token_at = tokens.accessor<int64_t, 2>();
  auto position_at = positions.accessor<int64_t, 1>();
  int active = 0;
  for (int64_t row = 0; row < rows; ++row) {
    const Slot& slot = *slots_[row];
    if (!slot.active) continue;  // an idle row between active ones decodes a dummy token at 0
    token_at[row][0] = slot.next_token;
    position_at[row] = slot.position;
    ++active;
  }
  at::Tensor cache = cache_.narrow(2, 0, rows);
  at::Tensor logits;
  const Clock::time_point start = Clock::now();
  try {
    logits = model_->Decode(tokens.to(model_->device()), positions.to(model_->device()), cache)
                 .select(1, 0)
                 .to(at::kCPU)
                 .to(at::kFloat)
                 .contiguous();
  } catch (const c10::Error& e) {
    const Status error = Status::Internal(std::string("decode failed: ") + e.what_without_backtrace());
    for (auto& slot : slots_) {
      if (slot->active) Fail(*slot, error);
    }
    return;
  }
  const double seconds = SecondsBetween(start, Clock::now());
  observer_->OnInference(key_, seconds, active);
  const int64_t vocab = logits.size(1);
  for (int64_t row = 0; row < rows; ++row) {
    Slot& slot = *slots_[row];
    if (!slot.active) continue;
    slot.position += 1;
    Advance(slot, logits.data_ptr<float>() + row * vocab, seconds);
  }
}

// Samples the slot's next token from `logits` (vocabulary-sized) and streams the text it
// completes; finishes the slot on EOS, a stop string or the length limit.
void GenerateRunner::Advance(Slot& slot, const float* logits, double forward_seconds) {
  const Clock::time_point now = Clock::now();
  slot.inference_us += static_cast<int64_t>(forward_seconds * 1e6);
  const int32_t token = slot.sampler->Sample(logits, static_cast<size_t>(config_.tokenizer.vocab_size));
  if (slot.generated == 0) {
    observer_->OnFirstToken(key_, SecondsBetween(slot.job.context.arrival, now));
  } else {
    observer_->OnInterToken(key_, SecondsBetween(slot.last_token, now));
  }
  slot.last_token = now;
  if (token == config_.tokenizer.eos_id) return Finish(slot, FinishReason::kEos);
  slot.generated += 1;
  observer_->OnGeneratedTokens(key_, 1);
  slot.unsent_ids.push_back(token);
  const StopStringMatcher::Output filtered =
      slot.stop->Feed(slot.utf8.Feed(tokenizer_->TokenBytes(token)));
  if (filtered.stopped) {
    slot.pending_text = filtered.text;
    return Finish(slot, FinishReason::kStop);
  }
  if (!filtered.text.empty()) {
    GenerateChunk chunk;
    chunk.text = filtered.text;
    chunk.token_ids.swap(slot.unsent_ids);
    slot.job.sink.on_chunk(std::move(chunk));
  }
  const bool at_limit = slot.generated >= slot.job.params.max_new_tokens ||
                        slot.position + 1 >= config_.tokenizer.max_positions;
  if (at_limit) return Finish(slot, FinishReason::kLength);
  slot.next_token = token;
}

void GenerateRunner::Finish(Slot& slot, FinishReason reason) {
  GenerateChunk last;
  if (reason == FinishReason::kStop) {
    last.text = std::move(slot.pending_text);
  } else {
    // Whatever the UTF-8 decoder and the stop matcher still hold goes out now.
    const StopStringMatcher::Output tail = slot.stop->Feed(slot.utf8.Flush());
    last.text = tail.text + slot.stop->Flush();
  }
  last.token_ids.swap(slot.unsent_ids);
  last.finish = reason;
  last.prompt_tokens = static_cast<int>(slot.job.prompt_ids.size());
  last.completion_tokens = slot.generated;
  last.timing = {MicrosBetween(slot.job.context.arrival, slot.admitted), slot.inference_us,
                 MicrosBetween(slot.job.context.arrival, Clock::now())};
  slot.job.sink.on_chunk(std::move(last));
  Release(slot);
}

void GenerateRunner::Fail(Slot& slot, const Status& error) {
  slot.job.sink.on_error(error);
  Release(slot);
}

void GenerateRunner::Release(Slot& slot) {
  slot.active = false;
  slot.job = GenerateJob();
  slot.sampler.reset();
  slot.stop.reset();
  slot.pending_text.clear();
}

void GenerateRunner::FailEverything(const Status& error) {
  for (auto& slot : slots_) {
    if (slot->active) Fail(*slot, error);
  }
  for (GenerateJob& job : queue_.TryPopBatch(SIZE_MAX)) job.sink.on_error(error);
}

}  // namespace gemserve
