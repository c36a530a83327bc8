#pragma once

// Bearer-token checks for the gRPC services (auth.admin_token_file,
// auth.inference_token_file): a call must carry the metadata
// "authorization: Bearer <token>". The comparison takes the same time whatever the
// given token shares with the right one, and no token is ever logged or echoed.

#include <grpcpp/grpcpp.h>

#include <string>

namespace gemserve {

// OK when `token` is empty (the service is open) or the call carries it; otherwise
// UNAUTHENTICATED naming `service`.
grpc::Status CheckBearerToken(const grpc::CallbackServerContext& context,
                              const std::string& token, const char* service);

// True when a and b are equal, taking the same time for every b of a's length.
bool ConstantTimeEquals(const std::string& a, const std::string& b);

}  // namespace gemserve
