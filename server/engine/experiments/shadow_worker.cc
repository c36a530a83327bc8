#include "server/engine/experiments/shadow_worker.h"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>
#include <spdlog/spdlog.h>

#include "server/engine/cpu_priority.h"

namespace gemserve {
namespace {

// Mean over rows of KL(p || q), given log-probabilities [rows, classes].
double MeanKl(const at::Tensor& log_p, const at::Tensor& log_q) {
  return (log_p.exp() * (log_p - log_q)).sum(1).mean().item<double>();
}

at::Tensor LogProbabilities(const at::Tensor& logits) {
  return at::log_softmax(logits.to(at::kCPU).to(at::kFloat), -1);
}

}  // namespace

ShadowWorker::ShadowWorker(std::string model, Task task,
                           std::map<std::string, std::unique_ptr<ScriptedModel>> models,
                           at::Tensor warmup, ShadowSettings settings, Experiment* experiment,
                           InferenceObserver* observer)
    : model_(std::move(model)),
      task_(task),
      models_(std::move(models)),
      warmup_(std::move(warmup)),
      settings_(std::move(settings)),
      experiment_(experiment),
      observer_(observer),
      random_(std::random_device{}()),
      queue_(settings_.queue_size),
      worker_([this] { WorkerLoop(); }) {}

ShadowWorker::~ShadowWorker() {
  stopping_ = true;
  queue_.Close();
  worker_.join();
}

void ShadowWorker::Submit(ShadowJob job) {
  const std::string primary = job.primary;
  if (!queue_.Push(job)) Drop(primary);
}

void ShadowWorker::Drop(const std::string& primary) {
  for (const std::string& shadow : settings_.variants) {
    observer_->OnShadowDropped(model_, primary, shadow);
    experiment_->statistics().RecordShadowDropped();
  }
}

void ShadowWorker::UpdateModels(std::map<std::string, std::unique_ptr<ScriptedModel>> models) {
  std::lock_guard<std::mutex> lock(updates_mutex_);
  for (auto& [name, model] : models) updates_[name] = std::move(model);
}

void ShadowWorker::WorkerLoop() {
  LowerThreadPriority(BackgroundPriority::kIdle);
  c10::InferenceMode inference;
  for (auto& [name, model] : models_) {
    if (stopping_) return;
    Warmup(name, *model);
  }
  while (true) {
    std::vector<ShadowJob> jobs = queue_.PopBatch(1, std::chrono::microseconds(0));
    if (jobs.empty() || stopping_) return;  // closed
    ApplyUpdates();
    Run(jobs.front());
  }
}

void ShadowWorker::ApplyUpdates() {
  std::map<std::string, std::unique_ptr<ScriptedModel>> updates;
  {
    std::lock_guard<std::mutex> lock(updates_mutex_);
    updates.swap(updates_);
  }
  for (auto& [name, model] : updates) {
    if (!model) {
      models_.erase(name);
      continue;
    }
    Warmup(name, *model);
    models_[name] = std::move(model);
  }
}

void ShadowWorker::Warmup(const std::string& name, ScriptedModel& model) {
  try {
    for (int run = 0; run < ScriptedModel::WarmupRuns(); ++run) {
      if (task_ == Task::kClassify) {
        model.Forward(warmup_.unsqueeze(0).to(model.device()));
      } else {
        model.Prefill(warmup_.to(model.device()));
      }
    }
  } catch (const c10::Error& e) {
    spdlog::error("shadow worker: warm-up of {}/{} failed: {}", model_, name,
                  e.what_without_backtrace());
  }
}

void ShadowWorker::Run(const ShadowJob& job) {
  const auto primary = models_.find(job.primary);
  for (const std::string& shadow_name : settings_.variants) {
    const auto shadow = models_.find(shadow_name);
    if (primary == models_.end() || shadow == models_.end() || job.primary == shadow_name) continue;
    try {
      const Outcome outcome = task_ == Task::kClassify
                                  ? CompareClassify(job, *primary->second, *shadow->second)
                                  : CompareGenerate(job, *primary->second, *shadow->second);
      experiment_->statistics().RecordShadow(job.primary, shadow_name, outcome.agreement,
                                             outcome.kl, outcome.latency_ratio);
      observer_->OnShadowComparison(model_, job.primary, shadow_name, outcome.agreement == 1.0,
                                    outcome.kl, outcome.latency_ratio);
    } catch (const c10::Error& e) {
      spdlog::error("shadow {}/{} vs {} failed: {}", model_, shadow_name, job.primary,
                    e.what_without_backtrace());
    }
  }
}

template <typename Forward>
std::pair<std::pair<at::Tensor, at::Tensor>, double> ShadowWorker::Paired(ScriptedModel& primary,
                                                                          ScriptedModel& shadow,
                                                                          Forward forward) {
  auto timed = [&](ScriptedModel& model) {
    const Clock::time_point start = Clock::now();
    at::Tensor out = forward(model);
    return std::make_pair(out, SecondsBetween(start, Clock::now()));
  };
  std::pair<at::Tensor, double> p, s;
  if (std::bernoulli_distribution(0.5)(random_)) {
    p = timed(primary);
    s = timed(shadow);
  } else {
    s = timed(shadow);
    p = timed(primary);
  }
  return {{p.first, s.first}, s.second / std::max(p.second, 1e-9)};
}

ShadowWorker::Outcome ShadowWorker::CompareClassify(const ShadowJob& job, ScriptedModel& primary,
                                                    ScriptedModel& shadow) {
  const at::Tensor batch = job.image.unsqueeze(0);
  auto [logits, ratio] =
      Paired(primary, shadow, [&](ScriptedModel& m) { return m.Forward(batch.to(m.device())); });
  const at::Tensor log_p = LogProbabilities(logits.first);
  const at::Tensor log_q = LogProbabilities(logits.second);
  const bool agree = log_p.argmax(1).item<int64_t>() == log_q.argmax(1).item<int64_t>();
  return {agree ? 1.0 : 0.0, MeanKl(log_p, log_q), ratio};
}

ShadowWorker::Outcome ShadowWorker::CompareGenerate(const ShadowJob& job, ScriptedModel& primary,
                                                    ScriptedModel& shadow) {
  const auto length = static_cast<int64_t>(job.tokens.size());
  at::Tensor tokens = at::empty({1, length}, at::kLong);
  std::copy(job.tokens.begin(), job.tokens.end(), tokens.data_ptr<int64_t>());
  auto [logits, ratio] = Paired(primary, shadow, [&](ScriptedModel& m) {
    return m.Prefill(tokens.to(m.device())).first;
  });
  // Position t predicts token t + 1: the completion is predicted by positions
  // prompt_length - 1 .. length - 2.
  const int64_t first = job.prompt_length - 1;
  const int64_t count = length - job.prompt_length;
  const at::Tensor log_p = LogProbabilities(logits.first.select(0, 0).narrow(0, first, count));
  const at::Tensor log_q = LogProbabilities(logits.second.select(0, 0).narrow(0, first, count));
  const at::Tensor targets = tokens.select(0, 0).narrow(0, job.prompt_length, count);
  const double agreement = log_q.argmax(1).eq(targets).to(at::kDouble).mean().item<double>();
  return {agreement, MeanKl(log_p, log_q), ratio};
}

}  // namespace gemserve
