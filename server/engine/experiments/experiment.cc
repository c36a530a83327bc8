#include "server/engine/experiments/experiment.h"

namespace gemserve {
namespace {

// The baseline first, then the other arms in configured order.
std::vector<std::string> ArmsBaselineFirst(const ExperimentConfig& config) {
  std::vector<std::string> arms{config.baseline};
  for (const auto& [arm, weight] : config.split) {
    if (arm != config.baseline) arms.push_back(arm);
  }
  return arms;
}

ExperimentConfig WithDefaults(ExperimentConfig config) {
  if (config.salt.empty()) config.salt = config.model;
  if (config.baseline.empty()) config.baseline = config.split.front().first;
  return config;
}

}  // namespace

Experiment::Experiment(ExperimentConfig config)
    : config_(WithDefaults(std::move(config))),
      split_(config_.split, config_.salt),
      random_(std::random_device{}()),
      statistics_(ArmsBaselineFirst(config_)) {}

Assignment Experiment::Route(const std::string& routing_key) {
  std::lock_guard<std::mutex> lock(mutex_);
  const bool by_key = config_.sticky && !routing_key.empty();
  return {by_key ? split_.PickForKey(routing_key) : split_.PickAtRandom(random_), version_};
}

ExperimentSettings Experiment::SetSplit(Weights split) {
  for (const auto& [arm, weight] : split) statistics_.AddArm(arm);
  std::lock_guard<std::mutex> lock(mutex_);
  config_.split = std::move(split);
  split_ = TrafficSplit(config_.split, config_.salt);
  ++version_;
  return {config_, version_};
}

ExperimentSettings Experiment::Settings() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {config_, version_};
}

bool Experiment::SampleForShadow() {
  std::lock_guard<std::mutex> lock(mutex_);
  return std::bernoulli_distribution(config_.shadow.sample_rate)(random_);
}

}  // namespace gemserve
