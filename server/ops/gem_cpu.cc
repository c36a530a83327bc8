// CPU kernels of gem::gem, gem::gem_ and gem::gem_backward: argument checks, memory
// layout, threads and dtypes around the raw kernels of gem_cpu_kernels.h.

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <algorithm>
#include <array>

#include "server/ops/gem_cpu_kernels.h"
#include "server/ops/gem_op.h"

namespace gem {
namespace {

// Elements per parallel task: small tensors stay on one thread.
constexpr int64_t kGrainSize = 32768;
// Half-precision elements converted to float32 at a time (stays in L1).
constexpr int64_t kHalfChunk = 1024;

void forward_span(const float* x, float* y, int64_t count, const GemParams& p) {
  cpu::forward(x, y, count, p);
}
void forward_span(const double* x, double* y, int64_t count, const GemParams& p) {
  cpu::forward(x, y, count, p);
}

// float16 / bfloat16: widen a chunk to float32, run the float32 kernel, round once.
template <typename Half>
void forward_span(const Half* x, Half* y, int64_t count, const GemParams& p) {
  std::array<float, kHalfChunk> buffer;
  for (int64_t begin = 0; begin < count; begin += kHalfChunk) {
    const int64_t size = std::min(kHalfChunk, count - begin);
    std::copy(x + begin, x + begin + size, buffer.begin());
    cpu::forward(buffer.data(), buffer.data(), size, p);
    std::copy(buffer.begin(), buffer.begin() + size, y + begin);
  }
}

void backward_span(const float* g, const float* x, float* out, int64_t count,
                   const GemParams& p) {
  cpu::backward(g, x, out, count, p);
}
void backward_span(const double* g, const double* x, double* out, int64_t count,
                   const GemParams& p) {
  cpu::backward(g, x, out, count, p);
}

template <typename Half>
void backward_span(const Half* g, const Half* x, Half* out, int64_t count,
                   const GemParams& p) {
  std::array<float, kHalfChunk> grad_buffer;
  std::array<float, kHalfChunk> x_buffer;
  for (int64_t begin = 0; begin < count; begin += kHalfChunk) {
    const int64_t size = std::min(kHalfChunk, count - begin);
    std::copy(g + begin, g + begin + size, grad_buffer.begin());
    std::copy(x + begin, x + begin + size, x_buffer.begin());
    cpu::backward(grad_buffer.data(), x_buffer.data(), grad_buffer.data(), size, p);
    std::copy(grad_buffer.begin(), grad_buffer.begin() + size, out + begin);
  }
}

// out = f(in) over the flat storage of two tensors with identical dense layouts.
void forward_dense(const at::Tensor& in, const at::Tensor& out, const GemParams& p) {
  AT_DISPATCH_FLOATING_TYPES_AND2(at::kHalf, at::kBFloat16, in.scalar_type(), "gem", [&] {
    const scalar_t* x = in.data_ptr<scalar_t>();
    scalar_t* y = out.data_ptr<scalar_t>();
    at::parallel_for(0, in.numel(), kGrainSize, [&](int64_t begin, int64_t end) {
      forward_span(x + begin, y + begin, end - begin, p);
    });
  });
}

void backward_dense(const at::Tensor& grad, const at::Tensor& in, const at::Tensor& out,
                    const GemParams& p) {
  AT_DISPATCH_FLOATING_TYPES_AND2(
      at::kHalf, at::kBFloat16, in.scalar_type(), "gem_backward", [&] {
        const scalar_t* g = grad.data_ptr<scalar_t>();
        const scalar_t* x = in.data_ptr<scalar_t>();
        scalar_t* y = out.data_ptr<scalar_t>();
        at::parallel_for(0, in.numel(), kGrainSize, [&](int64_t begin, int64_t end) {
          backward_span(g + begin, x + begin, y + begin, end - begin, p);
        });
      });
}

// A dense tensor (contiguous, channels-last, ...) is processed as one flat span in its
// own layout; anything else is made contiguous first.
at::Tensor dense(const at::Tensor& x) {
  return x.is_non_overlapping_and_dense() ? x : x.contiguous();
}

at::Tensor gem_cpu(const at::Tensor& x, int64_t n, double eps, double neg_slope) {
  check_arguments("gem::gem", x, n, eps, neg_slope);
  const at::Tensor in = dense(x);
  at::Tensor out = at::empty_like(in);
  forward_dense(in, out, GemParams{n, eps, neg_slope});
  return out;
}

at::Tensor& gem_inplace_cpu(at::Tensor& x, int64_t n, double eps, double neg_slope) {
  check_arguments("gem::gem_", x, n, eps, neg_slope);
  if (x.is_non_overlapping_and_dense()) {
    forward_dense(x, x, GemParams{n, eps, neg_slope});
  } else {
    x.copy_(gem_cpu(x, n, eps, neg_slope));
  }
  return x;
}

at::Tensor gem_backward_cpu(const at::Tensor& grad, const at::Tensor& x, int64_t n,
                            double eps, double neg_slope) {
  check_arguments("gem::gem_backward", x, n, eps, neg_slope);
  TORCH_CHECK(grad.sizes() == x.sizes(), "gem::gem_backward: grad has shape ", grad.sizes(),
              " but x has shape ", x.sizes());
  TORCH_CHECK(grad.scalar_type() == x.scalar_type(), "gem::gem_backward: grad is ",
              grad.scalar_type(), " but x is ", x.scalar_type());
  const bool same_layout = x.is_non_overlapping_and_dense() && grad.strides() == x.strides();
  const at::Tensor in = same_layout ? x : x.contiguous();
  const at::Tensor g = same_layout ? grad : grad.contiguous();
  at::Tensor out = at::empty_like(in);
  backward_dense(g, in, out, GemParams{n, eps, neg_slope});
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(gem, CPU, m) {
  m.impl("gem", &gem_cpu);
  m.impl("gem_", &gem_inplace_cpu);
  m.impl("gem_backward", &gem_backward_cpu);
}

}  // namespace gem
