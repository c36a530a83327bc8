#pragma once

// The engine's answers as gemserve.v1 messages, shared by the gRPC services and the
// JSON endpoints of the HTTP port (which are the same messages in proto3's JSON form).

#include <string>

#include "gemserve/v1/inference.pb.h"
#include "server/engine/engine.h"

namespace gemserve {

v1::ListModelsResponse ToProto(const std::vector<ModelState>& models);
v1::Experiment ToProto(const ExperimentSettings& settings);
v1::ExperimentStatistics ToProto(const ExperimentSnapshot& snapshot);
v1::ReloadModelsResponse ToProto(const ReloadReport& report);

// proto3 JSON with the .proto field names and default values printed (what
// /api/v1/models and /api/v1/experiments serve).
std::string ToJson(const google::protobuf::Message& message);

}  // namespace gemserve
