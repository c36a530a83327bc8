#pragma once

// One comparison (a difference or a ratio) watched over time, and the verdict it supports.
//
// Update() takes the confidence sequence computed now. The verdict is decided the first
// time an interval lies entirely on one side of the rule's "no difference" value, and
// stays: all intervals of a valid sequence cover the truth at once with probability
// >= 95%, so a decision taken at any moment is right with that probability, however often
// the sequence was looked at before. (This is the verdict the running intersection of
// the intervals would give; the intersection itself is not reported, because under drift
// — traffic or load changing over the experiment — later intervals can miss it, and it
// then collapses to a point far from the estimate.)
//
// interval() is the latest interval, so it may include "no difference" after a verdict
// was decided (the effect drifted or was first seen at a lucky moment); the verdict is
// the decision, the interval the current state.
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

  // The latest interval (infinite bounds until there are enough observations).
  const Interval& interval() const { return interval_; }
  Verdict verdict() const { return verdict_; }

 private:
  VerdictRule rule_;
  Interval interval_;
  Verdict verdict_ = Verdict::kNoDifferenceYet;
};

}  // namespace gemserve::stats
