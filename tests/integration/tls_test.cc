// TLS, mutual TLS and the Inference bearer token over real gRPC, with a CA and
// certificates made by openssl when the suite starts: the right client gets in, a
// plaintext client, a client trusting another CA, a client without a certificate (mTLS)
// or without the token do not; health stays open; the token never reaches the log.
#include <grpcpp/grpcpp.h>
#include <gtest/gtest.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>

#include "gemserve/v1/inference.grpc.pb.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "tests/integration/server_process.h"

namespace gemserve::testing {
namespace {

namespace fs = std::filesystem;

constexpr char kToken[] = "s3cret-inference-token-7f3a";

// Runs a shell command; fails the test when it does not exit 0.
void Run(const std::string& command) {
  ASSERT_EQ(std::system((command + " > /dev/null 2>&1").c_str()), 0) << command;
}

std::string Read(const fs::path& path) {
  std::ifstream in(path);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A CA (NAME.pem, NAME.key) and, signed by it, a certificate for 127.0.0.1 / localhost
// (NAME-leaf.pem, NAME-leaf.key), all P-256, valid for two days.
void MakeCaAndLeaf(const fs::path& dir, const std::string& name) {
  const std::string d = dir.string() + "/";
  const std::string ec = " -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
  Run("openssl req -x509" + ec + " -keyout " + d + name + ".key -out " + d + name +
      ".pem -days 2 -subj /CN=" + name);
  Run("openssl req" + ec + " -keyout " + d + name + "-leaf.key -out " + d + name +
      "-leaf.csr -subj /CN=localhost");
  std::ofstream(d + "san.cnf") << "subjectAltName=IP:127.0.0.1,DNS:localhost\n";
  Run("openssl x509 -req -in " + d + name + "-leaf.csr -CA " + d + name + ".pem -CAkey " + d +
      name + ".key -CAcreateserial -days 2 -extfile " + d + "san.cnf -out " + d + name +
      "-leaf.pem");
}

class TlsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new fs::path(fs::temp_directory_path() / ("gemserve-tls-" + std::to_string(getpid())));
    fs::create_directories(*dir_);
    MakeCaAndLeaf(*dir_, "ca");     // the server's certificate and the good client's
    MakeCaAndLeaf(*dir_, "other");  // a CA the server does not trust
    std::ofstream(*dir_ / "token") << kToken << "\n";
    const std::string d = dir_->string() + "/";
    const std::string tls = "tls: {cert_file: " + d + "ca-leaf.pem, key_file: " + d + "ca-leaf.key";
    std::ofstream(*dir_ / "tls.yaml") << "model_repository: " GEMSERVE_REPOSITORY "\n"
                                      << tls << "}\nauth: {inference_token_file: " << d << "token}\n";
    std::ofstream(*dir_ / "mtls.yaml") << "model_repository: " GEMSERVE_REPOSITORY "\n"
                                       << tls << ", client_ca_file: " << d << "ca.pem}\n";
    tls_ = new ServerProcess(GEM_SERVER_BINARY, {"--config=" + d + "tls.yaml"});
    mtls_ = new ServerProcess(GEM_SERVER_BINARY, {"--config=" + d + "mtls.yaml"});
  }
  static void TearDownTestSuite() {
    delete tls_;
    delete mtls_;
    fs::remove_all(*dir_);
    delete dir_;
  }

  // A channel trusting `ca` ("" for plaintext), presenting `client` ("" for none).
  static std::shared_ptr<grpc::Channel> Channel(const ServerProcess& server, const std::string& ca,
                                                const std::string& client = "") {
    if (ca.empty()) {
      return grpc::CreateChannel(server.grpc_address(), grpc::InsecureChannelCredentials());
    }
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = Read(*dir_ / (ca + ".pem"));
    if (!client.empty()) {
      options.pem_cert_chain = Read(*dir_ / (client + "-leaf.pem"));
      options.pem_private_key = Read(*dir_ / (client + "-leaf.key"));
    }
    return grpc::CreateChannel(server.grpc_address(), grpc::SslCredentials(options));
  }

  static grpc::Status List(const std::shared_ptr<grpc::Channel>& channel, const std::string& token) {
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
    if (!token.empty()) context.AddMetadata("authorization", "Bearer " + token);
    v1::ListModelsResponse response;
    return v1::Inference::NewStub(channel)->ListModels(&context, {}, &response);
  }

  static fs::path* dir_;
  static ServerProcess* tls_;
  static ServerProcess* mtls_;
};

fs::path* TlsTest::dir_ = nullptr;
ServerProcess* TlsTest::tls_ = nullptr;
ServerProcess* TlsTest::mtls_ = nullptr;

TEST_F(TlsTest, AClientTrustingTheCaWithTheTokenGetsIn) {
  EXPECT_TRUE(List(Channel(*tls_, "ca"), kToken).ok());
}

TEST_F(TlsTest, PlaintextAndTheWrongCaCannotConnect) {
  EXPECT_EQ(List(Channel(*tls_, ""), kToken).error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(List(Channel(*tls_, "other"), kToken).error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, InferenceWithoutTheTokenIsUnauthenticatedButHealthIsOpen) {
  const auto channel = Channel(*tls_, "ca");
  const grpc::Status none = List(channel, "");
  EXPECT_EQ(none.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_NE(none.error_message().find("authorization: Bearer"), std::string::npos);
  const grpc::Status wrong = List(channel, std::string(kToken) + "x");
  EXPECT_EQ(wrong.error_code(), grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(wrong.error_message().find(kToken), std::string::npos);

  v1::GenerateRequest request;
  request.set_model("gpt2-kjv");
  request.set_prompt("And God said");
  grpc::ClientContext context;
  auto reader = v1::Inference::NewStub(channel)->Generate(&context, request);
  v1::GenerateResponse message;
  EXPECT_FALSE(reader->Read(&message));
  EXPECT_EQ(reader->Finish().error_code(), grpc::StatusCode::UNAUTHENTICATED);

  grpc::ClientContext health_context;
  grpc::health::v1::HealthCheckResponse health;
  EXPECT_TRUE(grpc::health::v1::Health::NewStub(channel)->Check(&health_context, {}, &health).ok());
  EXPECT_EQ(tls_->output().find(kToken), std::string::npos);
}

TEST_F(TlsTest, MutualTlsNeedsAClientCertificateTheCaSigned) {
  EXPECT_TRUE(List(Channel(*mtls_, "ca", "ca"), "").ok());
  EXPECT_EQ(List(Channel(*mtls_, "ca"), "").error_code(), grpc::StatusCode::UNAVAILABLE);
  EXPECT_EQ(List(Channel(*mtls_, "ca", "other"), "").error_code(), grpc::StatusCode::UNAVAILABLE);
}

TEST_F(TlsTest, GemClientConnectsWithItsTlsAndTokenOptions) {
  const std::string d = dir_->string() + "/";
  const std::string base = std::string(GEM_CLIENT_BINARY) + " --server " + tls_->grpc_address() +
                           " --tls-ca " + d + "ca.pem models > /dev/null 2>&1";
  EXPECT_EQ(std::system(("GEMSERVE_INFERENCE_TOKEN=" + std::string(kToken) + " " + base).c_str()), 0);
  EXPECT_NE(std::system(base.c_str()), 0);  // no token
  const std::string mutual = std::string(GEM_CLIENT_BINARY) + " --server " + mtls_->grpc_address() +
                             " --tls-ca " + d + "ca.pem --tls-cert " + d + "ca-leaf.pem --tls-key " +
                             d + "ca-leaf.key models > /dev/null 2>&1";
  EXPECT_EQ(std::system(mutual.c_str()), 0);
}

}  // namespace
}  // namespace gemserve::testing
