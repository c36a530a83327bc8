#pragma once

// What the activation telemetry reports for one activation site of one variant over its
// window (activation_window.h): header-only, so that the metrics layer can take it
// through InferenceObserver without linking the engine.

#include <cstddef>
#include <cstdint>
#include <string>

namespace gemserve {

// Figures over the last `samples` sampled requests, each request weighing the same
// (each ran the statistics method alone, at batch 1).
struct SiteSummary {
  std::string site;
  int64_t units = 0;
  size_t samples = 0;          // in the window now, >= 1
  double zero_fraction = 0;    // mean over the samples of the fraction of outputs == 0
  int64_t dead_units = 0;      // units that were zero in every sample of the window
  double dead_units_ratio = 0; // dead_units / units
  // The input's mean and population std pooled over the samples, as if each sample's
  // elements were equally many: mean of the means, and sqrt(mean(std^2 + mean^2) - mean^2).
  double input_mean = 0;
  double input_std = 0;
};

}  // namespace gemserve
