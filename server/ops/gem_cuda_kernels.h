#pragma once

// Launchers for the CUDA kernels of the GEM family. This header and its .cu file use
// only the CUDA runtime (no ATen), so they compile with nvcc even where LibTorch is
// CPU-only; gem_cuda.cc wraps them as the CUDA backend of gem::gem.

#include <cuda_runtime_api.h>

#include <cstdint>

#include "server/ops/gem_params.h"

namespace gem::cuda {

enum class DType { kFloat32, kFloat64, kFloat16, kBFloat16 };

// y[i] = f(x[i]) for `count` contiguous elements, enqueued on `stream`; y may alias x.
// Returns the launch status.
cudaError_t launch_forward(DType dtype, const void* x, void* y, int64_t count,
                           const GemParams& params, cudaStream_t stream);

// grad_in[i] = grad[i] * f'(x[i]); grad_in may alias grad.
cudaError_t launch_backward(DType dtype, const void* grad, const void* x, void* grad_in,
                            int64_t count, const GemParams& params, cudaStream_t stream);

}  // namespace gem::cuda
