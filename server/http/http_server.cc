#include "server/http/http_server.h"

#include <sys/socket.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <optional>

#include <httplib.h>

#include "server/http/status_page.h"

namespace gemserve {
namespace {

constexpr const char* kMetricsContentType = "text/plain; version=0.0.4; charset=utf-8";
constexpr const char* kTextContentType = "text/plain; charset=utf-8";
constexpr const char* kJsonContentType = "application/json";

// Scrapes and an open status page need few threads; keep-alive connections each hold
// one while open, so a handful, not httplib's default of max(8, cores - 1).
constexpr size_t kServerThreads = 4;

// An idle keep-alive connection holds a thread until this timeout, and Stop() waits for
// it. Scrapes and page polls come seconds apart, so reuse buys little: 1 s, not 5.
constexpr time_t kKeepAliveSeconds = 1;

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

}  // namespace

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
  const std::optional<HostPort> where = ParseListenAddress(listen_address);
  if (!where) {
    *error = "malformed listen address '" + listen_address + "': expected HOST:PORT";
    return false;
  }
  server_ = std::make_unique<httplib::Server>();
  server_->set_socket_options(ReuseAddressOnly);
  server_->new_task_queue = [] { return new httplib::ThreadPool(kServerThreads); };
  server_->set_keep_alive_timeout(kKeepAliveSeconds);
  Route();
  const int port = Bind(*server_, *where);
  if (port < 0) {
    const int cause = errno;
    *error = "cannot listen on " + listen_address +
             (cause != 0 ? std::string(": ") + std::strerror(cause) : ": cannot resolve or bind");
    server_.reset();
    return false;
  }
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
}

std::string HttpServer::address() const {
  if (port_ == 0) return "";
  const bool v6 = host_.find(':') != std::string::npos;
  return (v6 ? "[" + host_ + "]" : host_) + ":" + std::to_string(port_);
}

void HttpServer::Route() {
  server_->Get("/metrics", [this](const httplib::Request&, httplib::Response& response) {
    response.set_content(handlers_.metrics(), kMetricsContentType);
  });
  server_->Get("/healthz", [this](const httplib::Request&, httplib::Response& response) {
    const Health health = handlers_.health();
    response.status = health.ok ? 200 : 503;
    response.set_content(health.ok ? "ok\n" : health.reason + "\n", kTextContentType);
  });
  for (const auto& [path, handler] : {std::pair{"/api/v1/experiments", &handlers_.experiments_json},
                                      std::pair{"/api/v1/models", &handlers_.models_json}}) {
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
