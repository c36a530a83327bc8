#pragma once

// Raw CPU kernels of the GEM family over contiguous memory, free of ATen.
//
// Each function processes `count` elements on the calling thread; the caller splits
// work across threads. Outputs may alias inputs (in-place). The machine code is
// chosen once, at load time, among AVX-512, AVX2 and baseline x86-64 builds of the
// same source (GCC function multi-versioning).

#include <cstdint>

#include "server/ops/gem_params.h"

namespace gem::cpu {

// y[i] = f(x[i]).
void forward(const float* x, float* y, int64_t count, const GemParams& params);
void forward(const double* x, double* y, int64_t count, const GemParams& params);

// grad_in[i] = grad[i] * f'(x[i]).
void backward(const float* grad, const float* x, float* grad_in, int64_t count,
              const GemParams& params);
void backward(const double* grad, const double* x, double* grad_in, int64_t count,
              const GemParams& params);

// The instruction set the kernels run with on this machine: "avx512f", "avx2" or
// "baseline".
const char* instruction_set();

}  // namespace gem::cpu
