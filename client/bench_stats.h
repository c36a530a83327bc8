#pragma once

// The arithmetic of `gem-client bench`, free of gRPC so that it is unit-tested
// (tests/client/bench_stats_test.cc): the open loop's Poisson arrival schedule, latency
// percentiles, the error tally by status code, the generation rates, and the rule that
// stops a run whose every request fails.

#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

namespace gemserve::client {

// The longest run a bench accepts: a day.
constexpr double kMaxDurationSeconds = 24 * 60 * 60;

// Parses "500ms", "10s" or "1m" (a number, then a unit) into seconds. Returns false for
// anything else, and for values that are not > 0 or above kMaxDurationSeconds.
bool ParseDuration(const std::string& text, double* seconds);

// Arrival times of a Poisson process of `rate_per_s` arrivals per second: independent
// exponential gaps of mean 1/rate from a generator seeded with `seed`, so that a seed gives
// the same schedule on every run (with the same C++ standard library). rate_per_s must be
// finite and > 0.
class PoissonArrivals {
 public:
  PoissonArrivals(double rate_per_s, uint64_t seed);

  // The next arrival, in seconds since the start; never decreases.
  double Next();

 private:
  std::mt19937_64 engine_;
  std::exponential_distribution<double> gap_;
  double time_s_ = 0;
};

// The q-quantile (0 < q <= 1) of `values` by nearest rank: the ceil(q * n)-th smallest
// value. 0 when `values` is empty.
double Percentile(std::vector<double> values, double q);

struct Distribution {
  double p50 = 0, p90 = 0, p99 = 0, max = 0;  // 0 when nothing was observed
};

Distribution Summarize(std::vector<double> values);

// Failed requests counted by gRPC status code name ("RESOURCE_EXHAUSTED"), keeping the
// first message seen for each code and how long each failure took to arrive (a server
// that sheds load should refuse at once). Not thread-safe: the caller locks.
class ErrorTally {
 public:
  // Counts one failure that took `latency_ms`. Returns true when it is the first of its code.
  bool Add(const std::string& code, const std::string& message, double latency_ms);

  uint64_t total() const { return total_; }
  const std::vector<double>& latencies_ms() const { return latencies_ms_; }
  const std::map<std::string, uint64_t>& by_code() const { return by_code_; }
  const std::map<std::string, std::string>& first_messages() const { return first_messages_; }

  // "NOT_FOUND 20, UNAVAILABLE 1" (codes in name order); "" when there were none.
  std::string Describe() const;

 private:
  uint64_t total_ = 0;
  std::map<std::string, uint64_t> by_code_;
  std::map<std::string, std::string> first_messages_;
  std::vector<double> latencies_ms_;
};

// One successful request.
struct RequestSample {
  std::string variant;
  double latency_ms = 0;  // from its scheduled send time to the end of the RPC
  double ttft_ms = 0;     // generate: from its scheduled send time to its first token
  int tokens = 0;         // generate: completion tokens received
};

// Token rates of successful Generate requests.
struct GenerationRates {
  double tokens_per_s = 0;             // all tokens / wall time: what the server delivered
  double tokens_per_s_per_stream = 0;  // mean over requests of tokens / its latency: what one
                                       // client sees
};

// The rates of `samples` over a run of `wall_s` seconds (> 0).
GenerationRates ComputeGenerationRates(const std::vector<RequestSample>& samples, double wall_s);

// Mean time between tokens of each request with 2 or more tokens:
// (latency - ttft) / (tokens - 1), one value per request.
std::vector<double> InterTokenMs(const std::vector<RequestSample>& samples);

// The early stop: true when no request has succeeded yet, some have failed, and the grace
// is over: kGiveUpFailures failures, or kGiveUpSeconds since the start, whichever first.
constexpr uint64_t kGiveUpFailures = 20;
constexpr double kGiveUpSeconds = 2.0;
bool ShouldGiveUp(uint64_t successes, uint64_t failures, double elapsed_s);

}  // namespace gemserve::client
