#pragma once

// The operator's HTTP port (--metrics-listen):
//
//   GET /metrics   200, the Prometheus text exposition (text/plain; version=0.0.4)
//   GET /healthz   200 "ok", or 503 with the reason the server is not healthy
//   GET /api/v1/experiments, /api/v1/models
//                  200, JSON from the handlers below (404 when a handler is not given)
//   GET /          a self-contained live page comparing the variants (polls the above)
//   anything else  404
//
// Built on cpp-httplib; it knows nothing of the engine or gRPC: it calls the handlers it
// is given. Handlers run on the server's own threads, several at once, so they must be
// thread-safe; a handler that throws yields a 500 for that request.

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <thread>

namespace httplib {
class Server;
}

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
};

// What one HTTP client can make the server hold (config section `http`).
struct HttpLimits {
  int threads = 8;                               // connections served at once
  std::chrono::milliseconds read_timeout{2000};  // a client silent this long is dropped
  int64_t max_body_bytes = 65536;                // larger request bodies: 413, not read
};

class HttpServer {
 public:
  explicit HttpServer(HttpHandlers handlers, HttpLimits limits = {});
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;
  ~HttpServer();  // Stop()

  // Binds "HOST:PORT" ("[::1]:PORT" for IPv6; an empty HOST means 0.0.0.0; port 0
  // picks a free port) and serves on background threads until Stop(). Returns false and
  // sets *error to a message naming the address when a handler is missing, the address
  // is malformed or cannot be bound (e.g. the port is taken: unlike httplib's default, the
  // socket is not SO_REUSEPORT, so a second server cannot share the port), or the server
  // was already started. Call at most once, from the thread that owns the server.
  bool Start(const std::string& listen_address, std::string* error);

  // Stops accepting, lets the requests being answered finish and joins the threads; takes
  // up to 1 s while a client holds an idle keep-alive connection. Idempotent; does
  // nothing when never started. Same thread as Start().
  void Stop();

  // After a successful Start(): the bound port, and "HOST:PORT" as bound (the host as
  // given, bracketed when IPv6), e.g. "127.0.0.1:43125". Before: 0 and "".
  int port() const { return port_; }
  std::string address() const;

 private:
  void Route();

  const HttpHandlers handlers_;
  const HttpLimits limits_;
  std::unique_ptr<httplib::Server> server_;
  std::thread thread_;
  std::string host_;
  int port_ = 0;
};

}  // namespace gemserve
