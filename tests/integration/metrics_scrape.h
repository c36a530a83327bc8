#pragma once

// Reading a running gem-server's HTTP port in integration tests.

#include <map>
#include <string>

#include "tests/integration/server_process.h"

namespace gemserve::testing {

// The body of GET `path` on the server's metrics port; "" (and a test failure) unless 200.
std::string HttpGet(const ServerProcess& server, const std::string& path);

// The value of the first series of `family` in /metrics whose labels include `labels`
// (a series without labels matches empty `labels`); 0 when there is none.
double Scrape(const ServerProcess& server, const std::string& family,
              const std::map<std::string, std::string>& labels);

// Scrape() again every 10 ms until it reads `want` or 10 s have passed; returns the last
// value read. For counts of finished RPCs: gem-server counts a call once its answer went
// out, a moment after the client has it.
double ScrapeUntil(const ServerProcess& server, const std::string& family,
                   const std::map<std::string, std::string>& labels, double want);

}  // namespace gemserve::testing
