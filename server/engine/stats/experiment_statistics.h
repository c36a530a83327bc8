#pragma once

// One experiment's live statistics: per arm (variant) its requests, error rate, latency
// quantiles, accuracy from labels and mean reward, and sequential comparisons of every arm
// with the baseline and of every shadow with its primary, each with a verdict that stays
// valid however often the report is read (confidence_sequence.h, sequential_comparison.h).
//
// Thread-safe: every method takes one mutex. Record* never throw and take well under a
// microsecond (0.3-0.5 us with six arms on the 2-core build machine; a Record on the
// baseline updates one comparison per other arm); Report() about 5 us. Memory per arm and
// per shadow pair is constant (the quantile sketch is bounded).
// Arm names not seen before are added on the fly, so no Record* call is ever lost; shadow
// variants are not arms (they serve no traffic) and appear only in their shadow pairs.
//
// Comparisons (candidate relative to baseline; "observations" is the smaller count):
//
//   latency_ratio          geometric-mean latency candidate / baseline (successful
//                          requests): exp of the difference of mean log-latencies and of
//                          its bounds. better: upper < 1, worse: lower > 1.
//   error_rate_diff        candidate - baseline error rate. better: upper < 0, worse: lower > 0.
//   accuracy_diff          candidate - baseline fraction of correct labels; listed once both
//                          arms have a label. better: lower > 0, worse: upper < 0.
//   reward_diff            candidate - baseline mean reward; listed once both have one.
//                          better: lower > 0, worse: upper < 0.
//
// Shadow pairs (paired: the same input on both; "observations" is the number of pairs):
//
//   shadow_agreement       mean agreement in [0, 1]. worse once upper < 1; never better.
//   shadow_kl              mean KL(primary || shadow) in nats. worse once lower > 0; never
//                          better.
//   shadow_latency_ratio   shadow / primary forward time: exp of the mean log ratio and of
//                          its bounds. better: upper < 1, worse: lower > 1.
//
// Every comparison is updated at each observation that changes it, so its verdict does
// not depend on when reports are read. Intervals are the latest confidence sequences;
// verdicts are decided the first time one excludes "no difference" and then stay
// (sequential_comparison.h).

#include <array>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "server/engine/stats/interval.h"
#include "server/engine/stats/quantile_sketch.h"
#include "server/engine/stats/running_mean.h"
#include "server/engine/stats/sequential_comparison.h"

namespace gemserve::stats {

struct ArmReport {
  std::string variant;
  uint64_t requests = 0;
  uint64_t errors = 0;
  Interval error_rate;  // errors / requests
  double latency_p50 = 0;  // seconds, successful requests; 0 before the first
  double latency_p95 = 0;
  double latency_p99 = 0;
  uint64_t labelled = 0;
  Interval accuracy;  // fraction of labels the answer got right
  uint64_t rewarded = 0;
  Interval reward;  // mean reward
};

struct ComparisonReport {
  std::string metric;  // one of the names listed at the top of this file
  Interval value;
  Verdict verdict = Verdict::kNoDifferenceYet;
  uint64_t observations = 0;
};

struct PairReport {
  std::string baseline;   // a shadow pair: the primary
  std::string candidate;  // a shadow pair: the shadow
  bool shadow = false;
  std::vector<ComparisonReport> comparisons;
};

struct ExperimentReport {
  std::vector<ArmReport> arms;    // in insertion order; arms[0] is the baseline
  std::vector<PairReport> pairs;  // each later arm vs the baseline, then each shadow pair
  uint64_t shadow_dropped = 0;
};

class ExperimentStatistics {
 public:
  // arms[0] is the baseline (with no arms, the first one added is); every other arm is
  // compared with it. Repeated names are kept once.
  explicit ExperimentStatistics(std::vector<std::string> arms);

  // Adds an arm, compared with the baseline from now on; a no-op if it is present.
  void AddArm(const std::string& arm);

  // A finished request. ok = false: a server-side error, whose latency is not recorded.
  // A latency that is not finite and positive is not recorded either.
  void RecordRequest(const std::string& arm, double latency_seconds, bool ok);
  // Feedback: whether the answer was right.
  void RecordLabel(const std::string& arm, bool correct);
  // Feedback: a reward, clamped to [0, 1]; NaN is ignored.
  void RecordReward(const std::string& arm, double reward);

  // A paired shadow comparison on the same input: agreement in [0, 1] (1/0 for classify,
  // the fraction of positions for generate; clamped), KL(primary || shadow) in nats
  // (negative rounding noise reads 0), shadow / primary forward-time ratio (> 0). A value
  // that is NaN, infinite or (for the ratio) not positive is left out of its metric only.
  void RecordShadow(const std::string& primary, const std::string& shadow, double agreement,
                    double kl, double latency_ratio);
  // A mirrored request the shadow worker had to drop (its queue was full).
  void RecordShadowDropped();

  // A consistent snapshot (see ExperimentReport for the order).
  ExperimentReport Report() const;

 private:
  // Indices into Arm::samples and Arm::vs_baseline.
  enum RoutedMetric { kLatency, kErrors, kAccuracy, kReward, kRoutedMetrics };
  // Indices into ShadowPair::samples and ShadowPair::comparisons.
  enum ShadowMetric { kAgreement, kKl, kLatencyRatio, kShadowMetrics };

  struct Arm {
    explicit Arm(std::string arm_name);
    std::string name;
    uint64_t errors = 0;
    // kLatency: log seconds of successful requests; kErrors: 1 per error, 0 per success
    // (its count is the request count); kAccuracy: 1/0 per label; kReward: rewards.
    std::array<RunningMean, kRoutedMetrics> samples;
    QuantileSketch latency;  // seconds
    std::array<SequentialComparison, kRoutedMetrics> vs_baseline;  // unused by the baseline
  };

  struct ShadowPair {
    ShadowPair(std::string primary_variant, std::string shadow_variant);
    std::string primary;
    std::string shadow;
    // kAgreement: agreement; kKl: KL; kLatencyRatio: log of the ratio.
    std::array<RunningMean, kShadowMetrics> samples;
    std::array<SequentialComparison, kShadowMetrics> comparisons;
  };

  size_t ArmIndexLocked(const std::string& name);  // adds the arm when missing
  ShadowPair& ShadowPairLocked(const std::string& primary, const std::string& shadow);
  // Adds `x` to `arm`'s sample of `metric` and updates the comparisons it takes part in.
  void AddRoutedLocked(size_t arm, RoutedMetric metric, double x);
  void AddShadowLocked(ShadowPair& pair, ShadowMetric metric, double x);
  ArmReport ArmReportLocked(const Arm& arm) const;
  PairReport RoutedPairReportLocked(const Arm& candidate) const;
  PairReport ShadowPairReportLocked(const ShadowPair& pair) const;

  mutable std::mutex mutex_;
  std::vector<Arm> arms_;
  std::vector<ShadowPair> shadow_pairs_;  // in the order first seen
  uint64_t shadow_dropped_ = 0;
};

}  // namespace gemserve::stats
