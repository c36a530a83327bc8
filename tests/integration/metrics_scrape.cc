#include "tests/integration/metrics_scrape.h"

#include <gtest/gtest.h>
#include <httplib.h>

#include <sstream>

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

}  // namespace gemserve::testing
