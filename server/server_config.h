#pragma once

// gem-server's configuration: deploy/gemserve.yaml, overridden by command-line flags.
//
// Unknown keys are errors (a misspelt key must not be silently ignored). Durations are
// written "250us", "2ms", "30s" or "1m". Experiments are checked here for form (weights,
// rates, sizes); their model and variant names are checked when the engine starts.

#include <chrono>
#include <filesystem>
#include <string>

#include "server/engine/engine.h"
#include "server/engine/status.h"
#include "server/http/http_server.h"

namespace gemserve {

// tls: the PEM contents of the files it names, read when the config is loaded.
struct TlsFiles {
  std::string cert_pem;       // the server's certificate chain; empty: no TLS
  std::string key_pem;        // its private key
  std::string client_ca_pem;  // set: mutual TLS, clients must show a certificate it signed
  bool enabled() const { return !cert_pem.empty(); }
};

struct ServerConfig {
  std::string listen = "127.0.0.1:50051";          // gRPC; port 0 picks a free port
  std::string metrics_listen = "127.0.0.1:9464";   // HTTP /metrics, /healthz, /
  int max_message_bytes = 4 << 20;                 // largest request gRPC accepts
  std::chrono::milliseconds default_deadline{30000};  // for requests that set none
  std::chrono::milliseconds max_deadline{600000};     // longer client deadlines are cut to it
  // A gRPC connection with no call in flight this long gets GOAWAY and is closed; clients
  // reconnect on their next call. Bounds connections that are opened and left silent.
  std::chrono::milliseconds max_connection_idle{300000};
  // A connection that has not finished the TLS and HTTP/2 handshakes this long after it
  // was accepted is closed.
  std::chrono::milliseconds handshake_timeout{20000};
  // SIGTERM/SIGINT: in-flight requests and streams get this long to finish.
  std::chrono::milliseconds shutdown_grace{20000};
  HttpLimits http;                                     // the metrics port's bounds
  // auth.admin_token_file's content (surrounding whitespace removed); empty: Admin is open.
  std::string admin_token;
  // auth.inference_token_file's, for the Inference service; empty: Inference is open.
  std::string inference_token;
  TlsFiles tls;                                        // empty cert: plaintext gRPC
  EngineOptions engine;
};

// Parses YAML text. `where` names the source in error messages. InvalidArgument naming
// the key on any bad or unknown entry.
StatusOr<ServerConfig> ParseServerConfig(const std::string& yaml, const std::string& where);

// Reads and parses a file. NotFound when it cannot be read.
StatusOr<ServerConfig> LoadServerConfig(const std::filesystem::path& path);

// "2ms" -> 2000 us. InvalidArgument for anything else, and above a day.
StatusOr<std::chrono::microseconds> ParseDuration(const std::string& text);

}  // namespace gemserve
