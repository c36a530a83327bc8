// Routing of an experiment: weighted random draws, sticky rendezvous hashing, and how
// few keys a weight change moves.

#include <gtest/gtest.h>

#include <map>
#include <random>

#include "server/engine/experiments/experiment.h"
#include "server/engine/experiments/traffic_split.h"

namespace gemserve {
namespace {

constexpr int kDecisions = 10000;

std::string Key(int i) { return "user-" + std::to_string(i); }

double Share(const std::map<std::string, int>& counts, const std::string& arm) {
  return counts.count(arm) ? static_cast<double>(counts.at(arm)) / kDecisions : 0;
}

TEST(TrafficSplit, RandomDrawsFollowTheWeights) {
  const TrafficSplit split({{"gelu", 70}, {"gem-n1", 30}}, "salt");
  std::mt19937_64 random(7);
  std::map<std::string, int> counts;
  for (int i = 0; i < kDecisions; ++i) ++counts[split.PickAtRandom(random)];
  EXPECT_NEAR(Share(counts, "gelu"), 0.70, 0.02);
  EXPECT_NEAR(Share(counts, "gem-n1"), 0.30, 0.02);
}

TEST(TrafficSplit, KeysFollowTheWeights) {
  const TrafficSplit split({{"gelu", 70}, {"gem-n1", 30}}, "salt");
  std::map<std::string, int> counts;
  for (int i = 0; i < kDecisions; ++i) ++counts[split.PickForKey(Key(i))];
  EXPECT_NEAR(Share(counts, "gelu"), 0.70, 0.02);
  EXPECT_NEAR(Share(counts, "gem-n1"), 0.30, 0.02);
}

TEST(TrafficSplit, AZeroWeightArmGetsNothing) {
  const TrafficSplit split({{"gelu", 0}, {"gem-n1", 5}}, "salt");
  std::mt19937_64 random(1);
  for (int i = 0; i < 1000; ++i) {
    EXPECT_EQ(split.PickForKey(Key(i)), "gem-n1");
    EXPECT_EQ(split.PickAtRandom(random), "gem-n1");
  }
}

TEST(TrafficSplit, AKeyKeepsItsArmWhileTheWeightsStand) {
  const TrafficSplit split({{"gelu", 50}, {"gem-n1", 50}}, "exp-1");
  const TrafficSplit same_config_elsewhere({{"gelu", 50}, {"gem-n1", 50}}, "exp-1");
  for (int i = 0; i < kDecisions; ++i) {
    const std::string& arm = split.PickForKey(Key(i));
    EXPECT_EQ(split.PickForKey(Key(i)), arm);
    EXPECT_EQ(same_config_elsewhere.PickForKey(Key(i)), arm);
  }
}

// The hash is spelled out, so assignments are the same on every build and machine: this
// value was computed once and must never change (replicas of different builds agree).
TEST(TrafficSplit, TheHashIsStable) {
  EXPECT_DOUBLE_EQ(StableUniform("exp-1", "user-1", "gelu"), 0.87539499141447541);
  EXPECT_DOUBLE_EQ(StableUniform("exp-1", "user-1", "gelu"),
                   StableUniform("exp-1", "user-1", "gelu"));
  EXPECT_NE(StableUniform("exp-1", "user-1", "gelu"), StableUniform("exp-2", "user-1", "gelu"));
  EXPECT_NE(StableUniform("ab", "c", "gelu"), StableUniform("a", "bc", "gelu"));
  const double u = StableUniform("", "", "");
  EXPECT_GT(u, 0);
  EXPECT_LT(u, 1);
}

int KeysThatMove(const TrafficSplit& before, const TrafficSplit& after) {
  int moved = 0;
  for (int i = 0; i < kDecisions; ++i) moved += before.PickForKey(Key(i)) != after.PickForKey(Key(i));
  return moved;
}

TEST(TrafficSplit, AWeightChangeMovesOnlyTheKeysItMust) {
  const TrafficSplit even({{"gelu", 50}, {"gem-n1", 50}}, "exp-1");
  const TrafficSplit sixty_forty({{"gelu", 60}, {"gem-n1", 40}}, "exp-1");
  const double moved = static_cast<double>(KeysThatMove(even, sixty_forty)) / kDecisions;
  EXPECT_GE(moved, 0.08);
  EXPECT_LE(moved, 0.12);
  // Every key that moved went to the arm whose weight grew.
  for (int i = 0; i < kDecisions; ++i) {
    if (even.PickForKey(Key(i)) != sixty_forty.PickForKey(Key(i))) {
      EXPECT_EQ(sixty_forty.PickForKey(Key(i)), "gelu");
    }
  }
}

TEST(TrafficSplit, ANewSaltReshufflesTheKeys) {
  const TrafficSplit one({{"gelu", 50}, {"gem-n1", 50}}, "exp-1");
  const TrafficSplit two({{"gelu", 50}, {"gem-n1", 50}}, "exp-2");
  const double moved = static_cast<double>(KeysThatMove(one, two)) / kDecisions;
  EXPECT_NEAR(moved, 0.5, 0.03);
}

TEST(TrafficSplit, AddingAnArmTakesKeysOnlyForItself) {
  const TrafficSplit two({{"gelu", 50}, {"gem-n1", 50}}, "exp-1");
  const TrafficSplit three({{"gelu", 50}, {"gem-n1", 50}, {"segem-n1-e1e-4", 50}}, "exp-1");
  for (int i = 0; i < kDecisions; ++i) {
    const std::string& now = three.PickForKey(Key(i));
    if (now != "segem-n1-e1e-4") {
      EXPECT_EQ(now, two.PickForKey(Key(i)));
    }
  }
}

ExperimentConfig StickyExperiment() {
  ExperimentConfig config;
  config.model = "resnet20-fashion";
  config.split = {{"gelu", 50}, {"gem-n1", 50}};
  config.sticky = true;
  return config;
}

TEST(Experiment, StickyRoutesByKeyAndRandomWithout) {
  Experiment experiment(StickyExperiment());
  const Assignment first = experiment.Route("user-1");
  EXPECT_EQ(first.version, 1u);
  for (int i = 0; i < 100; ++i) EXPECT_EQ(experiment.Route("user-1").variant, first.variant);
  std::map<std::string, int> keyless;
  for (int i = 0; i < 1000; ++i) ++keyless[experiment.Route("").variant];
  EXPECT_GT(keyless["gelu"], 400);
  EXPECT_GT(keyless["gem-n1"], 400);
}

TEST(Experiment, DefaultsAndSplitChanges) {
  Experiment experiment(StickyExperiment());
  ExperimentSettings settings = experiment.Settings();
  EXPECT_EQ(settings.config.salt, "resnet20-fashion");  // no salt: the model name
  EXPECT_EQ(settings.config.baseline, "gelu");          // no baseline: the first arm
  settings = experiment.SetSplit({{"gem-n1", 100}});
  EXPECT_EQ(settings.version, 2u);
  for (int i = 0; i < 100; ++i) {
    const Assignment a = experiment.Route(Key(i));
    EXPECT_EQ(a.variant, "gem-n1");
    EXPECT_EQ(a.version, 2u);
  }
  // The baseline keeps its statistics row though it left the split.
  EXPECT_EQ(experiment.statistics().Report().arms.front().variant, "gelu");
}

TEST(Experiment, ShadowSamplingFollowsTheRate) {
  ExperimentConfig config = StickyExperiment();
  config.shadow = {{"segem-n1-e1e-4"}, 0.25, 8};
  Experiment experiment(config);
  int sampled = 0;
  for (int i = 0; i < kDecisions; ++i) sampled += experiment.SampleForShadow();
  EXPECT_NEAR(static_cast<double>(sampled) / kDecisions, 0.25, 0.02);
}

}  // namespace
}  // namespace gemserve
