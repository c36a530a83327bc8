#pragma once

// The one place that knows models are TorchScript files: loading, device placement and
// the methods the engine calls. A later move to torch.export changes this file only.
//
// Not thread-safe: each ScriptedModel is driven by one engine worker thread.

#include <ATen/core/Tensor.h>
#include <c10/core/Device.h>

#include <filesystem>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "server/engine/status.h"

namespace torch::jit {
struct Module;
}

namespace gemserve {

// One activation site's statistics over a batch, as an exported statistics method returns
// them (docs/TELEMETRY.md): the fraction of output elements exactly 0, a per-unit
// "some output was non-zero" mask (bool [units]) and the input's mean and population std.
struct SiteStatistics {
  std::string site;
  double zero_fraction = 0;
  at::Tensor nonzero;
  double input_mean = 0;
  double input_std = 0;
};

class ScriptedModel {
 public:
  // Loads `path` onto `device` in eval mode. NotFound if the file is missing,
  // InvalidArgument if LibTorch cannot read it (the message says why).
  static StatusOr<std::unique_ptr<ScriptedModel>> Load(const std::filesystem::path& path,
                                                       const c10::Device& device);
  // `count` (>= 1) independent copies of `path`, one per thread that will drive one.
  static StatusOr<std::vector<std::unique_ptr<ScriptedModel>>> LoadCopies(
      const std::filesystem::path& path, const c10::Device& device, int count);
  ~ScriptedModel();
  ScriptedModel(const ScriptedModel&) = delete;
  ScriptedModel& operator=(const ScriptedModel&) = delete;

  const c10::Device& device() const { return device_; }

  // How many calls with the same input shapes a method needs before it runs at full
  // speed: TorchScript's profiling executor profiles the first getNumProfiledRuns()
  // calls and optimizes on the next (measured: the first Classify after a single warm-up
  // call took ~100 ms, the following ones ~7.5 ms). Warm-ups repeat this many times.
  static int WarmupRuns();

  // forward(x) -> logits. Throws c10::Error on a LibTorch failure.
  at::Tensor Forward(const at::Tensor& input);

  // GPT-2 incremental decoding (see models/gemmodels/gpt2.py):
  // new_cache(rows) -> zero kv [L, 2, rows, H, P, D].
  at::Tensor NewCache(int64_t rows);
  // prefill(tokens [B, T]) -> (logits [B, T, V], kv for positions 0..T-1).
  std::pair<at::Tensor, at::Tensor> Prefill(const at::Tensor& tokens);
  // decode(tokens [B, 1], positions [B], kv) -> logits [B, 1, V]; kv is updated in place.
  at::Tensor Decode(const at::Tensor& tokens, const at::Tensor& positions, at::Tensor& cache);

  // Activation telemetry: `method`(input) -> (output, Dict[site, Dict[str, Tensor]]); the
  // sites in the dict's order. InvalidArgument when the model has no such method or it
  // returns anything else (the message says what); a LibTorch failure: Internal.
  StatusOr<std::vector<SiteStatistics>> ActivationStatistics(const std::string& method,
                                                             const at::Tensor& input);

  // Load() applies this to every model on the CPU. LibTorch 1.13 runs a 2-D convolution
  // of one small image (batch 1, under 20,480 input values, the shape of every ResNet-20
  // convolution on 28x28) on its reference kernel (im2col + gemm) and hands batches of 2
  // and more to oneDNN: a batch of 1 cost as much as a batch of 2 (classify_bench, 1 thread
  // x 2: 1,300 against 2,650 images/s). This sends forward()'s convolutions to oneDNN at
  // every batch size, where oneDNN takes them as they are: float32 weights frozen into the
  // graph (torch.jit.freeze) and integer padding. Others, and other methods (telemetry's
  // activation_statistics), stay as exported. Public for its test.
  static void RouteConvolutionsThroughOneDnn(torch::jit::Module& module, const c10::Device& device);

 private:
  ScriptedModel(std::unique_ptr<torch::jit::Module> module, c10::Device device);

  std::unique_ptr<torch::jit::Module> module_;
  c10::Device device_;
};

}  // namespace gemserve
