#include "server/ops/gem_cpu_kernels.h"

#include <cstring>

namespace gem::cpu {
namespace {

// One source for every instruction set: GCC vector extensions of `kBytes` bytes, built
// at the register width of each target (64 for AVX-512, 32 for AVX2, 16 for SSE2).
// Wider-than-register vectors would be split by the compiler, and their comparisons
// and selects fall back to scalar code (measured: 22x slower than ReLU on AVX2).
template <typename T, int kBytes>
struct VecOf;
template <int kBytes>
struct VecOf<float, kBytes> {
  typedef float type __attribute__((vector_size(kBytes)));
};
template <int kBytes>
struct VecOf<double, kBytes> {
  typedef double type __attribute__((vector_size(kBytes)));
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

template <bool kLeaky, int kBytes, typename T>
GEM_INLINE void forward_loop(const T* x, T* y, int64_t count, const GemParams& params) {
  using V = typename VecOf<T, kBytes>::type;
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

template <int kBytes, typename T>
GEM_INLINE void backward_loop(const T* grad, const T* x, T* grad_in, int64_t count,
                              const GemParams& params) {
  using V = typename VecOf<T, kBytes>::type;
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

template <int kBytes, typename T>
GEM_INLINE void forward_any(const T* x, T* y, int64_t count, const GemParams& params) {
  if (params.neg_slope == 0) {
    forward_loop<false, kBytes>(x, y, count, params);
  } else {
    forward_loop<true, kBytes>(x, y, count, params);
  }
}

// The three builds of each kernel; `Isa` below picks one per call.
#define GEM_KERNELS(SUFFIX, TARGET, BYTES)                                                  \
  TARGET void forward_##SUFFIX(const float* x, float* y, int64_t count,                     \
                               const GemParams& params) {                                   \
    forward_any<BYTES>(x, y, count, params);                                                \
  }                                                                                         \
  TARGET void forward_##SUFFIX(const double* x, double* y, int64_t count,                   \
                               const GemParams& params) {                                   \
    forward_any<BYTES>(x, y, count, params);                                                \
  }                                                                                         \
  TARGET void backward_##SUFFIX(const float* grad, const float* x, float* grad_in,          \
                                int64_t count, const GemParams& params) {                   \
    backward_loop<BYTES>(grad, x, grad_in, count, params);                                  \
  }                                                                                         \
  TARGET void backward_##SUFFIX(const double* grad, const double* x, double* grad_in,       \
                                int64_t count, const GemParams& params) {                   \
    backward_loop<BYTES>(grad, x, grad_in, count, params);                                  \
  }

GEM_KERNELS(avx512, __attribute__((target("avx512f"))), 64)
GEM_KERNELS(avx2, __attribute__((target("avx2"))), 32)
GEM_KERNELS(baseline, , 16)

enum class Isa { kAvx512, kAvx2, kBaseline };

Isa DetectIsa() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return Isa::kAvx512;
  if (__builtin_cpu_supports("avx2")) return Isa::kAvx2;
  return Isa::kBaseline;
}

const Isa kIsa = DetectIsa();

}  // namespace

void forward(const float* x, float* y, int64_t count, const GemParams& params) {
  switch (kIsa) {
    case Isa::kAvx512: return forward_avx512(x, y, count, params);
    case Isa::kAvx2: return forward_avx2(x, y, count, params);
    case Isa::kBaseline: return forward_baseline(x, y, count, params);
  }
}

void forward(const double* x, double* y, int64_t count, const GemParams& params) {
  switch (kIsa) {
    case Isa::kAvx512: return forward_avx512(x, y, count, params);
    case Isa::kAvx2: return forward_avx2(x, y, count, params);
    case Isa::kBaseline: return forward_baseline(x, y, count, params);
  }
}

void backward(const float* grad, const float* x, float* grad_in, int64_t count,
              const GemParams& params) {
  switch (kIsa) {
    case Isa::kAvx512: return backward_avx512(grad, x, grad_in, count, params);
    case Isa::kAvx2: return backward_avx2(grad, x, grad_in, count, params);
    case Isa::kBaseline: return backward_baseline(grad, x, grad_in, count, params);
  }
}

void backward(const double* grad, const double* x, double* grad_in, int64_t count,
              const GemParams& params) {
  switch (kIsa) {
    case Isa::kAvx512: return backward_avx512(grad, x, grad_in, count, params);
    case Isa::kAvx2: return backward_avx2(grad, x, grad_in, count, params);
    case Isa::kBaseline: return backward_baseline(grad, x, grad_in, count, params);
  }
}

const char* instruction_set() {
  switch (kIsa) {
    case Isa::kAvx512: return "avx512f";
    case Isa::kAvx2: return "avx2";
    case Isa::kBaseline: return "baseline";
  }
  return "baseline";
}

}  // namespace gem::cpu
