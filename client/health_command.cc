#include "client/health_command.h"

#include <chrono>
#include <iostream>

#include "client/cli_common.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace gemserve::client {

CLI::App* AddHealthCommand(CLI::App& app, HealthArgs* args) {
  CLI::App* command =
      app.add_subcommand("health", "is the server SERVING? (grpc.health.v1; exit 0 if so)");
  command->add_option("--service", args->service, "\"\": the whole server; MODEL/VARIANT: one variant");
  command->add_option("--timeout", args->timeout_s, "seconds to wait for the answer")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  return command;
}

int RunHealth(const std::shared_ptr<grpc::Channel>& channel, const HealthArgs& args) {
  using grpc::health::v1::HealthCheckResponse;
  auto stub = grpc::health::v1::Health::NewStub(channel);
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() +
                       std::chrono::duration_cast<std::chrono::system_clock::duration>(
                           std::chrono::duration<double>(args.timeout_s)));
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(args.service);
  HealthCheckResponse response;
  const grpc::Status status = stub->Check(&context, request, &response);
  if (!status.ok()) return Fail(status);
  std::cout << HealthCheckResponse::ServingStatus_Name(response.status()) << "\n";
  return response.status() == HealthCheckResponse::SERVING ? kExitOk : kExitServerError;
}

}  // namespace gemserve::client
