#include "server/grpc/listener_watchdog.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <memory>
#include <utility>

namespace gemserve {
namespace {

using Clock = std::chrono::steady_clock;

// The HTTP/2 client connection preface: the magic string, then an empty SETTINGS frame.
constexpr char kPreface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\4\0\0\0\0\0";
constexpr size_t kPrefaceBytes = sizeof(kPreface) - 1;

struct AddressInfoDeleter {
  void operator()(addrinfo* info) const { freeaddrinfo(info); }
};

// A socket closed when it goes out of scope.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Waits until `fd` has one of `events` or `deadline` passes; the events that came (0 on
// timeout).
short WaitFor(int fd, short events, Clock::time_point deadline) {
  while (true) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return 0;
    pollfd entry{fd, events, 0};
    const int ready = poll(&entry, 1, static_cast<int>(left.count()));
    if (ready > 0) return entry.revents;
    if (ready == 0) return 0;
    if (errno != EINTR) return POLLERR;
  }
}

}  // namespace

ProbeResult ProbeListener(const std::string& host, int port, std::chrono::milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV;
  addrinfo* found = nullptr;
  if (getaddrinfo(host.c_str(), std::to_string(port).c_str(), &hints, &found) != 0) {
    return ProbeResult::kInconclusive;
  }
  const std::unique_ptr<addrinfo, AddressInfoDeleter> info(found);
  const Socket socket(::socket(info->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0));
  if (socket.fd() < 0) return ProbeResult::kInconclusive;
  if (connect(socket.fd(), info->ai_addr, info->ai_addrlen) != 0) {
    if (errno != EINPROGRESS) return ProbeResult::kUnanswered;
    int error = 0;
    socklen_t length = sizeof(error);
    if (!(WaitFor(socket.fd(), POLLOUT, deadline) & POLLOUT) ||
        getsockopt(socket.fd(), SOL_SOCKET, SO_ERROR, &error, &length) != 0 || error != 0) {
      return ProbeResult::kUnanswered;
    }
  }
  if (send(socket.fd(), kPreface, kPrefaceBytes, MSG_NOSIGNAL) != static_cast<ssize_t>(kPrefaceBytes)) {
    return ProbeResult::kUnanswered;
  }
  // Any byte, the end of the stream or a reset: only an accepted connection gets one.
  return WaitFor(socket.fd(), POLLIN, deadline) != 0 ? ProbeResult::kAnswered
                                                     : ProbeResult::kUnanswered;
}

std::string ProbeHostFor(const std::string& listen_host) {
  std::string host = listen_host;
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  if (host.empty() || host == "0.0.0.0") return "127.0.0.1";
  if (host == "::") return "::1";
  return host;
}

ListenerWatchdog::ListenerWatchdog(std::string host, int port, Options options,
                                   std::function<void()> on_dead)
    : host_(std::move(host)),
      port_(port),
      options_(options),
      on_dead_(std::move(on_dead)),
      thread_([this] { Loop(); }) {}

ListenerWatchdog::~ListenerWatchdog() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stop_ = true;
  }
  stop_requested_.notify_all();
  thread_.join();
}

void ListenerWatchdog::Loop() {
  int unanswered = 0;
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stop_requested_.wait_for(lock, options_.interval, [this] { return stop_; })) {
    lock.unlock();
    const ProbeResult result = ProbeListener(host_, port_, options_.timeout);
    lock.lock();
    if (result == ProbeResult::kAnswered) unanswered = 0;
    if (result != ProbeResult::kUnanswered || ++unanswered < options_.failures) continue;
    accepting_ = false;
    lock.unlock();
    on_dead_();
    return;
  }
}

}  // namespace gemserve
