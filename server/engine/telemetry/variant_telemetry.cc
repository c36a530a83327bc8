#include "server/engine/telemetry/variant_telemetry.h"

#include <ATen/ops/full.h>
#include <ATen/ops/zeros.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>

namespace gemserve {
namespace {

// What Load runs the method on: a zero image, or a few end-of-text tokens.
at::Tensor ProbeInput(const VariantConfig& config) {
  if (config.task == Task::kClassify) {
    const ImageSpec& s = config.image;
    return at::zeros({1, s.channels, s.height, s.width});
  }
  const int64_t length = std::min<int64_t>(8, config.tokenizer.max_positions);
  return at::full({1, length}, int64_t{config.tokenizer.eos_id}, at::kLong);
}

}  // namespace

StatusOr<std::shared_ptr<VariantTelemetry>> VariantTelemetry::Load(const VariantConfig& config,
                                                                   const c10::Device& device,
                                                                   size_t window,
                                                                   InferenceObserver* observer) {
  StatusOr<std::unique_ptr<ScriptedModel>> model = ScriptedModel::Load(config.weights, device);
  if (!model.ok()) return model.status();
  std::shared_ptr<VariantTelemetry> telemetry(
      new VariantTelemetry(config, std::move(model.value()), window, observer));
  c10::InferenceMode inference;
  StatusOr<std::vector<SiteObservation>> probe = telemetry->Observe(ProbeInput(config));
  if (!probe.ok()) {
    return Status::InvalidArgument("activation telemetry of " + config.model + "/" +
                                   config.variant + ": " + probe.status().message());
  }
  return telemetry;
}

VariantTelemetry::VariantTelemetry(const VariantConfig& config,
                                   std::unique_ptr<ScriptedModel> model, size_t window,
                                   InferenceObserver* observer)
    : key_{config.model, config.variant},
      task_(config.task),
      method_(config.statistics_method),
      model_(std::move(model)),
      observer_(observer),
      window_(config.activation_sites, window) {}

StatusOr<std::vector<SiteObservation>> VariantTelemetry::Observe(const at::Tensor& input) {
  StatusOr<std::vector<SiteStatistics>> stats =
      model_->ActivationStatistics(method_, input.to(model_->device()));
  if (!stats.ok()) return stats.status();
  const std::vector<ActivationSite>& sites = window_.sites();  // immutable: no lock needed
  if (stats->size() != sites.size()) {
    return Status::InvalidArgument(method_ + " returned " + std::to_string(stats->size()) +
                                   " sites; model.json activation_sites lists " +
                                   std::to_string(sites.size()));
  }
  std::vector<SiteObservation> out;
  for (size_t i = 0; i < sites.size(); ++i) {
    const SiteStatistics& s = stats.value()[i];
    if (s.site != sites[i].name || s.nonzero.numel() != sites[i].units) {
      return Status::InvalidArgument(
          method_ + " returned site " + std::to_string(i) + " as \"" + s.site + "\" with " +
          std::to_string(s.nonzero.numel()) + " units; model.json activation_sites says \"" +
          sites[i].name + "\" with " + std::to_string(sites[i].units));
    }
    const at::Tensor mask = s.nonzero.contiguous();
    const bool* bits = mask.data_ptr<bool>();
    out.push_back({s.zero_fraction, std::vector<bool>(bits, bits + mask.numel()), s.input_mean,
                   s.input_std});
  }
  return out;
}

Status VariantTelemetry::Record(const at::Tensor& input) {
  StatusOr<std::vector<SiteObservation>> observed = Observe(input);
  if (!observed.ok()) return observed.status();
  std::lock_guard<std::mutex> lock(mutex_);  // Retire waits: no report after it
  if (retired()) return Status::Cancelled("the variant's version was replaced");
  if (Status added = window_.Add(observed.value()); !added.ok()) return added;
  observer_->OnActivationWindow(key_, window_.Summaries());
  return Status::Ok();
}

void VariantTelemetry::Retire() {
  std::lock_guard<std::mutex> lock(mutex_);
  retired_ = true;
  observer_->OnActivationWindow(key_, {});
}

VariantActivations VariantTelemetry::Snapshot() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return {key_, window_.capacity(), window_.samples(), window_.sites(), window_.Summaries()};
}

}  // namespace gemserve
