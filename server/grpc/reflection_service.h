#pragma once

// gRPC server reflection, both protocol versions: grpc.reflection.v1 and the older
// v1alpha (their messages are the same, field for field). Clients with no .proto files
// (grpcurl, `buf curl`, Postman) list gem-server's services with it and describe every
// one of them. Written here rather than taken from libgrpc++_reflection, which in
// Debian 12 (1.51) has only v1alpha, and serves it on gRPC's sync API: a thread per open
// stream, so idle streams could pile up threads without bound.
//
// Answers come from protobuf's generated descriptor pool: a file request is answered
// with the file and everything it imports, each as a serialized FileDescriptorProto.
// Unknown files, symbols and extensions get an error_response (NOT_FOUND) on the stream,
// as the protocol says; the stream itself stays open. One request is answered at a time
// per stream, on the callback API: no thread is held while a stream is idle.

#include <google/protobuf/descriptor.h>
#include <grpcpp/grpcpp.h>

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"
#include "grpc/reflection/v1alpha/reflection.grpc.pb.h"

namespace gemserve {

class ServerReflection {
 public:
  // list_services names every service declared in `served_files` (null entries skipped).
  explicit ServerReflection(const std::vector<const google::protobuf::FileDescriptor*>& served_files);

  // Registers both versions; this object must outlive the server.
  void RegisterWith(grpc::ServerBuilder& builder);

  // The answer to one request.
  grpc::reflection::v1::ServerReflectionResponse Answer(
      const grpc::reflection::v1::ServerReflectionRequest& request) const;

 private:
  class V1 final : public grpc::reflection::v1::ServerReflection::CallbackService {
   public:
    explicit V1(const ServerReflection& answers) : answers_(answers) {}
    grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                            grpc::reflection::v1::ServerReflectionResponse>*
    ServerReflectionInfo(grpc::CallbackServerContext* context) override;

   private:
    const ServerReflection& answers_;
  };

  class V1Alpha final : public grpc::reflection::v1alpha::ServerReflection::CallbackService {
   public:
    explicit V1Alpha(const ServerReflection& answers) : answers_(answers) {}
    grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                            grpc::reflection::v1alpha::ServerReflectionResponse>*
    ServerReflectionInfo(grpc::CallbackServerContext* context) override;

   private:
    const ServerReflection& answers_;
  };

  std::vector<std::string> services_;
  V1 v1_{*this};
  V1Alpha v1alpha_{*this};
};

// The .proto files of what gem-server serves: gemserve.v1 (Inference, Admin),
// grpc.health.v1.Health, and reflection v1 and v1alpha. Naming health.proto here links
// its descriptor into the binary: gRPC's built-in health service does not use it, and
// without it reflection would list Health but could not describe it.
std::vector<const google::protobuf::FileDescriptor*> GemServerProtoFiles();

}  // namespace gemserve
