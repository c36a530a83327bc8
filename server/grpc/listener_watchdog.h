#pragma once

// Watches that gem-server's gRPC port still accepts connections.
//
// gRPC 1.51 (Debian 12's) closes its listener for good when accept() fails with anything
// but EAGAIN, EINTR or ECONNABORTED (CVE-2023-4785): a burst of idle connections that
// uses up the process's file descriptors (EMFILE) leaves a server that never accepts a
// connection again, though those it has go on working and /healthz said 200. Measured:
// 24,000 idle TCP connections held for 5 s, then closed, left every new Classify timing
// out for as long as it was watched (130 s).
//
// Every `interval`, a probe connects to the port over loopback, sends the HTTP/2 client
// preface and waits up to `timeout` for any answer: a plaintext gRPC server sends its
// SETTINGS at once, a TLS one answers the bytes with an alert or closes the connection.
// A connection that the server never accepted stays unanswered in the kernel's backlog.
// A probe that cannot even open a socket (this process is out of descriptors) proves
// nothing either way and is not counted. After `failures` unanswered probes in a row,
// `on_dead` is called, once, from the watchdog's thread.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

namespace gemserve {

// What one probe of a listening port found.
enum class ProbeResult {
  kAnswered,      // the port accepted the connection and answered it
  kUnanswered,    // no connection, or no answer within the timeout
  kInconclusive,  // no socket could be opened here
};

// Connects to `host`:`port` (a name or a numeric address, IPv6 without brackets), sends
// the HTTP/2 client preface and waits up to `timeout` in all for a byte or the end of the
// connection.
ProbeResult ProbeListener(const std::string& host, int port, std::chrono::milliseconds timeout);

// Where to probe a server that listens on `host` (as in HOST:PORT, IPv6 in brackets): the
// loopback address for a wildcard ("", 0.0.0.0, [::]), else the host itself.
std::string ProbeHostFor(const std::string& listen_host);

class ListenerWatchdog {
 public:
  struct Options {
    std::chrono::milliseconds interval{2000};
    std::chrono::milliseconds timeout{2000};
    int failures = 3;  // unanswered probes in a row that mean the listener is gone
  };

  // Starts probing `host`:`port` (ProbeListener).
  ListenerWatchdog(std::string host, int port, Options options, std::function<void()> on_dead);
  ~ListenerWatchdog();  // stops the probes (waits for one in progress)

  ListenerWatchdog(const ListenerWatchdog&) = delete;
  ListenerWatchdog& operator=(const ListenerWatchdog&) = delete;

  // False once `failures` probes in a row went unanswered.
  bool accepting() const { return accepting_.load(); }

 private:
  void Loop();

  const std::string host_;
  const int port_;
  const Options options_;
  const std::function<void()> on_dead_;
  std::atomic<bool> accepting_{true};
  std::mutex mutex_;
  std::condition_variable stop_requested_;
  bool stop_ = false;
  std::thread thread_;  // last: starts once the rest is set
};

}  // namespace gemserve
