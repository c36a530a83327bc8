#include "server/ops/gem_op.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <cmath>

namespace gem {

TORCH_LIBRARY(gem, m) {
  m.def("gem(Tensor x, int n, float eps, float neg_slope) -> Tensor");
  m.def("gem_(Tensor(a!) x, int n, float eps, float neg_slope) -> Tensor(a!)");
  m.def("gem_backward(Tensor grad, Tensor x, int n, float eps, float neg_slope) -> Tensor");
}

void check_arguments(const char* op, const at::Tensor& x, int64_t n, double eps,
                     double neg_slope) {
  TORCH_CHECK(n >= 1, op, ": n must be >= 1 (the order N in x^(2N)), got ", n);
  TORCH_CHECK(std::isfinite(eps) && eps > 0, op,
              ": eps must be a finite number > 0 (1 for GEM), got ", eps);
  TORCH_CHECK(std::isfinite(neg_slope) && neg_slope >= 0, op,
              ": neg_slope must be a finite number >= 0 (0 for GEM and E-GEM, > 0 for "
              "SE-GEM), got ",
              neg_slope);
  TORCH_CHECK(at::isFloatingType(x.scalar_type()), op,
              ": x must be a floating-point tensor (float32, float64, float16 or "
              "bfloat16), got ",
              x.scalar_type());
}

at::Tensor gem(const at::Tensor& x, int64_t n, double eps, double neg_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gem::gem", "")
                       .typed<at::Tensor(const at::Tensor&, int64_t, double, double)>();
  return op.call(x, n, eps, neg_slope);
}

at::Tensor& gem_(at::Tensor& x, int64_t n, double eps, double neg_slope) {
  static auto op = c10::Dispatcher::singleton()
                       .findSchemaOrThrow("gem::gem_", "")
                       .typed<at::Tensor&(at::Tensor&, int64_t, double, double)>();
  return op.call(x, n, eps, neg_slope);
}

at::Tensor gem_backward(const at::Tensor& grad, const at::Tensor& x, int64_t n, double eps,
                        double neg_slope) {
  static auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("gem::gem_backward", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, double, double)>();
  return op.call(grad, x, n, eps, neg_slope);
}

}  // namespace gem
