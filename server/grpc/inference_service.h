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

class InferenceService final : public v1::Inference::CallbackService {
 public:
  // `engine` and `metrics` must outlive the service.
  InferenceService(Engine* engine, Metrics* metrics, DeadlinePolicy deadlines)
      : engine_(engine), metrics_(metrics), deadlines_(deadlines) {}

  // Shutdown: once closed, every RPC answers UNAVAILABLE; see shutdown_gate.h.
  ShutdownGate& gate() { return gate_; }

  grpc::ServerUnaryReactor* Classify(grpc::CallbackServerContext* context,
                                     const v1::ClassifyRequest* request,
                                     v1::ClassifyResponse* response) override;

  grpc::ServerWriteReactor<v1::GenerateResponse>* Generate(
      grpc::CallbackServerContext* context, const v1::GenerateRequest* request) override;

  grpc::ServerUnaryReactor* Compare(grpc::CallbackServerContext* context,
                                    const v1::CompareRequest* request,
                                    v1::CompareResponse* response) override;

  grpc::ServerUnaryReactor* Feedback(grpc::CallbackServerContext* context,
                                     const v1::FeedbackRequest* request,
                                     v1::FeedbackResponse* response) override;

  grpc::ServerUnaryReactor* ListModels(grpc::CallbackServerContext* context,
                                       const v1::ListModelsRequest* request,
                                       v1::ListModelsResponse* response) override;

 private:
  Engine* engine_;
  Metrics* metrics_;
  const DeadlinePolicy deadlines_;
  ShutdownGate gate_;
};

// The engine's status as a gRPC status (same code, same message).
grpc::Status ToGrpcStatus(const Status& status);

// "OK", "INVALID_ARGUMENT", ...: the `code` label of gemserve_requests_total.
const char* CodeName(grpc::StatusCode code);

}  // namespace gemserve
