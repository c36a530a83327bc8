#include "server/engine/stats/interval.h"

namespace gemserve::stats {

const char* VerdictName(Verdict v) {
  switch (v) {
    case Verdict::kBetter:
      return "better";
    case Verdict::kWorse:
      return "worse";
    case Verdict::kNoDifferenceYet:
      break;
  }
  return "no difference yet";
}

}  // namespace gemserve::stats
