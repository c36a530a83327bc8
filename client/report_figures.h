#pragma once

// The per-variant figures of `gem-client report`, computed from one scrape of
// gem-server's /metrics (or from the change between two scrapes, see Delta).

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "client/metrics_text.h"

namespace gemserve::client {

// A figure that cannot be computed (nothing observed) is std::nullopt: "–" in the
// table, null in JSON.
using Figure = std::optional<double>;

// Shadow comparisons of one primary variant against one shadow variant.
struct ShadowFigures {
  std::string shadow;
  double comparisons = 0;  // agree + disagree
  double dropped = 0;      // mirrors the shadow queue had no room for
  Figure agreement;        // agree / comparisons
  Figure mean_kl;          // mean KL(primary || shadow), nats
};

struct VariantFigures {
  std::string model;
  std::string variant;
  double requests = 0;  // every status code, all RPCs
  double errors = 0;    // codes other than OK
  Figure error_rate;
  Figure latency_p50_ms, latency_p95_ms, latency_p99_ms;  // gemserve_request_duration_seconds
  Figure inference_p50_ms, inference_p99_ms;              // one model forward
  Figure batch_size_mean;
  Figure ttft_p50_ms;
  double tokens = 0;                    // generated
  Figure requests_per_s, tokens_per_s;  // only when the samples cover a known interval
  double labelled = 0;                  // label feedback received
  Figure accuracy;                      // correct / labelled
  double rewarded = 0;                  // reward feedback received
  Figure mean_reward;
  std::vector<ShadowFigures> shadows;  // this variant as the primary
};

// One entry per (model, variant) that has a series in `samples`, sorted by model then
// variant. Requests that failed before routing (model="") are left out. `interval_s` > 0
// says the samples are the change over that many seconds: the rates are filled in.
std::vector<VariantFigures> ComputeVariantFigures(const std::vector<MetricSample>& samples,
                                                  double interval_s);

// The JSON object of `gem-client report --json` for one variant (null for absent
// figures).
nlohmann::ordered_json VariantFiguresJson(const VariantFigures& figures);

}  // namespace gemserve::client
