#pragma once

// What `gem-client bench` prints: the JSON report of DESIGN.md "gem-client bench --json",
// its text rendering, and the progress line. Pure functions of what a run observed;
// unit-tested in tests/client/bench_report_test.cc.

#include <cstdint>
#include <nlohmann/json.hpp>
#include <ostream>
#include <string>
#include <vector>

#include "client/bench_stats.h"

namespace gemserve::client {

// How a bench run was set up, and what happened besides its successful requests.
struct BenchRun {
  std::string rpc;             // "Classify" or "Generate"
  bool open_loop = false;      // false: closed loop
  int concurrency = 0;         // closed loop: requests in flight, one per client
  double rate = 0;             // open loop: the requested arrivals per second
  uint64_t seed = 0;           // open loop: the arrival schedule's seed
  int max_in_flight = 0;       // open loop: the bound on requests in flight
  double duration_s = 0;       // --duration: requests are sent only within it
  double wall_s = 0;           // from the start to the last completion or cancellation
  int routing_keys = 0;
  uint64_t scheduled = 0;      // open loop: arrivals scheduled within duration_s
  uint64_t unsent = 0;         // open loop: of those, not sent by the end because the client
                               // fell behind (at max_in_flight, or short of CPU)
  uint64_t unfinished = 0;     // still in flight when the drain time ran out: cancelled, and
                               // neither a success nor an error
  bool stopped_early = false;  // every request failed (ShouldGiveUp)
  std::vector<double> send_lag_ms;  // open loop: how late each request was sent after its
                                    // scheduled time (the in-flight bound, or a busy client)
};

// The report: {"rpc", "mode", "concurrency" | "rate" + "offered_rps" (scheduled arrivals /
// duration_s) + "seed", "max_in_flight", "scheduled", "unsent", "send_lag_ms", "duration_s",
// "wall_s", "requests", "errors", "errors_by_code", "first_error_messages",
// "error_latency_ms" (how long the failures took),
// "throughput_rps", "latency_ms", "variants": {VARIANT: {...}}} plus, for Generate,
// "ttft_ms", "inter_token_ms", "tokens_per_s" and "tokens_per_s_per_stream" at the top and
// per variant. `samples` are the successful requests; rates are over run.wall_s.
nlohmann::json BenchReportJson(const BenchRun& run, const std::vector<RequestSample>& samples,
                               const ErrorTally& errors);

// `report` (from BenchReportJson) as a few lines of text.
void PrintBenchReport(const nlohmann::json& report, std::ostream& out);

// "bench: 3/10 s, 1234 ok, 2 errors, 410.0 req/s, 3 in flight": `requests_per_s` is the
// successes of the last interval over its length.
std::string ProgressLine(double elapsed_s, double total_s, uint64_t successes, uint64_t errors,
                         double requests_per_s, size_t in_flight);

}  // namespace gemserve::client
