#include "server/grpc/admin_service.h"

#include "server/grpc/bearer_token.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/proto_convert.h"
#include "server/grpc/raw_message.h"

namespace gemserve {

template <typename Request>
grpc::Status AdminService::Admit(const grpc::CallbackServerContext& context,
                                 const grpc::ByteBuffer& raw, Request* request) const {
  if (grpc::Status allowed = CheckBearerToken(context, admin_token_, "Admin"); !allowed.ok()) {
    return allowed;
  }
  if (!ParseRaw(raw, request)) return Unparseable<Request>();
  return grpc::Status::OK;
}

template <typename Response>
void AdminService::Finish(grpc::ServerUnaryReactor* reactor, const char* rpc,
                          Clock::time_point start, const grpc::Status& status,
                          const Response& response, grpc::ByteBuffer* raw_response) {
  if (status.ok()) SerializeRaw(response, raw_response);
  metrics_->RecordRequest(rpc, "", "", CodeName(status.error_code()),
                          SecondsBetween(start, Clock::now()));
  reactor->Finish(status);
}

template <typename Response>
grpc::ServerUnaryReactor* AdminService::Answer(grpc::CallbackServerContext* context,
                                               const char* rpc, Clock::time_point start,
                                               const grpc::Status& status,
                                               const Response& response,
                                               grpc::ByteBuffer* raw_response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  Finish(reactor, rpc, start, status, response, raw_response);
  return reactor;
}

grpc::ServerUnaryReactor* AdminService::SetTrafficSplit(grpc::CallbackServerContext* context,
                                                        const grpc::ByteBuffer* raw_request,
                                                        grpc::ByteBuffer* raw_response) {
  const Clock::time_point start = Clock::now();
  v1::SetTrafficSplitRequest request;
  v1::Experiment response;
  if (grpc::Status admitted = Admit(*context, *raw_request, &request); !admitted.ok()) {
    return Answer(context, "SetTrafficSplit", start, admitted, response, raw_response);
  }
  StatusOr<ExperimentSettings> settings = engine_->SetTrafficSplit(
      request.model(), {request.split().begin(), request.split().end()});
  if (settings.ok()) response = ToProto(settings.value());
  return Answer(context, "SetTrafficSplit", start, ToGrpcStatus(settings.status()), response,
                raw_response);
}

grpc::ServerUnaryReactor* AdminService::GetExperiments(grpc::CallbackServerContext* context,
                                                       const grpc::ByteBuffer* raw_request,
                                                       grpc::ByteBuffer* raw_response) {
  const Clock::time_point start = Clock::now();
  v1::GetExperimentsRequest request;
  v1::GetExperimentsResponse response;
  if (grpc::Status admitted = Admit(*context, *raw_request, &request); !admitted.ok()) {
    return Answer(context, "GetExperiments", start, admitted, response, raw_response);
  }
  StatusOr<std::vector<ExperimentSnapshot>> snapshots = engine_->Experiments(request.model());
  if (snapshots.ok()) {
    for (const ExperimentSnapshot& s : snapshots.value()) *response.add_experiments() = ToProto(s);
  }
  return Answer(context, "GetExperiments", start, ToGrpcStatus(snapshots.status()), response,
                raw_response);
}

grpc::ServerUnaryReactor* AdminService::ReloadModels(grpc::CallbackServerContext* context,
                                                     const grpc::ByteBuffer* raw_request,
                                                     grpc::ByteBuffer* raw_response) {
  const Clock::time_point start = Clock::now();
  v1::ReloadModelsRequest request;
  if (grpc::Status admitted = Admit(*context, *raw_request, &request); !admitted.ok()) {
    return Answer(context, "ReloadModels", start, admitted, v1::ReloadModelsResponse(),
                  raw_response);
  }
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  reloader_->Request([this, reactor, start, raw_response](StatusOr<ReloadReport> report) {
    const v1::ReloadModelsResponse response =
        report.ok() ? ToProto(report.value()) : v1::ReloadModelsResponse();
    Finish(reactor, "ReloadModels", start, ToGrpcStatus(report.status()), response, raw_response);
  });
  return reactor;
}

}  // namespace gemserve
