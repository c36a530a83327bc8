#include "server/engine/stats/confidence_sequence.h"

#include <cmath>

namespace gemserve::stats {
namespace {

double RhoFor(double alpha) {
  static const double single = MixtureRho(kTargetCount, kAlpha);
  static const double pair = MixtureRho(kTargetCount, kPairAlpha);
  return alpha == kAlpha ? single : alpha == kPairAlpha ? pair : MixtureRho(kTargetCount, alpha);
}

Interval Around(double estimate, double radius) {
  return {estimate, estimate - radius, estimate + radius};
}

}  // namespace

double MixtureRho(double target_count, double alpha) {
  // x -> c + ln(1 + x) is a contraction for x >= c (slope 1 / (1 + x) <= 1 / (1 + c),
  // 1/7 at alpha = 0.05), so a fixed number of steps from x = c reaches double precision.
  const double c = 2 * std::log(1 / alpha);
  double x = c;
  for (int step = 0; step < 30; ++step) x = c + std::log1p(x);
  return target_count / x;
}

double BoundaryMultiplier(double t, double rho, double alpha) {
  return std::sqrt((1 + rho / t) * std::log((t + rho) / (rho * alpha * alpha)));
}

double BoundaryMultiplier(double t, double alpha) {
  return BoundaryMultiplier(t, RhoFor(alpha), alpha);
}

SampleSummary WithUnitIntervalPrior(const SampleSummary& summary) {
  if (summary.count == 0) return summary;
  SampleSummary regularized = summary;
  const double squared_deviations = summary.variance * static_cast<double>(summary.count - 1);
  regularized.variance = (squared_deviations + 0.25) / static_cast<double>(summary.count);
  return regularized;
}

Interval MeanConfidenceSequence(const SampleSummary& summary) {
  if (summary.count < kMinCount) return {summary.mean};
  const double t = static_cast<double>(summary.count);
  return Around(summary.mean, std::sqrt(summary.variance / t) * BoundaryMultiplier(t));
}

Interval DifferenceConfidenceSequence(const SampleSummary& candidate,
                                      const SampleSummary& baseline, double alpha) {
  const double difference = candidate.mean - baseline.mean;
  if (candidate.count < kMinCount || baseline.count < kMinCount) return {difference};
  const double variance = candidate.variance / static_cast<double>(candidate.count) +
                          baseline.variance / static_cast<double>(baseline.count);
  if (variance <= 0) return Around(difference, 0);  // both samples constant
  const double effective_count = (candidate.variance + baseline.variance) / variance;
  return Around(difference, std::sqrt(variance) * BoundaryMultiplier(effective_count, alpha));
}

Interval ExpInterval(const Interval& log_scale) {
  return {std::exp(log_scale.estimate), std::exp(log_scale.lower), std::exp(log_scale.upper)};
}

}  // namespace gemserve::stats
