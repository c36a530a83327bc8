#include "server/ops/gem_cpu_kernels.h"

#include <cstring>

namespace gem::cpu {
namespace {

// 64-byte vectors (one AVX-512 register; two AVX2 or four SSE registers in the
// other builds). GCC's vector extensions keep one readable source for all three.
using FloatVec = float __attribute__((vector_size(64)));
using DoubleVec = double __attribute__((vector_size(64)));

template <typename T>
struct VecOf;
template <>
struct VecOf<float> {
  using type = FloatVec;
};
template <>
struct VecOf<double> {
  using type = DoubleVec;
};

#define GEM_INLINE inline __attribute__((always_inline))

// Gate g = t / (eps + t), t = x^(2n); an overflowing denominator gives exactly 1.
template <typename V, typename T>
GEM_INLINE V gate(V x, int n, T eps) {
  const V x2 = x * x;
  V t = x2;
  for (int i = 1; i < n; ++i) t *= x2;
  const V denominator = t + eps;
  const V g = t / denominator;
  const V one = V{} + T(1);
  return denominator == static_cast<T>(__builtin_inf()) ? one : g;
}

// f(x); kLeaky = false (neg_slope == 0) gives exactly 0 for all x < 0, even -inf.
template <bool kLeaky, typename V, typename T>
GEM_INLINE V value(V x, int n, T eps, T neg_slope) {
  const V y = x * gate(x, n, eps);
  const V negative = kLeaky ? y * neg_slope : V{};
  return x < T(0) ? negative : y;
}

template <typename V, typename T>
GEM_INLINE V derivative(V x, int n, T eps, T neg_slope) {
  const V g = gate(x, n, eps);
  const V slope = g * (T(1) + T(2 * n) * (T(1) - g));
  const V positive = x == T(0) ? V{} : slope;
  return x < T(0) ? slope * neg_slope : positive;
}

// Loads up to one vector; lanes past `count` are zero.
template <typename V, typename T>
GEM_INLINE V load(const T* p, int64_t count) {
  V v{};
  std::memcpy(&v, p, static_cast<size_t>(count) * sizeof(T));
  return v;
}

template <typename V, typename T>
GEM_INLINE void store(T* p, V v, int64_t count) {
  std::memcpy(p, &v, static_cast<size_t>(count) * sizeof(T));
}

template <bool kLeaky, typename T>
GEM_INLINE void forward_loop(const T* x, T* y, int64_t count, const GemParams& params) {
  using V = typename VecOf<T>::type;
  constexpr int64_t kWidth = sizeof(V) / sizeof(T);
  const int n = static_cast<int>(params.n);
  const T eps = static_cast<T>(params.eps);
  const T neg_slope = static_cast<T>(params.neg_slope);
  int64_t i = 0;
  for (; i + kWidth <= count; i += kWidth) {
    store(y + i, value<kLeaky>(load<V>(x + i, kWidth), n, eps, neg_slope), kWidth);
  }
  const int64_t rest = count - i;
  if (rest > 0) store(y + i, value<kLeaky>(load<V>(x + i, rest), n, eps, neg_slope), rest);
}

template <typename T>
GEM_INLINE void backward_loop(const T* grad, const T* x, T* grad_in, int64_t count,
                              const GemParams& params) {
  using V = typename VecOf<T>::type;
  constexpr int64_t kWidth = sizeof(V) / sizeof(T);
  const int n = static_cast<int>(params.n);
  const T eps = static_cast<T>(params.eps);
  const T neg_slope = static_cast<T>(params.neg_slope);
  int64_t i = 0;
  for (; i + kWidth <= count; i += kWidth) {
    const V d = derivative(load<V>(x + i, kWidth), n, eps, neg_slope);
    store(grad_in + i, load<V>(grad + i, kWidth) * d, kWidth);
  }
  const int64_t rest = count - i;
  if (rest > 0) {
    const V d = derivative(load<V>(x + i, rest), n, eps, neg_slope);
    store(grad_in + i, load<V>(grad + i, rest) * d, rest);
  }
}

#define GEM_MULTIVERSION __attribute__((target_clones("avx512f", "avx2", "default")))

GEM_MULTIVERSION void forward_f32(const float* x, float* y, int64_t count,
                                  const GemParams& params) {
  if (params.neg_slope == 0) {
    forward_loop<false>(x, y, count, params);
  } else {
    forward_loop<true>(x, y, count, params);
  }
}

GEM_MULTIVERSION void forward_f64(const double* x, double* y, int64_t count,
                                  const GemParams& params) {
  if (params.neg_slope == 0) {
    forward_loop<false>(x, y, count, params);
  } else {
    forward_loop<true>(x, y, count, params);
  }
}

GEM_MULTIVERSION void backward_f32(const float* grad, const float* x, float* grad_in,
                                   int64_t count, const GemParams& params) {
  backward_loop(grad, x, grad_in, count, params);
}

GEM_MULTIVERSION void backward_f64(const double* grad, const double* x, double* grad_in,
                                   int64_t count, const GemParams& params) {
  backward_loop(grad, x, grad_in, count, params);
}

}  // namespace

void forward(const float* x, float* y, int64_t count, const GemParams& params) {
  forward_f32(x, y, count, params);
}

void forward(const double* x, double* y, int64_t count, const GemParams& params) {
  forward_f64(x, y, count, params);
}

void backward(const float* grad, const float* x, float* grad_in, int64_t count,
              const GemParams& params) {
  backward_f32(grad, x, grad_in, count, params);
}

void backward(const double* grad, const double* x, double* grad_in, int64_t count,
              const GemParams& params) {
  backward_f64(grad, x, grad_in, count, params);
}

const char* instruction_set() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
  return "baseline";
}

}  // namespace gem::cpu
