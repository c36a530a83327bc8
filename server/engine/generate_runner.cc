#include "server/engine/generate_runner.h"

#include <ATen/ops/empty.h>
#include <ATen/ops/full.h>
#include <ATen/ops/tensor.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>

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

namespace {

// Prefill groups: prompts in ascending length, a group taking the next one while padding
// every row to its length adds at most this many positions. Measured in-process (gem-n2,
// 1 thread): a prefill forward costs ~1.3 ms plus ~0.05 ms per position, so ~30 padded
// positions cost about one more forward. 8 prompts of 3-12 tokens took 9.0 ms one by
// one and 5.4 ms in one forward; prompts of 3 and 190 tokens 12.5 ms apart and 19.4 ms
// padded together.
constexpr int64_t kPrefillPaddingBudget = 32;

GenerateOptions WithDefaults(GenerateOptions options, const BatchingOptions& batching) {
  if (options.max_sequences <= 0) options.max_sequences = batching.max_batch_size;
  return options;
}

int64_t PromptLength(const GenerateJob& job) {
  return static_cast<int64_t>(job.prompt_ids.size());
}

}  // namespace

// Makes the sinks' calls on a thread of its own, in the order posted. A gRPC sink sends on
// the socket inline: measured at 8 streams, 12 % of the worker thread's time, by which
// every slot's next decode step would wait.
class GenerateRunner::SinkThread {
 public:
  SinkThread() : thread_([this] { Run(); }) {}

  ~SinkThread() {  // makes the calls still posted, then joins
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closing_ = true;
    }
    ready_.notify_one();
    thread_.join();
  }

  void Post(std::function<void()> call) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      calls_.push_back(std::move(call));
    }
    ready_.notify_one();
  }

 private:
  void Run() {
    std::unique_lock<std::mutex> lock(mutex_);
    while (true) {
      ready_.wait(lock, [&] { return closing_ || !calls_.empty(); });
      if (calls_.empty()) return;
      std::deque<std::function<void()>> calls;
      calls.swap(calls_);
      lock.unlock();
      for (std::function<void()>& call : calls) call();
      lock.lock();
    }
  }

  std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<std::function<void()>> calls_;
  bool closing_ = false;
  std::thread thread_;
};

// One generation in progress; its index in slots_ is its row in the KV cache.
struct GenerateRunner::Slot {
  bool active = false;
  GenerateJob job;                          // its sink moved to `sink`
  std::shared_ptr<const GenerateSink> sink;  // shared with the calls posted to the SinkThread
  int64_t reserved_positions = 0;  // counted in reserved_positions_ while active
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
                               BatchingOptions batching, GenerateOptions options,
                               InferenceObserver* observer)
    : config_(std::move(config)),
      key_{config_.model, config_.variant},
      model_(std::move(model)),
      tokenizer_(std::move(tokenizer)),
      options_(WithDefaults(options, batching)),
      observer_(observer),
      queue_(batching.queue_capacity),
      sink_thread_(std::make_unique<SinkThread>()) {
  c10::InferenceMode inference;
  cache_ = model_->NewCache(options_.max_sequences);
  for (int i = 0; i < options_.max_sequences; ++i) slots_.push_back(std::make_unique<Slot>());
  worker_ = std::thread([this] { WorkerLoop(); });
}

GenerateRunner::~GenerateRunner() { Stop(); }

void GenerateRunner::Stop() {
  queue_.Close();  // first: nothing is queued after the worker's last look
  stopping_ = true;
  if (worker_.joinable()) worker_.join();
  sink_thread_.reset();
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
  if (const int64_t needed = Reservation(job);
      options_.max_kv_positions > 0 && needed > options_.max_kv_positions) {
    return Status::ResourceExhausted(
        "the request needs " + std::to_string(needed) +
        " KV positions (prompt tokens + max_new_tokens), more than generate.max_kv_positions = " +
        std::to_string(options_.max_kv_positions) + " of " + key_.model + "/" + key_.variant +
        "; shorten the prompt or lower max_new_tokens");
  }
  if (!queue_.Push(job)) {
    return Status::ResourceExhausted("the queue of " + key_.model + "/" + key_.variant +
                                     " is full; retry later");
  }
  return Status::Ok();
}

// The KV positions `job` may fill: its prompt and every token it may add, within the context.
int64_t GenerateRunner::Reservation(const GenerateJob& job) const {
  return std::min<int64_t>(PromptLength(job) + job.params.max_new_tokens,
                           config_.tokenizer.max_positions);
}

void GenerateRunner::WorkerLoop() {
  c10::InferenceMode inference;
  while (!stopping_) {
    std::vector<GenerateJob> admitted = Admit();                  // 1
    if (admitted.empty() && active_rows_ == 0) break;             // closed
    PrefillNewRows(StartSlots(std::move(admitted)));              // 2, 4-6 of the first tokens
    RetireAbandoned();
    CompactRows();
    ReportSequences();
    if (active_rows_ == 0) continue;
    DecodeActiveRows();                                           // 3-5
    CompactRows();                                                // 6
    ReportSequences();
  }
  FailEverything(Status::Unavailable("the server is shutting down"));
  ReportSequences();
}

// 1. admit: the oldest requests while a slot is free and their KV positions fit; the
// first that does not fit waits (in waiting_) until enough retire, and the younger ones
// behind it. Blocks for work only when nothing is generating; then it returns empty only
// when the queue was closed.
std::vector<GenerateJob> GenerateRunner::Admit() {
  std::vector<GenerateJob> admitted;
  while (active_rows_ + static_cast<int64_t>(admitted.size()) < options_.max_sequences) {
    if (!waiting_ && !TakeNextQueued(active_rows_ == 0 && admitted.empty())) break;
    if (Status alive = waiting_->context.CheckAlive(); !alive.ok()) {
      observer_->OnExpired(key_);
      PostError(std::move(waiting_->sink), alive);
      waiting_.reset();
      continue;
    }
    const int64_t needed = Reservation(*waiting_);
    if (options_.max_kv_positions > 0 &&
        reserved_positions_ + needed > options_.max_kv_positions) {
      break;
    }
    reserved_positions_ += needed;
    admitted.push_back(std::move(*waiting_));
    waiting_.reset();
  }
  return admitted;
}

// Moves the oldest queued request into waiting_, blocking for one when `block`. False
// when there is none (or the queue was closed).
bool GenerateRunner::TakeNextQueued(bool block) {
  std::vector<GenerateJob> next =
      block ? queue_.PopBatch(1, std::chrono::microseconds(0)) : queue_.TryPopBatch(1);
  if (next.empty()) return false;
  waiting_ = std::move(next.front());
  return true;
}

// Gives the admitted jobs the rows after the generating ones, shortest prompt first (so
// that a prefill group is a run of rows); returns the first of those rows.
int64_t GenerateRunner::StartSlots(std::vector<GenerateJob> jobs) {
  std::stable_sort(jobs.begin(), jobs.end(), [](const GenerateJob& a, const GenerateJob& b) {
    return PromptLength(a) < PromptLength(b);
  });
  const int64_t first = active_rows_;
  for (GenerateJob& job : jobs) {
    Slot& slot = *slots_[active_rows_++];
    slot.active = true;
    slot.admitted = Clock::now();
    observer_->OnQueued(key_, SecondsBetween(job.context.arrival, slot.admitted));
    slot.reserved_positions = Reservation(job);
    slot.sink = std::make_shared<const GenerateSink>(std::move(job.sink));
    slot.job = std::move(job);
    slot.sampler = std::make_unique<Sampler>(slot.job.params.sampling);
    slot.utf8 = Utf8StreamDecoder();
    slot.stop = std::make_unique<StopStringMatcher>(slot.job.params.stop);
    slot.generated = 0;
    slot.unsent_ids.clear();
    slot.inference_us = 0;
  }
  return first;
}

// 2. prefill: rows [first, active_rows_), in groups of similar prompt length.
void GenerateRunner::PrefillNewRows(int64_t first) {
  for (int64_t begin = first; begin < active_rows_;) {
    const int64_t end = PrefillGroupEnd(begin);
    PrefillGroup(begin, end);
    begin = end;
  }
}

// Rows from `begin` (prompt lengths ascend) while padding them to the last one's length
// stays within kPrefillPaddingBudget.
int64_t GenerateRunner::PrefillGroupEnd(int64_t begin) const {
  int64_t end = begin + 1;
  int64_t positions = PromptLength(slots_[begin]->job);
  for (; end < active_rows_; ++end) {
    const int64_t length = PromptLength(slots_[end]->job);
    const int64_t padding = (end - begin + 1) * length - (positions + length);
    if (padding > kPrefillPaddingBudget) break;
    positions += length;
  }
  return end;
}

// One forward for the prompts of rows [begin, end), right-padded to the longest. Exact:
// attention is causal, so no prompt position sees the padding after it, and each row's
// first decode step writes its position `length` before attending to it (decode masks
// the keys beyond a row's position). Only float rounding differs from a prefill alone
// (measured ~1e-5 in the logits), as batched decode differs by the other rows' lengths.
void GenerateRunner::PrefillGroup(int64_t begin, int64_t end) {
  const int64_t rows = end - begin;
  const int64_t longest = PromptLength(slots_[end - 1]->job);
  try {
    const Clock::time_point start = Clock::now();
    at::Tensor tokens = at::full({rows, longest}, config_.tokenizer.eos_id, at::kLong);
    at::Tensor last_positions = at::empty({rows, 1, 1}, at::kLong);
    for (int64_t i = 0; i < rows; ++i) {
      const std::vector<int32_t>& ids = slots_[begin + i]->job.prompt_ids;
      std::copy(ids.begin(), ids.end(), tokens.data_ptr<int64_t>() + i * longest);
      last_positions.data_ptr<int64_t>()[i] = static_cast<int64_t>(ids.size()) - 1;
    }
    auto [logits, kv] = model_->Prefill(tokens.to(model_->device()));
    cache_.narrow(2, begin, rows).narrow(4, 0, longest).copy_(kv.narrow(4, 0, longest));
    const at::Tensor index = last_positions.to(model_->device()).expand({rows, 1, logits.size(2)});
    const at::Tensor last = logits.gather(1, index).to(at::kCPU).to(at::kFloat).contiguous();
    const double seconds = SecondsBetween(start, Clock::now());
    observer_->OnInference(key_, seconds, static_cast<int>(rows));
    const int64_t vocab = last.size(2);
    for (int64_t i = 0; i < rows; ++i) {
      Slot& slot = *slots_[begin + i];
      slot.position = PromptLength(slot.job);
      Advance(slot, last.data_ptr<float>() + i * vocab, seconds);
    }
  } catch (const c10::Error& e) {
    const Status error = Status::Internal(std::string("prefill failed: ") + e.what_without_backtrace());
    for (int64_t row = begin; row < end; ++row) {
      if (slots_[row]->active) Fail(*slots_[row], error);
    }
  }
}

void GenerateRunner::RetireAbandoned() {
  for (int64_t row = 0; row < active_rows_; ++row) {
    Slot& slot = *slots_[row];
    if (!slot.active) continue;
    if (Status alive = slot.job.context.CheckAlive(); !alive.ok()) Fail(slot, alive);
  }
}

// 3. decode rows [0, active_rows_), every one of them generating (CompactRows ran).
void GenerateRunner::DecodeActiveRows() {
  const int64_t rows = active_rows_;
  at::Tensor tokens = at::empty({rows, 1}, at::kLong);
  at::Tensor positions = at::empty({rows}, at::kLong);
  for (int64_t row = 0; row < rows; ++row) {
    tokens.data_ptr<int64_t>()[row] = slots_[row]->next_token;
    positions.data_ptr<int64_t>()[row] = slots_[row]->position;
  }
  at::Tensor cache = cache_.narrow(2, 0, rows);  // a view: decode writes into cache_ itself
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
    for (int64_t row = 0; row < rows; ++row) Fail(*slots_[row], error);
    return;
  }
  const double seconds = SecondsBetween(start, Clock::now());
  observer_->OnInference(key_, seconds, static_cast<int>(rows));
  const int64_t vocab = logits.size(1);
  for (int64_t row = 0; row < rows; ++row) {
    Slot& slot = *slots_[row];
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
    PostChunk(slot, std::move(chunk));
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
  PostChunk(slot, std::move(last));
  Release(slot);
}

void GenerateRunner::Fail(Slot& slot, const Status& error) {
  sink_thread_->Post([sink = slot.sink, error] { sink->on_error(error); });
  Release(slot);
}

void GenerateRunner::PostChunk(const Slot& slot, GenerateChunk chunk) {
  sink_thread_->Post(
      [sink = slot.sink, chunk = std::move(chunk)]() mutable { sink->on_chunk(std::move(chunk)); });
}

// For a request that never took a slot.
void GenerateRunner::PostError(GenerateSink sink, const Status& error) {
  sink_thread_->Post([sink = std::move(sink), error] { sink.on_error(error); });
}

void GenerateRunner::Release(Slot& slot) {
  slot.active = false;
  reserved_positions_ -= slot.reserved_positions;
  slot.reserved_positions = 0;
  slot.job = GenerateJob();
  slot.sink.reset();
  slot.sampler.reset();
  slot.stop.reset();
  slot.pending_text.clear();
}

// 6. retire: each freed row among [0, active_rows_) takes the last generating row, so
// that decode runs no idle rows.
void GenerateRunner::CompactRows() {
  for (int64_t row = 0; row < active_rows_;) {
    if (slots_[row]->active) {
      ++row;
      continue;
    }
    --active_rows_;  // the last row's slot moves into the freed row
    if (slots_[active_rows_]->active) CopyCachedPositions(active_rows_, row);
    std::swap(slots_[row], slots_[active_rows_]);
  }
}

void GenerateRunner::ReportSequences() {
  if (active_rows_ == reported_rows_ && reserved_positions_ == reported_positions_) return;
  reported_rows_ = active_rows_;
  reported_positions_ = reserved_positions_;
  observer_->OnSequences(key_, static_cast<int>(active_rows_), reserved_positions_);
}

// Row `to` of the cache receives the positions that the slot of row `from` has cached.
void GenerateRunner::CopyCachedPositions(int64_t from, int64_t to) {
  const int64_t cached = slots_[from]->position;
  cache_.select(2, to).narrow(3, 0, cached).copy_(cache_.select(2, from).narrow(3, 0, cached));
}

void GenerateRunner::FailEverything(const Status& error) {
  for (auto& slot : slots_) {
    if (slot->active) Fail(*slot, error);
  }
  active_rows_ = 0;
  if (waiting_) PostError(std::move(waiting_->sink), error);
  waiting_.reset();
  for (GenerateJob& job : queue_.TryPopBatch(SIZE_MAX)) PostError(std::move(job.sink), error);
}

}  // namespace gemserve
