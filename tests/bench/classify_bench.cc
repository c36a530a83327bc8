// classify_bench [--threads N] [--workers W] [--seconds S] [--batches 1,2,4,...] MODEL_DIR...
//
// The in-process limit for Classify: each model's forward() called directly through
// LibTorch from C++ (as gem-server's workers call it, under InferenceMode), batch by
// batch, by W threads at once, each with its own copy of the model and N intra-op
// threads. Batch sizes and models are interleaved round-robin over several rounds so a
// noisy machine slows them alike. Prints one JSON object per (model, batch):
// {"model", "threads", "workers", "batch", "images_per_s", "batch_ms_p50"}.

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <iostream>
#include <map>
#include <memory>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "server/engine/model_config.h"
#include "server/engine/scripted_model.h"

namespace {

using Clock = std::chrono::steady_clock;
using gemserve::ScriptedModel;

struct Options {
  int threads = 1;
  int workers = 1;
  double seconds = 6;  // per (model, batch), spread over the rounds
  int rounds = 6;
  std::vector<int64_t> batches = {1, 2, 4, 8, 16, 32, 64};
  std::vector<std::string> model_dirs;
};

struct Loaded {
  std::string name;
  std::vector<std::unique_ptr<ScriptedModel>> copies;  // one per worker
  gemserve::ImageSpec image;
};

struct Tally {
  int64_t images = 0;
  double seconds = 0;
  std::vector<double> batch_ms;
};

std::vector<int64_t> ParseList(const std::string& text) {
  std::vector<int64_t> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) out.push_back(std::stoll(item));
  return out;
}

bool ParseArgs(int argc, char** argv, Options* options) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    const bool has_value = i + 1 < argc;
    if (arg == "--threads" && has_value) {
      options->threads = std::stoi(argv[++i]);
    } else if (arg == "--workers" && has_value) {
      options->workers = std::stoi(argv[++i]);
    } else if (arg == "--seconds" && has_value) {
      options->seconds = std::stod(argv[++i]);
    } else if (arg == "--batches" && has_value) {
      options->batches = ParseList(argv[++i]);
    } else if (arg.rfind("--", 0) == 0) {
      return false;
    } else {
      options->model_dirs.push_back(arg);
    }
  }
  return !options->model_dirs.empty() && !options->batches.empty() && options->threads > 0 &&
         options->workers > 0;
}

// `batch`-sized forwards of random images on `model` for about `seconds`, after warm-up.
void ForwardFor(ScriptedModel& model, const gemserve::ImageSpec& image, int64_t batch,
                double seconds, Tally& tally) {
  c10::InferenceMode inference;
  const at::Tensor input = at::randn({batch, image.channels, image.height, image.width});
  for (int run = 0; run < ScriptedModel::WarmupRuns(); ++run) model.Forward(input);
  const Clock::time_point start = Clock::now();
  double elapsed = 0;
  while (elapsed < seconds) {
    const Clock::time_point before = Clock::now();
    model.Forward(input);
    const Clock::time_point after = Clock::now();
    tally.batch_ms.push_back(std::chrono::duration<double, std::milli>(after - before).count());
    tally.images += batch;
    elapsed = std::chrono::duration<double>(after - start).count();
  }
  tally.seconds = elapsed;
}

// Every worker runs ForwardFor on its own copy at once; images/s adds up over workers.
void Measure(Loaded& m, int64_t batch, double seconds, int threads, Tally& total) {
  std::vector<Tally> per_worker(m.copies.size());
  std::vector<std::thread> workers;
  for (size_t w = 0; w < m.copies.size(); ++w) {
    workers.emplace_back([&, w] {
      at::set_num_threads(threads);
      ForwardFor(*m.copies[w], m.image, batch, seconds, per_worker[w]);
    });
  }
  for (std::thread& t : workers) t.join();
  double rate = 0;
  for (const Tally& t : per_worker) {
    rate += static_cast<double>(t.images) / t.seconds;
    total.batch_ms.insert(total.batch_ms.end(), t.batch_ms.begin(), t.batch_ms.end());
  }
  total.images += static_cast<int64_t>(rate * seconds);
  total.seconds += seconds;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  Options options;
  if (!ParseArgs(argc, argv, &options)) {
    std::cerr << "usage: classify_bench [--threads N] [--workers W] [--seconds S] [--batches 1,2,4] "
                 "MODEL_DIR...\n";
    return 2;
  }
  std::vector<Loaded> models;
  for (const std::string& dir : options.model_dirs) {
    auto config = gemserve::LoadVariantConfig(dir);
    if (!config.ok()) {
      std::cerr << config.status().message() << "\n";
      return 1;
    }
    Loaded loaded{config->model + "/" + config->variant, {}, config->image};
    for (int w = 0; w < options.workers; ++w) {
      auto model = ScriptedModel::Load(config->weights, c10::Device(c10::kCPU));
      if (!model.ok()) {
        std::cerr << model.status().message() << "\n";
        return 1;
      }
      loaded.copies.push_back(std::move(model).value());
    }
    models.push_back(std::move(loaded));
  }
  std::map<std::pair<size_t, int64_t>, Tally> tallies;
  const double slice = options.seconds / options.rounds;
  for (int round = 0; round < options.rounds; ++round) {
    std::cerr << "classify_bench: round " << round + 1 << "/" << options.rounds << "\n";
    for (size_t m = 0; m < models.size(); ++m) {
      for (int64_t batch : options.batches) {
        Measure(models[m], batch, slice, options.threads, tallies[{m, batch}]);
      }
    }
  }
  for (const auto& [where, tally] : tallies) {
    std::cout << "{\"model\": \"" << models[where.first].name << "\", \"threads\": " << options.threads
              << ", \"workers\": " << options.workers << ", \"batch\": " << where.second
              << ", \"images_per_s\": " << static_cast<double>(tally.images) / tally.seconds
              << ", \"batch_ms_p50\": " << Median(tally.batch_ms) << "}\n";
  }
  return 0;
}
