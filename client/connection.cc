#include "client/connection.h"

#include <grpcpp/support/client_interceptor.h>

#include <chrono>
#include <iostream>
#include <vector>

#include "client/cli_common.h"

namespace gemserve::client {
namespace {

// Adds the bearer token to every call's initial metadata, unless the call set its own
// authorization (the Admin commands' --token). Works on plaintext channels too, where
// gRPC's call credentials would not be sent.
class BearerInterceptor final : public grpc::experimental::Interceptor {
 public:
  explicit BearerInterceptor(const std::string& token) : header_("Bearer " + token) {}

  void Intercept(grpc::experimental::InterceptorBatchMethods* methods) override {
    using Hook = grpc::experimental::InterceptionHookPoints;
    if (methods->QueryInterceptionHookPoint(Hook::PRE_SEND_INITIAL_METADATA)) {
      std::multimap<std::string, std::string>* metadata = methods->GetSendInitialMetadata();
      if (metadata->count("authorization") == 0) metadata->emplace("authorization", header_);
    }
    methods->Proceed();
  }

 private:
  const std::string header_;
};

class BearerInterceptorFactory final : public grpc::experimental::ClientInterceptorFactoryInterface {
 public:
  explicit BearerInterceptorFactory(std::string token) : token_(std::move(token)) {}

  grpc::experimental::Interceptor* CreateClientInterceptor(
      grpc::experimental::ClientRpcInfo* /*info*/) override {
    return new BearerInterceptor(token_);
  }

 private:
  const std::string token_;
};

bool ReadNamed(const std::string& flag, const std::string& path, std::string* pem) {
  if (path.empty() || ReadFileBytes(path, pem)) return true;
  std::cerr << "gem-client: " << flag << ": cannot read " << path << "\n";
  return false;
}

}  // namespace

void AddConnectionOptions(CLI::App& app, Connection* connection) {
  app.add_option("--connect-timeout", connection->connect_timeout_s,
                 "seconds to wait for a connection to the server")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  app.add_option("--server", connection->server, "gem-server address HOST:PORT")
      ->capture_default_str();
  app.add_option("--tls-ca", connection->tls_ca, "TLS: the CA that signed the server's certificate");
  app.add_option("--tls-cert", connection->tls_cert, "mutual TLS: this client's certificate");
  app.add_option("--tls-key", connection->tls_key, "mutual TLS: this client's private key");
  app.add_option("--inference-token", connection->inference_token,
                 "Inference bearer token (auth.inference_token_file)")
      ->envname("GEMSERVE_INFERENCE_TOKEN");
}

std::shared_ptr<grpc::Channel> OpenChannel(const Connection& connection) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!connection.tls_ca.empty()) {
    grpc::SslCredentialsOptions tls;
    if (connection.tls_cert.empty() != connection.tls_key.empty()) {
      std::cerr << "gem-client: --tls-cert and --tls-key go together\n";
      return nullptr;
    }
    if (!ReadNamed("--tls-ca", connection.tls_ca, &tls.pem_root_certs) ||
        !ReadNamed("--tls-cert", connection.tls_cert, &tls.pem_cert_chain) ||
        !ReadNamed("--tls-key", connection.tls_key, &tls.pem_private_key)) {
      return nullptr;
    }
    credentials = grpc::SslCredentials(tls);
  }
  std::vector<std::unique_ptr<grpc::experimental::ClientInterceptorFactoryInterface>> interceptors;
  if (!connection.inference_token.empty()) {
    interceptors.push_back(std::make_unique<BearerInterceptorFactory>(connection.inference_token));
  }
  return grpc::experimental::CreateCustomChannelWithInterceptors(
      connection.server, credentials, grpc::ChannelArguments(), std::move(interceptors));
}

bool ConnectOrExplain(grpc::Channel& channel, const Connection& connection) {
  const auto deadline = std::chrono::system_clock::now() +
                        std::chrono::duration_cast<std::chrono::system_clock::duration>(
                            std::chrono::duration<double>(connection.connect_timeout_s));
  if (channel.WaitForConnected(deadline)) return true;
  std::cerr << "gem-client: cannot reach gem-server at " << connection.server << " (no connection within "
            << connection.connect_timeout_s << " s).\n"
            << "  Is gem-server running there? It prints \"grpc listening on HOST:PORT\" at start;\n"
            << "  pass that address with --server HOST:PORT. If the server has `tls:` in its\n"
            << "  config, pass --tls-ca (and --tls-cert/--tls-key for mutual TLS).\n";
  return false;
}

}  // namespace gemserve::client
