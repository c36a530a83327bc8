#include "server/grpc/proto_convert.h"

#include <google/protobuf/util/json_util.h>

#include <sstream>

namespace gemserve {
namespace {

void FillInterval(const stats::Interval& from, v1::Interval* to) {
  to->set_estimate(from.estimate);
  to->set_lower(from.lower);
  to->set_upper(from.upper);
}

void FillArm(const stats::ArmReport& arm, v1::ArmStatistics* out) {
  out->set_variant(arm.variant);
  out->set_requests(arm.requests);
  out->set_errors(arm.errors);
  FillInterval(arm.error_rate, out->mutable_error_rate());
  out->set_latency_p50_ms(arm.latency_p50 * 1e3);
  out->set_latency_p95_ms(arm.latency_p95 * 1e3);
  out->set_latency_p99_ms(arm.latency_p99 * 1e3);
  out->set_labelled(arm.labelled);
  FillInterval(arm.accuracy, out->mutable_accuracy());
  out->set_rewarded(arm.rewarded);
  FillInterval(arm.reward, out->mutable_reward());
}

void FillPair(const stats::PairReport& pair, v1::PairStatistics* out) {
  out->set_baseline(pair.baseline);
  out->set_candidate(pair.candidate);
  out->set_shadow(pair.shadow);
  for (const stats::ComparisonReport& c : pair.comparisons) {
    v1::Comparison* comparison = out->add_comparisons();
    comparison->set_metric(c.metric);
    FillInterval(c.value, comparison->mutable_value());
    comparison->set_verdict(stats::VerdictName(c.verdict));
    comparison->set_observations(c.observations);
  }
}

v1::ReloadAction ToProto(ReloadAction action) {
  switch (action) {
    case ReloadAction::kUnchanged: return v1::RELOAD_UNCHANGED;
    case ReloadAction::kAdded: return v1::RELOAD_ADDED;
    case ReloadAction::kUpdated: return v1::RELOAD_UPDATED;
    case ReloadAction::kRemoved: return v1::RELOAD_REMOVED;
    case ReloadAction::kFailed: return v1::RELOAD_FAILED;
  }
  return v1::RELOAD_ACTION_UNSPECIFIED;
}

}  // namespace

v1::ReloadModelsResponse ToProto(const ReloadReport& report) {
  v1::ReloadModelsResponse response;
  for (const VariantReload& entry : report.variants) {
    v1::VariantReload* out = response.add_variants();
    out->set_model(entry.model);
    out->set_variant(entry.variant);
    out->set_action(ToProto(entry.action));
    out->set_error(entry.error);
    out->set_kept_previous(entry.kept_previous);
  }
  response.set_failed(static_cast<uint32_t>(report.failed()));
  return response;
}

v1::ListModelsResponse ToProto(const std::vector<ModelState>& models) {
  v1::ListModelsResponse response;
  for (const ModelState& model : models) {
    v1::ModelInfo* info = response.add_models();
    info->set_name(model.name);
    info->set_task(TaskName(model.task));
    info->set_default_variant(model.default_variant);
    for (const VariantState& variant : model.variants) {
      v1::VariantInfo* v = info->add_variants();
      v->set_name(variant.name);
      v->set_state(variant.ready ? "READY" : "FAILED");
      v->set_error(variant.error);
      if (!variant.config) continue;
      const ActivationSpec& a = variant.config->activation;
      v->set_activation(a.kind);
      v->set_n(static_cast<int32_t>(a.n));
      v->set_eps(a.eps);
      v->set_neg_slope(a.neg_slope);
      const Quality& q = variant.config->quality;
      std::ostringstream quality;  // shortest form: 0.9198, 32.58
      quality << q.metric << "=" << q.value << " (" << q.split << ")";
      v->set_quality(quality.str());
    }
  }
  return response;
}

v1::Experiment ToProto(const ExperimentSettings& settings) {
  const ExperimentConfig& config = settings.config;
  v1::Experiment out;
  out.set_model(config.model);
  for (const auto& [arm, weight] : config.split) (*out.mutable_split())[arm] = weight;
  out.set_sticky(config.sticky);
  out.set_salt(config.salt);
  out.set_baseline(config.baseline);
  out.set_version(settings.version);
  v1::ShadowSettings* shadow = out.mutable_shadow();
  for (const std::string& variant : config.shadow.variants) shadow->add_variants(variant);
  shadow->set_sample_rate(config.shadow.sample_rate);
  shadow->set_queue_size(static_cast<uint32_t>(config.shadow.queue_size));
  return out;
}

v1::ExperimentStatistics ToProto(const ExperimentSnapshot& snapshot) {
  v1::ExperimentStatistics out;
  *out.mutable_experiment() = ToProto(snapshot.settings);
  for (const stats::ArmReport& arm : snapshot.report.arms) FillArm(arm, out.add_arms());
  for (const stats::PairReport& pair : snapshot.report.pairs) FillPair(pair, out.add_pairs());
  out.set_shadow_dropped(snapshot.report.shadow_dropped);
  return out;
}

std::string ToJson(const google::protobuf::Message& message) {
  google::protobuf::util::JsonPrintOptions options;
  options.preserve_proto_field_names = true;
  options.always_print_primitive_fields = true;
  std::string json;
  (void)google::protobuf::util::MessageToJsonString(message, &json, options);
  return json;
}

}  // namespace gemserve
