// Every model.pt of the committed demo repository (models/repository) loads in LibTorch
// and reproduces the outputs Python recorded in its reference.json within 1e-5:
// ResNet logits for a test image; GPT-2 logits after a prompt and 20 greedy tokens of
// prefill + decode.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "server/engine/model_config.h"
#include "server/engine/scripted_model.h"

namespace gemserve {
namespace {

namespace fs = std::filesystem;

std::vector<fs::path> VariantDirectories() {
  std::vector<fs::path> out;
  for (const auto& model : fs::directory_iterator(GEMSERVE_REPOSITORY)) {
    if (!model.is_directory()) continue;
    for (const auto& variant : fs::directory_iterator(model.path())) {
      if (fs::exists(variant.path() / "model.json")) out.push_back(variant.path());
    }
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The references were computed by export.py on one CPU. oneDNN, BLAS and the GEM op pick
// their kernels by instruction set, so another CPU sums in another order: on an AVX-512
// machine GPT-2's last logits (up to 21 in size) came out 1.1e-5 from references made on
// an AVX2 one. Hence a relative term, as float32 rounding scales with the logit.
constexpr double kLogitRtol = 1e-5;
constexpr double kLogitAtol = 1e-5;

at::Tensor ToTensor(const std::vector<float>& values) {
  return at::tensor(values, at::kFloat);
}

void CheckClassifier(ScriptedModel& model, const nlohmann::json& reference) {
  const std::vector<int64_t> shape = reference["input"]["shape"];
  const at::Tensor input = ToTensor(reference["input"]["data"]).view(shape);
  const at::Tensor logits = model.Forward(input)[0];
  const at::Tensor want = ToTensor(reference["logits"]);
  EXPECT_TRUE(at::allclose(logits, want, kLogitRtol, kLogitAtol))
      << "max difference " << (logits - want).abs().max().item<float>();
}

int64_t Argmax(const at::Tensor& logits) { return logits.argmax().item<int64_t>(); }

void CheckGenerator(ScriptedModel& model, const nlohmann::json& reference) {
  const std::vector<int64_t> prompt = reference["prompt_tokens"];
  const at::Tensor tokens = at::tensor(prompt, at::kLong).view({1, -1});
  const at::Tensor last = model.Forward(tokens)[0][-1];
  const at::Tensor want = ToTensor(reference["last_logits"]);
  EXPECT_TRUE(at::allclose(last, want, kLogitRtol, kLogitAtol))
      << "max difference " << (last - want).abs().max().item<float>();

  auto [logits, cache] = model.Prefill(tokens);
  std::vector<int64_t> greedy;
  int64_t position = static_cast<int64_t>(prompt.size());
  int64_t next = Argmax(logits[0][-1]);
  const std::vector<int64_t> expected = reference["greedy_tokens"];
  while (greedy.size() < expected.size()) {
    greedy.push_back(next);
    const at::Tensor step = model.Decode(at::tensor({next}, at::kLong).view({1, 1}),
                                         at::tensor({position}, at::kLong), cache);
    next = Argmax(step[0][0]);
    ++position;
  }
  EXPECT_EQ(greedy, expected);
}

TEST(DemoRepository, EveryVariantReproducesPythonInLibTorch) {
  const std::vector<fs::path> variants = VariantDirectories();
  ASSERT_EQ(variants.size(), 12u) << "two models x six variants expected";
  c10::InferenceMode inference;
  for (const fs::path& dir : variants) {
    SCOPED_TRACE(dir.string());
    StatusOr<VariantConfig> config = LoadVariantConfig(dir);
    ASSERT_TRUE(config.ok()) << config.status().message();
    auto model = ScriptedModel::Load(config->weights, c10::Device(c10::kCPU));
    ASSERT_TRUE(model.ok()) << model.status().message();
    std::ifstream in(dir / "reference.json");
    const nlohmann::json reference = nlohmann::json::parse(in);
    if (config->task == Task::kClassify) {
      CheckClassifier(*model.value(), reference);
    } else {
      CheckGenerator(*model.value(), reference);
    }
  }
}

}  // namespace
}  // namespace gemserve
