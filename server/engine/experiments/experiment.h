#pragma once

// One live experiment: how a model's traffic is split between its variants (arms), which
// variants shadow it, and its statistics (server/engine/stats/).
//
// A request that names no variant asks Route() for an arm: with a routing key and
// `sticky`, the key's arm by rendezvous hashing (traffic_split.h); otherwise a weighted
// random draw. SetSplit replaces the weights for the next request and bumps the version.
// Thread-safe.

#include <cstdint>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "server/engine/experiments/traffic_split.h"
#include "server/engine/stats/experiment_statistics.h"

namespace gemserve {

struct ShadowSettings {
  std::vector<std::string> variants;  // compared with the primary on mirrored requests
  double sample_rate = 0;             // fraction of routed requests mirrored, in [0, 1]
  size_t queue_size = 64;             // mirrors waiting beyond it are dropped
};

struct ExperimentConfig {
  std::string model;
  Weights split;          // the arms, in configured order
  bool sticky = false;    // same routing_key -> same arm
  std::string salt;       // sticky hashing salt; empty: the model name
  std::string baseline;   // the arm the others are compared with; empty: the first arm
  ShadowSettings shadow;
};

// The settings in force and their version (1 at start, +1 per SetSplit).
struct ExperimentSettings {
  ExperimentConfig config;
  uint64_t version = 0;
};

struct Assignment {
  std::string variant;
  uint64_t version = 0;
};

class Experiment {
 public:
  // `config` must be valid (Engine validates it against the loaded variants).
  explicit Experiment(ExperimentConfig config);

  Assignment Route(const std::string& routing_key);

  // Replaces the weights (validated by the caller); returns the new settings.
  ExperimentSettings SetSplit(Weights split);
  ExperimentSettings Settings() const;

  // True for a `shadow.sample_rate` fraction of calls.
  bool SampleForShadow();

  stats::ExperimentStatistics& statistics() { return statistics_; }

 private:
  mutable std::mutex mutex_;
  ExperimentConfig config_;
  TrafficSplit split_;
  uint64_t version_ = 1;
  std::mt19937_64 random_;
  stats::ExperimentStatistics statistics_;
};

}  // namespace gemserve
