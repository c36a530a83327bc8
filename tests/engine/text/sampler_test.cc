#include "server/engine/text/sampler.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <map>
#include <set>
#include <vector>

namespace gemserve {
namespace {

using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

SamplingParams Params(float temperature, int top_k = 0, float top_p = 1, uint64_t seed = 1) {
  SamplingParams params;
  params.temperature = temperature;
  params.top_k = top_k;
  params.top_p = top_p;
  params.seed = seed;
  return params;
}

std::vector<double> Softmax(const std::vector<float>& logits, double temperature) {
  std::vector<double> probabilities;
  double total = 0;
  for (const float logit : logits) {
    probabilities.push_back(std::exp(logit / temperature));
    total += probabilities.back();
  }
  for (double& p : probabilities) p /= total;
  return probabilities;
}

std::vector<double> Frequencies(Sampler& sampler, const std::vector<float>& logits, int draws) {
  std::vector<double> frequencies(logits.size(), 0);
  for (int i = 0; i < draws; ++i) frequencies[sampler.Sample(logits)] += 1.0 / draws;
  return frequencies;
}

TEST(SamplingParamsTest, AcceptsValidValues) {
  EXPECT_TRUE(ValidateSamplingParams(SamplingParams()).ok());
  for (const SamplingParams& params :
       {Params(0), Params(0.7f, 40, 0.9f), Params(2, 0, 0), Params(1e-3f, 1, 1)}) {
    EXPECT_TRUE(ValidateSamplingParams(params).ok()) << ValidateSamplingParams(params).message();
  }
}

TEST(SamplingParamsTest, RejectionsNameTheField) {
  const struct {
    SamplingParams params;
    const char* field;
  } cases[] = {
      {Params(-0.5f), "temperature"}, {Params(kNaN), "temperature"}, {Params(kInf), "temperature"},
      {Params(1, -1), "top_k"},       {Params(1, 0, 1.5f), "top_p"}, {Params(1, 0, -0.1f), "top_p"},
      {Params(1, 0, kNaN), "top_p"},
  };
  for (const auto& c : cases) {
    const Status status = ValidateSamplingParams(c.params);
    EXPECT_EQ(status.code(), StatusCode::kInvalidArgument);
    EXPECT_THAT(status.message(), StartsWith(c.field));
  }
  EXPECT_THAT(ValidateSamplingParams(Params(-0.5f)).message(), HasSubstr("got -0.5"));
}

TEST(SamplerTest, GreedyIsArgmax) {
  Sampler sampler(Params(0, 2, 0.5f));  // top_k and top_p do not matter when greedy
  EXPECT_EQ(sampler.Sample({0.1f, 3.0f, -1.0f, 2.9f}), 1);
  EXPECT_EQ(sampler.Sample({-5.0f, -4.0f, -4.5f}), 1);
  EXPECT_EQ(sampler.Sample({1.0f, 7.0f, 7.0f}), 1);  // ties: the first
  EXPECT_EQ(sampler.Sample({kNaN, 1.0f, kNaN}), 1);
  EXPECT_EQ(sampler.Sample({kNaN, kNaN}), 0);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(sampler.Sample({0.0f, 0.5f, 0.4f}), 1);
}

// Over 200k draws each frequency lies within ~0.0011 (one standard deviation) of its
// probability; 0.01 passes reliably, yet fails if the temperature were ignored or
// misapplied (the shapes differ by > 0.05).
TEST(SamplerTest, TemperatureShapesTheDistributionAsSoftmax) {
  const std::vector<float> logits = {1.0f, 2.0f, 3.0f, 0.5f};
  for (const float temperature : {0.5f, 1.0f, 2.0f}) {
    Sampler sampler(Params(temperature, 0, 1, 42));
    const std::vector<double> frequencies = Frequencies(sampler, logits, 200000);
    const std::vector<double> expected = Softmax(logits, temperature);
    for (size_t i = 0; i < logits.size(); ++i) {
      EXPECT_NEAR(frequencies[i], expected[i], 0.01)
          << "temperature " << temperature << " id " << i;
    }
  }
}

TEST(SamplerTest, TopKReturnsOnlyTheKHighest) {
  std::vector<float> logits(100);
  for (size_t i = 0; i < logits.size(); ++i) logits[i] = std::sin(static_cast<float>(i)) * 3;
  std::vector<int> order(logits.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int>(i);
  std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
  const std::set<int> top5(order.begin(), order.begin() + 5);

  Sampler sampler(Params(5.0f, 5, 1, 3));  // a high temperature: otherwise near-uniform
  std::set<int> seen;
  for (int i = 0; i < 5000; ++i) seen.insert(sampler.Sample(logits));
  EXPECT_EQ(seen, top5);
}

TEST(SamplerTest, TopPReturnsOnlyTheNucleus) {
  // Probabilities 0.5, 0.3, 0.15, 0.05: the smallest set reaching 0.7 is {0, 1}.
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  Sampler sampler(Params(1, 0, 0.7f, 11));
  const std::vector<double> frequencies = Frequencies(sampler, logits, 100000);
  EXPECT_NEAR(frequencies[0], 0.5 / 0.8, 0.01);
  EXPECT_NEAR(frequencies[1], 0.3 / 0.8, 0.01);
  EXPECT_EQ(frequencies[2], 0);
  EXPECT_EQ(frequencies[3], 0);
}

TEST(SamplerTest, TinyTopPKeepsTheMostLikelyToken) {
  Sampler sampler(Params(1, 0, 1e-6f, 5));
  for (int i = 0; i < 1000; ++i) EXPECT_EQ(sampler.Sample({0.0f, 0.2f, 0.1f}), 1);
}

// Renormalised over the top 3 (0.526, 0.316, 0.158), ids 0 and 1 reach p = 0.82; over
// all four (0.5, 0.3, ...) they would not, and id 2 would be kept too.
TEST(SamplerTest, TopPAppliesAfterTopK) {
  const std::vector<float> logits = {std::log(0.5f), std::log(0.3f), std::log(0.15f),
                                     std::log(0.05f)};
  Sampler sampler(Params(1, 3, 0.82f, 13));
  const std::vector<double> frequencies = Frequencies(sampler, logits, 50000);
  EXPECT_NEAR(frequencies[0], 0.5 / 0.8, 0.015);
  EXPECT_EQ(frequencies[2], 0);
  EXPECT_EQ(frequencies[3], 0);
}

TEST(SamplerTest, SameSeedSameSequenceOtherSeedOther) {
  const std::vector<float> logits(10, 0.0f);
  Sampler first(Params(1, 0, 1, 1234)), again(Params(1, 0, 1, 1234)), other(Params(1, 0, 1, 1235));
  int same = 0, different = 0;
  for (int i = 0; i < 1000; ++i) {
    const int32_t token = first.Sample(logits);
    same += token == again.Sample(logits);
    different += token != other.Sample(logits);
  }
  EXPECT_EQ(same, 1000);
  EXPECT_GT(different, 800);  // ~900 expected for independent uniform draws over 10 ids
}

TEST(SamplerTest, NeverPicksNaNOrMinusInfinity) {
  Sampler sampler(Params(1, 0, 1, 17));
  std::set<int> seen;
  for (int i = 0; i < 2000; ++i) seen.insert(sampler.Sample({kNaN, -kInf, 0.0f, 0.0f, kNaN}));
  EXPECT_EQ(seen, (std::set<int>{2, 3}));
  EXPECT_EQ(sampler.Sample({-kInf, 1.0f, kInf}), 2);  // +inf: the largest float
  EXPECT_EQ(sampler.Sample({kNaN, kNaN}), 0);
}

}  // namespace
}  // namespace gemserve
