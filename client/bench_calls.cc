#include "client/bench_calls.h"

#include <string>
#include <utility>

namespace gemserve::client {
namespace {

double MillisecondsSince(BenchClock::time_point start) {
  return std::chrono::duration<double, std::milli>(BenchClock::now() - start).count();
}

// `request` with routing key "key-<index mod routing_keys>" (a copy), or `request` itself
// when routing_keys is 0.
template <typename Request>
std::shared_ptr<const Request> WithRoutingKey(const std::shared_ptr<const Request>& request,
                                              int routing_keys, uint64_t index) {
  if (routing_keys <= 0) return request;
  auto copy = std::make_shared<Request>(*request);
  copy->set_routing_key("key-" + std::to_string(index % static_cast<uint64_t>(routing_keys)));
  return copy;
}

class ClassifyCall final : public BenchCall, public grpc::ClientUnaryReactor {
 public:
  ClassifyCall(v1::Inference::Stub* stub, std::shared_ptr<const v1::ClassifyRequest> request,
               BenchClock::time_point scheduled, CallSink* sink)
      : stub_(stub), request_(std::move(request)), scheduled_(scheduled), sink_(sink) {}

  void Start() override {
    stub_->async()->Classify(&context_, request_.get(), &response_, this);
    StartCall();
  }

  void Cancel() override { context_.TryCancel(); }

  void OnDone(const grpc::Status& status) override {
    CallResult result;
    result.status = status;
    result.sample.variant = response_.variant();
    result.sample.latency_ms = MillisecondsSince(scheduled_);
    CallSink* sink = sink_;
    sink->Finished(this, std::move(result));  // may destroy this
  }

 private:
  v1::Inference::Stub* stub_;
  std::shared_ptr<const v1::ClassifyRequest> request_;
  BenchClock::time_point scheduled_;
  CallSink* sink_;
  grpc::ClientContext context_;
  v1::ClassifyResponse response_;
};

// Counts the token ids streamed back; the first message that carries any is the first
// token.
class GenerateCall final : public BenchCall,
                           public grpc::ClientReadReactor<v1::GenerateResponse> {
 public:
  GenerateCall(v1::Inference::Stub* stub, std::shared_ptr<const v1::GenerateRequest> request,
               BenchClock::time_point scheduled, CallSink* sink)
      : stub_(stub), request_(std::move(request)), scheduled_(scheduled), sink_(sink) {}

  void Start() override {
    stub_->async()->Generate(&context_, request_.get(), this);
    StartRead(&message_);
    StartCall();
  }

  void Cancel() override { context_.TryCancel(); }

  void OnReadDone(bool ok) override {
    if (!ok) return;  // the stream ended: OnDone follows
    if (message_.token_ids_size() > 0 && sample_.tokens == 0) {
      sample_.ttft_ms = MillisecondsSince(scheduled_);
    }
    sample_.tokens += message_.token_ids_size();
    sample_.variant = message_.variant();
    StartRead(&message_);
  }

  void OnDone(const grpc::Status& status) override {
    CallResult result;
    result.status = status;
    result.sample = std::move(sample_);
    result.sample.latency_ms = MillisecondsSince(scheduled_);
    CallSink* sink = sink_;
    sink->Finished(this, std::move(result));  // may destroy this
  }

 private:
  v1::Inference::Stub* stub_;
  std::shared_ptr<const v1::GenerateRequest> request_;
  BenchClock::time_point scheduled_;
  CallSink* sink_;
  grpc::ClientContext context_;
  v1::GenerateResponse message_;  // the message being read
  RequestSample sample_;
};

}  // namespace

CallFactory CallFactory::ForClassify(v1::Inference::Stub* stub, v1::ClassifyRequest request,
                                     int routing_keys) {
  CallFactory factory(stub, routing_keys);
  factory.classify_ = std::make_shared<const v1::ClassifyRequest>(std::move(request));
  return factory;
}

CallFactory CallFactory::ForGenerate(v1::Inference::Stub* stub, v1::GenerateRequest request,
                                     int routing_keys) {
  CallFactory factory(stub, routing_keys);
  factory.generate_ = std::make_shared<const v1::GenerateRequest>(std::move(request));
  return factory;
}

std::unique_ptr<BenchCall> CallFactory::Make(uint64_t index, BenchClock::time_point scheduled,
                                             CallSink* sink) const {
  if (classify_) {
    return std::make_unique<ClassifyCall>(stub_, WithRoutingKey(classify_, routing_keys_, index),
                                          scheduled, sink);
  }
  return std::make_unique<GenerateCall>(stub_, WithRoutingKey(generate_, routing_keys_, index),
                                        scheduled, sink);
}

}  // namespace gemserve::client
