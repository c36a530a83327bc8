// Autograd for gem::gem (backward = gem::gem_backward, the closed form of
// ACTIVATIONS.md) and a guard that keeps gem::gem_ out of autograd graphs.

#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/autograd.h>
#include <torch/library.h>

#include "server/ops/gem_op.h"

namespace gem {
namespace {

class GemFunction : public torch::autograd::Function<GemFunction> {
 public:
  static at::Tensor forward(torch::autograd::AutogradContext* ctx, const at::Tensor& x,
                            int64_t n, double eps, double neg_slope) {
    ctx->save_for_backward({x});
    ctx->saved_data["n"] = n;
    ctx->saved_data["eps"] = eps;
    ctx->saved_data["neg_slope"] = neg_slope;
    at::AutoDispatchBelowADInplaceOrView below_autograd;
    return gem(x, n, eps, neg_slope);
  }

  static torch::autograd::tensor_list backward(torch::autograd::AutogradContext* ctx,
                                               torch::autograd::tensor_list grads) {
    const at::Tensor x = ctx->get_saved_variables()[0];
    const at::Tensor grad_x =
        gem_backward(grads[0].contiguous(), x, ctx->saved_data["n"].toInt(),
                     ctx->saved_data["eps"].toDouble(),
                     ctx->saved_data["neg_slope"].toDouble());
    return {grad_x, at::Tensor(), at::Tensor(), at::Tensor()};
  }
};

at::Tensor gem_autograd(const at::Tensor& x, int64_t n, double eps, double neg_slope) {
  return GemFunction::apply(x, n, eps, neg_slope);
}

at::Tensor& gem_inplace_autograd(at::Tensor& x, int64_t n, double eps, double neg_slope) {
  TORCH_CHECK(!(at::GradMode::is_enabled() && x.requires_grad()),
              "gem::gem_: the in-place op does not support autograd (x requires grad); "
              "use gem::gem, or run under torch.no_grad() / inference mode");
  at::AutoDispatchBelowADInplaceOrView below_autograd;
  return gem_(x, n, eps, neg_slope);
}

}  // namespace

TORCH_LIBRARY_IMPL(gem, Autograd, m) {
  m.impl("gem", &gem_autograd);
  m.impl("gem_", &gem_inplace_autograd);
}

}  // namespace gem
