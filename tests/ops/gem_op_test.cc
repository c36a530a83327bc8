// Tests of gem::gem, gem::gem_ and gem::gem_backward on CPU against
// shared/ACTIVATIONS.md: reference values, numerics rules, smoothness at 0, memory
// layouts, threads, autograd and argument checks.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/util/Exception.h>
#include <gtest/gtest.h>
#include <torch/autograd.h>

#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "server/ops/gem_op.h"

namespace gem {
namespace {

struct GoldenPoint {
  double x, y, dy;
};

struct GoldenCase {
  std::string variant;
  GemParams params;
  std::vector<GoldenPoint> points;
};

std::vector<GoldenCase> load_golden() {
  std::ifstream in(GEM_GOLDEN_JSON);
  const auto json = nlohmann::json::parse(in);
  std::vector<GoldenCase> cases;
  for (const auto& c : json.at("cases")) {
    GoldenCase golden{c.at("variant"),
                      {c.at("n").get<int64_t>(), c.at("eps").get<double>(),
                       c.at("neg_slope").get<double>()},
                      {}};
    for (const auto& p : c.at("points")) {
      golden.points.push_back({p.at("x"), p.at("y"), p.at("dy")});
    }
    cases.push_back(golden);
  }
  return cases;
}

const std::vector<GoldenCase>& golden() {
  static const std::vector<GoldenCase> cases = load_golden();
  return cases;
}

at::Tensor golden_inputs(const GoldenCase& c, at::ScalarType dtype) {
  std::vector<double> xs;
  for (const auto& p : c.points) xs.push_back(p.x);
  return at::tensor(xs, at::kDouble).to(dtype);
}

at::Tensor forward(const at::Tensor& x, const GemParams& p) {
  return gem(x, p.n, p.eps, p.neg_slope);
}

at::Tensor derivative(const at::Tensor& x, const GemParams& p) {
  return gem_backward(at::ones_like(x), x, p.n, p.eps, p.neg_slope);
}

std::string describe(const GoldenCase& c, double x) {
  return c.variant + " n=" + std::to_string(c.params.n) + " eps=" +
         std::to_string(c.params.eps) + " a=" + std::to_string(c.params.neg_slope) +
         " x=" + std::to_string(x);
}

TEST(GemGolden, Float64ValuesAndDerivativesWithin1e12Relative) {
  for (const auto& c : golden()) {
    const at::Tensor x = golden_inputs(c, at::kDouble);
    const at::Tensor y = forward(x, c.params);
    const at::Tensor dy = derivative(x, c.params);
    for (size_t i = 0; i < c.points.size(); ++i) {
      const GoldenPoint& p = c.points[i];
      EXPECT_NEAR(y[i].item<double>(), p.y, 1e-12 * std::abs(p.y)) << describe(c, p.x);
      EXPECT_NEAR(dy[i].item<double>(), p.dy, 1e-12 * std::abs(p.dy)) << describe(c, p.x);
    }
  }
}

TEST(GemGolden, AutogradMatchesTheClosedFormDerivative) {
  for (const auto& c : golden()) {
    const at::Tensor x = golden_inputs(c, at::kDouble).requires_grad_();
    forward(x, c.params).sum().backward();
    for (size_t i = 0; i < c.points.size(); ++i) {
      const GoldenPoint& p = c.points[i];
      EXPECT_NEAR(x.grad()[i].item<double>(), p.dy, 1e-12 * std::abs(p.dy))
          << describe(c, p.x);
    }
  }
}

// The golden x values (0.1, 0.001, ...) are not all representable in float32 or the
// half types, and near 0 f behaves like x^(2N+1), so rounding x alone moves f by up to
// (2N+1) times the input's rounding error. Each dtype is therefore checked against the
// exact value at its own rounded input: the float64 kernel, verified against the
// golden values to 1e-12 above.
void expect_float32_close(const GoldenCase& c, const at::Tensor& got, const at::Tensor& want,
                          const char* what) {
  for (size_t i = 0; i < c.points.size(); ++i) {
    const double g = got[i].item<double>();
    const double w = want[i].item<double>();
    EXPECT_NEAR(g, w, 1e-6 * std::abs(w) + 1e-30) << what << " " << describe(c, c.points[i].x);
  }
}

TEST(GemGolden, Float32Within1e6Relative) {
  for (const auto& c : golden()) {
    const at::Tensor x = golden_inputs(c, at::kFloat);
    const at::Tensor exact_x = x.to(at::kDouble);
    expect_float32_close(c, forward(x, c.params), forward(exact_x, c.params), "f");
    expect_float32_close(c, derivative(x, c.params), derivative(exact_x, c.params), "f'");
  }
}

// One unit in the last place of the half-precision value `want`.
double ulp(double want, at::ScalarType dtype) {
  const int mantissa_bits = dtype == at::kHalf ? 10 : 7;
  const double smallest_normal = dtype == at::kHalf ? 6.103515625e-05 : 1.17549435e-38;
  const double magnitude = std::max(std::abs(want), smallest_normal);
  return std::ldexp(1.0, std::ilogb(magnitude) - mantissa_bits);
}

void expect_within_one_ulp(const GoldenCase& c, const at::Tensor& got, const at::Tensor& exact,
                           at::ScalarType dtype, const char* what) {
  const at::Tensor want = exact.to(dtype).to(at::kDouble);
  for (size_t i = 0; i < c.points.size(); ++i) {
    const double g = got[i].item<double>();
    const double w = want[i].item<double>();
    EXPECT_LE(std::abs(g - w), ulp(w, dtype)) << what << " " << describe(c, c.points[i].x);
  }
}

TEST(GemGolden, HalfTypesWithinOneUlp) {
  for (const at::ScalarType dtype : {at::kHalf, at::kBFloat16}) {
    for (const auto& c : golden()) {
      const at::Tensor x = golden_inputs(c, dtype);
      const at::Tensor exact_x = x.to(at::kDouble);
      expect_within_one_ulp(c, forward(x, c.params), forward(exact_x, c.params), dtype, "f");
      expect_within_one_ulp(c, derivative(x, c.params), derivative(exact_x, c.params), dtype,
                            "f'");
    }
  }
}

// --- numerics rules ----------------------------------------------------------------

const std::vector<GemParams> kFamily = {
    {1, 1.0, 0.0}, {2, 1.0, 0.0}, {3, 1.0, 0.0}, {1, 1e-4, 0.0},
    {2, 10.0, 0.0}, {1, 1e-4, 0.01}, {2, 1.0, 0.1}};

class GemNumerics : public ::testing::TestWithParam<at::ScalarType> {};

TEST_P(GemNumerics, SpecialValues) {
  const at::ScalarType dtype = GetParam();
  const double inf = std::numeric_limits<double>::infinity();
  const double nan = std::numeric_limits<double>::quiet_NaN();
  for (const GemParams& p : kFamily) {
    const double slope = at::tensor({p.neg_slope}, at::kDouble).to(dtype).item<double>();
    const at::Tensor x = at::tensor({0.0, inf, -inf, nan}, at::kDouble).to(dtype);
    const at::Tensor y = forward(x, p).to(at::kDouble);
    EXPECT_EQ(y[0].item<double>(), 0.0);
    EXPECT_EQ(y[1].item<double>(), inf);
    EXPECT_EQ(y[2].item<double>(), p.neg_slope > 0 ? -inf : 0.0);
    EXPECT_TRUE(std::isnan(y[3].item<double>()));
    const at::Tensor dy = derivative(x, p).to(at::kDouble);
    EXPECT_EQ(dy[0].item<double>(), 0.0);
    EXPECT_EQ(dy[1].item<double>(), 1.0);
    EXPECT_NEAR(dy[2].item<double>(), slope, 1e-7 * slope);
    EXPECT_TRUE(std::isnan(dy[3].item<double>()));
  }
}

// Magnitudes from the dtype's largest finite value down to denormals; those that the
// dtype cannot represent as finite are dropped.
at::Tensor finite_magnitudes(at::ScalarType dtype) {
  const at::Tensor candidates =
      at::tensor({std::numeric_limits<double>::max(), 3.3895313892515355e38,
                  static_cast<double>(std::numeric_limits<float>::max()), 1e30, 1e20, 1e10,
                  65504.0, 60000.0, 1e-3, 1e-20, 1e-40, 4e-45, 1e-310},
                 at::kDouble)
          .to(dtype);
  return candidates.masked_select(at::isfinite(candidates));
}

TEST_P(GemNumerics, EveryFiniteInputGivesAFiniteOutput) {
  const at::ScalarType dtype = GetParam();
  const at::Tensor positive = finite_magnitudes(dtype);
  const at::Tensor x = at::cat({positive, -positive});
  const int64_t count = positive.numel();
  for (const GemParams& p : kFamily) {
    const at::Tensor y = forward(x, p).to(at::kDouble);
    const at::Tensor dy = derivative(x, p).to(at::kDouble);
    EXPECT_TRUE(at::isfinite(y).all().item<bool>()) << y;
    EXPECT_TRUE(at::isfinite(dy).all().item<bool>()) << dy;
    // The largest inputs sit on the asymptotes f(x) = x and f(x) = a * x.
    const double largest = positive[0].item<double>();
    EXPECT_EQ(y[0].item<double>(), largest);
    EXPECT_NEAR(y[count].item<double>(), -p.neg_slope * largest, 1e-2 * p.neg_slope * largest);
    // f keeps the sign of x (zero below 0 when a = 0).
    EXPECT_TRUE((y.slice(0, 0, count) >= 0).all().item<bool>());
    EXPECT_TRUE((y.slice(0, count) <= 0).all().item<bool>());
  }
}

TEST(GemNumerics, Float16NearItsLargestValueStaysOnTheAsymptote) {
  const at::Tensor x = at::tensor({65504.0, 65000.0, 60000.0, 32768.0, -65504.0}).to(at::kHalf);
  const at::Tensor y = gem(x, 1, 1.0, 0.01);
  EXPECT_TRUE(at::equal(y.slice(0, 0, 4), x.slice(0, 0, 4)));
  EXPECT_EQ(y[4].item<double>(), at::tensor({-655.04}).to(at::kHalf).item<double>());
}

INSTANTIATE_TEST_SUITE_P(AllDtypes, GemNumerics,
                         ::testing::Values(at::kFloat, at::kDouble, at::kHalf, at::kBFloat16),
                         [](const auto& param_info) {
                           return std::string(c10::toString(param_info.param));
                         });

// --- smoothness: f is C^(2N) at 0 ------------------------------------------------

// One-sided k-th finite difference of f at 0 with step h (h < 0: from the left).
double finite_difference(const GemParams& p, int k, double h) {
  std::vector<double> xs;
  for (int j = 0; j <= k; ++j) xs.push_back(j * h);
  const at::Tensor y = forward(at::tensor(xs, at::kDouble), p);
  double sum = 0;
  double binomial = 1;
  for (int j = 0; j <= k; ++j) {
    const double sign = (k - j) % 2 == 0 ? 1.0 : -1.0;
    sum += sign * binomial * y[j].item<double>();
    binomial = binomial * (k - j) / (j + 1);
  }
  return sum / std::pow(h, k);
}

TEST(GemSmoothness, DerivativesUpToOrder2NVanishAtZeroFromBothSides) {
  for (const GemParams& p : {GemParams{1, 1.0, 0.01}, GemParams{2, 1.0, 0.1},
                             GemParams{3, 1.0, 0.1}, GemParams{1, 10.0, 0.5},
                             GemParams{2, 1e-4, 0.01}}) {
    // Steps small against the gate's scale eps^(1/2N), where f ~ x^(2N+1) / eps.
    const double scale = std::pow(p.eps, 1.0 / (2 * p.n));
    for (const double side : {1.0, -1.0}) {
      for (int k = 1; k <= 2 * p.n; ++k) {
        const double coarse = finite_difference(p, k, side * 1e-2 * scale);
        const double fine = finite_difference(p, k, side * 1e-3 * scale);
        // The estimate of f^(k)(0) shrinks like h^(2N+1-k): at least 10x per decade.
        EXPECT_LT(std::abs(fine), std::abs(coarse) / 5 + 1e-300)
            << "n=" << p.n << " eps=" << p.eps << " k=" << k << " side=" << side;
      }
      // Order 2N+1 does not vanish: f^(2N+1)(0) = (2N+1)! / eps (times a below 0).
      const int k = 2 * static_cast<int>(p.n) + 1;
      const double factorial = std::tgamma(k + 1.0);
      const double expected = factorial / p.eps * (side > 0 ? 1.0 : p.neg_slope);
      EXPECT_NEAR(finite_difference(p, k, side * 1e-3 * scale), expected,
                  0.05 * std::abs(expected))
          << "n=" << p.n << " eps=" << p.eps << " side=" << side;
    }
  }
}

// --- layouts, sizes, threads, in-place ---------------------------------------------

TEST(GemLayouts, NonContiguousInputsMatchContiguousOnes) {
  const at::Tensor base = at::randn({64, 48}, at::kFloat) * 3;
  const std::vector<at::Tensor> views = {
      base.t(), base.slice(1, 0, 48, 3), base.slice(0, 1, 64, 2).slice(1, 5, 40),
      base.view({4, 16, 8, 6}).contiguous(at::MemoryFormat::ChannelsLast)};
  for (const at::Tensor& view : views) {
    const at::Tensor y = gem(view, 1, 1e-4, 0.01);
    EXPECT_EQ(y.sizes(), view.sizes());
    EXPECT_TRUE(at::equal(y, gem(view.contiguous(), 1, 1e-4, 0.01)));
    const at::Tensor g = at::randn(view.sizes());
    EXPECT_TRUE(at::equal(gem_backward(g, view, 2, 1.0, 0.1),
                          gem_backward(g.contiguous(), view.contiguous(), 2, 1.0, 0.1)));
  }
}

TEST(GemLayouts, ChannelsLastOutputKeepsItsLayout) {
  const at::Tensor x = at::randn({2, 8, 5, 5}).contiguous(at::MemoryFormat::ChannelsLast);
  EXPECT_TRUE(gem(x, 1, 1.0, 0.0).is_contiguous(at::MemoryFormat::ChannelsLast));
}

TEST(GemLayouts, EmptyTensors) {
  for (const auto& shape : std::vector<std::vector<int64_t>>{{0}, {3, 0}, {0, 4, 5}}) {
    const at::Tensor x = at::empty(shape, at::kFloat);
    EXPECT_EQ(gem(x, 1, 1.0, 0.0).sizes(), x.sizes());
    EXPECT_EQ(gem_backward(x, x, 1, 1.0, 0.0).sizes(), x.sizes());
  }
  EXPECT_EQ(gem(at::tensor(2.0), 1, 1.0, 0.0).item<double>(), 1.6);
}

TEST(GemLayouts, InPlaceMatchesOutOfPlaceForEveryLayout) {
  const at::Tensor base = at::randn({32, 30});
  at::Tensor dense = base.clone();
  gem_(dense, 2, 1.0, 0.1);
  EXPECT_TRUE(at::equal(dense, gem(base, 2, 1.0, 0.1)));
  at::Tensor strided = base.clone();
  at::Tensor view = strided.slice(1, 0, 30, 2);
  gem_(view, 1, 1.0, 0.0);
  EXPECT_TRUE(at::equal(view, gem(base.slice(1, 0, 30, 2), 1, 1.0, 0.0)));
  EXPECT_TRUE(at::equal(strided.slice(1, 1, 30, 2), base.slice(1, 1, 30, 2)));
}

TEST(GemThreads, OneAndTwoThreadsAgreeOnLargeTensors) {
  const at::Tensor x = at::randn({3 * 1000 * 1000 + 7}) * 4;
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = gem(x, 1, 1e-4, 0.01);
  at::set_num_threads(2);
  const at::Tensor two = gem(x, 1, 1e-4, 0.01);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(one, two));
  EXPECT_TRUE(at::allclose(two, gem(x.to(at::kDouble), 1, 1e-4, 0.01).to(at::kFloat), 1e-6, 1e-30));
}

// --- autograd and argument checks ---------------------------------------------------

TEST(GemAutograd, InPlaceRefusesInputsThatRequireGrad) {
  at::Tensor x = at::randn({4}).requires_grad_();
  EXPECT_THROW(gem_(x, 1, 1.0, 0.0), c10::Error);
  at::NoGradGuard no_grad;
  at::Tensor y = at::randn({4});
  EXPECT_NO_THROW(gem_(y, 1, 1.0, 0.0));
}

TEST(GemAutograd, GradientFlowsThroughAComposition) {
  const at::Tensor x = at::linspace(-3, 3, 101, at::kDouble).requires_grad_();
  (gem(x * 2, 2, 1.0, 0.1) * 3).sum().backward();
  const at::Tensor expected = 6 * derivative(x.detach() * 2, GemParams{2, 1.0, 0.1});
  EXPECT_TRUE(at::allclose(x.grad(), expected, 1e-12, 1e-15));
}

void expect_error_mentions(const std::function<void()>& call, const std::string& words) {
  try {
    call();
    ADD_FAILURE() << "no error; expected one mentioning '" << words << "'";
  } catch (const c10::Error& e) {
    EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
  }
}

TEST(GemArguments, BadArgumentsRaiseMessagesNamingThem) {
  const at::Tensor x = at::randn({3});
  const double inf = std::numeric_limits<double>::infinity();
  expect_error_mentions([&] { gem(x, 0, 1.0, 0.0); }, "n must be >= 1");
  expect_error_mentions([&] { gem(x, -2, 1.0, 0.0); }, "n must be >= 1");
  expect_error_mentions([&] { gem(x, 1, 0.0, 0.0); }, "eps must be");
  expect_error_mentions([&] { gem(x, 1, -1.0, 0.0); }, "eps must be");
  expect_error_mentions([&] { gem(x, 1, inf, 0.0); }, "eps must be");
  expect_error_mentions([&] { gem(x, 1, 1.0, -0.1); }, "neg_slope must be");
  expect_error_mentions([&] { gem(at::arange(3), 1, 1.0, 0.0); }, "floating-point");
  expect_error_mentions([&] { gem_backward(at::randn({2}), x, 1, 1.0, 0.0); }, "shape");
  at::Tensor ints = at::arange(3);
  expect_error_mentions([&] { gem_(ints, 1, 1.0, 0.0); }, "floating-point");
}

}  // namespace
}  // namespace gem
