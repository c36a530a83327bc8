#pragma once

// gemserve.v1.Admin over the engine: live traffic splits, experiment statistics, reloads.
//
// When `admin_token` is not empty, every call must carry the metadata
// "authorization: Bearer <admin_token>" or it fails with UNAUTHENTICATED before anything
// else happens. The token is compared in constant time and never logged.

#include <grpcpp/grpcpp.h>

#include <string>

#include "gemserve/v1/inference.grpc.pb.h"
#include "server/engine/engine.h"
#include "server/grpc/model_reloader.h"
#include "server/metrics/metrics.h"

namespace gemserve {

// Registered raw like the Inference service (raw_message.h): a request that does not
// parse gets INVALID_ARGUMENT.
using RawAdminService = v1::Admin::WithRawCallbackMethod_SetTrafficSplit<
    v1::Admin::WithRawCallbackMethod_GetExperiments<
        v1::Admin::WithRawCallbackMethod_ReloadModels<v1::Admin::Service>>>;

class AdminService final : public RawAdminService {
 public:
  // `engine`, `metrics` and `reloader` must outlive the service.
  AdminService(Engine* engine, Metrics* metrics, ModelReloader* reloader, std::string admin_token)
      : engine_(engine),
        metrics_(metrics),
        reloader_(reloader),
        admin_token_(std::move(admin_token)) {}

  grpc::ServerUnaryReactor* SetTrafficSplit(grpc::CallbackServerContext* context,
                                            const grpc::ByteBuffer* request,
                                            grpc::ByteBuffer* response) override;

  grpc::ServerUnaryReactor* GetExperiments(grpc::CallbackServerContext* context,
                                           const grpc::ByteBuffer* request,
                                           grpc::ByteBuffer* response) override;

  // Answers when the reload it asked for is done (ModelReloader), OK with what happened
  // to each variant, failures included.
  grpc::ServerUnaryReactor* ReloadModels(grpc::CallbackServerContext* context,
                                         const grpc::ByteBuffer* request,
                                         grpc::ByteBuffer* response) override;

 private:
  // Authorizes and parses the call into `request`; the status to answer when it may not
  // go on.
  template <typename Request>
  grpc::Status Admit(const grpc::CallbackServerContext& context, const grpc::ByteBuffer& raw,
                     Request* request) const;
  // Finishes the call with `status` (and `response` serialized into `raw_response` when
  // OK), and counts it as `rpc`.
  template <typename Response>
  grpc::ServerUnaryReactor* Answer(grpc::CallbackServerContext* context, const char* rpc,
                                   Clock::time_point start, const grpc::Status& status,
                                   const Response& response, grpc::ByteBuffer* raw_response);
  template <typename Response>
  void Finish(grpc::ServerUnaryReactor* reactor, const char* rpc, Clock::time_point start,
              const grpc::Status& status, const Response& response,
              grpc::ByteBuffer* raw_response);

  Engine* engine_;
  Metrics* metrics_;
  ModelReloader* reloader_;
  const std::string admin_token_;
};

}  // namespace gemserve
