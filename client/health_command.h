#pragma once

// gem-client health: asks the standard gRPC health service (grpc.health.v1.Health/Check)
// whether gem-server is SERVING, for container HEALTHCHECKs and scripts.
//
//   gem-client health [--service NAME] [--timeout SECONDS]
//
// Prints the serving status and exits 0 when it is SERVING, 1 when the server answers
// anything else (NOT_SERVING while it drains, NOT_FOUND for an unknown service name).
// `--service ""` (the default) is the whole server; MODEL/VARIANT asks about one variant.

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

namespace gemserve::client {

struct HealthArgs {
  std::string service;
  double timeout_s = 5;
};
CLI::App* AddHealthCommand(CLI::App& app, HealthArgs* args);
int RunHealth(const std::shared_ptr<grpc::Channel>& channel, const HealthArgs& args);

}  // namespace gemserve::client
