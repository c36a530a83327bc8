#include "server/engine/stats/quantile_sketch.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace gemserve::stats {
namespace {

double ValidAccuracy(double relative_accuracy) {
  return relative_accuracy >= 1e-6 && relative_accuracy < 1 ? relative_accuracy : 0.01;
}

}  // namespace

QuantileSketch::QuantileSketch(double relative_accuracy, size_t max_buckets)
    : gamma_((1 + ValidAccuracy(relative_accuracy)) / (1 - ValidAccuracy(relative_accuracy))),
      log_gamma_(std::log(gamma_)),
      max_buckets_(std::max<size_t>(max_buckets, 1)) {}

void QuantileSketch::Add(double x) {
  if (!std::isfinite(x)) return;
  ++count_;
  if (x <= 0) {
    ++zero_count_;
    return;
  }
  ++CounterFor(IndexOf(x));
}

double QuantileSketch::Quantile(double q) const {
  if (count_ == 0) return 0;
  const double clamped = q > 0 ? std::min(q, 1.0) : 0.0;  // also NaN -> 0
  const double rank = clamped * static_cast<double>(count_ - 1);
  uint64_t seen = zero_count_;
  if (rank < static_cast<double>(seen)) return 0;
  for (size_t k = 0; k < counts_.size(); ++k) {
    seen += counts_[k];
    if (rank < static_cast<double>(seen)) return ValueOf(offset_ + static_cast<int64_t>(k));
  }
  return ValueOf(HighestIndex());  // not reached: rank <= count - 1 < seen = count
}

int64_t QuantileSketch::IndexOf(double x) const {
  return static_cast<int64_t>(std::ceil(std::log(x) / log_gamma_));
}

double QuantileSketch::ValueOf(int64_t index) const {
  return 2 * std::exp(static_cast<double>(index) * log_gamma_) / (gamma_ + 1);
}

uint64_t& QuantileSketch::CounterFor(int64_t index) {
  const int64_t cap = static_cast<int64_t>(max_buckets_);
  if (counts_.empty()) {
    offset_ = index;
    counts_.assign(1, 0);
  } else if (index > HighestIndex()) {
    if (index - offset_ >= cap) MergeBelow(index - cap + 1);
    counts_.resize(static_cast<size_t>(index - offset_ + 1), 0);
  } else if (index < offset_) {
    // Grow downwards while under the cap; lower values go to the lowest bucket.
    const int64_t lowest = std::max(index, HighestIndex() - cap + 1);
    if (lowest < offset_) {
      counts_.insert(counts_.begin(), static_cast<size_t>(offset_ - lowest), 0);
      offset_ = lowest;
    }
  }
  return counts_[static_cast<size_t>(std::max(index, offset_) - offset_)];
}

// Folds every bucket below `new_offset` into bucket `new_offset`, which becomes the lowest.
void QuantileSketch::MergeBelow(int64_t new_offset) {
  const size_t merged = static_cast<size_t>(std::min<int64_t>(
      new_offset - offset_, static_cast<int64_t>(counts_.size())));
  const uint64_t total = std::accumulate(counts_.begin(), counts_.begin() + merged, uint64_t{0});
  counts_.erase(counts_.begin(), counts_.begin() + merged);
  if (counts_.empty()) counts_.assign(1, 0);
  counts_.front() += total;
  offset_ = new_offset;
}

}  // namespace gemserve::stats
