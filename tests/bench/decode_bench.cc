// decode_bench MODEL_DIR
//
// Time of one GPT-2 decode step (batch of one) with the prefix cached, at position 10
// and at position 200: median of 60 interleaved steps each. With a working KV cache the
// two are close; recomputing the prefix would make position 200 about 20x dearer.
// Prints one JSON object: {"model", "position_10_ms", "position_200_ms", "ratio"}.

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <vector>

#include "server/engine/model_config.h"
#include "server/engine/scripted_model.h"

namespace {

using gemserve::ScriptedModel;

// A cache holding `length` prompt positions, ready for a decode step at `length`.
at::Tensor CacheAt(ScriptedModel& model, int64_t length) {
  const at::Tensor prompt = at::randint(0, 1000, {1, length}, at::kLong);
  return model.Prefill(prompt).second;
}

double StepMilliseconds(ScriptedModel& model, at::Tensor& cache, int64_t position) {
  const at::Tensor token = at::tensor({int64_t{42}}, at::kLong).view({1, 1});
  const at::Tensor where = at::tensor({position}, at::kLong);
  const auto start = std::chrono::steady_clock::now();
  model.Decode(token, where, cache);
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start)
      .count();
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: decode_bench MODEL_DIR (a gpt2-kjv variant directory)\n";
    return 2;
  }
  auto config = gemserve::LoadVariantConfig(argv[1]);
  if (!config.ok()) {
    std::cerr << config.status().message() << "\n";
    return 1;
  }
  auto model = ScriptedModel::Load(config->weights, c10::Device(c10::kCPU));
  if (!model.ok()) {
    std::cerr << model.status().message() << "\n";
    return 1;
  }
  c10::InferenceMode inference;
  at::Tensor near = CacheAt(*model.value(), 10);
  at::Tensor far = CacheAt(*model.value(), 200);
  std::vector<double> at_10, at_200;
  for (int i = 0; i < 60; ++i) {
    at_10.push_back(StepMilliseconds(*model.value(), near, 10));
    at_200.push_back(StepMilliseconds(*model.value(), far, 200));
  }
  const double a = Median(at_10), b = Median(at_200);
  std::cout << "{\"model\": \"" << config->model << "/" << config->variant
            << "\", \"position_10_ms\": " << a << ", \"position_200_ms\": " << b
            << ", \"ratio\": " << b / a << "}\n";
  return 0;
}
