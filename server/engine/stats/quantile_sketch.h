#pragma once

// Quantiles of a stream of latencies in bounded memory: a DDSketch-style log-bucket
// sketch (Masson, Rim & Lee, "DDSketch", VLDB 2019).
//
// A positive value x falls in bucket i = ceil(log_gamma(x)), gamma = (1 + a) / (1 - a) for
// relative accuracy a, i.e. in (gamma^(i-1), gamma^i]; the bucket reports 2 gamma^i /
// (gamma + 1), which is within a factor (1 +- a) of everything in it. So Quantile(q) is
// within relative error a of the exact q-quantile (the element of rank floor(q (n - 1))
// in sorted order), as long as no buckets were collapsed.
//
// Memory: at most `max_buckets` counters (8 bytes each). When the values span more
// buckets than that, the lowest buckets are merged into one, so the accuracy guarantee is
// kept for the high quantiles (the tail latencies) and lost only for values in the merged
// bucket, which then read high. With a = 1% the default 2048 buckets span a factor of
// about 10^17, far more than any latency range. Values <= 0 are counted in a separate
// zero bucket and read 0; NaN and infinities are ignored.
//
// Not thread-safe; the owner synchronizes.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace gemserve::stats {

class QuantileSketch {
 public:
  // `relative_accuracy` outside [1e-6, 1) falls back to 0.01; `max_buckets` is at least 1.
  explicit QuantileSketch(double relative_accuracy = 0.01, size_t max_buckets = 2048);

  void Add(double x);

  // The q-quantile, q clamped to [0, 1] (NaN reads as 0); 0 when empty.
  double Quantile(double q) const;

  uint64_t count() const { return count_; }
  // Counters in use for positive values; never more than max_buckets.
  size_t bucket_count() const { return counts_.size(); }

 private:
  int64_t IndexOf(double x) const;
  double ValueOf(int64_t index) const;
  int64_t HighestIndex() const { return offset_ + static_cast<int64_t>(counts_.size()) - 1; }
  // Makes room for bucket `index` and returns the counter it is counted in.
  uint64_t& CounterFor(int64_t index);
  void MergeBelow(int64_t new_offset);

  double gamma_;
  double log_gamma_;
  size_t max_buckets_;
  std::vector<uint64_t> counts_;  // counts_[k] counts bucket offset_ + k
  int64_t offset_ = 0;
  uint64_t zero_count_ = 0;
  uint64_t count_ = 0;
};

}  // namespace gemserve::stats
