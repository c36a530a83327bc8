// decode_bench MODEL_DIR
//   Time of one GPT-2 decode step (batch of one) with the prefix cached, at position 10
//   and at position 200: median of 60 interleaved steps each. With a working KV cache the
//   two are close; recomputing the prefix would make position 200 about 20x dearer.
//   Prints one JSON object: {"model", "position_10_ms", "position_200_ms", "ratio"}.
//
// decode_bench --batches 1,2,4,8,16 [--threads N] MODEL_DIR...
//   The in-process decode limit: steps of `batch` rows at once (rows at position 64),
//   models and batch sizes interleaved over 5 rounds. One JSON object per batch size:
//   {"model", "threads", "batch", "tokens_per_s", "step_ms_p50"}.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <memory>
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

struct Named {
  std::string name;
  std::unique_ptr<ScriptedModel> model;
};

// Models and batch sizes interleaved round-robin over 5 rounds, so that a noisy machine
// slows every variant alike.
void PrintThroughput(std::vector<Named>& models, const std::vector<int64_t>& batches, int threads) {
  std::vector<std::vector<std::vector<double>>> step_ms(
      models.size(), std::vector<std::vector<double>>(batches.size()));
  for (int round = 0; round < 5; ++round) {
    for (size_t m = 0; m < models.size(); ++m) {
      for (size_t i = 0; i < batches.size(); ++i) {
        StepFor(*models[m].model, batches[i], 0.4, step_ms[m][i]);
      }
    }
  }
  for (size_t m = 0; m < models.size(); ++m) {
    for (size_t i = 0; i < batches.size(); ++i) {
      double total_ms = 0;
      for (double ms : step_ms[m][i]) total_ms += ms;
      const double tokens =
          static_cast<double>(batches[i] * static_cast<int64_t>(step_ms[m][i].size()));
      std::cout << "{\"model\": \"" << models[m].name << "\", \"threads\": " << threads
                << ", \"batch\": " << batches[i] << ", \"tokens_per_s\": " << tokens / (total_ms / 1e3)
                << ", \"step_ms_p50\": " << Median(step_ms[m][i]) << "}\n";
    }
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
  std::vector<std::string> model_dirs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--batches" && i + 1 < argc) {
      batches = ParseList(argv[++i]);
    } else if (arg == "--threads" && i + 1 < argc) {
      threads = std::stoi(argv[++i]);
    } else {
      model_dirs.push_back(arg);
    }
  }
  if (model_dirs.empty() || threads < 1 || (batches.empty() && model_dirs.size() != 1)) {
    std::cerr << "usage: decode_bench MODEL_DIR | decode_bench --batches 1,2,4 [--threads N] "
                 "MODEL_DIR... (gpt2-kjv variant directories)\n";
    return 2;
  }
  std::vector<Named> models;
  for (const std::string& dir : model_dirs) {
    auto config = gemserve::LoadVariantConfig(dir);
    if (!config.ok()) {
      std::cerr << config.status().message() << "\n";
      return 1;
    }
    auto model = ScriptedModel::Load(config->weights, c10::Device(c10::kCPU));
    if (!model.ok()) {
      std::cerr << model.status().message() << "\n";
      return 1;
    }
    models.push_back({config->model + "/" + config->variant, std::move(model).value()});
  }
  c10::InferenceMode inference;
  if (!batches.empty()) {
    at::set_num_threads(threads);
    PrintThroughput(models, batches, threads);
    return 0;
  }
  ScriptedModel& model = *models[0].model;
  at::Tensor near = CacheAt(model, 10);
  at::Tensor far = CacheAt(model, 200);
  std::vector<double> at_10, at_200;
  for (int i = 0; i < 60; ++i) {
    at_10.push_back(StepMilliseconds(model, near, 10));
    at_200.push_back(StepMilliseconds(model, far, 200));
  }
  const double a = Median(at_10), b = Median(at_200);
  std::cout << "{\"model\": \"" << models[0].name << "\", \"position_10_ms\": " << a << ", \"position_200_ms\": " << b
            << ", \"ratio\": " << b / a << "}\n";
  return 0;
}
