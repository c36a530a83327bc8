// Bandwidth of the fused GEM operator against torch's own elementwise ops.
//
//   gem_op_bench [google-benchmark flags]   GB/s for every op, size and thread count
//   gem_op_bench --head-to-head FILE.json    the bar: 8 MiB float32, 2 threads, forward,
//                                            out-of-place, best of many interleaved rounds
//
// GB/s counts the bytes an op must move: forward reads x and writes y (2 x size);
// backward reads grad and x and writes grad_in (3 x size).
//
// glibc's default malloc hands freed blocks of a few MiB back to the kernel, so an op
// that holds two temporaries at once pays a page fault per 4 KiB page on every call
// (measured here: torch's x / (x + 1) on 4 MiB took 12 ms instead of 0.2 ms). The
// benchmark keeps freed memory, as a serving process does, so that it measures the
// kernels; blocks over 32 MiB are still mapped fresh on every call (see the 64 MiB and
// 256 MiB columns).

#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <benchmark/benchmark.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <fstream>
#include <functional>
#include <iostream>
#include <limits>
#include <malloc.h>
#include <map>
#include <string>
#include <vector>

#include "server/ops/gem_cpu_kernels.h"
#include "server/ops/gem_op.h"

namespace {

struct Variant {
  const char* slug;
  gem::GemParams params;
};

const std::vector<Variant> kVariants = {{"gem-n1", {1, 1.0, 0.0}},
                                        {"gem-n2", {2, 1.0, 0.0}},
                                        {"egem-n1-e1e-4", {1, 1e-4, 0.0}},
                                        {"segem-n1-e1e-4", {1, 1e-4, 0.01}}};

// GEM N=1 written as separate torch ops: what a model without the fused kernel runs.
at::Tensor gem_as_torch_ops(const at::Tensor& x) {
  const at::Tensor t = x * x;
  return at::relu(x) * (t / (t + 1.0));
}

at::Tensor gem_backward_as_torch_ops(const at::Tensor& grad, const at::Tensor& x) {
  const at::Tensor t = x * x;
  const at::Tensor g = t / (t + 1.0);
  return grad * (g * (3.0 - 2.0 * g)) * (x > 0);
}

// A forward op maps x to a fresh output; a backward op maps (grad, x) to grad_in.
using ForwardOp = std::function<at::Tensor(const at::Tensor&)>;
using BackwardOp = std::function<at::Tensor(const at::Tensor&, const at::Tensor&)>;

std::vector<std::pair<std::string, ForwardOp>> forward_ops(const at::Tensor& scratch) {
  std::vector<std::pair<std::string, ForwardOp>> ops;
  for (const Variant& v : kVariants) {
    ops.emplace_back("fused " + std::string(v.slug), [p = v.params](const at::Tensor& x) {
      return gem::gem(x, p.n, p.eps, p.neg_slope);
    });
  }
  ops.emplace_back("gem-n1 as torch ops", gem_as_torch_ops);
  ops.emplace_back("torch gelu", [](const at::Tensor& x) { return at::gelu(x); });
  ops.emplace_back("torch relu", [](const at::Tensor& x) { return at::relu(x); });
  ops.emplace_back("copy (preallocated)",
                   [scratch](const at::Tensor& x) { return at::Tensor(scratch).copy_(x); });
  return ops;
}

std::vector<std::pair<std::string, BackwardOp>> backward_ops() {
  std::vector<std::pair<std::string, BackwardOp>> ops;
  for (const Variant& v : kVariants) {
    ops.emplace_back("fused " + std::string(v.slug),
                     [p = v.params](const at::Tensor& g, const at::Tensor& x) {
                       return gem::gem_backward(g, x, p.n, p.eps, p.neg_slope);
                     });
  }
  ops.emplace_back("gem-n1 as torch ops", gem_backward_as_torch_ops);
  ops.emplace_back("torch gelu",
                   [](const at::Tensor& g, const at::Tensor& x) { return at::gelu_backward(g, x); });
  ops.emplace_back("torch relu", [](const at::Tensor& g, const at::Tensor& x) {
    return at::threshold_backward(g, x, 0);
  });
  return ops;
}

const std::vector<int64_t> kSizesBytes = {64 << 10,  256 << 10, 1 << 20,  4 << 20,
                                          8 << 20,   16 << 20,  64 << 20, 256 << 20};

std::string size_label(int64_t bytes) {
  return bytes >= (1 << 20) ? std::to_string(bytes >> 20) + "MiB"
                            : std::to_string(bytes >> 10) + "KiB";
}

at::Tensor random_input(int64_t bytes) {
  return at::randn({bytes / static_cast<int64_t>(sizeof(float))}) * 3;
}

void register_benchmarks() {
  for (const int64_t bytes : kSizesBytes) {
    for (const int threads : {1, 2}) {
      const std::string suffix = "/" + size_label(bytes) + "/threads:" + std::to_string(threads);
      const at::Tensor probe = at::empty({bytes / 4});
      for (const auto& [name, op] : forward_ops(probe)) {
        benchmark::RegisterBenchmark(("forward/" + name + suffix).c_str(),
                                     [bytes, threads, op = op](benchmark::State& state) {
                                       at::set_num_threads(threads);
                                       const at::Tensor x = random_input(bytes);
                                       for (auto _ : state) benchmark::DoNotOptimize(op(x));
                                       state.SetBytesProcessed(state.iterations() * 2 * bytes);
                                     });
      }
      for (const auto& [name, op] : backward_ops()) {
        benchmark::RegisterBenchmark(("backward/" + name + suffix).c_str(),
                                     [bytes, threads, op = op](benchmark::State& state) {
                                       at::set_num_threads(threads);
                                       const at::Tensor x = random_input(bytes);
                                       const at::Tensor grad = at::randn_like(x);
                                       for (auto _ : state) benchmark::DoNotOptimize(op(grad, x));
                                       state.SetBytesProcessed(state.iterations() * 3 * bytes);
                                     });
      }
    }
  }
}

// Best time of `kRounds` interleaved calls of every op: each round calls each op once,
// so slow phases of a shared machine hit every op alike.
int head_to_head(const std::string& path) {
  constexpr int64_t kBytes = 8 << 20;
  constexpr int kRounds = 400;
  at::set_num_threads(2);
  const at::Tensor x = random_input(kBytes);
  const auto ops = forward_ops(at::empty_like(x));
  std::map<std::string, double> best_seconds;
  for (int round = 0; round < kRounds; ++round) {
    // Each round starts at a different op, so that no op always follows the same one.
    for (size_t k = 0; k < ops.size(); ++k) {
      const auto& [name, op] = ops[(round + k) % ops.size()];
      const auto start = std::chrono::steady_clock::now();
      at::Tensor y = op(x);
      const std::chrono::duration<double> elapsed = std::chrono::steady_clock::now() - start;
      auto [it, inserted] = best_seconds.emplace(name, elapsed.count());
      if (!inserted) it->second = std::min(it->second, elapsed.count());
    }
  }
  std::ofstream out(path);
  out << "{\"bytes\": " << kBytes << ", \"threads\": 2, \"rounds\": " << kRounds
      << ", \"instruction_set\": \"" << gem::cpu::instruction_set() << "\", \"gb_per_s\": {";
  const char* separator = "";
  for (const auto& [name, seconds] : best_seconds) {
    const double gbps = 2.0 * kBytes / seconds / 1e9;
    out << separator << "\"" << name << "\": " << gbps;
    std::cout << name << ": " << gbps << " GB/s\n";
    separator = ", ";
  }
  out << "}}\n";
  return out ? 0 : 1;
}

}  // namespace

// Keeps freed memory in the process: blocks up to 32 MiB (glibc's largest mmap
// threshold) come from the heap, and the heap is never trimmed.
static void keep_freed_memory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, std::numeric_limits<int>::max());
}

int main(int argc, char** argv) {
  keep_freed_memory();
  if (argc == 3 && std::strcmp(argv[1], "--head-to-head") == 0) return head_to_head(argv[2]);
  register_benchmarks();
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 2;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  return 0;
}
