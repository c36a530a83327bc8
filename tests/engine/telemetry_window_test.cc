// ActivationWindow: the sliding window of activation statistics (telemetry/activation_window.h).

#include "server/engine/telemetry/activation_window.h"

#include <gtest/gtest.h>

#include <cmath>
#include <random>

namespace gemserve {
namespace {

ActivationSite Site(const std::string& name, int64_t units) {
  return {name, units, 0, 1, 0, 0};
}

SiteObservation Observation(std::vector<bool> nonzero, double zero_fraction = 0.5,
                            double mean = 0, double std = 1) {
  return {zero_fraction, std::move(nonzero), mean, std};
}

TEST(ActivationWindowTest, EmptyWindowHasNoSummaries) {
  ActivationWindow window({Site("a", 3)}, 4);
  EXPECT_EQ(window.samples(), 0u);
  EXPECT_TRUE(window.Summaries().empty());
}

TEST(ActivationWindowTest, DeadUnitsAreThoseNeverNonZeroInTheWindow) {
  ActivationWindow window({Site("a", 4)}, 10);
  ASSERT_TRUE(window.Add({Observation({true, false, false, false})}).ok());
  ASSERT_TRUE(window.Add({Observation({false, false, true, false})}).ok());
  const SiteSummary s = window.Summaries().at(0);
  EXPECT_EQ(s.site, "a");
  EXPECT_EQ(s.units, 4);
  EXPECT_EQ(s.samples, 2u);
  EXPECT_EQ(s.dead_units, 2);  // units 1 and 3
  EXPECT_DOUBLE_EQ(s.dead_units_ratio, 0.5);
}

TEST(ActivationWindowTest, TheOldestSampleLeavesWhenTheWindowIsFull) {
  ActivationWindow window({Site("a", 2)}, 2);
  ASSERT_TRUE(window.Add({Observation({true, false}, 0.1)}).ok());
  ASSERT_TRUE(window.Add({Observation({false, false}, 0.2)}).ok());
  EXPECT_EQ(window.Summaries()[0].dead_units, 1);
  ASSERT_TRUE(window.Add({Observation({false, false}, 0.3)}).ok());  // unit 0's sample left
  const SiteSummary s = window.Summaries()[0];
  EXPECT_EQ(s.samples, 2u);
  EXPECT_EQ(s.dead_units, 2);
  EXPECT_DOUBLE_EQ(s.zero_fraction, 0.25);  // (0.2 + 0.3) / 2
  ASSERT_TRUE(window.Add({Observation({false, true}, 0.5)}).ok());
  EXPECT_EQ(window.Summaries()[0].dead_units, 1);
  EXPECT_DOUBLE_EQ(window.Summaries()[0].zero_fraction, 0.4);
}

TEST(ActivationWindowTest, InputMeanAndStdArePooledOverEqualWeightSamples) {
  ActivationWindow window({Site("a", 1)}, 8);
  ASSERT_TRUE(window.Add({Observation({true}, 0, 1.0, 1.0)}).ok());
  ASSERT_TRUE(window.Add({Observation({true}, 0, 3.0, 2.0)}).ok());
  const SiteSummary s = window.Summaries()[0];
  EXPECT_DOUBLE_EQ(s.input_mean, 2.0);
  // E[x^2] = ((1 + 1) + (4 + 9)) / 2 = 7.5; var = 7.5 - 4 = 3.5
  EXPECT_NEAR(s.input_std, std::sqrt(3.5), 1e-12);
}

TEST(ActivationWindowTest, MatchesARecomputationOverTheLastSamples) {
  constexpr int64_t kUnits = 130;  // three mask words, the last one partial
  constexpr size_t kCapacity = 7;
  ActivationWindow window({Site("a", kUnits), Site("b", 1)}, kCapacity);
  std::mt19937 random(3);
  std::bernoulli_distribution sparse(0.02);
  std::uniform_real_distribution<double> uniform(0, 1);
  std::vector<std::vector<bool>> masks;
  std::vector<double> fractions;
  for (int n = 0; n < 40; ++n) {
    std::vector<bool> mask(kUnits);
    for (int64_t u = 0; u < kUnits; ++u) mask[u] = sparse(random);
    masks.push_back(mask);
    fractions.push_back(uniform(random));
    ASSERT_TRUE(window.Add({Observation(mask, fractions.back()), Observation({true})}).ok());
    const size_t held = std::min(masks.size(), kCapacity);
    int64_t dead = 0;
    for (int64_t u = 0; u < kUnits; ++u) {
      bool alive = false;
      for (size_t i = masks.size() - held; i < masks.size(); ++i) alive = alive || masks[i][u];
      dead += !alive;
    }
    double fraction = 0;
    for (size_t i = masks.size() - held; i < masks.size(); ++i) fraction += fractions[i];
    const std::vector<SiteSummary> summaries = window.Summaries();
    ASSERT_EQ(summaries.size(), 2u);
    EXPECT_EQ(summaries[0].samples, held);
    EXPECT_EQ(summaries[0].dead_units, dead) << "after sample " << n;
    EXPECT_NEAR(summaries[0].zero_fraction, fraction / held, 1e-12);
    EXPECT_EQ(summaries[1].dead_units, 0);
  }
}

TEST(ActivationWindowTest, RefusesObservationsThatDoNotFitTheSites) {
  ActivationWindow window({Site("a", 2), Site("b", 3)}, 4);
  EXPECT_FALSE(window.Add({Observation({true, true})}).ok());  // one site of two
  EXPECT_FALSE(window.Add({Observation({true, true}), Observation({true})}).ok());  // b: 1 unit
  EXPECT_EQ(window.samples(), 0u);
}

TEST(ActivationWindowTest, MemoryIsBoundedByTheWindow) {
  ActivationWindow window({Site("a", 64)}, 3);
  for (int n = 0; n < 1000; ++n) {
    ASSERT_TRUE(window.Add({Observation(std::vector<bool>(64, n % 2 == 0))}).ok());
  }
  EXPECT_EQ(window.samples(), 3u);
  EXPECT_EQ(window.Summaries()[0].samples, 3u);
}

}  // namespace
}  // namespace gemserve
