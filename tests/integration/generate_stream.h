#pragma once

// Reading a whole Generate stream in integration tests.

#include <grpcpp/grpcpp.h>

#include <cstdint>
#include <string>
#include <vector>

#include "gemserve/v1/inference.grpc.pb.h"

namespace gemserve::testing {

// Everything one Generate call streamed back.
struct Generated {
  grpc::Status status;
  std::vector<v1::GenerateResponse> messages;  // in the order received
  std::vector<int32_t> ids;                    // the token ids of all messages
  std::string text;                            // the text of all messages

  // The final message (usage, finish reason, request id); empty when none came.
  const v1::GenerateResponse& last() const;
};

// Runs `request` to the end of its stream.
Generated Generate(v1::Inference::Stub& stub, const v1::GenerateRequest& request);

// Each request alone, one after another, then all of them at once on concurrent streams.
struct AloneAndTogether {
  std::vector<Generated> alone;
  std::vector<Generated> together;
};
AloneAndTogether GenerateAloneThenTogether(v1::Inference::Stub& stub,
                                           const std::vector<v1::GenerateRequest>& requests);

}  // namespace gemserve::testing
