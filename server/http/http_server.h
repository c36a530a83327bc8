#pragma once

// The operator's HTTP port (--metrics-listen):
//
//   GET /metrics   200, the Prometheus text exposition (text/plain; version=0.0.4)
//   GET /healthz   200 "ok", or 503 with the reason the server is not healthy
//   GET /api/v1/experiments, /api/v1/models, /api/v1/activations
//                  200, JSON from the handlers below (404 when a handler is not given)
//   GET /          a self-contained live page comparing the variants (polls the above)
//   anything else  404; HEAD is answered like GET, without the body
//
// Built on cpp-httplib; it knows nothing of the engine or gRPC: it calls the handlers it
// is given. Handlers run on the server's own threads, several at once, so they must be
// thread-safe; a handler that throws yields a 500 for that request.
//
// What a client can make the server hold, and what it gets past each bound (HttpLimits
// below and the constants of HttpServer; the 8 KiB ones are compiled into httplib):
//
//   connections   `threads` are served at once, one thread each; up to
//                 kMaxWaitingConnections more wait for a thread, oldest first (and up
//                 to kAcceptBacklog in the kernel's accept queue, accepted in the order
//                 they came). A connection accepted past that gets 503 and is closed at
//                 once.
//   slow clients  a request's line and headers must arrive within `read_timeout` of the
//                 connection being accepted (waiting for a thread counts, but bytes the
//                 client has sent are always read), or, on a kept-alive connection, of
//                 their first byte. Past that the connection is closed: unanswered while
//                 the request line is unfinished, with httplib's 400 once in the headers.
//                 Each response must be taken within `read_timeout` too, or the
//                 connection is closed.
//   keep-alive    a connection is closed when idle for kKeepAliveIdle, after
//                 kMaxRequestsPerConnection requests, and after a response while other
//                 connections wait for a thread.
//   request head  a request line over 8 KiB gets 414 (httplib); one that does not end
//                 within kMaxRequestHeadBytes gets 414 too. A header line over 8 KiB, or
//                 a head over kMaxRequestHeadBytes, gets 400 (httplib cannot read the
//                 headers). No more of a head than kMaxRequestHeadBytes is ever held.
//   bodies        no route takes a body, and none is read. A Content-Length over
//                 `max_body_bytes`, or a body of undeclared length (Transfer-Encoding),
//                 gets 413; a method other than GET and HEAD gets 405 with "Allow: GET,
//                 HEAD"; both come before any "100 Continue". A GET with a body within
//                 `max_body_bytes` is answered, its body unread. A method httplib does
//                 not know gets its 400.
//   Every 400, 405, 413 and 414, and every request with a body, closes the connection.
//
// Hence a flood of idle or half-sent connections delays a health probe by about
// `read_timeout` (kKeepAliveIdle where longer, for idle kept-alive ones) while fewer
// than threads + kMaxWaitingConnections connections are open; past that, the probe gets
// 503. A connection waiting for a thread holds only its socket; one on a thread holds at
// most kMaxRequestHeadBytes of request. The port binds to loopback by default. Where it
// must listen more widely (a Kubernetes probe, a scraper on another host), let only those
// clients reach it (NetworkPolicy, firewall), and raise `threads` if they are many.

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace gemserve {

struct Health {
  bool ok = true;
  std::string reason;  // why not ok; the body of the 503
};

struct HttpHandlers {
  std::function<std::string()> metrics;  // the body of GET /metrics; required
  std::function<Health()> health;        // the answer of GET /healthz; required
  std::function<std::string()> experiments_json = nullptr;  // GET /api/v1/experiments; optional
  std::function<std::string()> models_json = nullptr;       // GET /api/v1/models; optional
  std::function<std::string()> activations_json = nullptr;  // GET /api/v1/activations; optional
};

// What one HTTP client can make the server hold (config section `http`).
struct HttpLimits {
  int threads = 8;                               // connections served at once; at least 1
  std::chrono::milliseconds read_timeout{2000};  // to send a request head, to take a response
  int64_t max_body_bytes = 65536;                // larger request bodies: 413, not read
};

class BoundedServer;  // http_server.cc: httplib's server, serving under HttpLimits

class HttpServer {
 public:
  static constexpr size_t kMaxWaitingConnections = 64;
  static constexpr int kAcceptBacklog = 1024;
  static constexpr size_t kMaxRequestHeadBytes = 16 * 1024;
  static constexpr size_t kMaxRequestsPerConnection = 100;
  static constexpr std::chrono::seconds kKeepAliveIdle{1};

  explicit HttpServer(HttpHandlers handlers, HttpLimits limits = {});
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();  // Stop()

  // Binds "HOST:PORT" ("[::1]:PORT" for IPv6; an empty HOST means 0.0.0.0; port 0
  // picks a free port) and serves on background threads until Stop(). Returns false and
  // sets *error to a message naming the address when a handler is missing, the limits are
  // out of range (threads < 1, read_timeout <= 0, max_body_bytes < 0), the address
  // is malformed or cannot be bound (e.g. the port is taken: unlike httplib's default, the
  // socket is not SO_REUSEPORT, so a second server cannot share the port), or the server
  // was already started. Call at most once, from the thread that owns the server.
  bool Start(const std::string& listen_address, std::string* error);

  // Stops accepting, closes the connections waiting for a thread, lets the requests being
  // answered finish and joins the threads; takes up to kKeepAliveIdle while a client holds
  // an idle keep-alive connection. Idempotent; does nothing when never started. Same
  // thread as Start().
  void Stop();

  // After a successful Start(): the bound port, and "HOST:PORT" as bound (the host as
  // given, bracketed when IPv6), e.g. "127.0.0.1:43125". Before: 0 and "".
  int port() const { return port_; }
  std::string address() const;

 private:
  void Route();

  const HttpHandlers handlers_;
  const HttpLimits limits_;
  std::unique_ptr<BoundedServer> server_;
  std::thread thread_;
  std::string host_;
  int port_ = 0;
};

}  // namespace gemserve
