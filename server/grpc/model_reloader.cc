#include "server/grpc/model_reloader.h"

namespace gemserve {

bool AnyVariantReady(const std::vector<ModelState>& models) {
  for (const ModelState& model : models) {
    for (const VariantState& variant : model.variants) {
      if (variant.ready) return true;
    }
  }
  return false;
}

ModelReloader::ModelReloader(Engine* engine, Metrics* metrics)
    : engine_(engine), metrics_(metrics), thread_([this] { Loop(); }) {
  Publish();
}

ModelReloader::~ModelReloader() { Stop(); }

void ModelReloader::PublishHealthTo(grpc::HealthCheckServiceInterface* health) {
  {
    std::lock_guard<std::mutex> lock(publish_mutex_);
    health_ = health;
  }
  Publish();
}

void ModelReloader::Request(Done done) {
  std::unique_lock<std::mutex> lock(mutex_);
  if (stopping_) {
    lock.unlock();
    return done(Status::Unavailable("gem-server is shutting down"));
  }
  if (waiting_.size() >= kMaxWaiting) {
    lock.unlock();
    return done(Status::ResourceExhausted(std::to_string(kMaxWaiting) +
                                          " reload requests wait already; retry later"));
  }
  waiting_.push_back(std::move(done));
  wake_.notify_one();
}

void ModelReloader::Stop() {
  std::vector<Done> refused;
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
    refused.swap(waiting_);
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
  for (Done& done : refused) done(Status::Unavailable("gem-server is shutting down"));
}

void ModelReloader::Loop() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (true) {
    wake_.wait(lock, [&] { return stopping_ || !waiting_.empty(); });
    if (stopping_) return;
    std::vector<Done> batch;
    batch.swap(waiting_);
    lock.unlock();
    const StatusOr<ReloadReport> report = engine_->Reload();
    if (report.ok()) Publish();
    for (Done& done : batch) done(report);
    lock.lock();
  }
}

void ModelReloader::Publish() {
  const std::vector<ModelState> models = engine_->Models();
  std::lock_guard<std::mutex> lock(publish_mutex_);
  metrics_->ClearModelInfo();
  for (const ModelState& model : models) {
    for (const VariantState& variant : model.variants) {
      if (!variant.ready) continue;
      const ActivationSpec& a = variant.config->activation;
      metrics_->SetModelInfo(model.name, variant.name, a.kind, a.n, a.eps, a.neg_slope);
    }
  }
  if (health_) PublishHealth(models);
}

void ModelReloader::PublishHealth(const std::vector<ModelState>& models) {
  const bool serving = AnyVariantReady(models);
  // By name: the one-argument form would set every name, the variants' too.
  health_->SetServingStatus("", serving);
  health_->SetServingStatus("gemserve.v1.Inference", serving);
  std::set<std::string> names;
  for (const ModelState& model : models) {
    for (const VariantState& variant : model.variants) {
      names.insert(model.name + "/" + variant.name);
      health_->SetServingStatus(model.name + "/" + variant.name, variant.ready);
    }
  }
  for (const std::string& gone : health_names_) {
    if (names.count(gone) == 0) health_->SetServingStatus(gone, false);
  }
  health_names_ = std::move(names);
}

}  // namespace gemserve
