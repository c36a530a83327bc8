#pragma once

// Runs build/gem-server as a child process on loopback ports chosen by the kernel, for
// integration tests that talk to it over real gRPC and HTTP.

#include <sys/types.h>

#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace gemserve::testing {

class ServerProcess {
 public:
  // Starts `binary` with `args` plus --listen/--metrics-listen on 127.0.0.1:0, and waits
  // (up to `startup_seconds`) for the two "... listening on HOST:PORT" lines. Aborts the
  // test binary with a message if the server exits or never says where it listens.
  // The server's stdout (and its stderr too with `capture_stderr`) is read all along and
  // kept (see output()).
  ServerProcess(const std::string& binary, std::vector<std::string> args,
                int startup_seconds = 120, bool capture_stderr = false);
  ~ServerProcess();  // Stop()

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& metrics_address() const { return metrics_address_; }
  bool running() const;

  // SIGTERM (unless Signal() sent one), then waits for the exit and for the end of its
  // output. Idempotent.
  void Stop();
  // Sends `signal` (e.g. SIGTERM) without waiting; Stop() then waits for the exit.
  void Signal(int signal);
  // After Stop(): the exit code, or 128 + the signal that killed the server.
  int exit_status() const { return exit_status_; }
  // Everything the server wrote so far (all of it once stopped).
  std::string output() const;

 private:
  void ReadOutput();  // until the pipe closes

  pid_t pid_ = -1;
  mutable bool reaped_ = false;  // running() saw the exit and collected it
  mutable int exit_status_ = -1;
  bool terminated_ = false;  // Signal() sent SIGTERM
  int stdout_fd_ = -1;
  std::string grpc_address_;
  std::string metrics_address_;
  mutable std::mutex output_mutex_;
  std::string output_;
  std::thread reader_;
};

// What a finished shell command printed (stdout and stderr, "2>&1" appended) and its exit
// code (128 + the signal if one killed it; -1 if it could not be started).
struct CommandResult {
  int exit_status = -1;
  std::string output;
};
CommandResult RunCommand(const std::string& command);

// Whether gem-server runs under AddressSanitizer: make test-sanitize sets ASAN_OPTIONS for
// the tests and the servers they start.
bool UnderAddressSanitizer();

}  // namespace gemserve::testing
