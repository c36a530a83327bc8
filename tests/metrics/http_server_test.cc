// The HTTP server over real loopback, with httplib's client, and with raw sockets for the
// hostile clients of the limits in http_server.h.

#include "server/http/http_server.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <fstream>
#include <future>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include <gtest/gtest.h>
#include <httplib.h>

#include "server/metrics/metrics.h"

namespace gemserve {
namespace {

class HttpServerTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(server_.Start("127.0.0.1:0", &error)) << error;
    ASSERT_GT(server_.port(), 0);
  }

  httplib::Result Get(const std::string& path) {
    httplib::Client client("127.0.0.1", server_.port());
    return client.Get(path.c_str());
  }

  void SetHealth(Health health) {
    std::lock_guard<std::mutex> lock(mutex_);
    health_ = std::move(health);
  }

  Metrics metrics_;
  std::mutex mutex_;
  Health health_;
  HttpServer server_{HttpHandlers{[this] { return metrics_.Serialize(); },
                                  [this] {
                                    std::lock_guard<std::mutex> lock(mutex_);
                                    return health_;
                                  }}};
};

TEST_F(HttpServerTest, AddressNamesTheBoundPort) {
  EXPECT_EQ(server_.address(), "127.0.0.1:" + std::to_string(server_.port()));
}

TEST_F(HttpServerTest, ServesTheExposition) {
  metrics_.RecordRequest("Classify", "m", "gelu", "OK", 0.01);
  const auto response = Get("/metrics");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/plain; version=0.0.4; charset=utf-8");
  EXPECT_NE(response->body.find("gemserve_requests_total{"), std::string::npos);
  EXPECT_NE(response->body.find("process_resident_memory_bytes"), std::string::npos);
}

TEST_F(HttpServerTest, HealthzIsOkOrNamesTheReason) {
  auto response = Get("/healthz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->body, "ok\n");

  SetHealth({false, "no model variant is loaded"});
  response = Get("/healthz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 503);
  EXPECT_EQ(response->body, "no model variant is loaded\n");
}

TEST_F(HttpServerTest, RootIsTheSelfContainedPage) {
  const auto response = Get("/");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
  EXPECT_EQ(response->get_header_value("Content-Type"), "text/html; charset=utf-8");
  EXPECT_NE(response->body.find("<html"), std::string::npos);
  EXPECT_NE(response->body.find("fetch(\"metrics\")"), std::string::npos);
  EXPECT_EQ(response->body.find("src=\"http"), std::string::npos);  // no external assets
}

TEST_F(HttpServerTest, UnknownPathIs404) {
  const auto response = Get("/nope");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 404);
  EXPECT_EQ(response->body, "not found\n");
}

TEST_F(HttpServerTest, TakenPortIsAnError) {
  HttpServer second({[] { return std::string(); }, [] { return Health{}; }});
  std::string error;
  EXPECT_FALSE(second.Start(server_.address(), &error));
  EXPECT_NE(error.find(server_.address()), std::string::npos) << error;
  EXPECT_NE(error.find("in use"), std::string::npos) << error;
  EXPECT_EQ(second.port(), 0);
}

TEST_F(HttpServerTest, StopIsIdempotentAndClosesThePort) {
  server_.Stop();
  server_.Stop();
  EXPECT_FALSE(Get("/healthz"));
}

TEST_F(HttpServerTest, StopDoesNotWaitLongForIdleKeepAlive) {
  httplib::Client client("127.0.0.1", server_.port());
  client.set_keep_alive(true);
  ASSERT_TRUE(client.Get("/healthz"));
  const auto start = std::chrono::steady_clock::now();
  server_.Stop();
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::milliseconds(2500));
}

TEST(HttpServerStartTest, MalformedAddressesAreErrors) {
  for (const char* address : {"", "localhost", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000",
                              "::1:80", "127.0.0.1:-1"}) {
    HttpServer server({[] { return std::string(); }, [] { return Health{}; }});
    std::string error;
    EXPECT_FALSE(server.Start(address, &error)) << address;
    EXPECT_NE(error.find("malformed"), std::string::npos) << address << ": " << error;
  }
}

TEST(HttpServerStartTest, UnresolvableHostIsAnError) {
  HttpServer server({[] { return std::string(); }, [] { return Health{}; }});
  std::string error;
  EXPECT_FALSE(server.Start("host.invalid:0", &error));
  EXPECT_NE(error.find("cannot listen on host.invalid:0"), std::string::npos) << error;
}

TEST(HttpServerStartTest, MissingHandlerIsAnError) {
  HttpServer server({[] { return std::string(); }, nullptr});
  std::string error;
  EXPECT_FALSE(server.Start("127.0.0.1:0", &error));
  EXPECT_NE(error.find("health"), std::string::npos) << error;
}

TEST(HttpServerStartTest, IPv6LoopbackIsBracketed) {
  HttpServer server({[] { return std::string("x 1\n"); }, [] { return Health{}; }});
  std::string error;
  if (!server.Start("[::1]:0", &error)) GTEST_SKIP() << "no IPv6 loopback: " << error;
  EXPECT_EQ(server.address(), "[::1]:" + std::to_string(server.port()));
}

TEST(HttpServerStartTest, ThrowingHandlerGives500AndServerGoesOn) {
  HttpServer server({[]() -> std::string { throw std::runtime_error("scrape failed"); },
                     [] { return Health{}; }});
  std::string error;
  ASSERT_TRUE(server.Start("127.0.0.1:0", &error)) << error;
  httplib::Client client("127.0.0.1", server.port());
  auto response = client.Get("/metrics");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 500);
  response = client.Get("/healthz");
  ASSERT_TRUE(response);
  EXPECT_EQ(response->status, 200);
}

TEST(HttpServerStartTest, OutOfRangeLimitsAreErrors) {
  for (const HttpLimits limits : {HttpLimits{0, std::chrono::milliseconds(300), 1024},
                                  HttpLimits{2, std::chrono::milliseconds(0), 1024},
                                  HttpLimits{2, std::chrono::milliseconds(300), -1}}) {
    HttpServer server({[] { return std::string(); }, [] { return Health{}; }}, limits);
    std::string error;
    EXPECT_FALSE(server.Start("127.0.0.1:0", &error));
    EXPECT_NE(error.find("http "), std::string::npos) << error;
  }
}

// ---- The limits, against hostile clients ----

using std::chrono::milliseconds;

constexpr HttpLimits kSmallLimits{2, milliseconds(300), 1024};
// Generous: how long a request that must succeed may take, and how long the server may
// take to close a connection it must close.
constexpr milliseconds kPatience = kSmallLimits.read_timeout + std::chrono::seconds(2);

// The process's peak resident set (VmHWM) in bytes; the server runs in this process.
int64_t PeakResidentBytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.rfind("VmHWM:", 0) == 0) return std::stoll(line.substr(6)) * 1024;
  }
  return -1;
}

// What a server sent on a raw connection, and whether it closed the connection.
struct Reply {
  std::string bytes;
  bool closed = false;

  int status() const {
    return bytes.rfind("HTTP/1.1 ", 0) == 0 ? std::stoi(bytes.substr(9, 3)) : 0;
  }
  bool Says(std::string_view text) const { return bytes.find(text) != std::string::npos; }
};

// A loopback client that sends whatever bytes it is given.
class RawConnection {
 public:
  explicit RawConnection(int port) : socket_(::socket(AF_INET, SOCK_STREAM, 0)) {
    sockaddr_in address{};
    address.sin_family = AF_INET;
    address.sin_port = htons(static_cast<uint16_t>(port));
    address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    connected_ = connect(socket_, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0;
  }
  RawConnection(const RawConnection&) = delete;
  RawConnection& operator=(const RawConnection&) = delete;
  ~RawConnection() { close(socket_); }

  bool connected() const { return connected_; }

  // Sends `bytes` `times` times over, until the server stops taking them (it closed the
  // connection, or took nothing for kPatience); returns the bytes sent.
  int64_t Send(std::string_view bytes, int64_t times = 1) {
    int64_t sent = 0;
    for (int64_t i = 0; i < times; ++i) {
      for (size_t offset = 0; offset < bytes.size();) {
        pollfd entry{socket_, POLLOUT, 0};
        if (poll(&entry, 1, static_cast<int>(kPatience.count())) != 1) return sent;
        const ssize_t n = send(socket_, bytes.data() + offset, bytes.size() - offset,
                               MSG_DONTWAIT | MSG_NOSIGNAL);
        if (n < 0 && errno != EAGAIN) return sent;
        if (n > 0) {
          offset += static_cast<size_t>(n);
          sent += n;
        }
      }
    }
    return sent;
  }

  // What the server sends until it closes the connection or is silent for `patience`.
  Reply Receive(milliseconds patience = kPatience) {
    Reply reply;
    char buffer[4096];
    for (pollfd entry{socket_, POLLIN, 0};
         poll(&entry, 1, static_cast<int>(patience.count())) == 1;) {
      const ssize_t n = recv(socket_, buffer, sizeof buffer, 0);
      if (n <= 0) {  // the end, or a reset after the server closed with the body unread
        reply.closed = true;
        break;
      }
      reply.bytes.append(buffer, static_cast<size_t>(n));
    }
    return reply;
  }

 private:
  const int socket_;
  bool connected_ = false;
};

// Lets handlers through while open; when closed, holds them and counts them.
class Gate {
 public:
  void Pass() {
    std::unique_lock<std::mutex> lock(mutex_);
    ++held_;
    changed_.notify_all();
    changed_.wait(lock, [this] { return open_; });
    --held_;
  }
  void Close() { SetOpen(false); }
  void Open() { SetOpen(true); }
  int held() {
    std::lock_guard<std::mutex> lock(mutex_);
    return held_;
  }
  // Whether `count` handlers are held within kPatience.
  bool WaitUntilHeld(int count) {
    std::unique_lock<std::mutex> lock(mutex_);
    return changed_.wait_for(lock, kPatience, [&] { return held_ >= count; });
  }

 private:
  void SetOpen(bool open) {
    std::lock_guard<std::mutex> lock(mutex_);
    open_ = open;
    changed_.notify_all();
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  bool open_ = true;
  int held_ = 0;
};

class HttpServerLimitsTest : public testing::Test {
 protected:
  void SetUp() override {
    std::string error;
    ASSERT_TRUE(server_.Start("127.0.0.1:0", &error)) << error;
  }

  httplib::Result Get(const std::string& path) {
    httplib::Client client("127.0.0.1", server_.port());
    client.set_connection_timeout(kPatience);
    client.set_read_timeout(kPatience);
    return client.Get(path.c_str());
  }

  void ExpectStillServing() {
    for (const char* path : {"/healthz", "/metrics"}) {
      const auto response = Get(path);
      ASSERT_TRUE(response) << path << ": " << httplib::to_string(response.error());
      EXPECT_EQ(response->status, 200) << path;
    }
  }

  // Sends `head` and, `times` over, `body`; returns what the server answered.
  Reply Exchange(const std::string& head, std::string_view body = "", int64_t times = 1,
                 int64_t* body_bytes_sent = nullptr) {
    RawConnection connection(server_.port());
    EXPECT_TRUE(connection.connected());
    connection.Send(head);
    const int64_t sent = connection.Send(body, times);
    if (body_bytes_sent != nullptr) *body_bytes_sent = sent;
    return connection.Receive();
  }

  Gate gate_;
  HttpServer server_{HttpHandlers{[this] {
                                    gate_.Pass();
                                    return std::string("gemserve_up 1\n");
                                  },
                                  [] { return Health{}; }},
                     kSmallLimits};
};

TEST_F(HttpServerLimitsTest, ServesThreadsRequestsAtOnceAndQueuesTheRest) {
  gate_.Close();
  std::vector<std::future<httplib::Result>> scrapes;
  for (int i = 0; i < kSmallLimits.threads + 1; ++i) {
    scrapes.push_back(std::async(std::launch::async, [this] { return Get("/metrics"); }));
  }
  EXPECT_TRUE(gate_.WaitUntilHeld(kSmallLimits.threads));
  std::this_thread::sleep_for(milliseconds(200));  // room for one more thread, were there one
  EXPECT_EQ(gate_.held(), kSmallLimits.threads);
  gate_.Open();
  for (auto& scrape : scrapes) {  // the queued one too, although it waited past read_timeout
    const auto response = scrape.get();
    ASSERT_TRUE(response) << httplib::to_string(response.error());
    EXPECT_EQ(response->status, 200);
  }
}

TEST_F(HttpServerLimitsTest, ClientSlowToSendItsHeadIsDisconnected) {
  RawConnection half_line(server_.port());
  half_line.Send("GET /heal");
  const Reply silent = half_line.Receive();
  EXPECT_TRUE(silent.closed);
  EXPECT_EQ(silent.bytes, "");

  // Every byte comes well within read_timeout of the one before; the head never ends.
  RawConnection trickle(server_.port());
  trickle.Send("GET /healthz HTTP/1.1\r\n");
  Reply reply;
  const auto give_up = std::chrono::steady_clock::now() + 3 * kPatience;
  while (!reply.closed && std::chrono::steady_clock::now() < give_up) {
    trickle.Send("X-Slow: 1\r\n");
    reply = trickle.Receive(kSmallLimits.read_timeout / 6);
  }
  EXPECT_TRUE(reply.closed);
  EXPECT_EQ(reply.status(), 400) << reply.bytes;  // httplib's answer to unreadable headers
  ExpectStillServing();
}

TEST(HttpServerSlowReaderTest, ClientThatDoesNotTakeItsResponseIsDisconnected) {
  constexpr size_t kResponse = 32 << 20;  // more than loopback's socket buffers hold
  HttpServer server({[] { return std::string(kResponse, 'x'); }, [] { return Health{}; }},
                    HttpLimits{1, kSmallLimits.read_timeout, 1024});
  std::string error;
  ASSERT_TRUE(server.Start("127.0.0.1:0", &error)) << error;
  RawConnection reader(server.port());
  reader.Send("GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");

  httplib::Client client("127.0.0.1", server.port());  // needs the one thread
  client.set_read_timeout(kPatience);
  const auto response = client.Get("/healthz");
  ASSERT_TRUE(response) << httplib::to_string(response.error());
  EXPECT_EQ(response->status, 200);
  const Reply reply = reader.Receive();
  EXPECT_TRUE(reply.closed);
  EXPECT_LT(reply.bytes.size(), kResponse);
}

TEST_F(HttpServerLimitsTest, IdleKeptAliveConnectionIsClosed) {
  RawConnection connection(server_.port());
  connection.Send("GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
  const Reply reply = connection.Receive(HttpServer::kKeepAliveIdle + kPatience);
  EXPECT_EQ(reply.status(), 200);
  EXPECT_TRUE(reply.Says("Keep-Alive: timeout=1, max=100")) << reply.bytes;
  EXPECT_TRUE(reply.closed);
}

TEST_F(HttpServerLimitsTest, ConnectionCarriesAtMostMaxRequests) {
  const std::string request = "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n";
  std::string pipelined;
  for (size_t i = 0; i <= HttpServer::kMaxRequestsPerConnection; ++i) pipelined += request;
  RawConnection connection(server_.port());
  connection.Send(pipelined);
  const Reply reply = connection.Receive();
  size_t answered = 0;
  for (size_t at = 0; (at = reply.bytes.find("HTTP/1.1 200", at)) != std::string::npos; ++at) {
    ++answered;
  }
  EXPECT_EQ(answered, HttpServer::kMaxRequestsPerConnection);
  EXPECT_TRUE(reply.Says("Connection: close"));
  EXPECT_TRUE(reply.closed);
}

TEST_F(HttpServerLimitsTest, HugePostIs413WithTheBodyUnreadAndMemoryBounded) {
  constexpr int64_t kBody = int64_t{256} << 20;
  const std::string chunk(64 * 1024, 'x');
  const int64_t peak_before = PeakResidentBytes();
  int64_t sent = 0;
  const Reply reply = Exchange("POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: " +
                                   std::to_string(kBody) + "\r\n\r\n",
                               chunk, kBody / static_cast<int64_t>(chunk.size()), &sent);
  const int64_t growth = PeakResidentBytes() - peak_before;
  EXPECT_EQ(reply.status(), 413) << reply.bytes;
  EXPECT_TRUE(reply.Says("Connection: close"));
  EXPECT_TRUE(reply.closed);
  EXPECT_LT(sent, kBody / 4) << "the server went on taking the body";
  EXPECT_LT(growth, int64_t{32} << 20) << "peak RSS grew by " << (growth >> 20) << " MiB";
  ExpectStillServing();
}

TEST_F(HttpServerLimitsTest, ChunkedBodyIs413Unread) {
  const std::string chunk = "10000\r\n" + std::string(0x10000, 'x') + "\r\n";
  int64_t sent = 0;
  const Reply reply =
      Exchange("POST /metrics HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", chunk,
               4096, &sent);
  EXPECT_EQ(reply.status(), 413) << reply.bytes;
  EXPECT_TRUE(reply.closed);
  EXPECT_LT(sent, 4096 * static_cast<int64_t>(chunk.size()) / 4);
  ExpectStillServing();
}

TEST_F(HttpServerLimitsTest, GetWithBodyOverTheLimitIs413) {
  const Reply reply = Exchange("GET /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 1025\r\n\r\n",
                               std::string(1025, 'x'));
  EXPECT_EQ(reply.status(), 413) << reply.bytes;
  EXPECT_TRUE(reply.Says("limited to 1024 bytes"));
  EXPECT_TRUE(reply.closed);
  ExpectStillServing();
}

TEST_F(HttpServerLimitsTest, GetWithSmallBodyIsAnsweredAndClosed) {
  const Reply reply = Exchange("GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: 5\r\n\r\n",
                               "GET /");  // unread: not taken for a second request
  EXPECT_EQ(reply.status(), 200) << reply.bytes;
  EXPECT_TRUE(reply.Says("Connection: close"));
  EXPECT_EQ(reply.bytes.find("HTTP/1.1", 1), std::string::npos) << reply.bytes;
  EXPECT_TRUE(reply.closed);
}

TEST_F(HttpServerLimitsTest, OtherMethodsAre405OnAnyPath) {
  httplib::Client client("127.0.0.1", server_.port());
  client.set_read_timeout(kPatience);
  for (const auto& response : {client.Post("/metrics"), client.Put("/healthz"),
                               client.Delete("/"), client.Options("/nope"),
                               client.Patch("/api/v1/models")}) {
    ASSERT_TRUE(response) << httplib::to_string(response.error());
    EXPECT_EQ(response->status, 405);
    EXPECT_EQ(response->get_header_value("Allow"), "GET, HEAD");
  }
  const Reply reply = Exchange("POST /nope HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n",
                               std::string(100, 'x'));
  EXPECT_EQ(reply.status(), 405) << reply.bytes;
  EXPECT_TRUE(reply.closed);
  const Reply unknown = Exchange("FOO /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(unknown.status(), 400) << unknown.bytes;  // httplib's, for a method it does not know
  EXPECT_TRUE(unknown.closed);
  ExpectStillServing();
}

TEST_F(HttpServerLimitsTest, RefusalComesBeforeAn100Continue) {
  const Reply reply = Exchange(
      "POST /metrics HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\n"
      "Content-Length: 268435456\r\n\r\n");
  EXPECT_EQ(reply.status(), 413) << reply.bytes;
  EXPECT_FALSE(reply.Says("100 Continue"));
  EXPECT_TRUE(reply.closed);
}

// Opens `count` connections that each send `bytes` (maybe none) and then nothing.
std::vector<std::unique_ptr<RawConnection>> Flood(int port, int count, std::string_view bytes) {
  std::vector<std::unique_ptr<RawConnection>> flood;
  for (int i = 0; i < count; ++i) {
    flood.push_back(std::make_unique<RawConnection>(port));
    flood.back()->Send(bytes);
  }
  return flood;
}

TEST_F(HttpServerLimitsTest, FloodOfSilentConnectionsDoesNotBlockHealthz) {
  const auto flood = Flood(server_.port(), 3 * kSmallLimits.threads, "");
  ExpectStillServing();
}

TEST_F(HttpServerLimitsTest, FloodOfHalfSentRequestsDoesNotBlockHealthz) {
  const auto flood = Flood(server_.port(), 3 * kSmallLimits.threads, "GET /heal");
  ExpectStillServing();
}

TEST(HttpServerFloodTest, ConnectionsPastTheWaitingBoundGet503AtOnce) {
  // Both threads held in a handler first (so that none frees up), then every waiting
  // place filled with a half-sent request: the server is full, deterministically.
  Gate gate;
  HttpServer server({[&gate] {
                       gate.Pass();
                       return std::string();
                     },
                     [] { return Health{}; }},
                    HttpLimits{2, std::chrono::seconds(30), 1024});
  std::string error;
  ASSERT_TRUE(server.Start("127.0.0.1:0", &error)) << error;
  gate.Close();
  auto busy = Flood(server.port(), 2, "GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
  ASSERT_TRUE(gate.WaitUntilHeld(2));
  auto waiting = Flood(server.port(), static_cast<int>(HttpServer::kMaxWaitingConnections), "GET /heal");
  for (int i = 0; i < 4; ++i) {
    RawConnection refused(server.port());
    const Reply reply = refused.Receive();
    EXPECT_EQ(reply.status(), 503) << reply.bytes;
    EXPECT_TRUE(reply.closed);
  }
  waiting.clear();
  gate.Open();
  busy.clear();
  // The threads still have to take the closed connections off the queue: 503 until then.
  httplib::Client client("127.0.0.1", server.port());
  client.set_read_timeout(kPatience);
  int status = 0;
  for (const auto give_up = std::chrono::steady_clock::now() + kPatience;
       status != 200 && std::chrono::steady_clock::now() < give_up;) {
    const auto response = client.Get("/healthz");
    status = response ? response->status : 0;
  }
  EXPECT_EQ(status, 200);
}

TEST_F(HttpServerLimitsTest, LongRequestLineIs414AndBounded) {
  const Reply httplibs =
      Exchange("GET /" + std::string(10 * 1024, 'a') + " HTTP/1.1\r\nHost: x\r\n\r\n");
  EXPECT_EQ(httplibs.status(), 414) << httplibs.bytes;
  EXPECT_TRUE(httplibs.closed);

  const int64_t peak_before = PeakResidentBytes();
  int64_t sent = 0;
  const Reply endless = Exchange("GET /", std::string(64 * 1024, 'a'), 1024, &sent);
  EXPECT_EQ(endless.status(), 414) << endless.bytes;
  EXPECT_TRUE(endless.closed);
  EXPECT_LT(sent, int64_t{16} << 20);
  EXPECT_LT(PeakResidentBytes() - peak_before, int64_t{32} << 20);
  ExpectStillServing();
}

TEST_F(HttpServerLimitsTest, OversizedHeadersAre400AndBounded) {
  const Reply long_line =
      Exchange("GET /healthz HTTP/1.1\r\nX-Long: " + std::string(10 * 1024, 'a') + "\r\n\r\n");
  EXPECT_EQ(long_line.status(), 400) << long_line.bytes;
  EXPECT_TRUE(long_line.closed);

  const int64_t peak_before = PeakResidentBytes();
  int64_t sent = 0;
  const Reply endless = Exchange("GET /healthz HTTP/1.1\r\n",
                                 "X-Many: " + std::string(1000, 'a') + "\r\n", 65536, &sent);
  EXPECT_EQ(endless.status(), 400) << endless.bytes;
  EXPECT_TRUE(endless.closed);
  EXPECT_LT(sent, int64_t{16} << 20);
  EXPECT_LT(PeakResidentBytes() - peak_before, int64_t{32} << 20);
  ExpectStillServing();
}

}  // namespace
}  // namespace gemserve
