#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>
#include <type_traits>

#include "server/ops/gem_cuda_kernels.h"
#include "server/ops/gem_math.h"

namespace gem::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kBytesPerLoad = 16;  // one 128-bit load per thread per step

// Arithmetic type: double for double, float for everything else (half types are
// computed in float32 and rounded once).
template <typename T>
using Acc = std::conditional_t<std::is_same_v<T, double>, double, float>;

__device__ __forceinline__ float widen(__half v) { return __half2float(v); }
__device__ __forceinline__ float widen(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float widen(float v) { return v; }
__device__ __forceinline__ double widen(double v) { return v; }

template <typename T>
__device__ __forceinline__ T narrow(Acc<T> v) {
  if constexpr (std::is_same_v<T, __half>) {
    return __float2half_rn(v);
  } else if constexpr (std::is_same_v<T, __nv_bfloat16>) {
    return __float2bfloat16_rn(v);
  } else {
    return v;
  }
}

// kVec elements that move as one 16-byte load or store.
template <typename T>
struct alignas(kBytesPerLoad) Pack {
  static constexpr int kVec = kBytesPerLoad / sizeof(T);
  T v[kVec];
};

struct Forward {
  static constexpr bool kReadsGrad = false;
  template <typename T>
  __device__ __forceinline__ T operator()(T grad_unused, T x, int n, Acc<T> eps,
                                          Acc<T> neg_slope) const {
    return narrow<T>(gem_value(widen(x), n, eps, neg_slope));
  }
};

struct Backward {
  static constexpr bool kReadsGrad = true;
  template <typename T>
  __device__ __forceinline__ T operator()(T grad, T x, int n, Acc<T> eps,
                                          Acc<T> neg_slope) const {
    return narrow<T>(widen(grad) * gem_derivative(widen(x), n, eps, neg_slope));
  }
};

// Grid-stride loop over 16-byte packs, then a grid-stride loop over the tail. Forward
// ignores `grad` (it points at x there) and never loads it. `out` may alias the inputs.
template <typename T, typename Op>
__global__ void elementwise_kernel(const T* grad, const T* x, T* out, int64_t count, int n, Acc<T> eps,
                                   Acc<T> neg_slope, Op op) {
  using P = Pack<T>;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  const int64_t first = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t packs = count / P::kVec;
  for (int64_t i = first; i < packs; i += stride) {
    const P xs = reinterpret_cast<const P*>(x)[i];
    P gs = xs;
    if constexpr (Op::kReadsGrad) gs = reinterpret_cast<const P*>(grad)[i];
    P ys;
#pragma unroll
    for (int k = 0; k < P::kVec; ++k) ys.v[k] = op(gs.v[k], xs.v[k], n, eps, neg_slope);
    reinterpret_cast<P*>(out)[i] = ys;
  }
  for (int64_t i = packs * P::kVec + first; i < count; i += stride) {
    out[i] = op(grad[i], x[i], n, eps, neg_slope);
  }
}

// Same arithmetic, one element per step, for pointers that are not 16-byte aligned.
template <typename T, typename Op>
__global__ void elementwise_unaligned_kernel(const T* grad, const T* x, T* out,
                                             int64_t count, int n, Acc<T> eps,
                                             Acc<T> neg_slope, Op op) {
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < count;
       i += stride) {
    out[i] = op(grad[i], x[i], n, eps, neg_slope);
  }
}

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % kBytesPerLoad == 0; }

int grid_size(int64_t work_items) {
  static const int max_blocks = [] {
    int device = 0;
    int sms = 0;
    cudaGetDevice(&device);
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, device);
    return (sms > 0 ? sms : 1) * 16;
  }();
  const int64_t needed = (work_items + kThreads - 1) / kThreads;
  return static_cast<int>(needed < max_blocks ? (needed > 0 ? needed : 1) : max_blocks);
}

template <typename T, typename Op>
cudaError_t launch(const void* grad, const void* x, void* out, int64_t count,
                   const GemParams& p, cudaStream_t stream) {
  if (count == 0) return cudaSuccess;
  const auto* g = static_cast<const T*>(grad);
  const auto* xs = static_cast<const T*>(x);
  auto* ys = static_cast<T*>(out);
  const int n = static_cast<int>(p.n);
  const auto eps = static_cast<Acc<T>>(p.eps);
  const auto neg_slope = static_cast<Acc<T>>(p.neg_slope);
  if (aligned(grad) && aligned(x) && aligned(out)) {
    const int blocks = grid_size(count / Pack<T>::kVec);
    elementwise_kernel<T><<<blocks, kThreads, 0, stream>>>(g, xs, ys, count, n, eps,
                                                           neg_slope, Op{});
  } else {
    elementwise_unaligned_kernel<T><<<grid_size(count), kThreads, 0, stream>>>(
        g, xs, ys, count, n, eps, neg_slope, Op{});
  }
  return cudaGetLastError();
}

template <typename Op>
cudaError_t launch_for(DType dtype, const void* grad, const void* x, void* out,
                       int64_t count, const GemParams& p, cudaStream_t stream) {
  switch (dtype) {
    case DType::kFloat32:
      return launch<float, Op>(grad, x, out, count, p, stream);
    case DType::kFloat64:
      return launch<double, Op>(grad, x, out, count, p, stream);
    case DType::kFloat16:
      return launch<__half, Op>(grad, x, out, count, p, stream);
    case DType::kBFloat16:
      return launch<__nv_bfloat16, Op>(grad, x, out, count, p, stream);
  }
  return cudaErrorInvalidValue;
}

}  // namespace

cudaError_t launch_forward(DType dtype, const void* x, void* y, int64_t count,
                           const GemParams& params, cudaStream_t stream) {
  return launch_for<Forward>(dtype, x, x, y, count, params, stream);
}

cudaError_t launch_backward(DType dtype, const void* grad, const void* x, void* grad_in,
                            int64_t count, const GemParams& params, cudaStream_t stream) {
  return launch_for<Backward>(dtype, grad, x, grad_in, count, params, stream);
}

}  // namespace gem::cuda
