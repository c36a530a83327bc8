#pragma once

// The value types every statistic in this folder reports: an estimate with its 95%
// confidence sequence, and the verdict a comparison draws from it.

#include <limits>

namespace gemserve::stats {

// A point estimate and a 95% confidence sequence for the true value: an interval that
// holds at every sample size at once, so it may be read after every observation. The
// bounds are infinite until there are enough observations (kMinCount in
// confidence_sequence.h); for a ratio built as exp(interval) "unknown" reads [0, +inf).
struct Interval {
  double estimate = 0;
  double lower = -std::numeric_limits<double>::infinity();
  double upper = std::numeric_limits<double>::infinity();
};

// What a comparison says about the candidate relative to the baseline (or the shadow
// relative to its primary). Decided only once the confidence sequence excludes "no
// difference"; a decided verdict never changes (sequential_comparison.h).
enum class Verdict { kNoDifferenceYet, kBetter, kWorse };

// "no difference yet", "better" or "worse"; a static string.
const char* VerdictName(Verdict v);

}  // namespace gemserve::stats
