#pragma once

// gemserve.v1.Inference over the engine, with the gRPC callback API. Each RPC converts
// the request, calls the engine, and converts the answer; it never blocks a gRPC
// thread and never touches tensors. Errors become status codes with the engine's
// message (see DESIGN.md "Errors").

#include <grpcpp/grpcpp.h>

#include "gemserve/v1/inference.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/grpc/shutdown_gate.h"
#include "server/metrics/metrics.h"

namespace gemserve {

struct DeadlinePolicy {
  std::chrono::milliseconds default_deadline{30000};  // for requests that set none
  std::chrono::milliseconds max_deadline{600000};     // longer ones are cut to it
};

// Every method is registered raw (see raw_message.h): a request that does not parse
// gets INVALID_ARGUMENT. With a token set, every RPC must carry it (bearer_token.h) or
// gets UNAUTHENTICATED. While shutting down, every RPC answers UNAVAILABLE.
using RawInferenceService = v1::Inference::WithRawCallbackMethod_Classify<
    v1::Inference::WithRawCallbackMethod_Generate<v1::Inference::WithRawCallbackMethod_Compare<
        v1::Inference::WithRawCallbackMethod_ListModels<
            v1::Inference::WithRawCallbackMethod_Feedback<v1::Inference::Service>>>>>;

class InferenceService final : public RawInferenceService {
 public:
  // `engine` and `metrics` must outlive the service. An empty `token` leaves it open.
  InferenceService(Engine* engine, Metrics* metrics, DeadlinePolicy deadlines, std::string token)
      : engine_(engine), metrics_(metrics), deadlines_(deadlines), token_(std::move(token)) {}

  // Shutdown: once closed, every RPC answers UNAVAILABLE; see shutdown_gate.h.
  ShutdownGate& gate() { return gate_; }

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;

  grpc::ServerWriteReactor<grpc::ByteBuffer>* Generate(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* request) override;

  grpc::ServerUnaryReactor* Compare(grpc::CallbackServerContext* context,
                                    const grpc::ByteBuffer* request,
                                    grpc::ByteBuffer* response) override;

  grpc::ServerUnaryReactor* Feedback(grpc::CallbackServerContext* context,
                                     const grpc::ByteBuffer* request,
                                     grpc::ByteBuffer* response) override;

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const grpc::ByteBuffer* request,
                                       grpc::ByteBuffer* response) override;

 private:
  Engine* engine_;
  Metrics* metrics_;
  const DeadlinePolicy deadlines_;
  const std::string token_;
  ShutdownGate gate_;
};

// The engine's status as a gRPC status (same code, same message).
grpc::Status ToGrpcStatus(const Status& status);

// "OK", "INVALID_ARGUMENT", ...: the `code` label of gemserve_requests_total.
const char* CodeName(grpc::StatusCode code);

}  // namespace gemserve
