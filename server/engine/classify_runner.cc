#include "server/engine/classify_runner.h"

#include <ATen/ops/softmax.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/topk.h>
#include <ATen/ops/zeros.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

namespace gemserve {

namespace {

// One forward of zero images, repeated until TorchScript has optimized the graph.
Status WarmUp(ScriptedModel& model, const ImageSpec& image) {
  try {
    c10::InferenceMode inference;
    const at::Tensor zeros = at::zeros({1, image.channels, image.height, image.width});
    for (int run = 0; run < ScriptedModel::WarmupRuns(); ++run) model.Forward(zeros.to(model.device()));
    return Status::Ok();
  } catch (const c10::Error& e) {
    return Status::Internal(std::string("warm-up failed: ") + e.what_without_backtrace());
  }
}

}  // namespace

StatusOr<std::unique_ptr<ClassifyRunner>> ClassifyRunner::Start(
    VariantConfig config, std::vector<std::unique_ptr<ScriptedModel>> models,
    BatchingOptions options, int64_t max_image_pixels, InferenceObserver* observer) {
  if (models.empty()) return Status::InvalidArgument("a classify runner needs at least one model");
  return std::unique_ptr<ClassifyRunner>(
      new ClassifyRunner(std::move(config), std::move(models), options, max_image_pixels, observer));
}

ClassifyRunner::ClassifyRunner(VariantConfig config,
                               std::vector<std::unique_ptr<ScriptedModel>> models,
                               BatchingOptions options, int64_t max_image_pixels,
                               InferenceObserver* observer)
    : config_(std::move(config)),
      key_{config_.model, config_.variant},
      models_(std::move(models)),
      options_(options),
      max_image_pixels_(max_image_pixels),
      observer_(observer),
      queue_(options.queue_capacity) {
  for (const auto& model : models_) {
    workers_.emplace_back([this, &model] { WorkerLoop(*model); });
  }
}

ClassifyRunner::~ClassifyRunner() { Stop(); }

Status ClassifyRunner::Warmup() {
  for (const auto& model : models_) {
    if (Status warm = WarmUp(*model, config_.image); !warm.ok()) return warm;
  }
  return Status::Ok();
}

void ClassifyRunner::Stop() {
  queue_.Close();
  for (std::thread& worker : workers_) {
    if (worker.joinable()) worker.join();
  }
}

void ClassifyRunner::Submit(ClassifyJob job) {
  if (!queue_.Push(job)) {
    job.done(Status::ResourceExhausted("the queue of " + key_.model + "/" + key_.variant +
                                       " is full; retry later"));
  }
}

void ClassifyRunner::WorkerLoop(ScriptedModel& model) {
  c10::InferenceMode inference;
  while (true) {
    std::vector<ClassifyJob> batch =
        queue_.PopBatch(static_cast<size_t>(options_.max_batch_size), options_.max_queue_delay);
    if (batch.empty()) return;  // closed and drained
    RunBatch(model, batch);
  }
}

void ClassifyRunner::RunBatch(ScriptedModel& model, std::vector<ClassifyJob>& batch) {
  const Clock::time_point picked = Clock::now();
  std::vector<ClassifyJob> live;
  std::vector<at::Tensor> inputs;
  std::vector<int> top_k;
  for (ClassifyJob& job : batch) {
    observer_->OnQueued(key_, SecondsBetween(job.context.arrival, picked));
    if (Status alive = job.context.CheckAlive(); !alive.ok()) {
      observer_->OnExpired(key_);
      job.done(alive);
      continue;
    }
    StatusOr<at::Tensor> input = ToModelInput(*job.input, config_.image, max_image_pixels_);
    if (!input.ok()) {
      job.done(input.status());
      continue;
    }
    inputs.push_back(std::move(input).value());
    top_k.push_back(job.top_k);
    live.push_back(std::move(job));
  }
  if (live.empty()) return;
  const Clock::time_point start = Clock::now();
  std::vector<std::vector<Prediction>> predictions;
  try {
    const at::Tensor logits = model.Forward(at::stack(inputs).to(model.device()));
    predictions = TopK(logits, top_k);
  } catch (const c10::Error& e) {
    for (ClassifyJob& job : live) {
      job.done(Status::Internal(std::string("forward failed: ") + e.what_without_backtrace()));
    }
    return;
  }
  const Clock::time_point end = Clock::now();
  observer_->OnInference(key_, SecondsBetween(start, end), static_cast<int>(live.size()));
  for (size_t i = 0; i < live.size(); ++i) {
    ClassifyResult result;
    result.predictions = std::move(predictions[i]);
    result.input = inputs[i];
    result.timing = {MicrosBetween(live[i].context.arrival, picked), MicrosBetween(start, end),
                     MicrosBetween(live[i].context.arrival, Clock::now())};
    live[i].done(std::move(result));
  }
}

std::vector<std::vector<Prediction>> ClassifyRunner::TopK(const at::Tensor& logits,
                                                          const std::vector<int>& k) {
  const auto classes = static_cast<int>(logits.size(1));
  const int widest = std::min(classes, std::max(1, *std::max_element(k.begin(), k.end())));
  const auto [values, indices] = at::softmax(logits.to(at::kCPU).to(at::kFloat), 1).topk(widest, 1);
  const auto value_at = values.accessor<float, 2>();
  const auto index_at = indices.accessor<int64_t, 2>();
  std::vector<std::vector<Prediction>> out(k.size());
  for (size_t row = 0; row < k.size(); ++row) {
    const int count = std::min(classes, std::max(1, k[row]));
    for (int j = 0; j < count; ++j) {
      const auto index = static_cast<int>(index_at[row][j]);
      const std::string label =
          index < static_cast<int>(config_.labels.size()) ? config_.labels[index] : "";
      out[row].push_back({index, label, value_at[row][j]});
    }
  }
  return out;
}

}  // namespace gemserve
