// CUDA backend of gem::gem, gem::gem_ and gem::gem_backward. Built only when the
// LibTorch found has CUDA; the kernels themselves live in gem_cuda_kernels.cu.

#include <ATen/core/Tensor.h>
#include <ATen/cuda/CUDAContext.h>
#include <ATen/ops/empty_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <torch/library.h>

#include "server/ops/gem_cuda_kernels.h"
#include "server/ops/gem_op.h"

namespace gem {
namespace {

cuda::DType dtype_of(const at::Tensor& x) {
  switch (x.scalar_type()) {
    case at::kFloat:
      return cuda::DType::kFloat32;
    case at::kDouble:
      return cuda::DType::kFloat64;
    case at::kHalf:
      return cuda::DType::kFloat16;
    case at::kBFloat16:
      return cuda::DType::kBFloat16;
    default:
      TORCH_CHECK(false, "gem: unsupported dtype ", x.scalar_type());
  }
}

at::Tensor gem_cuda(const at::Tensor& x, int64_t n, double eps, double neg_slope) {
  check_arguments("gem::gem", x, n, eps, neg_slope);
  const c10::cuda::CUDAGuard device_guard(x.device());
  const at::Tensor in = x.contiguous();
  at::Tensor out = at::empty_like(in);
  C10_CUDA_CHECK(cuda::launch_forward(dtype_of(in), in.data_ptr(), out.data_ptr(), in.numel(),
                                      GemParams{n, eps, neg_slope},
                                      at::cuda::getCurrentCUDAStream()));
  return out;
}

at::Tensor& gem_inplace_cuda(at::Tensor& x, int64_t n, double eps, double neg_slope) {
  check_arguments("gem::gem_", x, n, eps, neg_slope);
  if (!x.is_contiguous()) {
    x.copy_(gem_cuda(x, n, eps, neg_slope));
    return x;
  }
  const c10::cuda::CUDAGuard device_guard(x.device());
  C10_CUDA_CHECK(cuda::launch_forward(dtype_of(x), x.data_ptr(), x.data_ptr(), x.numel(),
                                      GemParams{n, eps, neg_slope},
                                      at::cuda::getCurrentCUDAStream()));
  return x;
}

at::Tensor gem_backward_cuda(const at::Tensor& grad, const at::Tensor& x, int64_t n,
                             double eps, double neg_slope) {
  check_arguments("gem::gem_backward", x, n, eps, neg_slope);
  TORCH_CHECK(grad.sizes() == x.sizes(), "gem::gem_backward: grad has shape ", grad.sizes(),
              " but x has shape ", x.sizes());
  TORCH_CHECK(grad.scalar_type() == x.scalar_type(), "gem::gem_backward: grad is ",
              grad.scalar_type(), " but x is ", x.scalar_type());
  const c10::cuda::CUDAGuard device_guard(x.device());
  const at::Tensor in = x.contiguous();
  const at::Tensor g = grad.contiguous();
  at::Tensor out = at::empty_like(in);
  C10_CUDA_CHECK(cuda::launch_backward(dtype_of(in), g.data_ptr(), in.data_ptr(),
                                       out.data_ptr(), in.numel(),
                                       GemParams{n, eps, neg_slope},
                                       at::cuda::getCurrentCUDAStream()));
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(gem, CUDA, m) {
  m.impl("gem", &gem_cuda);
  m.impl("gem_", &gem_inplace_cuda);
  m.impl("gem_backward", &gem_backward_cuda);
}

}  // namespace gem
