#pragma once

// Runs build/gem-server as a child process on loopback ports chosen by the kernel, for
// integration tests that talk to it over real gRPC and HTTP.

#include <sys/types.h>

#include <string>
#include <vector>

namespace gemserve::testing {

class ServerProcess {
 public:
  // Starts `binary` with `args` plus --listen/--metrics-listen on 127.0.0.1:0, and waits
  // (up to `startup_seconds`) for the two "... listening on HOST:PORT" lines. Aborts the
  // test binary with a message if the server exits or never says where it listens.
  ServerProcess(const std::string& binary, std::vector<std::string> args,
                int startup_seconds = 120);
  ~ServerProcess();  // SIGTERM, then waits for the exit

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  bool running() const;

 private:
  pid_t pid_ = -1;
  int stdout_fd_ = -1;
  std::string grpc_address_;
  std::string metrics_address_;
};

}  // namespace gemserve::testing
