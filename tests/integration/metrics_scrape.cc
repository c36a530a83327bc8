#include "tests/integration/metrics_scrape.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <chrono>
#include <sstream>
#include <thread>

namespace gemserve::testing {

std::string HttpGet(const ServerProcess& server, const std::string& path) {
  httplib::Client client("http://" + server.metrics_address());
  auto response = client.Get(path);
  EXPECT_TRUE(response && response->status == 200) << path;
  return response ? response->body : "";
}

double Scrape(const ServerProcess& server, const std::string& family,
              const std::map<std::string, std::string>& labels) {
  std::istringstream lines(HttpGet(server, "/metrics"));
  for (std::string line; std::getline(lines, line);) {
    if (line.rfind(family + "{", 0) != 0 && line.rfind(family + " ", 0) != 0) continue;
    bool all = true;
    for (const auto& [name, value] : labels) {
      all = all && line.find(name + "=\"" + value + "\"") != std::string::npos;
    }
    if (all) return std::stod(line.substr(line.rfind(' ') + 1));
  }
  return 0;
}

double ScrapeUntil(const ServerProcess& server, const std::string& family,
                   const std::map<std::string, std::string>& labels, double want) {
  const auto give_up = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  double value = Scrape(server, family, labels);
  while (value != want && std::chrono::steady_clock::now() < give_up) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
    value = Scrape(server, family, labels);
  }
  return value;
}

}  // namespace gemserve::testing
