#include "server/http/http_server.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cerrno>
#include <charconv>
#include <climits>
#include <condition_variable>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <mutex>
#include <optional>
#include <vector>

#include <httplib.h>

#include "server/http/status_page.h"

namespace gemserve {
namespace {

using Clock = std::chrono::steady_clock;

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kTextContentType = "text/plain; charset=utf-8";
constexpr const char* kJsonContentType = "application/json";

struct HostPort {
  std::string host;
  int port = 0;
};

// "HOST:PORT", "[V6]:PORT" or ":PORT"; nullopt when malformed.
std::optional<HostPort> ParseListenAddress(const std::string& address) {
  const size_t colon = address.rfind(':');
  if (colon == std::string::npos) return std::nullopt;
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (port.empty() || port.size() > 5 || port.find_first_not_of("0123456789") != port.npos) {
    return std::nullopt;
  }
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  } else if (host.find(':') != std::string::npos) {
    return std::nullopt;  // an IPv6 host must be bracketed
  }
  const int number = std::stoi(port);
  if (number > 65535) return std::nullopt;
  return HostPort{host.empty() ? "0.0.0.0" : host, number};
}

// Why `limits` cannot be served; empty when they can.
std::string LimitsError(const HttpLimits& limits) {
  if (limits.threads < 1) return "http threads must be at least 1";
  if (limits.read_timeout.count() <= 0) return "http read_timeout must be positive";
  if (limits.max_body_bytes < 0) return "http max_body_bytes must not be negative";
  return "";
}

// SO_REUSEADDR (restart while old connections linger in TIME_WAIT) but not httplib's
// default SO_REUSEPORT, which would let two servers bind the same port silently.
void ReuseAddressOnly(socket_t socket) {
  const int yes = 1;
  setsockopt(socket, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof yes);
}

// Binds; returns the bound port, or -1 with errno as the failing call left it.
int Bind(httplib::Server& server, const HostPort& where) {
  errno = 0;
  if (where.port == 0) return server.bind_to_any_port(where.host);
  return server.bind_to_port(where.host, where.port) ? where.port : -1;
}

// Whether `socket` is ready for `events` by `until`; at once when it already is, even
// when `until` has passed.
bool WaitFor(socket_t socket, short events, Clock::time_point until) {
  pollfd entry{socket, events, 0};
  for (;;) {
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(until - Clock::now());
    const int ready =
        poll(&entry, 1, static_cast<int>(std::clamp<int64_t>(left.count(), 0, INT_MAX)));
    if (ready > 0) return true;  // also on a hang-up or error, which the next recv/send reports
    if (ready == 0 || errno != EINTR) return false;
  }
}

// A response written without httplib, to a connection it never parsed: one non-blocking
// send of a few bytes, best effort, since the socket is closed right after.
void SendBareResponse(socket_t socket, int status, const char* reason) {
  const std::string response = "HTTP/1.1 " + std::to_string(status) + " " + reason +
                               "\r\nConnection: close\r\nContent-Length: 0\r\n\r\n";
  static_cast<void>(send(socket, response.data(), response.size(), MSG_DONTWAIT | MSG_NOSIGNAL));
}

void SocketAddress(socket_t socket, decltype(getpeername) name_of, std::string& ip, int& port) {
  sockaddr_storage address{};
  socklen_t length = sizeof address;
  std::array<char, NI_MAXHOST> host{};
  std::array<char, NI_MAXSERV> service{};
  if (name_of(socket, reinterpret_cast<sockaddr*>(&address), &length) != 0 ||
      getnameinfo(reinterpret_cast<sockaddr*>(&address), length, host.data(), host.size(),
                  service.data(), service.size(), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
    return;
  }
  ip = host.data();
  port = std::atoi(service.data());
}

// One accepted connection as httplib reads and writes it. Only request heads are ever
// read (no route reads a body): each request's reads must come by its deadline and stay
// within kMaxRequestHeadBytes, and each response must be taken within `io_timeout`;
// past either, read or write fails and httplib gives the request up. Bytes read past a
// request's head stay buffered for the next one.
class ConnectionStream final : public httplib::Stream {
 public:
  ConnectionStream(socket_t socket, std::chrono::milliseconds io_timeout)
      : socket_(socket), io_timeout_(io_timeout) {}

  // Whether a request has begun (a byte is buffered or arrives) by `until`.
  bool WaitForRequest(Clock::time_point until) const {
    return begin_ < end_ || WaitFor(socket_, POLLIN, until);
  }

  // Starts the next request: its head must be read by `head_deadline`.
  void BeginRequest(Clock::time_point head_deadline) {
    head_deadline_ = head_deadline;
    head_bytes_ = 0;
    head_overran_ = false;
    request_line_ended_ = false;
    response_deadline_.reset();
  }

  // Whether this request's head ran past kMaxRequestHeadBytes before its request line ended.
  bool RequestLineOverran() const { return head_overran_ && !request_line_ended_; }

  bool is_readable() const override { return WaitForRequest(head_deadline_); }

  bool is_writable() const override {
    return WaitFor(socket_, POLLOUT, response_deadline_.value_or(Clock::now() + io_timeout_));
  }

  ssize_t read(char* data, size_t size) override {
    if (begin_ == end_) {
      const ssize_t received = Receive();
      if (received <= 0) return received;
    }
    const size_t n =
        std::min({size, end_ - begin_, HttpServer::kMaxRequestHeadBytes - head_bytes_});
    if (n == 0) {
      head_overran_ = true;
      return -1;
    }
    std::memcpy(data, buffer_.data() + begin_, n);
    begin_ += n;
    head_bytes_ += n;
    request_line_ended_ = request_line_ended_ || std::memchr(data, '\n', n) != nullptr;
    return static_cast<ssize_t>(n);
  }

  ssize_t write(const char* data, size_t size) override {
    if (!response_deadline_) response_deadline_ = Clock::now() + io_timeout_;
    size_t written = 0;
    while (written < size) {
      if (!WaitFor(socket_, POLLOUT, *response_deadline_)) return -1;
      const ssize_t n = send(socket_, data + written, size - written, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
      if (n > 0) written += static_cast<size_t>(n);
    }
    return static_cast<ssize_t>(written);
  }

  void get_remote_ip_and_port(std::string& ip, int& port) const override {
    SocketAddress(socket_, getpeername, ip, port);
  }
  void get_local_ip_and_port(std::string& ip, int& port) const override {
    SocketAddress(socket_, getsockname, ip, port);
  }
  socket_t socket() const override { return socket_; }

 private:
  // Refills the empty buffer; returns what recv() did: bytes, 0 at the end, -1 on an
  // error or when nothing came by the head deadline.
  ssize_t Receive() {
    for (;;) {
      if (!WaitFor(socket_, POLLIN, head_deadline_)) return -1;
      const ssize_t n = recv(socket_, buffer_.data(), buffer_.size(), MSG_DONTWAIT);
      if (n >= 0) {
        begin_ = 0;
        end_ = static_cast<size_t>(n);
        return n;
      }
      if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) return -1;
    }
  }

  const socket_t socket_;
  const std::chrono::milliseconds io_timeout_;
  std::array<char, 4096> buffer_{};
  size_t begin_ = 0;
  size_t end_ = 0;
  Clock::time_point head_deadline_;
  size_t head_bytes_ = 0;
  bool head_overran_ = false;
  bool request_line_ended_ = false;
  std::optional<Clock::time_point> response_deadline_;
};

// The body a request declares: 0 when none, UINT64_MAX for a Content-Length past it, and
// nullopt when the size cannot be known without reading the body (Transfer-Encoding, or
// a Content-Length that is not a number).
std::optional<uint64_t> DeclaredBodyBytes(const httplib::Request& request) {
  if (request.has_header("Transfer-Encoding")) return std::nullopt;
  if (!request.has_header("Content-Length")) return 0;
  const std::string text = request.get_header_value("Content-Length");
  uint64_t bytes = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), bytes);
  if (error == std::errc::result_out_of_range) return UINT64_MAX;
  if (error != std::errc() || end != text.data() + text.size()) return std::nullopt;
  return bytes;
}

bool CarriesBody(const httplib::Request& request) { return DeclaredBodyBytes(request) != 0u; }

// The answer to a request that is refused before routing, or nullopt when it may be routed.
std::optional<int> RefusalStatus(const httplib::Request& request, int64_t max_body_bytes) {
  const std::optional<uint64_t> body = DeclaredBodyBytes(request);
  if (!body || *body > static_cast<uint64_t>(max_body_bytes)) return 413;
  if (request.method != "GET" && request.method != "HEAD") return 405;
  return std::nullopt;
}

void Refuse(int status, int64_t max_body_bytes, httplib::Response& response) {
  response.status = status;
  if (status == 405) {
    response.set_header("Allow", "GET, HEAD");
    response.set_content("only GET and HEAD are served\n", kTextContentType);
  } else {
    response.set_content("request bodies are limited to " + std::to_string(max_body_bytes) +
                             " bytes, with a Content-Length\n",
                         kTextContentType);
  }
}

// httplib hands each accepted socket to its TaskQueue as an opaque task that ends in
// process_and_close_socket(). Running the task at once, on the accepting thread, lets
// BoundedServer queue the socket itself: bounded, and with the time it was accepted.
class AcceptingThreadQueue final : public httplib::TaskQueue {
 public:
  void enqueue(std::function<void()> task) override { task(); }
  void shutdown() override {}
};

struct AcceptedConnection {
  socket_t socket;
  Clock::time_point accepted_at;
};

// Serves accepted connections on a fixed set of threads, in the order they were accepted,
// with at most `max_waiting` waiting for a thread.
class ConnectionPool {
 public:
  using Serve = std::function<void(const AcceptedConnection&)>;

  ConnectionPool(int threads, size_t max_waiting, Serve serve)
      : max_waiting_(max_waiting), serve_(std::move(serve)) {
    for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Work(); });
  }
  ConnectionPool(const ConnectionPool&) = delete;
  ConnectionPool& operator=(const ConnectionPool&) = delete;
  ~ConnectionPool() { Stop(); }

  // Queues `connection` for a thread; false, leaving it to the caller, when `max_waiting`
  // already wait or the pool is stopped.
  bool Admit(const AcceptedConnection& connection) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (stopping_ || waiting_.size() >= max_waiting_) return false;
      waiting_.push_back(connection);
    }
    ready_.notify_one();
    return true;
  }

  // Whether the connection being served should close after its response, because others
  // wait for a thread or the pool is stopping.
  bool ShouldYield() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return stopping_ || !waiting_.empty();
  }

  // Closes the waiting connections and joins the threads once their connections end.
  // Idempotent.
  void Stop() {
    std::deque<AcceptedConnection> unserved;
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
      unserved.swap(waiting_);
    }
    ready_.notify_all();
    for (const AcceptedConnection& connection : unserved) close(connection.socket);
    for (std::thread& thread : threads_) {
      if (thread.joinable()) thread.join();
    }
  }

 private:
  void Work() {
    for (;;) {
      std::unique_lock<std::mutex> lock(mutex_);
      ready_.wait(lock, [this] { return stopping_ || !waiting_.empty(); });
      if (stopping_) return;
      const AcceptedConnection connection = waiting_.front();
      waiting_.pop_front();
      lock.unlock();
      serve_(connection);
    }
  }

  const size_t max_waiting_;
  const Serve serve_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<AcceptedConnection> waiting_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace

// httplib's server with its connections served by a ConnectionPool through a
// ConnectionStream, so that what each client can hold is bounded as http_server.h says.
// httplib still accepts, parses, routes and writes the responses.
class BoundedServer final : public httplib::Server {
 public:
  explicit BoundedServer(const HttpLimits& limits)
      : limits_(limits),
        pool_(limits.threads, HttpServer::kMaxWaitingConnections,
              [this](const AcceptedConnection& connection) { Serve(connection); }) {
    new_task_queue = [] { return new AcceptingThreadQueue; };
    // Only advertised (the Keep-Alive: header); Serve() enforces them.
    set_keep_alive_timeout(HttpServer::kKeepAliveIdle.count());
    set_keep_alive_max_count(HttpServer::kMaxRequestsPerConnection);
    // Bodies are refused before routing, unread; this holds should a route ever read one.
    set_payload_max_length(static_cast<size_t>(limits.max_body_bytes));
  }

  // After binding. httplib listens with a backlog of 5 (compiled in): a burst of a few
  // connections overflows it, and the kernel drops their SYNs, which clients resend only
  // after a second or more, out of their order. Linux lets a listening socket take a new
  // backlog.
  void WidenBacklog() { ::listen(svr_sock_, HttpServer::kAcceptBacklog); }

  // Ends serving after stop() has ended accepting: see ConnectionPool::Stop().
  void StopServing() { pool_.Stop(); }

 private:
  // On the accepting thread (AcceptingThreadQueue).
  bool process_and_close_socket(socket_t socket) override {
    if (pool_.Admit({socket, Clock::now()})) return true;
    SendBareResponse(socket, 503, "Service Unavailable");
    close(socket);
    return false;
  }

  // On a pool thread: the connection's requests, one after another, then close.
  void Serve(const AcceptedConnection& connection) {
    ConnectionStream stream(connection.socket, limits_.read_timeout);
    const Clock::time_point first_head_by = connection.accepted_at + limits_.read_timeout;
    for (size_t served = 0; served < HttpServer::kMaxRequestsPerConnection; ++served) {
      const bool first = served == 0;
      const auto begun_by = first ? first_head_by : Clock::now() + HttpServer::kKeepAliveIdle;
      if (!stream.WaitForRequest(begun_by)) break;
      stream.BeginRequest(first ? first_head_by : Clock::now() + limits_.read_timeout);
      const bool last = served + 1 == HttpServer::kMaxRequestsPerConnection || pool_.ShouldYield();
      if (!ServeRequest(stream, last) || pool_.ShouldYield()) break;
    }
    shutdown(connection.socket, SHUT_RDWR);
    close(connection.socket);
  }

  // Reads, answers and returns whether the connection may carry another request.
  bool ServeRequest(ConnectionStream& stream, bool last) {
    bool parsed = false;     // httplib did not answer an unreadable request itself
    bool keep_open = !last;  // no refusal, no unread body
    bool client_closes = false;
    const bool answered =
        process_request(stream, last, client_closes, [&](httplib::Request& request) {
          parsed = true;
          if (RefusalStatus(request, limits_.max_body_bytes) || CarriesBody(request)) {
            keep_open = false;
            request.headers.erase("Connection");
            request.set_header("Connection", "close");  // so the response says so
          }
        });
    if (!answered && stream.RequestLineOverran()) {
      SendBareResponse(stream.socket(), 414, "URI Too Long");
    }
    return answered && parsed && keep_open && !client_closes;
  }

  const HttpLimits limits_;
  ConnectionPool pool_;
};

HttpServer::HttpServer(HttpHandlers handlers, HttpLimits limits)
    : handlers_(std::move(handlers)), limits_(limits) {}

HttpServer::~HttpServer() { Stop(); }

bool HttpServer::Start(const std::string& listen_address, std::string* error) {
  if (server_ != nullptr) {
    *error = "the HTTP server was already started";
    return false;
  }
  if (!handlers_.metrics || !handlers_.health) {
    *error = "the HTTP server needs both a metrics and a health handler";
    return false;
  }
  if (const std::string limits_error = LimitsError(limits_); !limits_error.empty()) {
    *error = limits_error;
    return false;
  }
  const std::optional<HostPort> where = ParseListenAddress(listen_address);
  if (!where) {
    *error = "malformed listen address '" + listen_address + "': expected HOST:PORT";
    return false;
  }
  server_ = std::make_unique<BoundedServer>(limits_);
  server_->set_socket_options(ReuseAddressOnly);
  Route();
  const int port = Bind(*server_, *where);
  if (port < 0) {
    const int cause = errno;
    *error = "cannot listen on " + listen_address +
             (cause != 0 ? std::string(": ") + std::strerror(cause) : ": cannot resolve or bind");
    server_.reset();
    return false;
  }
  server_->WidenBacklog();
  host_ = where->host;
  port_ = port;
  thread_ = std::thread([this] { server_->listen_after_bind(); });
  // httplib's stop() does nothing until the accept loop runs: wait for it, so that a
  // Stop() right after Start() cannot miss it. The socket is bound, so this is immediate.
  while (!server_->is_running()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  return true;
}

void HttpServer::Stop() {
  if (server_ == nullptr) return;
  server_->stop();
  if (thread_.joinable()) thread_.join();
  server_->StopServing();
}

std::string HttpServer::address() const {
  if (port_ == 0) return "";
  const bool v6 = host_.find(':') != std::string::npos;
  return (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

void HttpServer::Route() {
  const int64_t max_body_bytes = limits_.max_body_bytes;
  // Before httplib would send "100 Continue" or read a body.
  server_->set_expect_100_continue_handler(
      [max_body_bytes](const httplib::Request& request, httplib::Response& response) {
        const std::optional<int> refusal = RefusalStatus(request, max_body_bytes);
        if (!refusal) return 100;
        Refuse(*refusal, max_body_bytes, response);
        return *refusal;
      });
  server_->set_pre_routing_handler(
      [max_body_bytes](const httplib::Request& request, httplib::Response& response) {
        const std::optional<int> refusal = RefusalStatus(request, max_body_bytes);
        if (!refusal) return httplib::Server::HandlerResponse::Unhandled;
        Refuse(*refusal, max_body_bytes, response);
        return httplib::Server::HandlerResponse::Handled;
      });
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(handlers_.metrics(), kMetricsContentType);
  });
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& response) {
    const Health health = handlers_.health();
    response.status = health.ok ? 200 : 503;
    response.set_content(health.ok ? "ok\n" : health.reason + "\n", kTextContentType);
  });
  for (const auto& [path, handler] : {std::pair{"/api/v1/experiments", &handlers_.experiments_json},
                                      std::pair{"/api/v1/models", &handlers_.models_json},
                                      std::pair{"/api/v1/activations", &handlers_.activations_json}}) {
    if (!*handler) continue;
    server_->Get(path, [handler = *handler](const httplib::Request&, httplib::Response& response) {
      response.set_content(handler(), kJsonContentType);
    });
  }
  server_->Get("/", [](const httplib::Request&, httplib::Response& response) {
    response.set_content(std::string(StatusPageHtml()), "text/html; charset=utf-8");
  });
  server_->set_error_handler([](const httplib::Request&, httplib::Response& response) {
    if (response.status == 404) response.set_content("not found\n", kTextContentType);
  });
}

}  // namespace gemserve
