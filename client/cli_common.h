#pragma once

// Small pieces every gem-client command uses.

#include <google/protobuf/message.h>
#include <grpcpp/grpcpp.h>

#include <string>

namespace gemserve::client {

// Exit codes of gem-client.
constexpr int kExitOk = 0;
constexpr int kExitServerError = 1;  // the server answered with an error
constexpr int kExitUsage = 2;        // bad arguments or unreadable input
constexpr int kExitUnreachable = 3;  // no connection to the server could be made

// The name of a gRPC status code ("NOT_FOUND").
std::string StatusCodeName(grpc::StatusCode code);

// Prints "gem-client: CODE: message" to stderr and returns kExitServerError.
int Fail(const grpc::Status& status);

// Prints "gem-client: message" to stderr and returns kExitUsage.
int UsageError(const std::string& message);

// Reads a whole file into `bytes`. Returns false when it cannot be read.
bool ReadFileBytes(const std::string& path, std::string* bytes);

// Adds "authorization: Bearer <token>" to `context` unless `token` is empty.
void AddBearerToken(grpc::ClientContext* context, const std::string& token);

// Prints `message` as one line of JSON (proto3 mapping, proto field names, default
// values included) and returns kExitOk.
int PrintMessageJson(const google::protobuf::Message& message);

}  // namespace gemserve::client
