// ProbeListener and ListenerWatchdog against sockets made here: a port that accepts and
// answers, one that accepts nothing (a full backlog stands for gRPC's closed listener),
// and one where nothing listens.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <thread>

#include "server/grpc/listener_watchdog.h"

namespace gemserve {
namespace {

using std::chrono::milliseconds;

// A loopback TCP socket, bound to a free port and listening (never accepting).
class Listener {
 public:
  Listener() : fd_(socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t length = sizeof address;
    EXPECT_EQ(bind(fd_, reinterpret_cast<sockaddr*>(&address), length), 0);
    EXPECT_EQ(listen(fd_, 16), 0);
    EXPECT_EQ(getsockname(fd_, reinterpret_cast<sockaddr*>(&address), &length), 0);
    port_ = ntohs(address.sin_port);
  }
  ~Listener() { close(fd_); }
  int fd() const { return fd_; }
  int port() const { return port_; }

 private:
  int fd_;
  int port_ = 0;
};

// A free loopback port: bound, then released.
int UnusedPort() { return Listener().port(); }

TEST(ListenerProbe, AnAcceptedConnectionThatIsAnsweredOrClosedCounts) {
  Listener listener;
  std::thread server([&] {
    const int first = accept(listener.fd(), nullptr, nullptr);
    EXPECT_EQ(write(first, "x", 1), 1);  // as gRPC's SETTINGS
    const int second = accept(listener.fd(), nullptr, nullptr);
    close(second);  // as a TLS port that gets no ClientHello
    close(first);
  });
  EXPECT_EQ(ProbeListener("127.0.0.1", listener.port(), milliseconds(5000)), ProbeResult::kAnswered);
  EXPECT_EQ(ProbeListener("127.0.0.1", listener.port(), milliseconds(5000)), ProbeResult::kAnswered);
  server.join();
}

TEST(ListenerProbe, AConnectionNobodyAcceptsOrNoListenerIsUnanswered) {
  Listener listener;  // listens, never accepts: the connection waits in the backlog
  EXPECT_EQ(ProbeListener("127.0.0.1", listener.port(), milliseconds(200)), ProbeResult::kUnanswered);
  EXPECT_EQ(ProbeListener("127.0.0.1", UnusedPort(), milliseconds(200)), ProbeResult::kUnanswered);
}

TEST(ListenerProbe, WildcardHostsAreProbedOnLoopback) {
  EXPECT_EQ(ProbeHostFor("0.0.0.0"), "127.0.0.1");
  EXPECT_EQ(ProbeHostFor(""), "127.0.0.1");
  EXPECT_EQ(ProbeHostFor("[::]"), "::1");
  EXPECT_EQ(ProbeHostFor("[::1]"), "::1");
  EXPECT_EQ(ProbeHostFor("10.1.2.3"), "10.1.2.3");
}

TEST(ListenerWatchdog, ReportsAPortThatStoppedAcceptingOnceAfterTheGivenFailures) {
  Listener listener;
  std::atomic<int> reports{0};
  {
    ListenerWatchdog watchdog("127.0.0.1", listener.port(),
                              {milliseconds(10), milliseconds(50), 3}, [&] { ++reports; });
    const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (watchdog.accepting() && std::chrono::steady_clock::now() < give_up) {
      std::this_thread::sleep_for(milliseconds(10));
    }
    EXPECT_FALSE(watchdog.accepting());
    std::this_thread::sleep_for(milliseconds(200));  // no second report
  }
  EXPECT_EQ(reports.load(), 1);
}

TEST(ListenerWatchdog, APortThatAnswersIsNeverReported) {
  Listener listener;
  std::atomic<bool> stop{false};
  std::thread server([&] {
    while (!stop) {
      const int fd = accept(listener.fd(), nullptr, nullptr);
      if (fd >= 0) close(fd);
    }
  });
  std::atomic<int> reports{0};
  {
    ListenerWatchdog watchdog("127.0.0.1", listener.port(),
                              {milliseconds(10), milliseconds(2000), 3}, [&] { ++reports; });
    std::this_thread::sleep_for(milliseconds(300));  // some 20 probes
    EXPECT_TRUE(watchdog.accepting());
  }
  stop = true;
  ProbeListener("127.0.0.1", listener.port(), milliseconds(1000));  // wakes the accept
  server.join();
  EXPECT_EQ(reports.load(), 0);
}

}  // namespace
}  // namespace gemserve
