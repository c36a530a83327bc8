#pragma once

// One comparison (a difference or a ratio) watched over time, and the verdict it supports.
//
// Update() takes the confidence sequence computed now and keeps the running intersection
// of every interval seen: the intersection of a valid confidence sequence is itself one
// (all of them cover the truth at once with probability >= 95%), it only narrows, and so
// a verdict read from it never flips. The verdict is decided the first time the whole
// intersection lies on one side of the rule's "no difference" value, and stays.
//
// If a new interval does not overlap the intersection at all (a valid sequence does so
// with probability <= 5%, so it means the assumptions in confidence_sequence.h are
// broken), the intersection shrinks to its own point nearest the new interval.
//
// Not thread-safe; the owner synchronizes.

#include "server/engine/stats/interval.h"

namespace gemserve::stats {

// What "no difference" is and what each side of it means.
struct VerdictRule {
  double no_difference;  // 0 for a difference, 1 for a ratio
  Verdict below;         // the verdict once the interval lies entirely below no_difference
  Verdict above;         // ... entirely above; kNoDifferenceYet: never decided that way
};

class SequentialComparison {
 public:
  // `unknown` is what interval() reads before the first update: the default for a
  // difference, ExpInterval(Interval{}) = {1, 0, +inf} for a ratio.
  explicit SequentialComparison(VerdictRule rule, const Interval& unknown = {})
      : rule_(rule), interval_(unknown) {}

  void Update(const Interval& current);

  // The latest estimate with the running intersection as its bounds (infinite until an
  // update had finite ones). The estimate may lie outside the bounds.
  const Interval& interval() const { return interval_; }
  Verdict verdict() const;

 private:
  VerdictRule rule_;
  Interval interval_;
};

}  // namespace gemserve::stats
