#include "server/engine/telemetry/telemetry_worker.h"

#include <ATen/ops/empty.h>
#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>

#include <random>

#include "server/engine/cpu_priority.h"

namespace gemserve {
namespace {

// The method's input for `job`: a batch of one.
at::Tensor BatchOfOne(const TelemetryJob& job) {
  if (job.variant->task() == Task::kClassify) return job.image.unsqueeze(0);
  const auto length = static_cast<int64_t>(job.tokens.size());
  at::Tensor tokens = at::empty({1, length}, at::kLong);
  std::copy(job.tokens.begin(), job.tokens.end(), tokens.data_ptr<int64_t>());
  return tokens;
}

}  // namespace

TelemetryWorker::TelemetryWorker(TelemetryOptions options, InferenceObserver* observer)
    : observer_(observer),
      queue_(options.queue_size),
      worker_([this] { WorkerLoop(); }) {}

TelemetryWorker::~TelemetryWorker() {
  stopping_ = true;
  queue_.Close();
  worker_.join();
}

bool TelemetryWorker::Sample(double rate) {
  thread_local std::minstd_rand random(std::random_device{}());
  return std::bernoulli_distribution(rate)(random);
}

void TelemetryWorker::Submit(TelemetryJob job) {
  const VariantKey key = job.variant->key();
  if (!queue_.Push(job)) observer_->OnActivationSample(key, false);
}

void TelemetryWorker::WorkerLoop() {
  LowerThreadPriority(BackgroundPriority::kIdle);
  c10::InferenceMode inference;
  while (true) {
    std::vector<TelemetryJob> jobs = queue_.PopBatch(1, std::chrono::microseconds(0));
    if (jobs.empty() || stopping_) return;  // closed
    Run(jobs.front());
  }
}

void TelemetryWorker::Run(const TelemetryJob& job) {
  VariantTelemetry& variant = *job.variant;
  if (variant.retired()) return;  // its version was replaced: no window to fold into
  const Status recorded = variant.Record(BatchOfOne(job));
  if (recorded.code() == StatusCode::kCancelled) return;
  if (!recorded.ok()) {
    spdlog::error("activation telemetry of {}/{} failed: {}", variant.key().model,
                  variant.key().variant, recorded.message());
  }
  observer_->OnActivationSample(variant.key(), recorded.ok());
}

}  // namespace gemserve
