#pragma once

// `gem-client bench`: load on one model for a fixed time, reported per variant (DESIGN.md
// "gem-client bench --json").
//
// Closed loop (default): `concurrency` clients, each with one request in flight; a client
// sends its next request when its last one finishes, so latency counts from the actual
// send.
//
// Open loop (rate > 0): requests arrive as a Poisson process of `rate` per second whatever
// the server does, and each request's latency counts from its scheduled arrival, so
// queueing in the client is not hidden. At most `max_in_flight` requests are outstanding:
// at the bound, the next arrival waits for a completion (its latency still counting). How
// late requests were sent is reported as "send_lag_ms"; the arrivals that the end of the
// run catches still waiting, as "unsent". Memory is bounded by max_in_flight requests plus
// one sample per successful request.
//
// Requests are sent only within `duration`; those still in flight then get `drain` more to
// finish, and are then cancelled and reported as "unfinished" (neither success nor error).
//
// While it runs, a progress line goes to stderr once a second; stdout gets only the report.
// The first error of each status code is printed on stderr when it happens. When every
// request has failed after a short grace (bench_stats.h ShouldGiveUp), the run stops early.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <memory>
#include <string>

namespace gemserve::client {

struct BenchArgs {
  std::string model;
  std::string variant;            // empty: let the server route
  int concurrency = 1;            // closed loop: clients, each with one request in flight
  double rate = 0;                // > 0: open loop at this many requests per second (at most
                                  // kMaxBenchRate); 0: closed loop
  uint64_t seed = 1;              // open loop: seed of the arrival schedule
  int max_in_flight = 4096;       // open loop: bound on outstanding requests
  std::string duration = "10s";   // e.g. 500ms, 10s, 1m
  std::string drain = "5s";       // after duration, how long requests in flight may finish
  std::string image;              // classify models: the image sent every time
  std::string prompt = "And God said";  // generate models
  int max_tokens = 32;            // generate models: greedy, exactly this many unless EOS
  int routing_keys = 0;           // > 0: requests carry routing_key "key-<i>", i cycling
                                  // through 0..N-1, so that sticky routing is exercised
  bool json = false;              // print one JSON object instead of text
};

constexpr double kMaxBenchRate = 1e6;

// Runs the load against `server` and prints the report. Returns the exit code: 0 when some
// request succeeded; 1 when the server cannot be reached, has no such model, or no request
// succeeded (also after an early stop); 2 on bad arguments.
int RunBench(const std::shared_ptr<grpc::Channel>& channel, const std::string& server,
             const BenchArgs& args);

}  // namespace gemserve::client
