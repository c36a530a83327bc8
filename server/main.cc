// gem-server: flags + config -> engine, gRPC service, HTTP metrics; runs until SIGINT
// or SIGTERM, then drains in-flight requests and exits.

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <CLI/CLI.hpp>
#include <csignal>
#include <iostream>
#include <malloc.h>
#include <memory>

#include "server/engine/engine.h"
#include "server/grpc/admin_service.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/proto_convert.h"
#include "server/http/http_server.h"
#include "server/metrics/metrics.h"
#include "server/server_config.h"

namespace gemserve {
namespace {

struct Flags {
  std::string config = "deploy/gemserve.yaml";
  std::optional<std::string> listen, metrics_listen, repository, device;
  std::optional<int> threads;
};

void ApplyFlags(const Flags& flags, ServerConfig& config) {
  if (flags.listen) config.listen = *flags.listen;
  if (flags.metrics_listen) config.metrics_listen = *flags.metrics_listen;
  if (flags.repository) config.engine.repository = *flags.repository;
  if (flags.device) config.engine.device = *flags.device;
  if (flags.threads) config.engine.threads = *flags.threads;
}

// Tensors of a few MiB are allocated and freed on every request; glibc's default hands
// such blocks back to the kernel, making every request pay page faults. Keep them.
void KeepFreedMemory() {
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
}

void PublishModelInfo(const Engine& engine, Metrics& metrics) {
  for (const ModelState& model : engine.Models()) {
    for (const VariantState& variant : model.variants) {
      if (!variant.ready) continue;
      const ActivationSpec& a = variant.config->activation;
      metrics.SetModelInfo(model.name, variant.name, a.kind, a.n, a.eps, a.neg_slope);
    }
  }
}

bool AnyVariantReady(const Engine& engine) {
  for (const ModelState& model : engine.Models()) {
    for (const VariantState& variant : model.variants) {
      if (variant.ready) return true;
    }
  }
  return false;
}

// grpc.health.v1: the server and gemserve.v1.Inference are SERVING while any variant is
// ready; each variant also has its own entry, "MODEL/VARIANT", NOT_SERVING if it failed.
void PublishHealth(const Engine& engine, grpc::HealthCheckServiceInterface& health) {
  const bool serving = AnyVariantReady(engine);
  health.SetServingStatus(serving);
  health.SetServingStatus("gemserve.v1.Inference", serving);
  for (const ModelState& model : engine.Models()) {
    for (const VariantState& variant : model.variants) {
      health.SetServingStatus(model.name + "/" + variant.name, variant.ready);
    }
  }
}

// GET /api/v1/experiments: what Admin.GetExperiments answers, as JSON.
std::string ExperimentsJson(const Engine& engine) {
  v1::GetExperimentsResponse response;
  const StatusOr<std::vector<ExperimentSnapshot>> snapshots = engine.Experiments("");
  for (const ExperimentSnapshot& snapshot : snapshots.value()) {
    *response.add_experiments() = ToProto(snapshot);
  }
  return ToJson(response);
}

std::string HostOf(const std::string& address) { return address.substr(0, address.rfind(':')); }

int Run(const Flags& flags) {
  StatusOr<ServerConfig> loaded = LoadServerConfig(flags.config);
  if (!loaded.ok()) {
    std::cerr << "gem-server: " << loaded.status().message() << "\n";
    return 2;
  }
  ServerConfig config = loaded.value();
  ApplyFlags(flags, config);

  Metrics metrics;
  StatusOr<std::unique_ptr<Engine>> engine = Engine::Create(config.engine, &metrics);
  if (!engine.ok()) {
    std::cerr << "gem-server: " << engine.status().message() << "\n";
    return 2;
  }
  PublishModelInfo(*engine.value(), metrics);

  InferenceService service(engine.value().get(), &metrics, config.default_deadline);
  AdminService admin(engine.value().get(), &metrics, config.admin_token);
  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  int grpc_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, grpc::InsecureServerCredentials(), &grpc_port);
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.RegisterService(&service);
  builder.RegisterService(&admin);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || grpc_port == 0) {
    std::cerr << "gem-server: cannot listen on " << config.listen << "\n";
    return 2;
  }
  PublishHealth(*engine.value(), *server->GetHealthCheckService());

  HttpServer http({[&metrics] { return metrics.Serialize(); },
                   [&engine]() -> Health {
                     if (AnyVariantReady(*engine.value())) return {true, ""};
                     return {false, "no model variant is loaded"};
                   },
                   [&engine] { return ExperimentsJson(*engine.value()); },
                   [&engine] { return ToJson(ToProto(engine.value()->Models())); }});
  if (std::string error; !http.Start(config.metrics_listen, &error)) {
    std::cerr << "gem-server: " << error << "\n";
    return 2;
  }
  std::cout << "grpc listening on " << HostOf(config.listen) << ":" << grpc_port << "\n"
            << "metrics listening on " << http.address() << std::endl;

  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  int received = 0;
  sigwait(&signals, &received);
  spdlog::info("signal {}: draining in-flight requests", received);
  server->GetHealthCheckService()->SetServingStatus(false);
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(10));
  http.Stop();
  return 0;
}

}  // namespace
}  // namespace gemserve

int main(int argc, char** argv) {
  // Block the shutdown signals before any thread starts, so that Run's sigwait gets them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  gemserve::KeepFreedMemory();

  CLI::App app{"gem-server: serves GEM-activation models over gRPC"};
  gemserve::Flags flags;
  app.add_option("--config", flags.config, "YAML config file")->capture_default_str();
  app.add_option("--listen", flags.listen, "gRPC address HOST:PORT (port 0: any free port)");
  app.add_option("--metrics-listen", flags.metrics_listen, "HTTP metrics address HOST:PORT");
  app.add_option("--model-repository", flags.repository, "model repository directory");
  app.add_option("--device", flags.device, "cpu, cuda, cuda:N or auto");
  app.add_option("--threads", flags.threads, "intra-op threads (0: LibTorch default)")
      ->check(CLI::NonNegativeNumber);
  CLI11_PARSE(app, argc, argv);
  return gemserve::Run(flags);
}
