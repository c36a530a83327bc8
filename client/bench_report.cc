#include "client/bench_report.h"

#include <algorithm>
#include <iomanip>
#include <map>
#include <sstream>

namespace gemserve::client {
namespace {

nlohmann::json DistributionJson(std::vector<double> values) {
  const Distribution d = Summarize(std::move(values));
  return {{"p50", d.p50}, {"p90", d.p90}, {"p99", d.p99}, {"max", d.max}};
}

// requests, throughput_rps and latency_ms of `samples`, plus the generation figures when
// `generate`.
nlohmann::json SummaryJson(const std::vector<RequestSample>& samples, double wall_s,
                           bool generate) {
  std::vector<double> latency, ttft;
  for (const RequestSample& s : samples) {
    latency.push_back(s.latency_ms);
    if (s.tokens > 0) ttft.push_back(s.ttft_ms);  // no first token, no time to it
  }
  nlohmann::json out = {
      {"requests", samples.size()},
      {"throughput_rps", wall_s > 0 ? static_cast<double>(samples.size()) / wall_s : 0.0},
      {"latency_ms", DistributionJson(std::move(latency))}};
  if (generate) {
    const GenerationRates rates = ComputeGenerationRates(samples, wall_s);
    out["ttft_ms"] = DistributionJson(std::move(ttft));
    out["inter_token_ms"] = DistributionJson(InterTokenMs(samples));
    out["tokens_per_s"] = rates.tokens_per_s;
    out["tokens_per_s_per_stream"] = rates.tokens_per_s_per_stream;
  }
  return out;
}

std::string Fixed(double value, int digits) {
  std::ostringstream out;
  out << std::fixed << std::setprecision(digits) << value;
  return out.str();
}

std::string Fixed(const nlohmann::json& value, int digits) {
  return Fixed(value.get<double>(), digits);
}

}  // namespace

nlohmann::json BenchReportJson(const BenchRun& run, const std::vector<RequestSample>& samples,
                               const ErrorTally& errors) {
  const bool generate = run.rpc == "Generate";
  nlohmann::json report = SummaryJson(samples, run.wall_s, generate);
  report["rpc"] = run.rpc;
  report["mode"] = run.open_loop ? "open" : "closed";
  if (run.open_loop) {
    report["rate"] = run.rate;
    // Arrivals over the time they were scheduled in: duration_s, or less after an early stop.
    const double sending_s = std::min(run.duration_s, run.wall_s);
    report["offered_rps"] = sending_s > 0 ? static_cast<double>(run.scheduled) / sending_s : 0.0;
    report["seed"] = run.seed;
    report["max_in_flight"] = run.max_in_flight;
    report["scheduled"] = run.scheduled;
    report["unsent"] = run.unsent;
    report["send_lag_ms"] = DistributionJson(run.send_lag_ms);
  } else {
    report["concurrency"] = run.concurrency;
  }
  report["duration_s"] = run.duration_s;
  report["wall_s"] = run.wall_s;
  report["routing_keys"] = run.routing_keys;
  report["errors"] = errors.total();
  report["errors_by_code"] = errors.by_code();
  report["first_error_messages"] = errors.first_messages();
  report["error_latency_ms"] = DistributionJson(errors.latencies_ms());
  report["unfinished"] = run.unfinished;
  report["stopped_early"] = run.stopped_early;

  std::map<std::string, std::vector<RequestSample>> by_variant;
  for (const RequestSample& s : samples) by_variant[s.variant].push_back(s);
  report["variants"] = nlohmann::json::object();
  for (const auto& [variant, list] : by_variant) {
    report["variants"][variant] = SummaryJson(list, run.wall_s, generate);
  }
  return report;
}

void PrintBenchReport(const nlohmann::json& report, std::ostream& out) {
  const bool open = report["mode"] == "open";
  out << report["rpc"].get<std::string>() << " for " << report["duration_s"] << " s, ";
  if (open) {
    out << "open loop at " << report["rate"] << " req/s (offered "
        << Fixed(report["offered_rps"], 1) << ")";
  } else {
    out << "closed loop, concurrency " << report["concurrency"];
  }
  out << ": " << report["requests"] << " requests, " << report["errors"] << " errors, "
      << Fixed(report["throughput_rps"], 1) << " req/s achieved";
  if (report["routing_keys"] > 0) out << ", " << report["routing_keys"] << " routing keys";
  out << "\n";
  if (report["errors"] > 0) {
    out << "  errors:";
    for (const auto& [code, n] : report["errors_by_code"].items()) out << " " << code << " " << n;
    out << "\n";
  }
  if (open) {
    const nlohmann::json& lag = report["send_lag_ms"];
    out << "  sent late by p50 " << Fixed(lag["p50"], 2) << " ms, p99 " << Fixed(lag["p99"], 2)
        << " ms, max " << Fixed(lag["max"], 2) << " ms (counted in the latency)\n";
  }
  if (open && report["unsent"] > 0) {
    out << "  " << report["unsent"] << " of " << report["scheduled"]
        << " scheduled requests were not sent: the client fell behind (at --max-in-flight "
        << report["max_in_flight"] << ", or short of CPU)\n";
  }
  if (report["unfinished"] > 0) {
    out << "  " << report["unfinished"]
        << " requests still in flight after the drain time were cancelled (not counted)\n";
  }
  const auto latency = [](const nlohmann::json& figures) {
    const nlohmann::json& l = figures["latency_ms"];
    return "latency p50 " + Fixed(l["p50"], 2) + " ms, p90 " + Fixed(l["p90"], 2) + " ms, p99 " +
           Fixed(l["p99"], 2) + " ms, max " + Fixed(l["max"], 2) + " ms";
  };
  const auto generation = [](const nlohmann::json& figures) -> std::string {
    if (!figures.contains("ttft_ms")) return "";
    return ", ttft p50 " + Fixed(figures["ttft_ms"]["p50"], 2) + " ms, inter-token p50 " +
           Fixed(figures["inter_token_ms"]["p50"], 2) + " ms, " +
           Fixed(figures["tokens_per_s"], 1) + " tokens/s (" +
           Fixed(figures["tokens_per_s_per_stream"], 1) + " per stream)";
  };
  if (report["requests"] > 0) out << "  all: " << latency(report) << generation(report) << "\n";
  const double requests = report["requests"].get<double>();
  for (const auto& [variant, v] : report["variants"].items()) {
    const double share = requests > 0 ? 100.0 * v["requests"].get<double>() / requests : 0;
    out << "  " << variant << ": " << v["requests"] << " requests (" << Fixed(share, 1)
        << "%), " << latency(v) << generation(v) << "\n";
  }
}

std::string ProgressLine(double elapsed_s, double total_s, uint64_t successes, uint64_t errors,
                         double requests_per_s, size_t in_flight) {
  std::ostringstream out;
  out << "bench: " << Fixed(elapsed_s, 0) << "/" << Fixed(total_s, 0) << " s, " << successes
      << " ok, " << errors << " errors, " << Fixed(requests_per_s, 1) << " req/s, " << in_flight
      << " in flight";
  return out.str();
}

}  // namespace gemserve::client
