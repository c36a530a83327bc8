// gem-server: flags + config -> engine, gRPC service, HTTP metrics; runs until SIGINT
// or SIGTERM, then shuts down gracefully (DrainAndStop) and exits 0. A second signal
// during the shutdown exits at once with status 1. When the gRPC port stops accepting
// connections (ListenerWatchdog) it shuts down the same way and exits 3, for its
// supervisor to start it again.

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <spdlog/spdlog.h>

#include <sys/resource.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <iostream>
#include <malloc.h>
#include <memory>

#include "server/engine/engine.h"
#include "server/engine/telemetry/activations_json.h"
#include "server/grpc/admin_service.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/listener_watchdog.h"
#include "server/grpc/model_reloader.h"
#include "server/grpc/proto_convert.h"
#include "server/grpc/reflection_service.h"
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

// TLS with the configured certificate (and, with a client CA, mutual TLS: a client
// without a certificate that CA signed cannot connect); plaintext without one.
std::shared_ptr<grpc::ServerCredentials> Credentials(const TlsFiles& tls) {
  if (!tls.enabled()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions options(
      tls.client_ca_pem.empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_root_certs = tls.client_ca_pem;
  options.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
  return grpc::SslServerCredentials(options);
}

// gRPC 1.51 inflates a compressed message in full before it checks the size limit: a
// 1 MiB gzip request of zeros took 1 GiB of memory to be refused. Requests here are small
// (a PNG, a prompt), so only identity encoding is accepted; gzip or deflate is refused with
// UNIMPLEMENTED before the message is read.
void RefuseCompressedRequests(grpc::ServerBuilder& builder) {
  for (const grpc_compression_algorithm algorithm : {GRPC_COMPRESS_DEFLATE, GRPC_COMPRESS_GZIP}) {
    builder.SetCompressionAlgorithmSupportStatus(algorithm, false);
  }
}

// Every connection takes a file descriptor, and gRPC's listener dies when it runs out of
// them (listener_watchdog.h): use all the process may have.
void RaiseOpenFileLimit() {
  rlimit files{};
  if (getrlimit(RLIMIT_NOFILE, &files) != 0 || files.rlim_cur >= files.rlim_max) return;
  const rlim_t soft = files.rlim_cur;
  files.rlim_cur = files.rlim_max;
  if (setrlimit(RLIMIT_NOFILE, &files) == 0) {
    spdlog::info("open files: limit raised from {} to {}", soft, files.rlim_max);
  }
}

// SIGINT, SIGTERM and SIGHUP, whichever thread they reach, become one byte on this pipe;
// the listener watchdog writes kListenerLost.
int signal_pipe[2] = {-1, -1};
constexpr char kListenerLost = 0;  // no signal has number 0
std::atomic<bool> signalled{false};  // a shutdown signal came

void OnSignal(int signal) {
  if (signal != SIGHUP && signalled.exchange(true)) _exit(1);
  const auto byte = static_cast<char>(signal);
  [[maybe_unused]] const ssize_t written = write(signal_pipe[1], &byte, 1);
}

bool InstallSignalHandlers() {
  if (pipe(signal_pipe) != 0) return false;
  struct sigaction action = {};
  action.sa_handler = OnSignal;
  sigemptyset(&action.sa_mask);
  for (const int signal : {SIGINT, SIGTERM, SIGHUP}) {
    if (sigaction(signal, &action, nullptr) != 0) return false;
  }
  return true;
}

// Blocks until the next signal; returns it.
int WaitForSignal() {
  char byte = 0;
  while (read(signal_pipe[0], &byte, 1) < 0 && errno == EINTR) {
  }
  return byte;
}

void LogReload(const StatusOr<ReloadReport>& report) {
  if (!report.ok()) return spdlog::error("reload failed: {}", report.status().message());
  int changed = 0;
  for (const VariantReload& v : report->variants) changed += v.action != ReloadAction::kUnchanged;
  spdlog::info("reload done: {} variants, {} changed, {} failed", report->variants.size(),
               changed, report->failed());
}

void OnListenerLost() {
  [[maybe_unused]] const ssize_t written = write(signal_pipe[1], &kListenerLost, 1);
}

// Serves SIGHUP with reloads until SIGINT or SIGTERM (or the watchdog's kListenerLost);
// returns it.
int ReloadOnHangupUntilShutdown(ModelReloader& reloader) {
  while (true) {
    const int received = WaitForSignal();
    if (received != SIGHUP) return received;
    spdlog::info("SIGHUP: reloading the model repository");
    reloader.Request(LogReload);
  }
}

// What is left after the grace period: a batch or a decode step, then the requests end.
constexpr std::chrono::seconds kAbortWait(5);

// New RPCs get UNAVAILABLE and health goes NOT_SERVING (every check and open Watch is told),
// those in flight get `grace` to finish, then are stopped with UNAVAILABLE; a reload in
// progress ends (it waits for those requests), waiting ones get UNAVAILABLE; last, the
// gRPC server closes what remains (Watch streams) at once.
void DrainAndStop(grpc::Server& server, InferenceService& service, ModelReloader& reloader,
                  std::chrono::milliseconds grace) {
  ShutdownGate& gate = service.gate();
  gate.Close();  // before health says NOT_SERVING: a client told so is refused from then on
  server.GetHealthCheckService()->Shutdown();
  spdlog::info("shutting down: {} requests in flight, grace period {} ms", gate.in_flight(),
               grace.count());
  if (!gate.WaitIdle(std::chrono::steady_clock::now() + grace)) {
    spdlog::warn("grace period over: stopping the {} requests still in flight", gate.in_flight());
    gate.Abort();
    if (!gate.WaitIdle(std::chrono::steady_clock::now() + kAbortWait)) {
      spdlog::error("{} requests did not stop; closing their calls", gate.in_flight());
    }
  }
  reloader.Stop();
  server.Shutdown(std::chrono::system_clock::now());
}

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
  ModelReloader reloader(engine.value().get(), &metrics);

  InferenceService service(engine.value().get(), &metrics,
                           {config.default_deadline, config.max_deadline}, config.inference_token);
  AdminService admin(engine.value().get(), &metrics, &reloader, config.admin_token);
  ServerReflection reflection(GemServerProtoFiles());
  grpc::EnableDefaultHealthCheckService(true);
  int grpc_port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort(config.listen, Credentials(config.tls), &grpc_port);
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);  // a second server must not share it
  builder.SetMaxReceiveMessageSize(config.max_message_bytes);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONNECTION_IDLE_MS,
                             static_cast<int>(config.max_connection_idle.count()));
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             static_cast<int>(config.handshake_timeout.count()));
  RefuseCompressedRequests(builder);
  builder.RegisterService(&service);
  builder.RegisterService(&admin);
  reflection.RegisterWith(builder);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || grpc_port == 0) {
    std::cerr << "gem-server: cannot listen on " << config.listen
              << " for gRPC: the address is malformed, not local, or in use (by another "
                 "gem-server?)"
              << (config.tls.enabled() ? ", or tls: is not a valid certificate and key" : "")
              << "\n";
    return 2;
  }
  reloader.PublishHealthTo(server->GetHealthCheckService());
  const ListenerWatchdog watchdog(ProbeHostFor(HostOf(config.listen)), grpc_port, {},
                                  OnListenerLost);

  HttpServer http({[&metrics] { return metrics.Serialize(); },
                   [&engine, &service, &watchdog]() -> Health {
                     if (!watchdog.accepting()) {
                       return {false, "the gRPC port stopped accepting connections"};
                     }
                     if (service.gate().closed()) return {false, "gem-server is shutting down"};
                     if (AnyVariantReady(engine.value()->Models())) return {true, ""};
                     return {false, "no model variant is loaded"};
                   },
                   [&engine] { return ExperimentsJson(*engine.value()); },
                   [&engine] { return ToJson(ToProto(engine.value()->Models())); },
                   [&engine] { return ActivationsJson(engine.value()->Activations("").value()); }},
                  config.http);
  if (std::string error; !http.Start(config.metrics_listen, &error)) {
    std::cerr << "gem-server: " << error << "\n";
    return 2;
  }
  std::cout << "grpc listening on " << HostOf(config.listen) << ":" << grpc_port << "\n"
            << "metrics listening on " << http.address() << std::endl;

  const int received = ReloadOnHangupUntilShutdown(reloader);
  if (received == kListenerLost) {
    spdlog::error("the gRPC port {} stopped accepting connections (gRPC closes its listener "
                  "after an accept error such as running out of file descriptors): shutting "
                  "down, exit status 3", grpc_port);
  } else {
    spdlog::info("signal {}: shutting down", received);
  }
  DrainAndStop(*server, service, reloader, config.shutdown_grace);
  http.Stop();
  return received == kListenerLost ? 3 : 0;
}

}  // namespace
}  // namespace gemserve

int main(int argc, char** argv) {
  if (!gemserve::InstallSignalHandlers()) {
    std::cerr << "gem-server: cannot install the SIGINT/SIGTERM/SIGHUP handlers\n";
    return 2;
  }
  gemserve::KeepFreedMemory();
  gemserve::RaiseOpenFileLimit();

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
