#pragma once

// How gem-client reaches gem-server: the address, TLS when the server has `tls:` (the CA
// that signed its certificate; a client certificate and key for mutual TLS), and the
// Inference bearer token (auth.inference_token_file), sent with every call.

#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <memory>
#include <string>

namespace gemserve::client {

struct Connection {
  std::string server = "127.0.0.1:50051";
  std::string tls_ca;    // set: TLS, verifying the server's certificate against this CA
  std::string tls_cert;  // with tls_key: the client's certificate, for mutual TLS
  std::string tls_key;
  std::string inference_token;  // "authorization: Bearer <token>" on calls that carry none
  double connect_timeout_s = 5;  // how long ConnectOrExplain waits for a connection
};

// --server, --tls-ca, --tls-cert, --tls-key and --inference-token (or
// $GEMSERVE_INFERENCE_TOKEN), on `app` for every command.
void AddConnectionOptions(CLI::App& app, Connection* connection);

// A channel to connection.server; nullptr, with a message on stderr, when a TLS file
// cannot be read or a client certificate comes without its key (or the other way).
std::shared_ptr<grpc::Channel> OpenChannel(const Connection& connection);

// Connects `channel` within connection.connect_timeout_s. Returns true once connected;
// otherwise prints why the server could not be reached and what to check (the address,
// whether it runs, TLS on one side only) and returns false: exit with kExitUnreachable.
bool ConnectOrExplain(grpc::Channel& channel, const Connection& connection);

}  // namespace gemserve::client
