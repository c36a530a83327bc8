#pragma once

// The GEM activation operator, registered with PyTorch's dispatcher as
//
//   gem::gem(Tensor x, int n, float eps, float neg_slope) -> Tensor
//   gem::gem_(Tensor(a!) x, int n, float eps, float neg_slope) -> Tensor(a!)
//   gem::gem_backward(Tensor grad, Tensor x, int n, float eps, float neg_slope) -> Tensor
//
// so that Python (`torch.ops.gem.gem`), TorchScript models and C++ all call the same
// kernels. One op covers GEM (eps = 1, neg_slope = 0), E-GEM and SE-GEM exactly as
// shared/ACTIVATIONS.md defines them. Kernels exist for CPU (float32, float64,
// float16, bfloat16; half types are computed in float32 and rounded once) and, when
// built against a CUDA LibTorch, for CUDA. `gem` is differentiable; `gem_` refuses
// inputs that require grad.
//
// Registration is a static initializer in this library: a program that only loads
// TorchScript files must still link it (see server/ops/CMakeLists.txt).
//
// Invalid arguments (n < 1, eps <= 0 or not finite, neg_slope < 0 or not finite, a
// non-floating dtype) throw c10::Error with a message naming the argument.

#include <ATen/core/Tensor.h>

#include "server/ops/gem_params.h"

namespace gem {

at::Tensor gem(const at::Tensor& x, int64_t n, double eps, double neg_slope);
at::Tensor& gem_(at::Tensor& x, int64_t n, double eps, double neg_slope);
at::Tensor gem_backward(const at::Tensor& grad, const at::Tensor& x, int64_t n, double eps,
                        double neg_slope);

// Throws c10::Error naming the first invalid argument of `op`.
void check_arguments(const char* op, const at::Tensor& x, int64_t n, double eps,
                     double neg_slope);

}  // namespace gem
