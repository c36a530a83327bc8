#include "client/metrics_text.h"

#include <gtest/gtest.h>

#include <cmath>
#include <limits>

namespace gemserve::client {
namespace {

std::vector<MetricSample> Parse(const std::string& text) {
  std::vector<MetricSample> samples;
  std::string error;
  EXPECT_TRUE(ParseMetricsText(text, &samples, &error)) << error;
  return samples;
}

std::string ParseError(const std::string& text) {
  std::vector<MetricSample> samples;
  std::string error;
  EXPECT_FALSE(ParseMetricsText(text, &samples, &error));
  return error;
}

TEST(ParseMetricsText, ReadsNamesLabelsAndValues) {
  const auto samples = Parse(
      "# HELP gemserve_requests_total Finished RPCs.\n"
      "# TYPE gemserve_requests_total counter\n"
      "\n"
      "gemserve_requests_total{code=\"OK\",model=\"m\",rpc=\"Classify\",variant=\"gelu\"} 191\n"
      "process_open_fds 13\n"
      "h_bucket{le=\"+Inf\",} 2.5e+01 1700000000000\n");
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].name, "gemserve_requests_total");
  EXPECT_EQ(samples[0].labels,
            (Labels{{"code", "OK"}, {"model", "m"}, {"rpc", "Classify"}, {"variant", "gelu"}}));
  EXPECT_EQ(samples[0].value, 191);
  EXPECT_EQ(samples[1].name, "process_open_fds");
  EXPECT_TRUE(samples[1].labels.empty());
  EXPECT_EQ(samples[2].labels.at("le"), "+Inf");
  EXPECT_EQ(samples[2].value, 25);
}

TEST(ParseMetricsText, ReadsEscapesAndSpecialValues) {
  const auto samples = Parse(
      "a{x=\"say \\\"hi\\\"\",y=\"back\\\\slash\",z=\"two\\nlines\"} +Inf\n"
      "b -Inf\n"
      "c NaN\n");
  ASSERT_EQ(samples.size(), 3u);
  EXPECT_EQ(samples[0].labels.at("x"), "say \"hi\"");
  EXPECT_EQ(samples[0].labels.at("y"), "back\\slash");
  EXPECT_EQ(samples[0].labels.at("z"), "two\nlines");
  EXPECT_TRUE(std::isinf(samples[0].value) && samples[0].value > 0);
  EXPECT_TRUE(std::isinf(samples[1].value) && samples[1].value < 0);
  EXPECT_TRUE(std::isnan(samples[2].value));
}

TEST(ParseMetricsText, AcceptsWindowsLineEnds) { EXPECT_EQ(Parse("a 1\r\nb 2\r\n").size(), 2u); }

TEST(ParseMetricsText, NamesTheMalformedLine) {
  EXPECT_NE(ParseError("ok 1\nbad{a=\"1\" 2\n").find("line 2"), std::string::npos);
  EXPECT_NE(ParseError("a one\n").find("bad value"), std::string::npos);
  EXPECT_NE(ParseError("{a=\"1\"} 1\n").find("metric name"), std::string::npos);
  EXPECT_NE(ParseError("a{b=1} 1\n").find("label b"), std::string::npos);
  EXPECT_NE(ParseError("a{b=\"open} 1\n").find("label b"), std::string::npos);
  EXPECT_NE(ParseError("a 1 2 3\n").find("after the value"), std::string::npos);
}

TEST(SumOf, AddsTheSeriesThatHaveTheLabels) {
  const auto samples = Parse(
      "r{code=\"OK\",variant=\"a\"} 5\n"
      "r{code=\"NOT_FOUND\",variant=\"a\"} 2\n"
      "r{code=\"OK\",variant=\"b\"} 7\n"
      "other{variant=\"a\"} 100\n");
  EXPECT_EQ(SumOf(samples, "r", {{"variant", "a"}}), 7);
  EXPECT_EQ(SumOf(samples, "r", {{"code", "OK"}}), 12);
  EXPECT_EQ(SumOf(samples, "r", {}), 14);
  EXPECT_EQ(SumOf(samples, "r", {{"variant", "c"}}), 0);
  EXPECT_EQ(SumOf(samples, "missing", {}), 0);
}

TEST(HistogramOf, SumsSeriesBucketByBucket) {
  const auto samples = Parse(
      "d_bucket{rpc=\"A\",v=\"x\",le=\"0.1\"} 1\n"
      "d_bucket{rpc=\"A\",v=\"x\",le=\"+Inf\"} 3\n"
      "d_sum{rpc=\"A\",v=\"x\"} 0.5\n"
      "d_count{rpc=\"A\",v=\"x\"} 3\n"
      "d_bucket{rpc=\"B\",v=\"x\",le=\"0.1\"} 2\n"
      "d_bucket{rpc=\"B\",v=\"x\",le=\"+Inf\"} 2\n"
      "d_sum{rpc=\"B\",v=\"x\"} 0.1\n"
      "d_count{rpc=\"B\",v=\"x\"} 2\n"
      "d_bucket{rpc=\"A\",v=\"y\",le=\"+Inf\"} 9\n"
      "dd_count{v=\"x\"} 40\n");
  const Histogram h = HistogramOf(samples, "d", {{"v", "x"}});
  ASSERT_EQ(h.buckets.size(), 2u);
  EXPECT_EQ(h.buckets[0].le, 0.1);
  EXPECT_EQ(h.buckets[0].count, 3);
  EXPECT_TRUE(std::isinf(h.buckets[1].le));
  EXPECT_EQ(h.buckets[1].count, 5);
  EXPECT_DOUBLE_EQ(h.sum, 0.6);
  EXPECT_EQ(h.count, 5);
}

const double kInf = std::numeric_limits<double>::infinity();

TEST(HistogramQuantile, InterpolatesInsideTheBucket) {
  const std::vector<Bucket> buckets = {{0.1, 10}, {0.2, 20}, {0.4, 40}, {kInf, 40}};
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.25, buckets), 0.1);    // rank 10: top of bucket 1
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.125, buckets), 0.05);  // from 0 inside the first
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.375, buckets), 0.15);
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.75, buckets), 0.3);
  EXPECT_DOUBLE_EQ(HistogramQuantile(1.0, buckets), 0.4);
}

TEST(HistogramQuantile, SkipsEmptyBucketsAtTheStart) {
  const std::vector<Bucket> buckets = {{0.1, 0}, {0.2, 0}, {0.4, 10}, {kInf, 10}};
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.5, buckets), 0.3);
}

TEST(HistogramQuantile, RankInTheInfBucketGivesTheHighestFiniteBound) {
  const std::vector<Bucket> buckets = {{0.1, 5}, {0.2, 6}, {kInf, 10}};
  EXPECT_DOUBLE_EQ(HistogramQuantile(0.99, buckets), 0.2);
}

TEST(HistogramQuantile, IsNanWithoutObservationsOrInfBucket) {
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {{0.1, 0}, {kInf, 0}})));
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {{0.1, 1}, {0.2, 2}})));
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {{kInf, 3}})));
  EXPECT_TRUE(std::isnan(HistogramQuantile(0.5, {})));
}

TEST(Delta, SubtractsSeriesBySeries) {
  const auto before = Parse("c{v=\"a\"} 10\nc{v=\"b\"} 50\n");
  const auto after = Parse("c{v=\"a\"} 15\nc{v=\"b\"} 3\nc{v=\"new\"} 4\n");
  const auto delta = Delta(after, before);
  EXPECT_EQ(SumOf(delta, "c", {{"v", "a"}}), 5);
  EXPECT_EQ(SumOf(delta, "c", {{"v", "b"}}), 3);  // went down: a restart, keep the new value
  EXPECT_EQ(SumOf(delta, "c", {{"v", "new"}}), 4);
}

}  // namespace
}  // namespace gemserve::client
