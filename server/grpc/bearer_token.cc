#include "server/grpc/bearer_token.h"

namespace gemserve {

bool ConstantTimeEquals(const std::string& a, const std::string& b) {
  unsigned char difference = a.size() == b.size() ? 0 : 1;
  for (size_t i = 0; i < b.size(); ++i) {
    difference |= static_cast<unsigned char>(b[i] ^ (i < a.size() ? a[i] : 0));
  }
  return difference == 0;
}

grpc::Status CheckBearerToken(const grpc::CallbackServerContext& context,
                              const std::string& token, const char* service) {
  if (token.empty()) return grpc::Status::OK;
  const auto& metadata = context.client_metadata();
  const auto header = metadata.find("authorization");
  if (header == metadata.end()) {
    return {grpc::StatusCode::UNAUTHENTICATED,
            std::string(service) + " needs the metadata \"authorization: Bearer <token>\""};
  }
  const std::string given(header->second.data(), header->second.size());
  if (!ConstantTimeEquals("Bearer " + token, given)) {
    return {grpc::StatusCode::UNAUTHENTICATED, std::string("the ") + service + " token is not valid"};
  }
  return grpc::Status::OK;
}

}  // namespace gemserve
