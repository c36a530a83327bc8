// ScriptedModel::RouteConvolutionsThroughOneDnn: which convolutions it sends to oneDNN,
// which it leaves alone, and that a batch of one gives the same logits either way.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>
#include <torch/csrc/jit/api/module.h>
#include <torch/script.h>

#include <filesystem>
#include <string>

#include "server/engine/scripted_model.h"

namespace gemserve {
namespace {

namespace fs = std::filesystem;

const c10::Device kCpu(c10::kCPU);

int CountNodes(torch::jit::Module& module, const std::string& kind) {
  int count = 0;
  for (const torch::jit::Node* node : module.get_method("forward").graph()->nodes()) {
    count += node->kind().toQualString() == kind;
  }
  return count;
}

// A one-convolution module: `body` is forward's return expression over x and self.weight.
torch::jit::Module ConvolutionModule(at::ScalarType dtype, const std::string& body, bool frozen) {
  torch::jit::Module module("Convolution");
  module.register_parameter("weight", at::randn({4, 2, 3, 3}, at::TensorOptions(dtype)), false);
  module.define("def forward(self, x):\n    return " + body + "\n");
  return frozen ? torch::jit::freeze(module) : module;
}

const char kIntegerPadding[] = "torch.conv2d(x, self.weight, None, [1, 1], [1, 1], [1, 1], 1)";

TEST(RouteConvolutionsThroughOneDnn, EveryConvolutionOfTheDemoResNetAndTheSameLogits) {
  if (!at::hasMKLDNN()) GTEST_SKIP() << "this LibTorch has no oneDNN";
  const fs::path weights = fs::path(GEMSERVE_REPOSITORY) / "resnet20-fashion" / "gem-n1" / "model.pt";
  torch::jit::Module exported = torch::jit::load(weights.string());
  torch::jit::Module routed = torch::jit::load(weights.string());
  const int convolutions = CountNodes(exported, "aten::conv2d");
  ASSERT_GT(convolutions, 0);

  ScriptedModel::RouteConvolutionsThroughOneDnn(routed, kCpu);

  EXPECT_EQ(CountNodes(routed, "aten::conv2d"), 0);
  EXPECT_EQ(CountNodes(routed, "aten::mkldnn_convolution"), convolutions);
  EXPECT_EQ(CountNodes(routed, "gem::gem"), CountNodes(exported, "gem::gem"));
  c10::InferenceMode inference;
  for (int64_t batch : {1, 2, 5}) {
    const at::Tensor images = at::rand({batch, 1, 28, 28});
    const at::Tensor want = exported.forward({images}).toTensor();
    const at::Tensor got = routed.forward({images}).toTensor();
    EXPECT_TRUE(at::allclose(got, want, 1e-5, 1e-5))
        << "batch " << batch << ": max difference " << (got - want).abs().max().item<float>();
  }
}

TEST(RouteConvolutionsThroughOneDnn, LeavesAloneWhatOneDnnWouldNotTakeAsItIs) {
  if (!at::hasMKLDNN()) GTEST_SKIP() << "this LibTorch has no oneDNN";
  struct Case {
    const char* what;
    at::ScalarType dtype;
    std::string body;
    bool frozen;
    c10::Device device;
  };
  const Case cases[] = {
      {"float64 weights", at::kDouble, kIntegerPadding, true, kCpu},
      {"padding \"same\"", at::kFloat, "torch.conv2d(x, self.weight, None, 1, \"same\")", true, kCpu},
      {"weights not frozen in", at::kFloat, kIntegerPadding, false, kCpu},
      {"a CUDA model", at::kFloat, kIntegerPadding, true, c10::Device(c10::kCUDA)},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    torch::jit::Module module = ConvolutionModule(c.dtype, c.body, c.frozen);
    ScriptedModel::RouteConvolutionsThroughOneDnn(module, c.device);
    EXPECT_EQ(CountNodes(module, "aten::conv2d"), 1);
    EXPECT_EQ(CountNodes(module, "aten::mkldnn_convolution"), 0);
    if (c.device.is_cpu()) {
      const at::Tensor out = module.forward({at::rand({1, 2, 6, 6}, c.dtype)}).toTensor();
      EXPECT_EQ(out.size(1), 4);
    }
  }
}

TEST(RouteConvolutionsThroughOneDnn, TakesAFrozenFloatConvolutionWithIntegerPadding) {
  if (!at::hasMKLDNN()) GTEST_SKIP() << "this LibTorch has no oneDNN";
  torch::jit::Module module = ConvolutionModule(at::kFloat, kIntegerPadding, true);
  const at::Tensor image = at::rand({1, 2, 6, 6});
  const at::Tensor want = module.forward({image}).toTensor();
  ScriptedModel::RouteConvolutionsThroughOneDnn(module, kCpu);
  EXPECT_EQ(CountNodes(module, "aten::mkldnn_convolution"), 1);
  EXPECT_TRUE(at::allclose(module.forward({image}).toTensor(), want, 1e-5, 1e-5));
}

}  // namespace
}  // namespace gemserve
