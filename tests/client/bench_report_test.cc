#include "client/bench_report.h"

#include <gtest/gtest.h>

#include <sstream>

namespace gemserve::client {
namespace {

RequestSample Sample(const std::string& variant, double latency_ms, int tokens = 0,
                     double ttft_ms = 0) {
  RequestSample s;
  s.variant = variant;
  s.latency_ms = latency_ms;
  s.tokens = tokens;
  s.ttft_ms = ttft_ms;
  return s;
}

BenchRun ClosedClassify() {
  BenchRun run;
  run.rpc = "Classify";
  run.concurrency = 4;
  run.duration_s = 2;
  run.wall_s = 2.5;
  return run;
}

TEST(BenchReportTest, ClosedLoopHasTheDesignShape) {
  ErrorTally errors;
  errors.Add("RESOURCE_EXHAUSTED", "queue full", 0.25);
  errors.Add("RESOURCE_EXHAUSTED", "queue full again", 0.75);
  const std::vector<RequestSample> samples = {Sample("gelu", 10), Sample("gelu", 20),
                                              Sample("gem-n1", 30), Sample("gelu", 40),
                                              Sample("gem-n1", 50)};
  const nlohmann::json r = BenchReportJson(ClosedClassify(), samples, errors);
  for (const char* key : {"rpc", "mode", "concurrency", "duration_s", "wall_s", "requests",
                          "errors", "errors_by_code", "first_error_messages", "throughput_rps",
                          "latency_ms", "variants", "unfinished", "stopped_early"}) {
    EXPECT_TRUE(r.contains(key)) << key;
  }
  EXPECT_EQ(r["rpc"], "Classify");
  EXPECT_EQ(r["mode"], "closed");
  EXPECT_EQ(r["concurrency"], 4);
  EXPECT_FALSE(r.contains("rate"));
  EXPECT_FALSE(r.contains("offered_rps"));
  EXPECT_FALSE(r.contains("ttft_ms"));
  EXPECT_EQ(r["requests"], 5);  // successes only
  EXPECT_EQ(r["errors"], 2);
  EXPECT_EQ(r["errors_by_code"]["RESOURCE_EXHAUSTED"], 2);
  EXPECT_EQ(r["first_error_messages"]["RESOURCE_EXHAUSTED"], "queue full");
  EXPECT_EQ(r["error_latency_ms"]["max"], 0.75);
  EXPECT_DOUBLE_EQ(r["throughput_rps"].get<double>(), 5 / 2.5);  // over the wall time
  EXPECT_EQ(r["latency_ms"]["p50"], 30);
  EXPECT_EQ(r["latency_ms"]["max"], 50);
  ASSERT_EQ(r["variants"].size(), 2u);
  EXPECT_EQ(r["variants"]["gelu"]["requests"], 3);
  EXPECT_DOUBLE_EQ(r["variants"]["gelu"]["throughput_rps"].get<double>(), 3 / 2.5);
  EXPECT_EQ(r["variants"]["gelu"]["latency_ms"]["p50"], 20);
  EXPECT_EQ(r["variants"]["gem-n1"]["latency_ms"]["p99"], 50);
}

TEST(BenchReportTest, OpenLoopReportsOfferedAndAchievedRates) {
  BenchRun run = ClosedClassify();
  run.open_loop = true;
  run.rate = 200;
  run.seed = 1;
  run.max_in_flight = 64;
  run.scheduled = 410;  // over 2 s: 205 offered
  run.unsent = 10;
  run.send_lag_ms = {0, 0, 5};
  const nlohmann::json r = BenchReportJson(run, {Sample("a", 1), Sample("a", 2)}, ErrorTally());
  EXPECT_EQ(r["mode"], "open");
  EXPECT_FALSE(r.contains("concurrency"));
  EXPECT_EQ(r["rate"], 200);
  EXPECT_DOUBLE_EQ(r["offered_rps"].get<double>(), 205);
  EXPECT_DOUBLE_EQ(r["throughput_rps"].get<double>(), 2 / 2.5);
  EXPECT_EQ(r["unsent"], 10);
  EXPECT_EQ(r["send_lag_ms"]["max"], 5);
  EXPECT_EQ(r["errors"], 0);
  EXPECT_TRUE(r["errors_by_code"].is_object());
  EXPECT_TRUE(r["errors_by_code"].empty());
}

TEST(BenchReportTest, GenerateHasAggregateAndPerStreamTokenRates) {
  BenchRun run = ClosedClassify();
  run.rpc = "Generate";
  run.wall_s = 1;
  // 10 tokens in 100 ms (100/s), 30 in 1000 ms (30/s); a stream with no token has no TTFT.
  const std::vector<RequestSample> samples = {Sample("a", 100, 10, 10), Sample("b", 1000, 30, 50),
                                              Sample("b", 5, 0, 0)};
  const nlohmann::json r = BenchReportJson(run, samples, ErrorTally());
  EXPECT_DOUBLE_EQ(r["tokens_per_s"].get<double>(), 40);
  EXPECT_DOUBLE_EQ(r["tokens_per_s_per_stream"].get<double>(), (100.0 + 30 + 0) / 3);
  EXPECT_EQ(r["ttft_ms"]["p50"], 10);  // of 10 and 50: the empty stream is left out
  EXPECT_EQ(r["ttft_ms"]["max"], 50);
  EXPECT_DOUBLE_EQ(r["inter_token_ms"]["p50"].get<double>(), (100.0 - 10) / 9);
  EXPECT_DOUBLE_EQ(r["inter_token_ms"]["max"].get<double>(), (1000.0 - 50) / 29);
  EXPECT_DOUBLE_EQ(r["variants"]["a"]["tokens_per_s"].get<double>(), 10);
  EXPECT_DOUBLE_EQ(r["variants"]["b"]["tokens_per_s"].get<double>(), 30);
  EXPECT_DOUBLE_EQ(r["variants"]["b"]["tokens_per_s_per_stream"].get<double>(), 15);
  EXPECT_TRUE(r["variants"]["a"].contains("inter_token_ms"));
}

TEST(BenchReportTest, TextWithNoSuccessesShowsErrorsAndNoNan) {
  ErrorTally errors;
  errors.Add("NOT_FOUND", "no variant", 1.0);
  BenchRun run = ClosedClassify();
  run.unfinished = 3;
  std::ostringstream out;
  PrintBenchReport(BenchReportJson(run, {}, errors), out);
  const std::string text = out.str();
  EXPECT_NE(text.find("0 requests, 1 errors"), std::string::npos) << text;
  EXPECT_NE(text.find("NOT_FOUND 1"), std::string::npos) << text;
  EXPECT_NE(text.find("3 requests still in flight"), std::string::npos) << text;
  EXPECT_EQ(text.find("nan"), std::string::npos) << text;
}

TEST(BenchReportTest, TextOfAnOpenLoopNamesBothRates) {
  BenchRun run = ClosedClassify();
  run.open_loop = true;
  run.rate = 100;
  run.scheduled = 190;
  run.unsent = 4;
  run.max_in_flight = 8;
  std::ostringstream out;
  PrintBenchReport(BenchReportJson(run, {Sample("a", 1)}, ErrorTally()), out);
  const std::string text = out.str();
  EXPECT_NE(text.find("open loop at 100"), std::string::npos) << text;
  EXPECT_NE(text.find("offered 95.0"), std::string::npos) << text;
  EXPECT_NE(text.find("0.4 req/s achieved"), std::string::npos) << text;
  EXPECT_NE(text.find("4 of 190 scheduled requests were not sent"), std::string::npos) << text;
  EXPECT_NE(text.find("sent late by p50 0.00 ms"), std::string::npos) << text;
}

TEST(ProgressLineTest, ShowsElapsedDoneErrorsRateAndInFlight) {
  EXPECT_EQ(ProgressLine(3.02, 10, 1234, 2, 410.04, 3),
            "bench: 3/10 s, 1234 ok, 2 errors, 410.0 req/s, 3 in flight");
}

}  // namespace
}  // namespace gemserve::client
