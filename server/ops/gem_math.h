#pragma once

// The GEM formula for one element, shared by the CUDA kernel and the CPU tails.
// Plain arithmetic only (multiply, add, divide), as ACTIVATIONS.md requires.

#include <math.h>

#include "server/ops/gem_params.h"

#if defined(__CUDACC__)
#define GEM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define GEM_HOST_DEVICE inline
#endif

namespace gem {

// g = t / (eps + t) with t = x^(2n). When eps + t overflows (|x| huge or +-inf)
// the gate is 1, never inf / inf; x = 0 gives 0; NaN propagates.
template <typename T>
GEM_HOST_DEVICE T gem_gate(T x, int n, T eps) {
  const T x2 = x * x;
  T t = x2;
  for (int i = 1; i < n; ++i) t *= x2;
  const T denominator = eps + t;
  return denominator == static_cast<T>(INFINITY) ? T(1) : t / denominator;
}

// f(x). With neg_slope == 0 the negative side is exactly 0, even for x = -inf.
template <typename T>
GEM_HOST_DEVICE T gem_value(T x, int n, T eps, T neg_slope) {
  const T y = x * gem_gate(x, n, eps);
  if (x < T(0)) return neg_slope == T(0) ? T(0) : neg_slope * y;
  return y;
}

// f'(x) = g * (1 + 2n(1 - g)), times neg_slope for x < 0; f'(0) = 0; NaN propagates.
template <typename T>
GEM_HOST_DEVICE T gem_derivative(T x, int n, T eps, T neg_slope) {
  const T g = gem_gate(x, n, eps);
  const T slope = g * (T(1) + T(2 * n) * (T(1) - g));
  if (x < T(0)) return neg_slope * slope;
  return x == T(0) ? T(0) : slope;
}

}  // namespace gem
