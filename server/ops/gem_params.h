#pragma once

#include <cstdint>

namespace gem {

// The parameters of one member of the GEM family (shared/ACTIVATIONS.md):
//   t = x^(2n), g = t / (eps + t), f(x) = x * g for x >= 0, neg_slope * x * g below.
// GEM: eps = 1, neg_slope = 0. E-GEM: any eps > 0, neg_slope = 0. SE-GEM: neg_slope > 0.
struct GemParams {
  int64_t n = 1;           // order N >= 1; f is C^(2N) at 0
  double eps = 1.0;        // scale > 0; eps -> 0 approaches ReLU
  double neg_slope = 0.0;  // >= 0; > 0 keeps a gradient for x < 0
};

}  // namespace gem
