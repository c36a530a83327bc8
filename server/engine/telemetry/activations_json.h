#pragma once

// GET /api/v1/activations: the engine's activation telemetry windows as JSON.
//
//   {"models": [{"model": M, "variants": [{"variant": V, "window": 1000, "samples": 37,
//     "sites": [{"site": "stem.act", "units": 16,
//                "zero_fraction": 0.41, "dead_units": 0, "dead_units_ratio": 0,
//                "input_mean": 0.02, "input_std": 1.1,
//                "train": {"input_mean": .., "input_std": .., "zero_fraction": ..,
//                          "dead_units": ..},
//                "drift": {"input_mean_shift": .., "input_std_ratio": ..,
//                          "zero_fraction_change": ..}}, ...]}]}]}
//
// Models and variants sorted by name, sites in network order. While a window holds no
// sample its figures and drift are null. Drift against the training data at export:
// input_mean_shift = (mean - train mean) / train std, input_std_ratio = std / train std
// (null when the train std is 0), zero_fraction_change = zero fraction - train's.

#include <string>
#include <vector>

#include "server/engine/telemetry/variant_telemetry.h"

namespace gemserve {

// `variants` sorted by model, then variant (as Engine::Activations returns them).
std::string ActivationsJson(const std::vector<VariantActivations>& variants);

}  // namespace gemserve
