// variant_latency_bench [--steps N] [--batch B] REFERENCE_DIR MODEL_DIR...
//
// Each variant's model latency relative to a reference variant (relu) of the same model,
// measured so that a noisy machine cannot tilt it: the variants take turns, one forward
// each (Classify: a batch of B images; Generate: one decode step of B rows at position
// 64), the order rotated every step, 1 intra-op thread. Forwards a few milliseconds apart
// share the machine's moment, so every step gives a paired ratio t_variant / t_reference;
// the median of N such ratios, with a 95% confidence interval from order statistics,
// is the figure. Prints one JSON object per directory:
// {"model", "batch", "steps", "ms_p50", "ratio_p50", "ratio_ci_low", "ratio_ci_high"}.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <string>
#include <vector>

#include "server/engine/model_config.h"
#include "server/engine/scripted_model.h"

namespace {

using Clock = std::chrono::steady_clock;
using gemserve::ScriptedModel;

// One variant, ready to run its forward again and again on fixed input.
struct Contender {
  std::string name;
  gemserve::Task task;
  std::unique_ptr<ScriptedModel> model;
  at::Tensor input;      // classify: images; generate: one token per row
  at::Tensor positions;  // generate only
  at::Tensor cache;      // generate only
  std::vector<double> ms;

  double RunOnce() {
    const Clock::time_point start = Clock::now();
    if (task == gemserve::Task::kClassify) {
      model->Forward(input);
    } else {
      model->Decode(input, positions, cache);
    }
    return std::chrono::duration<double, std::milli>(Clock::now() - start).count();
  }
};

gemserve::StatusOr<Contender> Prepare(const std::string& dir, int64_t batch) {
  auto config = gemserve::LoadVariantConfig(dir);
  if (!config.ok()) return config.status();
  auto model = ScriptedModel::Load(config->weights, c10::Device(c10::kCPU));
  if (!model.ok()) return model.status();
  Contender c{config->model + "/" + config->variant, config->task, std::move(model).value(),
              {}, {}, {}, {}};
  if (c.task == gemserve::Task::kClassify) {
    const gemserve::ImageSpec& image = config->image;
    c.input = at::randn({batch, image.channels, image.height, image.width});
  } else {
    constexpr int64_t kPosition = 64;
    c.input = at::full({batch, 1}, 42, at::kLong);
    c.positions = at::full({batch}, kPosition, at::kLong);
    c.cache = c.model->NewCache(batch);
  }
  for (int run = 0; run < ScriptedModel::WarmupRuns(); ++run) c.RunOnce();
  return c;
}

// The q-quantile of `v` (sorted in place), by nearest rank clamped to the ends.
double Quantile(std::vector<double>& v, double q) {
  std::sort(v.begin(), v.end());
  const double rank = std::round(q * static_cast<double>(v.size() - 1));
  return v[static_cast<size_t>(std::clamp(rank, 0.0, static_cast<double>(v.size() - 1)))];
}

void PrintFigures(const Contender& c, const Contender& reference, int64_t batch) {
  std::vector<double> ratios;
  for (size_t i = 0; i < c.ms.size(); ++i) ratios.push_back(c.ms[i] / reference.ms[i]);
  std::vector<double> ms = c.ms;
  // The median's 95% interval: ranks n/2 -+ 1.96 sqrt(n)/2 of the sorted ratios.
  const double n = static_cast<double>(ratios.size());
  const double half_width = 1.96 * std::sqrt(n) / 2 / (n - 1);
  std::cout << "{\"model\": \"" << c.name << "\", \"batch\": " << batch
            << ", \"steps\": " << c.ms.size() << ", \"ms_p50\": " << Quantile(ms, 0.5)
            << ", \"ratio_p50\": " << Quantile(ratios, 0.5)
            << ", \"ratio_ci_low\": " << Quantile(ratios, 0.5 - half_width)
            << ", \"ratio_ci_high\": " << Quantile(ratios, 0.5 + half_width) << "}\n";
}

}  // namespace

int main(int argc, char** argv) {
  int64_t steps = 600;
  int64_t batch = 1;
  std::vector<std::string> dirs;
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--steps" && i + 1 < argc) {
      steps = std::stoll(argv[++i]);
    } else if (arg == "--batch" && i + 1 < argc) {
      batch = std::stoll(argv[++i]);
    } else {
      dirs.push_back(arg);
    }
  }
  if (dirs.size() < 2 || steps < 10 || batch < 1) {
    std::cerr << "usage: variant_latency_bench [--steps N>=10] [--batch B] REFERENCE_DIR "
                 "MODEL_DIR... (variants of one model)\n";
    return 2;
  }
  at::set_num_threads(1);
  c10::InferenceMode inference;
  std::vector<Contender> contenders;
  for (const std::string& dir : dirs) {
    auto c = Prepare(dir, batch);
    if (!c.ok()) {
      std::cerr << c.status().message() << "\n";
      return 1;
    }
    contenders.push_back(std::move(c).value());
  }
  for (int64_t step = 0; step < steps; ++step) {
    for (size_t k = 0; k < contenders.size(); ++k) {
      Contender& c = contenders[(k + static_cast<size_t>(step)) % contenders.size()];
      c.ms.push_back(c.RunOnce());
    }
    if ((step + 1) % 100 == 0) {
      std::cerr << "variant_latency_bench: " << step + 1 << "/" << steps << " steps\n";
    }
  }
  for (const Contender& c : contenders) PrintFigures(c, contenders.front(), batch);
  return 0;
}
