#include "server/engine/telemetry/activations_json.h"

#include <nlohmann/json.hpp>

namespace gemserve {
namespace {

using nlohmann::json;

json Ratio(double numerator, double denominator) {
  return denominator == 0 ? json(nullptr) : json(numerator / denominator);
}

json Train(const ActivationSite& site) {
  return {{"input_mean", site.train_input_mean},
          {"input_std", site.train_input_std},
          {"zero_fraction", site.train_zero_fraction},
          {"dead_units", site.train_dead_units}};
}

json Site(const ActivationSite& site, const SiteSummary* summary) {
  json out = {{"site", site.name}, {"units", site.units}, {"train", Train(site)}};
  for (const char* figure : {"zero_fraction", "dead_units", "dead_units_ratio", "input_mean",
                             "input_std", "drift"}) {
    out[figure] = nullptr;
  }
  if (summary == nullptr) return out;
  out["zero_fraction"] = summary->zero_fraction;
  out["dead_units"] = summary->dead_units;
  out["dead_units_ratio"] = summary->dead_units_ratio;
  out["input_mean"] = summary->input_mean;
  out["input_std"] = summary->input_std;
  out["drift"] = {
      {"input_mean_shift", Ratio(summary->input_mean - site.train_input_mean, site.train_input_std)},
      {"input_std_ratio", Ratio(summary->input_std, site.train_input_std)},
      {"zero_fraction_change", summary->zero_fraction - site.train_zero_fraction}};
  return out;
}

json Variant(const VariantActivations& v) {
  json sites = json::array();
  for (size_t i = 0; i < v.sites.size(); ++i) {
    sites.push_back(Site(v.sites[i], i < v.summaries.size() ? &v.summaries[i] : nullptr));
  }
  return {{"variant", v.key.variant}, {"window", v.window}, {"samples", v.samples},
          {"sites", std::move(sites)}};
}

}  // namespace

std::string ActivationsJson(const std::vector<VariantActivations>& variants) {
  json models = json::array();
  for (const VariantActivations& v : variants) {
    if (models.empty() || models.back()["model"] != v.key.model) {
      models.push_back({{"model", v.key.model}, {"variants", json::array()}});
    }
    models.back()["variants"].push_back(Variant(v));
  }
  return json{{"models", std::move(models)}}.dump();
}

}  // namespace gemserve
