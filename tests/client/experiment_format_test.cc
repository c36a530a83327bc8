#include "client/experiment_format.h"

#include <google/protobuf/util/json_util.h>
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <sstream>

namespace gemserve::client {
namespace {

v1::Interval MakeInterval(double estimate, double lower, double upper) {
  v1::Interval interval;
  interval.set_estimate(estimate);
  interval.set_lower(lower);
  interval.set_upper(upper);
  return interval;
}

const double kInf = std::numeric_limits<double>::infinity();

TEST(FormatInterval, ShowsEstimateAndBounds) {
  EXPECT_EQ(FormatInterval(MakeInterval(1.032, 0.98123, 1.0861), 120), "1.032 [0.9812, 1.086]");
}

TEST(FormatInterval, SaysTooFewWhileABoundIsInfinite) {
  EXPECT_EQ(FormatInterval(MakeInterval(0, -kInf, kInf), 3), "0 (too few)");
  EXPECT_EQ(FormatInterval(MakeInterval(0.5, 0.1, kInf), 3), "0.5 (too few)");
}

TEST(FormatInterval, IsADashWithoutObservations) {
  EXPECT_EQ(FormatInterval(MakeInterval(0, -kInf, kInf), 0), "–");
  EXPECT_EQ(FormatInterval(MakeInterval(std::nan(""), 0, 1), 5), "–");
}

// The shape /api/v1/experiments serves: proto3 JSON, uint64 as strings, "Infinity".
const char kExperiments[] = R"({"experiments":[{
  "experiment":{"model":"resnet20-fashion","split":{"gelu":50,"gem-n1":50},"sticky":true,
    "salt":"exp-1","shadow":{"variants":["segem-n1-e1e-4"],"sample_rate":0.1,"queue_size":64},
    "version":"3","baseline":"gelu"},
  "arms":[
    {"variant":"gelu","requests":"120","errors":"0",
     "error_rate":{"estimate":0,"lower":"-Infinity","upper":"Infinity"},
     "latency_p50_ms":3.1,"latency_p95_ms":4.25,"latency_p99_ms":6,"labelled":"40",
     "accuracy":{"estimate":0.9,"lower":0.8,"upper":0.95},"rewarded":"0",
     "reward":{"estimate":0,"lower":"-Infinity","upper":"Infinity"}},
    {"variant":"gem-n1","requests":"0","errors":"0",
     "error_rate":{"estimate":0,"lower":"-Infinity","upper":"Infinity"}}],
  "pairs":[{"baseline":"gelu","candidate":"gem-n1","shadow":false,"comparisons":[
     {"metric":"latency_ratio","value":{"estimate":1.05,"lower":0.99,"upper":1.11},
      "verdict":"no difference yet","observations":"120"}]},
    {"baseline":"gelu","candidate":"segem-n1-e1e-4","shadow":true,"comparisons":[
     {"metric":"shadow_agreement","value":{"estimate":0.98,"lower":0.95,"upper":1},
      "verdict":"better","observations":"50"}]}],
  "shadow_dropped":"7"}]})";

std::string Rendered() {
  v1::GetExperimentsResponse response;
  const auto status = google::protobuf::util::JsonStringToMessage(kExperiments, &response);
  EXPECT_TRUE(status.ok()) << status.ToString();
  std::ostringstream out;
  PrintExperimentStatistics(out, response.experiments(0));
  return out.str();
}

TEST(PrintExperimentStatistics, ShowsSettingsArmsPairsAndDrops) {
  const std::string text = Rendered();
  for (const char* expected :
       {"resnet20-fashion: version 3, split gelu=50 gem-n1=50, sticky, baseline gelu",
        "shadow: segem-n1-e1e-4 (sample rate 0.1, queue 64)", "0 (too few)", "3.10", "4.25",
        "0.9 [0.8, 0.95] (40)", "gelu vs gem-n1:", "latency_ratio", "1.05 [0.99, 1.11]",
        "no difference yet", "gelu vs segem-n1-e1e-4 (shadow, same inputs):", "better",
        "shadow mirrors dropped: 7"}) {
    EXPECT_NE(text.find(expected), std::string::npos) << expected << "\nin:\n" << text;
  }
}

}  // namespace
}  // namespace gemserve::client
