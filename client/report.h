#pragma once

// `gem-client report`: per-variant figures from gem-server's /metrics and each
// experiment's statistics from /api/v1/experiments on the same host.

#include <CLI/CLI.hpp>
#include <string>

namespace gemserve::client {

struct ReportArgs {
  std::string metrics_url = "http://127.0.0.1:9464/metrics";
  double watch_s = 0;  // > 0: re-render every watch_s seconds with rates over the interval
  bool json = false;   // one JSON object (per interval when watching)
};

// Registers `report` and its options on `app`; returns the subcommand.
CLI::App* AddReportCommand(CLI::App& app, ReportArgs* args);

// Prints the report. Returns 0, or 1 when the metrics URL cannot be read (at the first
// scrape; while watching, a failed scrape is reported and retried).
int RunReport(const ReportArgs& args);

}  // namespace gemserve::client
