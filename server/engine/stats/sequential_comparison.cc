#include "server/engine/stats/sequential_comparison.h"

namespace gemserve::stats {

void SequentialComparison::Update(const Interval& current) {
  interval_ = current;
  if (verdict_ != Verdict::kNoDifferenceYet) return;
  if (current.upper < rule_.no_difference) verdict_ = rule_.below;
  if (current.lower > rule_.no_difference) verdict_ = rule_.above;
}

}  // namespace gemserve::stats
