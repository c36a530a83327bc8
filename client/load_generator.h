#pragma once

// `gem-client bench`: closed-loop load on one model for a fixed time, reported per
// variant (DESIGN.md "gem-client bench --json").

#include <string>

namespace gemserve::client {

struct BenchArgs {
  std::string model;
  std::string variant;            // empty: let the server route
  int concurrency = 1;            // clients, each with one request in flight
  std::string duration = "10s";   // e.g. 500ms, 10s, 1m
  std::string image;              // classify models: the image sent every time
  std::string prompt = "And God said";  // generate models
  int max_tokens = 32;            // generate models: greedy, exactly this many unless EOS
  int routing_keys = 0;           // > 0: requests carry routing_key "key-<i>", i cycling
                                  // through 0..N-1, so that sticky routing is exercised
  bool json = false;
};

// Runs the load against `server` and prints the report. Returns the exit code: 0, 1 when
// the server cannot be reached or every request failed, 2 on bad arguments.
int RunBench(const std::string& server, const BenchArgs& args);

}  // namespace gemserve::client
