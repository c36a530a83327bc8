#include "client/report.h"

#include <google/protobuf/util/json_util.h>
#include <unistd.h>

#include <chrono>
#include <cmath>
#include <cstdio>
#include <iostream>
#include <nlohmann/json.hpp>
#include <thread>

#include "client/experiment_format.h"
#include "client/http_get.h"
#include "client/metrics_text.h"
#include "client/report_figures.h"
#include "client/text_table.h"
#include "gemserve/v1/inference.pb.h"

namespace gemserve::client {
namespace {

using Clock = std::chrono::steady_clock;

// What one visit to the server brought back.
struct Scrape {
  Clock::time_point at;
  std::vector<MetricSample> samples;
  nlohmann::ordered_json experiments_json;  // null when unavailable
  v1::GetExperimentsResponse experiments;
  std::string experiments_problem;  // why experiments_json is null
};

// ".../metrics" -> ".../api/v1/experiments" on the same origin.
std::string ExperimentsUrl(const std::string& metrics_url) {
  std::string origin, path;
  SplitUrl(metrics_url, &origin, &path);
  return origin + "/api/v1/experiments";
}

// Fills the experiments part of `scrape`; a failure is noted, not fatal.
void FetchExperiments(const std::string& metrics_url, Scrape* scrape) {
  std::string body;
  if (!HttpGet(ExperimentsUrl(metrics_url), &body, &scrape->experiments_problem)) return;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = true;
  const auto status =
      google::protobuf::util::JsonStringToMessage(body, &scrape->experiments, options);
  if (!status.ok()) {
    scrape->experiments_problem = "cannot parse /api/v1/experiments: " + status.ToString();
    return;
  }
  scrape->experiments_json =
      nlohmann::ordered_json::parse(body, nullptr, /*allow_exceptions=*/false);
}

bool FetchScrape(const std::string& metrics_url, Scrape* scrape, std::string* error) {
  std::string text;
  scrape->at = Clock::now();
  if (!HttpGet(metrics_url, &text, error)) return false;
  if (!ParseMetricsText(text, &scrape->samples, error)) {
    *error = metrics_url + " is not Prometheus text: " + *error;
    return false;
  }
  FetchExperiments(metrics_url, scrape);
  return true;
}

std::string Cell(const Figure& figure, const char* format = "%.2f") {
  if (!figure) return "–";
  char text[64];
  std::snprintf(text, sizeof text, format, *figure);
  return text;
}

// A variant label for the tables: series without one (Compare, requests refused before a
// variant was chosen) show as "(no variant)".
std::string VariantCell(const std::string& variant) {
  return variant.empty() ? "(no variant)" : variant;
}

std::string Count(double value) {
  return std::to_string(static_cast<uint64_t>(std::llround(value)));
}

void PrintTraffic(const std::vector<VariantFigures>& figures, bool watching) {
  std::vector<std::string> headers = {"model",      "variant",    ">requests", ">errors",
                                      ">error %",   ">p50 ms",    ">p95 ms",   ">p99 ms",
                                      ">infer p50", ">infer p99", ">batch"};
  if (watching) headers.insert(headers.begin() + 3, ">req/s");
  TextTable table(headers);
  for (const VariantFigures& f : figures) {
    const Figure error_percent = f.error_rate ? Figure(*f.error_rate * 100) : std::nullopt;
    std::vector<std::string> row = {f.model,
                                    VariantCell(f.variant),
                                    Count(f.requests),
                                    Count(f.errors),
                                    Cell(error_percent),
                                    Cell(f.latency_p50_ms),
                                    Cell(f.latency_p95_ms),
                                    Cell(f.latency_p99_ms),
                                    Cell(f.inference_p50_ms),
                                    Cell(f.inference_p99_ms),
                                    Cell(f.batch_size_mean)};
    if (watching) row.insert(row.begin() + 3, Cell(f.requests_per_s, "%.1f"));
    table.AddRow(row);
  }
  table.Print(std::cout);
}

void PrintGeneration(const std::vector<VariantFigures>& figures, bool watching) {
  std::vector<std::string> headers = {"model", "variant", ">ttft p50 ms", ">tokens"};
  if (watching) headers.push_back(">tokens/s");
  TextTable table(headers);
  for (const VariantFigures& f : figures) {
    if (f.tokens == 0 && !f.ttft_p50_ms) continue;
    std::vector<std::string> row = {f.model, VariantCell(f.variant), Cell(f.ttft_p50_ms),
                                    Count(f.tokens)};
    if (watching) row.push_back(Cell(f.tokens_per_s, "%.1f"));
    table.AddRow(row);
  }
  if (table.empty()) return;
  std::cout << "\ngeneration\n";
  table.Print(std::cout);
}

void PrintFeedback(const std::vector<VariantFigures>& figures) {
  TextTable table({"model", "variant", ">accuracy", ">labelled", ">mean reward", ">rewarded"});
  for (const VariantFigures& f : figures) {
    if (f.labelled == 0 && f.rewarded == 0) continue;
    table.AddRow({f.model, VariantCell(f.variant), Cell(f.accuracy, "%.4f"), Count(f.labelled),
                  Cell(f.mean_reward, "%.4f"), Count(f.rewarded)});
  }
  if (table.empty()) return;
  std::cout << "\nfeedback\n";
  table.Print(std::cout);
}

void PrintShadows(const std::vector<VariantFigures>& figures) {
  TextTable table(
      {"model", "primary", "shadow", ">compared", ">agreement", ">mean KL (nats)", ">dropped"});
  for (const VariantFigures& f : figures) {
    for (const ShadowFigures& s : f.shadows) {
      table.AddRow({f.model, VariantCell(f.variant), s.shadow, Count(s.comparisons),
                    Cell(s.agreement, "%.4f"), Cell(s.mean_kl, "%.4g"), Count(s.dropped)});
    }
  }
  if (table.empty()) return;
  std::cout << "\nshadow\n";
  table.Print(std::cout);
}

void PrintExperiments(const Scrape& scrape) {
  std::cout << "\nexperiments\n";
  if (scrape.experiments_json.is_null()) {
    std::cout << "  unavailable: " << scrape.experiments_problem << "\n";
    return;
  }
  if (scrape.experiments.experiments_size() == 0) std::cout << "  none\n";
  for (const v1::ExperimentStatistics& statistics : scrape.experiments.experiments()) {
    PrintExperimentStatistics(std::cout, statistics);
  }
}

void PrintText(const std::string& url, const std::vector<VariantFigures>& figures,
               const Scrape& scrape, double interval_s) {
  const bool watching = interval_s > 0;
  if (watching && isatty(STDOUT_FILENO)) std::cout << "\033[H\033[2J";  // clear the screen
  std::cout << url << ": ";
  if (watching) {
    std::cout << "the last " << Cell(interval_s, "%.1f") << " s\n";
  } else {
    std::cout << "totals since the server started\n";
  }
  if (figures.empty())
    std::cout << "no traffic yet\n";
  else
    PrintTraffic(figures, watching);
  PrintGeneration(figures, watching);
  PrintFeedback(figures);
  PrintShadows(figures);
  PrintExperiments(scrape);
  std::cout << std::flush;
}

void PrintJson(const std::vector<VariantFigures>& figures, const Scrape& scrape,
               double interval_s) {
  nlohmann::ordered_json report = {{"variants", nlohmann::ordered_json::array()},
                                   {"experiments", scrape.experiments_json}};
  for (const VariantFigures& f : figures) report["variants"].push_back(VariantFiguresJson(f));
  if (interval_s > 0) report["interval_s"] = interval_s;
  std::cout << report.dump() << std::endl;
}

// Renders `now`, as the change since `previous` when there is one.
void Render(const ReportArgs& args, const Scrape& now, const Scrape* previous) {
  const double interval_s =
      previous ? std::chrono::duration<double>(now.at - previous->at).count() : 0;
  const std::vector<VariantFigures> figures = ComputeVariantFigures(
      previous ? Delta(now.samples, previous->samples) : now.samples, interval_s);
  if (args.json) {
    PrintJson(figures, now, interval_s);
  } else {
    PrintText(args.metrics_url, figures, now, interval_s);
  }
}

}  // namespace

CLI::App* AddReportCommand(CLI::App& app, ReportArgs* args) {
  CLI::App* command = app.add_subcommand("report", "per-variant figures from the server's metrics");
  command->add_option("--metrics", args->metrics_url, "the server's /metrics URL")
      ->capture_default_str();
  command->add_option("--watch", args->watch_s, "re-render every SECONDS (default 2)")
      ->expected(0, 1)
      ->default_str("2")
      ->check(CLI::Range(0.1, 3600.0));
  command->add_flag("--json", args->json, "print one JSON object (per interval)");
  return command;
}

int RunReport(const ReportArgs& args) {
  Scrape previous;
  std::string error;
  if (!FetchScrape(args.metrics_url, &previous, &error)) {
    std::cerr << "gem-client: " << error << "\n";
    return 1;
  }
  Render(args, previous, nullptr);
  bool have_previous = true;
  while (args.watch_s > 0) {
    std::this_thread::sleep_for(std::chrono::duration<double>(args.watch_s));
    Scrape now;
    if (!FetchScrape(args.metrics_url, &now, &error)) {
      std::cerr << "gem-client: " << error << " (retrying)\n";
      have_previous = false;
      continue;
    }
    Render(args, now, have_previous ? &previous : nullptr);
    previous = std::move(now);
    have_previous = true;
  }
  return 0;
}

}  // namespace gemserve::client
