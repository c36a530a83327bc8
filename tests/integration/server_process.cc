#include "tests/integration/server_process.h"

#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <iostream>

namespace gemserve::testing {
namespace {

[[noreturn]] void Die(const std::string& message) {
  std::cerr << "ServerProcess: " << message << std::endl;
  std::abort();
}

// The address after `prefix` on a line of `output`, or "".
std::string AddressAfter(const std::string& output, const std::string& prefix) {
  const size_t at = output.find(prefix);
  if (at == std::string::npos) return "";
  const size_t start = at + prefix.size();
  const size_t end = output.find('\n', start);
  return end == std::string::npos ? "" : output.substr(start, end - start);
}

int ExitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

}  // namespace

ServerProcess::ServerProcess(const std::string& binary, std::vector<std::string> args,
                             int startup_seconds, bool capture_stderr) {
  args.insert(args.begin(), binary);
  args.push_back("--listen=127.0.0.1:0");
  args.push_back("--metrics-listen=127.0.0.1:0");
  int pipe_fds[2];
  if (pipe(pipe_fds) != 0) Die("pipe failed");
  pid_ = fork();
  if (pid_ < 0) Die("fork failed");
  if (pid_ == 0) {
    dup2(pipe_fds[1], STDOUT_FILENO);
    if (capture_stderr) dup2(pipe_fds[1], STDERR_FILENO);
    close(pipe_fds[0]);
    close(pipe_fds[1]);
    std::vector<char*> argv;
    for (std::string& a : args) argv.push_back(a.data());
    argv.push_back(nullptr);
    execv(binary.c_str(), argv.data());
    _exit(127);
  }
  close(pipe_fds[1]);
  stdout_fd_ = pipe_fds[0];
  std::string output;
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(startup_seconds);
  while (grpc_address_.empty() || metrics_address_.empty()) {
    if (std::chrono::steady_clock::now() > give_up) Die("no listening lines in time: " + output);
    pollfd fd{stdout_fd_, POLLIN, 0};
    if (poll(&fd, 1, 1000) <= 0) continue;
    char buffer[4096];
    const ssize_t n = read(stdout_fd_, buffer, sizeof buffer);
    if (n <= 0) Die("gem-server exited during start-up; its output: " + output);
    output.append(buffer, static_cast<size_t>(n));
    grpc_address_ = AddressAfter(output, "grpc listening on ");
    metrics_address_ = AddressAfter(output, "metrics listening on ");
  }
  output_ = std::move(output);
  // Keeps draining the pipe, so that a server that logs a lot never blocks on it.
  reader_ = std::thread([this] { ReadOutput(); });
}

ServerProcess::~ServerProcess() { Stop(); }

void ServerProcess::Signal(int signal) {
  if (pid_ > 0 && !reaped_) kill(pid_, signal);
  terminated_ = terminated_ || signal == SIGTERM;
}

void ServerProcess::Stop() {
  if (pid_ > 0 && !reaped_) {  // a reaped pid may belong to someone else by now
    if (!terminated_) kill(pid_, SIGTERM);
    int status = 0;
    if (waitpid(pid_, &status, 0) == pid_) exit_status_ = ExitStatus(status);
  }
  pid_ = -1;
  if (reader_.joinable()) reader_.join();
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;
}

void ServerProcess::ReadOutput() {
  char buffer[4096];
  for (ssize_t n; (n = read(stdout_fd_, buffer, sizeof buffer)) > 0;) {
    std::lock_guard<std::mutex> lock(output_mutex_);
    output_.append(buffer, static_cast<size_t>(n));
  }
}

std::string ServerProcess::output() const {
  std::lock_guard<std::mutex> lock(output_mutex_);
  return output_;
}

bool ServerProcess::running() const {
  if (pid_ <= 0 || reaped_) return false;
  int status = 0;
  reaped_ = waitpid(pid_, &status, WNOHANG) == pid_;
  if (reaped_) exit_status_ = ExitStatus(status);
  return !reaped_;
}

CommandResult RunCommand(const std::string& command) {
  CommandResult result;
  FILE* pipe = popen((command + " 2>&1").c_str(), "r");
  if (pipe == nullptr) return result;
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) result.output.append(buffer, n);
  result.exit_status = ExitStatus(pclose(pipe));
  return result;
}

bool UnderAddressSanitizer() { return std::getenv("ASAN_OPTIONS") != nullptr; }

}  // namespace gemserve::testing
