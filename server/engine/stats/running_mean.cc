#include "server/engine/stats/running_mean.h"

#include <algorithm>

namespace gemserve::stats {

void RunningMean::Add(double x) {
  ++count_;
  const double delta = x - mean_;
  mean_ += delta / static_cast<double>(count_);
  squared_deviations_ += delta * (x - mean_);
}

double RunningMean::variance() const {
  if (count_ < 2) return 0;
  return std::max(0.0, squared_deviations_ / static_cast<double>(count_ - 1));
}

Interval RunningMean::ConfidenceSequence() const { return MeanConfidenceSequence(summary()); }

}  // namespace gemserve::stats
