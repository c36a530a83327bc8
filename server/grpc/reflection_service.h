#pragma once

// grpc.reflection.v1.ServerReflection, so that clients with no .proto files (grpcurl,
// `buf curl`, Postman) can list gem-server's services and describe every one of them.
// libgrpc++_reflection 1.51 (Debian 12) serves only the older v1alpha protocol; main
// keeps that plugin too, for older clients.
//
// Answers come from protobuf's generated descriptor pool: a file request is answered
// with the file and everything it imports, each as a serialized FileDescriptorProto.
// Unknown files, symbols and extensions get an error_response (NOT_FOUND) on the stream,
// as the protocol says; the stream itself stays open. One request is answered at a time
// per stream (callback API: no thread is held while a stream is idle).

#include <google/protobuf/descriptor.h>

#include <string>
#include <vector>

#include "grpc/reflection/v1/reflection.grpc.pb.h"

namespace gemserve {

class ReflectionService final : public grpc::reflection::v1::ServerReflection::CallbackService {
 public:
  // list_services names every service declared in `served_files` (null entries skipped).
  explicit ReflectionService(const std::vector<const google::protobuf::FileDescriptor*>& served_files);

  grpc::ServerBidiReactor<grpc::reflection::v1::ServerReflectionRequest,
                          grpc::reflection::v1::ServerReflectionResponse>*
  ServerReflectionInfo(grpc::CallbackServerContext* context) override;

  // The answer to one request.
  grpc::reflection::v1::ServerReflectionResponse Answer(
      const grpc::reflection::v1::ServerReflectionRequest& request) const;

 private:
  std::vector<std::string> services_;
};

// The .proto files of what gem-server serves: gemserve.v1 (Inference, Admin),
// grpc.health.v1.Health, and reflection v1 and v1alpha. Naming health.proto here links
// its descriptor into the binary: gRPC's built-in health service does not use it, and
// without it reflection would list Health but could not describe it.
std::vector<const google::protobuf::FileDescriptor*> GemServerProtoFiles();

}  // namespace gemserve
