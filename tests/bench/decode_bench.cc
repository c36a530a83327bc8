// decode_bench MODEL_DIR
//   Time of one GPT-2 decode step (batch of one) with the prefix cached, at position 10
//   and at position 200: median of 60 interleaved steps each. With a working KV cache the
//   two are close; recomputing the prefix would make position 200 about 20x dearer.
//   Prints one JSON object: {"model", "position_10_ms", "position_200_ms", "ratio"}.
//
// decode_bench --batches 1,2,4,8,16 [--threads N] MODEL_DIR
//   The in-process decode limit: steps of `batch` rows at once (rows at position 64),
//   batch sizes interleaved over 5 rounds. One JSON object per batch size:
//   {"model", "threads", "batch", "tokens_per_s", "step_ms_p50"}.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <sstream>
#include <string>
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

// Steps of one decode forward for `batch` rows at `position`, for about `seconds`.
void StepFor(ScriptedModel& model, int64_t batch, double seconds, std::vector<double>& step_ms) {
  constexpr int64_t kPosition = 64;
  at::Tensor cache = model.NewCache(batch);
  const at::Tensor tokens = at::full({batch, 1}, 42, at::kLong);
  const at::Tensor positions = at::full({batch}, kPosition, at::kLong);
  for (int run = 0; run < ScriptedModel::WarmupRuns(); ++run) model.Decode(tokens, positions, cache);
  double spent = 0;
  while (spent < seconds) {
    const auto start = std::chrono::steady_clock::now();
    model.Decode(tokens, positions, cache);
    const double ms =
        std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
    step_ms.push_back(ms);
    spent += ms / 1e3;
  }
}

void PrintThroughput(ScriptedModel& model, const std::string& name,
                     const std::vector<int64_t>& batches, int threads) {
  std::vector<std::vector<double>> step_ms(batches.size());
  for (int round = 0; round < 5; ++round) {
    for (size_t i = 0; i < batches.size(); ++i) StepFor(model, batches[i], 0.4, step_ms[i]);
  }
  for (size_t i = 0; i < batches.size(); ++i) {
    double total_ms = 0;
    for (double ms : step_ms[i]) total_ms += ms;
    const double tokens = static_cast<double>(batches[i] * static_cast<int64_t>(step_ms[i].size()));
    std::cout << "{\"model\": \"" << name << "\", \"threads\": " << threads
              << ", \"batch\": " << batches[i] << ", \"tokens_per_s\": " << tokens / (total_ms / 1e3)
              << ", \"step_ms_p50\": " << Median(step_ms[i]) << "}\n";
  }
}

std::vector<int64_t> ParseList(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<int64_t> batches;
  int threads = 1;
  std::string model_dir;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--batches" && i + 1 < argc) {
      batches = ParseList(argv[++i]);
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = std::stoi(argv[++i]);
    } else {
      model_dir = arg;
    }
  }
  if (model_dir.empty() || threads < 1) {
    std::cerr << "usage: decode_bench [--batches 1,2,4 [--threads N]] MODEL_DIR (a gpt2-kjv "
                 "variant directory)\n";
    return 2;
  }
  auto config = gemserve::LoadVariantConfig(model_dir);
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
  if (!batches.empty()) {
    at::set_num_threads(threads);
    PrintThroughput(*model.value(), config->model + "/" + config->variant, batches, threads);
    return 0;
  }
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
