// The HTTP server over real loopback, with httplib's client.

#include "server/http/http_server.h"

#include <chrono>
#include <mutex>
#include <stdexcept>
#include <string>

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

}  // namespace
}  // namespace gemserve
