#include "server/engine/stats/experiment_statistics.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

#include "server/engine/stats/confidence_sequence.h"

namespace gemserve::stats {
namespace {

// Indexed by RoutedMetric and ShadowMetric (the header lists the meanings).
constexpr const char* kRoutedNames[] = {"latency_ratio", "error_rate_diff", "accuracy_diff",
                                        "reward_diff"};
constexpr VerdictRule kRoutedRules[] = {
    {1, Verdict::kBetter, Verdict::kWorse},  // latency ratio: lower is better
    {0, Verdict::kBetter, Verdict::kWorse},  // error rate: lower is better
    {0, Verdict::kWorse, Verdict::kBetter},  // accuracy: higher is better
    {0, Verdict::kWorse, Verdict::kBetter},  // reward: higher is better
};
constexpr const char* kShadowNames[] = {"shadow_agreement", "shadow_kl", "shadow_latency_ratio"};
constexpr VerdictRule kShadowRules[] = {
    {1, Verdict::kWorse, Verdict::kNoDifferenceYet},  // agreement below 1: disagrees
    {0, Verdict::kNoDifferenceYet, Verdict::kWorse},  // KL above 0: diverges
    {1, Verdict::kBetter, Verdict::kWorse},           // forward-time ratio
};

constexpr double kInfinity = std::numeric_limits<double>::infinity();

// ExpInterval(Interval{}): a ratio before any observation.
constexpr Interval kUnknownRatio{1, 0, kInfinity};

// `interval` with its finite bounds cut to [lowest, highest]: the true value of a mean of
// values in [0, 1] lies in [0, 1], of a difference of two such means in [-1, 1], of a KL
// in [0, inf). Infinite bounds (too few observations yet) stay infinite.
Interval Clipped(Interval interval, double lowest, double highest) {
  if (std::isfinite(interval.lower)) interval.lower = std::max(interval.lower, lowest);
  if (std::isfinite(interval.upper)) interval.upper = std::min(interval.upper, highest);
  return interval;
}

Interval UnitIntervalMean(const RunningMean& samples) {
  return Clipped(MeanConfidenceSequence(WithUnitIntervalPrior(samples.summary())), 0, 1);
}

}  // namespace

ExperimentStatistics::Arm::Arm(std::string arm_name)
    : name(std::move(arm_name)),
      vs_baseline{SequentialComparison(kRoutedRules[kLatency], kUnknownRatio),
                  SequentialComparison(kRoutedRules[kErrors]),
                  SequentialComparison(kRoutedRules[kAccuracy]),
                  SequentialComparison(kRoutedRules[kReward])} {}

ExperimentStatistics::ShadowPair::ShadowPair(std::string primary_variant,
                                             std::string shadow_variant)
    : primary(std::move(primary_variant)),
      shadow(std::move(shadow_variant)),
      comparisons{SequentialComparison(kShadowRules[kAgreement]),
                  SequentialComparison(kShadowRules[kKl]),
                  SequentialComparison(kShadowRules[kLatencyRatio], kUnknownRatio)} {}

ExperimentStatistics::ExperimentStatistics(std::vector<std::string> arms) {
  for (const std::string& arm : arms) ArmIndexLocked(arm);
}

void ExperimentStatistics::AddArm(const std::string& arm) {
  std::lock_guard<std::mutex> lock(mutex_);
  ArmIndexLocked(arm);
}

void ExperimentStatistics::RecordRequest(const std::string& arm, double latency_seconds,
                                         bool ok) {
  std::lock_guard<std::mutex> lock(mutex_);
  const size_t index = ArmIndexLocked(arm);
  AddRoutedLocked(index, kErrors, ok ? 0 : 1);
  if (!ok) {
    ++arms_[index].errors;
    return;
  }
  if (!std::isfinite(latency_seconds) || latency_seconds <= 0) return;
  arms_[index].latency.Add(latency_seconds);
  AddRoutedLocked(index, kLatency, std::log(latency_seconds));
}

void ExperimentStatistics::RecordLabel(const std::string& arm, bool correct) {
  std::lock_guard<std::mutex> lock(mutex_);
  AddRoutedLocked(ArmIndexLocked(arm), kAccuracy, correct ? 1 : 0);
}

void ExperimentStatistics::RecordReward(const std::string& arm, double reward) {
  if (std::isnan(reward)) return;
  std::lock_guard<std::mutex> lock(mutex_);
  AddRoutedLocked(ArmIndexLocked(arm), kReward, std::clamp(reward, 0.0, 1.0));
}

void ExperimentStatistics::RecordShadow(const std::string& primary, const std::string& shadow,
                                        double agreement, double kl, double latency_ratio) {
  std::lock_guard<std::mutex> lock(mutex_);
  ShadowPair& pair = ShadowPairLocked(primary, shadow);
  if (std::isfinite(agreement)) AddShadowLocked(pair, kAgreement, std::clamp(agreement, 0.0, 1.0));
  if (std::isfinite(kl)) AddShadowLocked(pair, kKl, std::max(kl, 0.0));
  if (std::isfinite(latency_ratio) && latency_ratio > 0) {
    AddShadowLocked(pair, kLatencyRatio, std::log(latency_ratio));
  }
}

void ExperimentStatistics::RecordShadowDropped() {
  std::lock_guard<std::mutex> lock(mutex_);
  ++shadow_dropped_;
}

ExperimentReport ExperimentStatistics::Report() const {
  std::lock_guard<std::mutex> lock(mutex_);
  ExperimentReport report;
  for (const Arm& arm : arms_) report.arms.push_back(ArmReportLocked(arm));
  for (size_t i = 1; i < arms_.size(); ++i) {
    report.pairs.push_back(RoutedPairReportLocked(arms_[i]));
  }
  for (const ShadowPair& pair : shadow_pairs_) {
    report.pairs.push_back(ShadowPairReportLocked(pair));
  }
  report.shadow_dropped = shadow_dropped_;
  return report;
}

size_t ExperimentStatistics::ArmIndexLocked(const std::string& name) {
  const auto found = std::find_if(arms_.begin(), arms_.end(),
                                  [&name](const Arm& arm) { return arm.name == name; });
  if (found != arms_.end()) return static_cast<size_t>(found - arms_.begin());
  arms_.emplace_back(name);
  return arms_.size() - 1;
}

ExperimentStatistics::ShadowPair& ExperimentStatistics::ShadowPairLocked(
    const std::string& primary, const std::string& shadow) {
  const auto found =
      std::find_if(shadow_pairs_.begin(), shadow_pairs_.end(), [&](const ShadowPair& pair) {
        return pair.primary == primary && pair.shadow == shadow;
      });
  if (found != shadow_pairs_.end()) return *found;
  return shadow_pairs_.emplace_back(primary, shadow);
}

void ExperimentStatistics::AddRoutedLocked(size_t arm, RoutedMetric metric, double x) {
  arms_[arm].samples[metric].Add(x);
  const Arm& baseline = arms_[0];
  // The baseline takes part in every routed pair; any other arm only in its own.
  const size_t first = arm == 0 ? 1 : arm;
  const size_t last = arm == 0 ? arms_.size() : arm + 1;
  for (size_t c = first; c < last; ++c) {
    Arm& candidate = arms_[c];
    const SampleSummary ours = candidate.samples[metric].summary();
    const SampleSummary theirs = baseline.samples[metric].summary();
    candidate.vs_baseline[metric].Update(
        metric == kLatency ? ExpInterval(DifferenceConfidenceSequence(ours, theirs))
                           : Clipped(DifferenceConfidenceSequence(WithUnitIntervalPrior(ours),
                                                                  WithUnitIntervalPrior(theirs)),
                                     -1, 1));
  }
}

void ExperimentStatistics::AddShadowLocked(ShadowPair& pair, ShadowMetric metric, double x) {
  RunningMean& samples = pair.samples[metric];
  samples.Add(x);
  const Interval interval = metric == kAgreement ? UnitIntervalMean(samples)
                            : metric == kKl      ? Clipped(samples.ConfidenceSequence(), 0, kInfinity)
                                                 : ExpInterval(samples.ConfidenceSequence());
  pair.comparisons[metric].Update(interval);
}

ArmReport ExperimentStatistics::ArmReportLocked(const Arm& arm) const {
  ArmReport report;
  report.variant = arm.name;
  report.requests = arm.samples[kErrors].count();
  report.errors = arm.errors;
  report.error_rate = UnitIntervalMean(arm.samples[kErrors]);
  report.latency_p50 = arm.latency.Quantile(0.50);
  report.latency_p95 = arm.latency.Quantile(0.95);
  report.latency_p99 = arm.latency.Quantile(0.99);
  report.labelled = arm.samples[kAccuracy].count();
  report.accuracy = UnitIntervalMean(arm.samples[kAccuracy]);
  report.rewarded = arm.samples[kReward].count();
  report.reward = UnitIntervalMean(arm.samples[kReward]);
  return report;
}

PairReport ExperimentStatistics::RoutedPairReportLocked(const Arm& candidate) const {
  const Arm& baseline = arms_[0];
  PairReport report{baseline.name, candidate.name, false, {}};
  for (const RoutedMetric metric : {kLatency, kErrors, kAccuracy, kReward}) {
    const uint64_t observations = std::min(candidate.samples[metric].count(),
                                           baseline.samples[metric].count());
    const bool feedback = metric == kAccuracy || metric == kReward;
    if (feedback && observations == 0) continue;  // listed once both arms have some
    const SequentialComparison& comparison = candidate.vs_baseline[metric];
    report.comparisons.push_back(
        {kRoutedNames[metric], comparison.interval(), comparison.verdict(), observations});
  }
  return report;
}

PairReport ExperimentStatistics::ShadowPairReportLocked(const ShadowPair& pair) const {
  PairReport report{pair.primary, pair.shadow, true, {}};
  for (const ShadowMetric metric : {kAgreement, kKl, kLatencyRatio}) {
    const SequentialComparison& comparison = pair.comparisons[metric];
    report.comparisons.push_back({kShadowNames[metric], comparison.interval(),
                                  comparison.verdict(), pair.samples[metric].count()});
  }
  return report;
}

}  // namespace gemserve::stats
