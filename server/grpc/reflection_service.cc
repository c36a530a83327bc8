#include "server/grpc/reflection_service.h"

#include <deque>
#include <set>
#include <type_traits>

#include "gemserve/v1/inference.pb.h"
#include "grpc/health/v1/health.pb.h"
#include "server/engine/status.h"

namespace gemserve {
namespace {

using google::protobuf::DescriptorPool;
using google::protobuf::FileDescriptor;
using grpc::reflection::v1::ServerReflectionRequest;
using grpc::reflection::v1::ServerReflectionResponse;

void SetError(grpc::StatusCode code, const std::string& message,
              ServerReflectionResponse* response) {
  response->mutable_error_response()->set_error_code(code);
  response->mutable_error_response()->set_error_message(message);
}

// `file` and every file it imports, directly or not, the requested one first.
void AddFileWithImports(const FileDescriptor* file, ServerReflectionResponse* response) {
  std::set<const FileDescriptor*> seen{file};
  std::deque<const FileDescriptor*> pending{file};
  auto* files = response->mutable_file_descriptor_response();
  while (!pending.empty()) {
    const FileDescriptor* next = pending.front();
    pending.pop_front();
    google::protobuf::FileDescriptorProto proto;
    next->CopyTo(&proto);
    proto.SerializeToString(files->add_file_descriptor_proto());
    for (int i = 0; i < next->dependency_count(); ++i) {
      if (seen.insert(next->dependency(i)).second) pending.push_back(next->dependency(i));
    }
  }
}

// The file answer, or NOT_FOUND naming the request field and (a prefix of) its value.
void AnswerFile(const FileDescriptor* file, const char* field, const std::string& value,
                ServerReflectionResponse* response) {
  if (file) return AddFileWithImports(file, response);
  SetError(grpc::StatusCode::NOT_FOUND,
           std::string(field) + ": " + QuoteForMessage(value) + " is not known to this server",
           response);
}

void AnswerExtensionNumbers(const std::string& type_name, ServerReflectionResponse* response) {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  const google::protobuf::Descriptor* type = pool->FindMessageTypeByName(type_name);
  if (!type) {
    return SetError(grpc::StatusCode::NOT_FOUND,
                    "all_extension_numbers_of_type: no message type " + QuoteForMessage(type_name),
                    response);
  }
  std::vector<const google::protobuf::FieldDescriptor*> extensions;
  pool->FindAllExtensions(type, &extensions);
  auto* numbers = response->mutable_all_extension_numbers_response();
  numbers->set_base_type_name(type->full_name());
  for (const auto* extension : extensions) numbers->add_extension_number(extension->number());
}

// `message` as the same message of the other protocol version (or itself).
template <typename To, typename From>
To SameMessage(const From& message) {
  if constexpr (std::is_same_v<To, From>) {
    return message;
  } else {
    To out;
    out.ParseFromString(message.SerializeAsString());
    return out;
  }
}

// Reads a request, writes its answer, and so on until the client half-closes.
template <typename Request, typename Response>
class ReflectionStream final : public grpc::ServerBidiReactor<Request, Response> {
 public:
  explicit ReflectionStream(const ServerReflection& answers) : answers_(answers) {
    this->StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    if (!ok) return this->Finish(grpc::Status::OK);
    response_ = SameMessage<Response>(answers_.Answer(SameMessage<ServerReflectionRequest>(request_)));
    this->StartWrite(&response_);
  }

  void OnWriteDone(bool ok) override {
    if (!ok) return this->Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
    this->StartRead(&request_);
  }

  void OnDone() override { delete this; }

 private:
  const ServerReflection& answers_;
  Request request_;
  Response response_;
};

}  // namespace

ServerReflection::ServerReflection(const std::vector<const FileDescriptor*>& served_files) {
  for (const FileDescriptor* file : served_files) {
    if (!file) continue;
    for (int i = 0; i < file->service_count(); ++i) services_.push_back(file->service(i)->full_name());
  }
}

void ServerReflection::RegisterWith(grpc::ServerBuilder& builder) {
  builder.RegisterService(&v1_);
  builder.RegisterService(&v1alpha_);
}

grpc::ServerBidiReactor<ServerReflectionRequest, ServerReflectionResponse>*
ServerReflection::V1::ServerReflectionInfo(grpc::CallbackServerContext* /*context*/) {
  return new ReflectionStream<ServerReflectionRequest, ServerReflectionResponse>(answers_);
}

grpc::ServerBidiReactor<grpc::reflection::v1alpha::ServerReflectionRequest,
                        grpc::reflection::v1alpha::ServerReflectionResponse>*
ServerReflection::V1Alpha::ServerReflectionInfo(grpc::CallbackServerContext* /*context*/) {
  return new ReflectionStream<grpc::reflection::v1alpha::ServerReflectionRequest,
                              grpc::reflection::v1alpha::ServerReflectionResponse>(answers_);
}

ServerReflectionResponse ServerReflection::Answer(const ServerReflectionRequest& request) const {
  const DescriptorPool* pool = DescriptorPool::generated_pool();
  ServerReflectionResponse response;
  response.set_valid_host(request.host());
  *response.mutable_original_request() = request;
  switch (request.message_request_case()) {
    case ServerReflectionRequest::kFileByFilename:
      AnswerFile(pool->FindFileByName(request.file_by_filename()), "file_by_filename",
                 request.file_by_filename(), &response);
      break;
    case ServerReflectionRequest::kFileContainingSymbol:
      AnswerFile(pool->FindFileContainingSymbol(request.file_containing_symbol()),
                 "file_containing_symbol", request.file_containing_symbol(), &response);
      break;
    case ServerReflectionRequest::kFileContainingExtension: {
      const auto& wanted = request.file_containing_extension();
      const google::protobuf::Descriptor* type = pool->FindMessageTypeByName(wanted.containing_type());
      const google::protobuf::FieldDescriptor* extension =
          type ? pool->FindExtensionByNumber(type, wanted.extension_number()) : nullptr;
      AnswerFile(extension ? extension->file() : nullptr, "file_containing_extension",
                 wanted.containing_type() + " " + std::to_string(wanted.extension_number()),
                 &response);
      break;
    }
    case ServerReflectionRequest::kAllExtensionNumbersOfType:
      AnswerExtensionNumbers(request.all_extension_numbers_of_type(), &response);
      break;
    case ServerReflectionRequest::kListServices:
      for (const std::string& name : services_) {
        response.mutable_list_services_response()->add_service()->set_name(name);
      }
      break;
    case ServerReflectionRequest::MESSAGE_REQUEST_NOT_SET:
      SetError(grpc::StatusCode::INVALID_ARGUMENT,
               "message_request: set one of file_by_filename, file_containing_symbol, "
               "file_containing_extension, all_extension_numbers_of_type, list_services",
               &response);
      break;
  }
  return response;
}

std::vector<const FileDescriptor*> GemServerProtoFiles() {
  return {v1::ClassifyRequest::descriptor()->file(),
          grpc::health::v1::HealthCheckRequest::descriptor()->file(),
          ServerReflectionRequest::descriptor()->file(),
          grpc::reflection::v1alpha::ServerReflectionRequest::descriptor()->file()};
}

}  // namespace gemserve
