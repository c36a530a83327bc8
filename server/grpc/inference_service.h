#pragma once

// gemserve.v1.Inference over the engine, with the gRPC callback API. Each RPC converts
// the request, calls the engine, and converts the answer; it never blocks a gRPC
// thread and never touches tensors. Errors become status codes with the engine's
// message (see DESIGN.md "Errors").

#include <grpcpp/grpcpp.h>

#include "gemserve/v1/inference.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/metrics/metrics.h"

namespace gemserve {

class InferenceService final : public v1::Inference::CallbackService {
 public:
  // `engine` and `metrics` must outlive the service.
  // Requests without a deadline get `default_deadline`.
  InferenceService(Engine* engine, Metrics* metrics, std::chrono::milliseconds default_deadline)
      : engine_(engine), metrics_(metrics), default_deadline_(default_deadline) {}

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
  std::chrono::milliseconds default_deadline_;
};

// The engine's status as a gRPC status (same code, same message).
grpc::Status ToGrpcStatus(const Status& status);

// "OK", "INVALID_ARGUMENT", ...: the `code` label of gemserve_requests_total.
const char* CodeName(grpc::StatusCode code);

}  // namespace gemserve
