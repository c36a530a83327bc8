#include "server/engine/stats/sequential_comparison.h"

#include <algorithm>

namespace gemserve::stats {

void SequentialComparison::Update(const Interval& current) {
  interval_.estimate = current.estimate;
  const double lower = std::max(interval_.lower, current.lower);
  const double upper = std::min(interval_.upper, current.upper);
  if (lower <= upper) {
    interval_.lower = lower;
    interval_.upper = upper;
  } else {  // disjoint: keep the old interval's point nearest the new one
    const double nearest = current.upper < interval_.lower ? interval_.lower : interval_.upper;
    interval_.lower = interval_.upper = nearest;
  }
}

// A pure function of the intersection: once it lies on one side it only narrows (a
// collapse keeps a point of the old intersection), so it stays on that side.
Verdict SequentialComparison::verdict() const {
  if (interval_.upper < rule_.no_difference) return rule_.below;
  if (interval_.lower > rule_.no_difference) return rule_.above;
  return Verdict::kNoDifferenceYet;
}

}  // namespace gemserve::stats
