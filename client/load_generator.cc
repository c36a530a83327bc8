#include "client/load_generator.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <map>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <vector>

#include "gemserve/v1/inference.grpc.pb.h"

namespace gemserve::client {
namespace {

using Clock = std::chrono::steady_clock;
using v1::Inference;

// One finished request.
struct Sample {
  std::string variant;
  bool ok = false;
  double latency_ms = 0;
  double ttft_ms = 0;       // generate: first streamed message
  int tokens = 0;           // generate: completion tokens
};

double Milliseconds(Clock::duration d) { return std::chrono::duration<double, std::milli>(d).count(); }

bool ParseDuration(const std::string& text, double* seconds) {
  std::istringstream in(text);
  double value = 0;
  std::string unit;
  if (!(in >> value) || !(in >> unit) || value <= 0) return false;
  const double scale = unit == "ms" ? 1e-3 : unit == "s" ? 1 : unit == "m" ? 60 : -1;
  *seconds = value * scale;
  return scale > 0;
}

// The model's task from ListModels: "classify", "generate", or "" when unknown.
std::string TaskOf(Inference::Stub& stub, const std::string& model) {
  grpc::ClientContext context;
  v1::ListModelsResponse response;
  if (!stub.ListModels(&context, {}, &response).ok()) return "";
  for (const auto& m : response.models()) {
    if (m.name() == model) return m.task();
  }
  return "";
}

Sample ClassifyOnce(Inference::Stub& stub, const v1::ClassifyRequest& request) {
  grpc::ClientContext context;
  v1::ClassifyResponse response;
  const Clock::time_point start = Clock::now();
  const grpc::Status status = stub.Classify(&context, request, &response);
  Sample sample;
  sample.latency_ms = Milliseconds(Clock::now() - start);
  sample.ok = status.ok();
  sample.variant = response.variant();
  return sample;
}

Sample GenerateOnce(Inference::Stub& stub, const v1::GenerateRequest& request) {
  grpc::ClientContext context;
  const Clock::time_point start = Clock::now();
  auto reader = stub.Generate(&context, request);
  v1::GenerateResponse message;
  Sample sample;
  bool first = true;
  while (reader->Read(&message)) {
    if (first) sample.ttft_ms = Milliseconds(Clock::now() - start);
    first = false;
    sample.variant = message.variant();
    if (message.has_usage()) sample.tokens = message.usage().completion_tokens();
  }
  sample.ok = reader->Finish().ok();
  sample.latency_ms = Milliseconds(Clock::now() - start);
  return sample;
}

// The routing key of the i-th request: "key-<i mod keys>", or "" (none) when keys is 0.
std::string RoutingKey(int keys, uint64_t i) {
  if (keys <= 0) return "";
  return "key-" + std::to_string(i % static_cast<uint64_t>(keys));
}

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const auto index = static_cast<size_t>(q * static_cast<double>(values.size() - 1) + 0.5);
  return values[std::min(index, values.size() - 1)];
}

nlohmann::json Distribution(const std::vector<double>& values) {
  return {{"p50", Percentile(values, 0.5)},
          {"p90", Percentile(values, 0.9)},
          {"p99", Percentile(values, 0.99)},
          {"max", values.empty() ? 0 : *std::max_element(values.begin(), values.end())}};
}

// requests, throughput and latency of `samples` (successful ones), plus generation
// figures when `generate`.
nlohmann::json Summary(const std::vector<Sample>& samples, double seconds, bool generate) {
  std::vector<double> latency, ttft, inter_token;
  double tokens = 0;
  double generating_ms = 0;
  for (const Sample& s : samples) {
    if (!s.ok) continue;
    latency.push_back(s.latency_ms);
    if (!generate) continue;
    ttft.push_back(s.ttft_ms);
    tokens += s.tokens;
    generating_ms += s.latency_ms;
    if (s.tokens > 1) inter_token.push_back((s.latency_ms - s.ttft_ms) / (s.tokens - 1));
  }
  nlohmann::json out = {{"requests", latency.size()},
                        {"throughput_rps", static_cast<double>(latency.size()) / seconds},
                        {"latency_ms", Distribution(latency)}};
  if (generate) {
    out["ttft_ms"] = Distribution(ttft);
    out["inter_token_ms"] = Distribution(inter_token);
    out["tokens_per_s"] = tokens / seconds;  // aggregate over the wall time
    out["tokens_per_s_per_stream"] = generating_ms > 0 ? tokens / (generating_ms / 1e3) : 0;
  }
  return out;
}

void PrintTable(const nlohmann::json& report) {
  std::cout << report["rpc"].get<std::string>() << " for " << report["duration_s"] << " s: "
            << report["requests"] << " requests, " << report["errors"] << " errors, "
            << std::fixed << std::setprecision(1) << report["throughput_rps"].get<double>()
            << std::defaultfloat << " req/s";
  if (report["routing_keys"] > 0) std::cout << ", " << report["routing_keys"] << " routing keys";
  std::cout << "\n";
  for (const auto& [variant, v] : report["variants"].items()) {
    const double share = 100.0 * v["requests"].get<double>() / report["requests"].get<double>();
    std::cout << "  " << variant << ": " << v["requests"] << " requests (" << std::fixed
              << std::setprecision(1) << share << "%), latency p50 " << std::setprecision(2)
              << v["latency_ms"]["p50"].get<double>() << " ms, p99 "
              << v["latency_ms"]["p99"].get<double>() << " ms" << std::defaultfloat;
    if (v.contains("ttft_ms")) {
      std::cout << ", ttft p50 " << v["ttft_ms"]["p50"] << " ms, inter-token p50 "
                << v["inter_token_ms"]["p50"] << " ms, " << v["tokens_per_s"] << " tokens/s";
    }
    std::cout << "\n";
  }
}

}  // namespace

int RunBench(const std::string& server, const BenchArgs& args) {
  double seconds = 0;
  if (!ParseDuration(args.duration, &seconds)) {
    std::cerr << "gem-client: --duration must look like 500ms, 10s or 1m\n";
    return 2;
  }
  auto channel = grpc::CreateChannel(server, grpc::InsecureChannelCredentials());
  auto stub = Inference::NewStub(channel);
  const std::string task = TaskOf(*stub, args.model);
  if (task.empty()) {
    std::cerr << "gem-client: cannot list models on " << server << " or no model \"" << args.model
              << "\"\n";
    return 1;
  }
  const bool generate = task == "generate";
  v1::ClassifyRequest classify;
  v1::GenerateRequest generation;
  if (generate) {
    generation.set_model(args.model);
    generation.set_variant(args.variant);
    generation.set_prompt(args.prompt);
    generation.set_max_new_tokens(args.max_tokens);
  } else {
    std::ifstream in(args.image, std::ios::binary);
    if (args.image.empty() || !in) {
      std::cerr << "gem-client: bench on a classify model needs --image FILE (readable)\n";
      return 2;
    }
    std::stringstream bytes;
    bytes << in.rdbuf();
    classify.set_model(args.model);
    classify.set_variant(args.variant);
    classify.set_image(bytes.str());
  }

  std::mutex mutex;
  std::vector<Sample> samples;
  const Clock::time_point end =
      Clock::now() + std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  std::atomic<uint64_t> sent{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < args.concurrency; ++c) {
    // Each client sends its own copy of the request, to set the routing key.
    clients.emplace_back([&, classify, generation]() mutable {
      auto client_stub = Inference::NewStub(channel);
      while (Clock::now() < end) {
        const std::string key = RoutingKey(args.routing_keys, sent++);
        classify.set_routing_key(key);
        generation.set_routing_key(key);
        Sample s = generate ? GenerateOnce(*client_stub, generation)
                            : ClassifyOnce(*client_stub, classify);
        std::lock_guard<std::mutex> lock(mutex);
        samples.push_back(std::move(s));
      }
    });
  }
  for (std::thread& t : clients) t.join();

  std::map<std::string, std::vector<Sample>> by_variant;
  size_t errors = 0;
  for (const Sample& s : samples) {
    if (s.ok) by_variant[s.variant].push_back(s);
    errors += !s.ok;
  }
  nlohmann::json report = Summary(samples, seconds, generate);
  report["rpc"] = generate ? "Generate" : "Classify";
  report["duration_s"] = seconds;
  report["routing_keys"] = args.routing_keys;
  report["errors"] = errors;
  report["variants"] = nlohmann::json::object();
  for (const auto& [variant, list] : by_variant) {
    report["variants"][variant] = Summary(list, seconds, generate);
  }
  if (args.json) {
    std::cout << report.dump() << "\n";
  } else {
    PrintTable(report);
  }
  return errors == samples.size() ? 1 : 0;
}

}  // namespace gemserve::client
