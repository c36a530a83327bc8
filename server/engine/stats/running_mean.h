#pragma once

// Count, mean and variance of a stream in constant memory (Welford's update: numerically
// stable, one pass), and the confidence sequence for the mean. Not thread-safe; the owner
// synchronizes (experiment_statistics.h does).

#include <cstdint>

#include "server/engine/stats/confidence_sequence.h"
#include "server/engine/stats/interval.h"

namespace gemserve::stats {

class RunningMean {
 public:
  // `x` must be finite; one NaN would poison every later result.
  void Add(double x);

  uint64_t count() const { return count_; }
  double mean() const { return mean_; }  // 0 when empty
  // The sample variance (n - 1 denominator); 0 with fewer than two observations.
  double variance() const;
  SampleSummary summary() const { return {count_, mean_, variance()}; }

  // MeanConfidenceSequence(summary()): 95%, valid at every count; infinite bounds below
  // kMinCount.
  Interval ConfidenceSequence() const;

 private:
  uint64_t count_ = 0;
  double mean_ = 0;
  double squared_deviations_ = 0;  // M2: sum of (x - mean)^2
};

}  // namespace gemserve::stats
