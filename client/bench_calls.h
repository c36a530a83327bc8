#pragma once

// The requests of `gem-client bench` on gRPC's callback API: one small object per request
// in flight (a unary reactor for Classify, a read reactor for Generate), so that the
// number in flight is not limited by threads.

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdint>
#include <memory>

#include "client/bench_stats.h"
#include "gemserve/v1/inference.grpc.pb.h"

namespace gemserve::client {

using BenchClock = std::chrono::steady_clock;

// What one finished request observed. Times count from its scheduled send time.
struct CallResult {
  grpc::Status status;
  RequestSample sample;  // meaningful when status.ok()
};

class BenchCall;

// Receives the result of each started call, exactly once, on a gRPC thread (or on the
// thread that started it). Finished may destroy `call`: the call touches nothing of itself
// after handing over its result.
class CallSink {
 public:
  virtual ~CallSink() = default;
  virtual void Finished(BenchCall* call, CallResult result) = 0;
};

// One request. Destroy it only after it has finished (or was never started).
class BenchCall {
 public:
  virtual ~BenchCall() = default;

  // Sends the request; call once.
  virtual void Start() = 0;

  // Asks gRPC to cancel the request, which then finishes with CANCELLED unless it finished
  // already. Thread-safe; harmless after the request finished.
  virtual void Cancel() = 0;
};

// Makes the calls of one bench run: the same request every time, except the routing key
// when routing_keys > 0 (the i-th call carries "key-<i mod routing_keys>"). Without
// routing keys, calls share one request; with them each call holds its own copy.
class CallFactory {
 public:
  static CallFactory ForClassify(v1::Inference::Stub* stub, v1::ClassifyRequest request,
                                 int routing_keys);
  static CallFactory ForGenerate(v1::Inference::Stub* stub, v1::GenerateRequest request,
                                 int routing_keys);

  // The index-th call, timed from `scheduled`, reporting to `sink`; not started. `stub` and
  // `sink` must outlive it.
  std::unique_ptr<BenchCall> Make(uint64_t index, BenchClock::time_point scheduled,
                                  CallSink* sink) const;

 private:
  CallFactory(v1::Inference::Stub* stub, int routing_keys)
      : stub_(stub), routing_keys_(routing_keys) {}

  v1::Inference::Stub* stub_;
  int routing_keys_;
  std::shared_ptr<const v1::ClassifyRequest> classify_;  // exactly one of these is set
  std::shared_ptr<const v1::GenerateRequest> generate_;
};

}  // namespace gemserve::client
