// Simulations of whole experiments: the A/A false-positive rate under continuous
// monitoring, the power against a 5% latency change, coverage at the end, and verdict
// monotonicity. Seeded, so every run prints the same fractions (docs/EXPERIMENTS.md
// quotes them).

#include <gtest/gtest.h>

#include <array>
#include <cmath>
#include <cstdint>
#include <iostream>
#include <random>
#include <string>
#include <utility>

#include "server/engine/stats/confidence_sequence.h"
#include "server/engine/stats/experiment_statistics.h"
#include "server/engine/stats/running_mean.h"

namespace gemserve::stats {
namespace {

constexpr int kRuns = 1000;
constexpr int kObservationsPerArm = 5000;
constexpr int kInspectEvery = 50;  // observations per arm between two Report() calls

// How one arm behaves: log-normal latency, Bernoulli errors and labels.
struct ArmModel {
  double median_seconds = 0.010;
  double log_sigma = 0.5;
  double error_rate = 0.01;
  double accuracy = 0.9;
};

class SimulatedArm {
 public:
  SimulatedArm(std::string name, const ArmModel& model)
      : name_(std::move(name)),
        latency_(std::log(model.median_seconds), model.log_sigma),
        error_(model.error_rate),
        correct_(model.accuracy) {}

  void Serve(ExperimentStatistics& stats, std::mt19937_64& rng, bool with_labels) {
    stats.RecordRequest(name_, latency_(rng), !error_(rng));
    if (with_labels) stats.RecordLabel(name_, correct_(rng));
  }

 private:
  std::string name_;
  std::lognormal_distribution<double> latency_;
  std::bernoulli_distribution error_;
  std::bernoulli_distribution correct_;
};

const ComparisonReport* Find(const ExperimentReport& report, const std::string& metric) {
  for (const ComparisonReport& comparison : report.pairs.at(0).comparisons) {
    if (comparison.metric == metric) return &comparison;
  }
  return nullptr;
}

// The verdicts of one metric over one experiment's inspections.
struct VerdictHistory {
  Verdict first_decided = Verdict::kNoDifferenceYet;
  bool reverted = false;  // a decided verdict later read differently

  void Observe(Verdict now) {
    if (first_decided == Verdict::kNoDifferenceYet) {
      first_decided = now;
    } else if (now != first_decided) {
      reverted = true;
    }
  }
  bool decided() const { return first_decided != Verdict::kNoDifferenceYet; }
};

// Runs one two-arm experiment, inspecting every kInspectEvery observations per arm.
// `metrics` names the comparisons to watch; `histories` receives one per metric.
template <size_t N>
ExperimentReport RunExperiment(const ArmModel& baseline, const ArmModel& candidate,
                               uint64_t seed, bool with_labels,
                               const std::array<const char*, N>& metrics,
                               std::array<VerdictHistory, N>& histories) {
  std::mt19937_64 rng(seed);
  ExperimentStatistics stats({"a", "b"});
  SimulatedArm a("a", baseline), b("b", candidate);
  ExperimentReport report;
  for (int n = 1; n <= kObservationsPerArm; ++n) {
    a.Serve(stats, rng, with_labels);
    b.Serve(stats, rng, with_labels);
    if (n % kInspectEvery != 0) continue;
    report = stats.Report();
    for (size_t m = 0; m < N; ++m) histories[m].Observe(Find(report, metrics[m])->verdict);
  }
  return report;
}

void Print(const std::string& key, double fraction) {
  std::cout << "[ fraction ] " << key << " = " << fraction << "\n";
  ::testing::Test::RecordProperty(key, std::to_string(fraction));
}

TEST(SimulationTest, AaExperimentsRarelyEverDeclareADifference) {
  constexpr std::array<const char*, 3> kMetrics = {"latency_ratio", "error_rate_diff",
                                                   "accuracy_diff"};
  std::array<int, 3> declared{};
  int declared_any = 0, reverted = 0;
  for (int run = 0; run < kRuns; ++run) {
    std::array<VerdictHistory, 3> histories;
    RunExperiment(ArmModel{}, ArmModel{}, 1000 + run, true, kMetrics, histories);
    bool any = false;
    for (size_t m = 0; m < kMetrics.size(); ++m) {
      declared[m] += histories[m].decided();
      any = any || histories[m].decided();
      reverted += histories[m].reverted;
    }
    declared_any += any;
  }
  for (size_t m = 0; m < kMetrics.size(); ++m) {
    const double fraction = static_cast<double>(declared[m]) / kRuns;
    Print(std::string("aa_ever_declared_") + kMetrics[m], fraction);
    EXPECT_LE(fraction, 0.05) << kMetrics[m];
  }
  const double any_fraction = static_cast<double>(declared_any) / kRuns;
  Print("aa_ever_declared_any_of_three", any_fraction);
  EXPECT_LE(any_fraction, 0.05);  // the pair's metrics share 5% (kPairAlpha)
  EXPECT_EQ(reverted, 0);
}

// A candidate whose latency is `factor` times the baseline's (same spread).
struct PowerResult {
  double right = 0;  // fraction of runs whose latency_ratio verdict was `expected`
  double wrong = 0;  // ... was the opposite verdict
  double covered = 0;  // ... whose final interval contains the true ratio
};

PowerResult LatencyPower(double factor, Verdict expected, uint64_t seed) {
  constexpr std::array<const char*, 1> kMetrics = {"latency_ratio"};
  ArmModel candidate;
  candidate.median_seconds *= factor;
  int right = 0, wrong = 0, covered = 0, reverted = 0;
  for (int run = 0; run < kRuns; ++run) {
    std::array<VerdictHistory, 1> history;
    const ExperimentReport report =
        RunExperiment(ArmModel{}, candidate, seed + run, false, kMetrics, history);
    right += history[0].first_decided == expected;
    wrong += history[0].decided() && history[0].first_decided != expected;
    reverted += history[0].reverted;
    const Interval& ratio = Find(report, "latency_ratio")->value;
    covered += ratio.lower <= factor && factor <= ratio.upper;
  }
  EXPECT_EQ(reverted, 0);
  return {static_cast<double>(right) / kRuns, static_cast<double>(wrong) / kRuns,
          static_cast<double>(covered) / kRuns};
}

TEST(SimulationTest, FivePercentSlowerIsFoundWorse) {
  const PowerResult result = LatencyPower(1.05, Verdict::kWorse, 2000000);
  Print("power_slower_worse", result.right);
  Print("power_slower_wrong_direction", result.wrong);
  Print("power_slower_final_interval_covers", result.covered);
  EXPECT_GE(result.right, 0.90);
  EXPECT_LE(result.wrong, 0.01);
  EXPECT_GE(result.covered, 0.95);
}

TEST(SimulationTest, FivePercentFasterIsFoundBetter) {
  const PowerResult result = LatencyPower(0.95, Verdict::kBetter, 3000000);
  Print("power_faster_better", result.right);
  Print("power_faster_wrong_direction", result.wrong);
  Print("power_faster_final_interval_covers", result.covered);
  EXPECT_GE(result.right, 0.90);
  EXPECT_LE(result.wrong, 0.01);
  EXPECT_GE(result.covered, 0.95);
}

// The one-sample sequence (arm intervals, shadow pairs), checked after every observation:
// the fraction of runs in which it EVER misses the true mean.
TEST(SimulationTest, OneSampleSequenceCoversTheMeanAtEveryStep) {
  int missed = 0;
  for (int run = 0; run < kRuns; ++run) {
    std::mt19937_64 rng(4000000 + run);
    std::lognormal_distribution<double> ratio(std::log(1.1), 0.3);  // a shadow's log ratio
    RunningMean log_ratio;
    bool miss = false;
    for (int n = 0; n < kObservationsPerArm && !miss; ++n) {
      log_ratio.Add(std::log(ratio(rng)));
      const Interval interval = log_ratio.ConfidenceSequence();
      miss = interval.lower > std::log(1.1) || interval.upper < std::log(1.1);
    }
    missed += miss;
  }
  const double fraction = static_cast<double>(missed) / kRuns;
  Print("one_sample_ever_missed", fraction);
  EXPECT_LE(fraction, 0.05);
}

}  // namespace
}  // namespace gemserve::stats
