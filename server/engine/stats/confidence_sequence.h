#pragma once

// Confidence sequences for means and differences of means: intervals that cover the true
// value at every sample size simultaneously with probability >= 95%, so a dashboard may
// read them after every request without inflating the error rate the way a repeated
// fixed-n test does. docs/EXPERIMENTS.md ("Statistics") has the derivation.
//
// The boundary is the two-sided normal mixture of Howard, Ramdas, McAuliffe & Sekhon
// (Ann. Statist. 2021): for a sum S_t of t standardized increments,
//
//   P(exists t: |S_t| >= sqrt((t + rho) ln((t + rho) / (rho alpha^2)))) <= alpha,
//
// with the sample variance plugged in for the true one — the asymptotic confidence
// sequence of Waudby-Smith, Arbour, Sinha, Kennedy & Ramdas, "Time-uniform central limit
// theory and asymptotic confidence sequences" (Ann. Statist. 2024). Dividing by t gives
//
//   mean +- sqrt(variance / t) * BoundaryMultiplier(t),
//   BoundaryMultiplier(t) = sqrt((1 + rho / t) ln((t + rho) / (rho alpha^2))),
//
// the sequential analogue of the fixed-n 1.96 (it is about 3.0 at t = kTargetCount and
// grows like sqrt(ln t) beyond it).
//
// Validity is asymptotic: it needs independent observations with a finite variance and a
// variance estimate that converges. Pure functions; thread-safe.

#include <cstdint>

#include "server/engine/stats/interval.h"

namespace gemserve::stats {

inline constexpr double kAlpha = 0.05;      // two-sided: the sequence misses with prob <= 5%
// The four routed comparisons of a pair (latency, error rate, accuracy, reward) share
// kAlpha (Bonferroni): each sequence has level kAlpha / 4, so the chance that ANY of a
// pair's verdicts is ever wrong stays <= 5%.
inline constexpr double kPairAlpha = kAlpha / 4;
inline constexpr uint64_t kMinCount = 20;   // fewer observations (per arm): infinite bounds
inline constexpr double kTargetCount = 1000;  // observations (per arm) where the bound is tightest

// What a confidence sequence needs to know about a sample.
struct SampleSummary {
  uint64_t count = 0;
  double mean = 0;
  double variance = 0;  // sample variance (n - 1 denominator)
};

// The mixture parameter rho, in observations, that makes the boundary narrowest at
// t = target_count: rho = target_count / x, where x solves x = ln(1 + x) + 2 ln(1 / alpha)
// (setting d/drho of (t + rho) ln((t + rho) / (rho alpha^2)) to zero at t = target_count).
// For alpha = 0.05, x = 8.21, so kTargetCount = 1000 gives rho = 121.8.
double MixtureRho(double target_count, double alpha);

// The half-width of the confidence sequence in units of the standard error, at an
// (effective) sample size t > 0.
double BoundaryMultiplier(double t, double rho, double alpha);
// The same with rho = MixtureRho(kTargetCount, alpha); alpha is kAlpha or kPairAlpha.
double BoundaryMultiplier(double t, double alpha = kAlpha);

// For observations confined to [0, 1] (error indicators, accuracy, rewards, agreement):
// adds one pseudo-observation at the largest possible squared deviation (1/4) to the sum
// of squared deviations, variance = (sum of squared deviations + 1/4) / count. A run of
// identical values ("no errors yet") then does not claim zero variance; the estimate still
// converges to the true variance. An empty summary is returned unchanged.
SampleSummary WithUnitIntervalPrior(const SampleSummary& summary);

// The confidence sequence for the mean: estimate = the sample mean; bounds infinite below
// kMinCount observations.
Interval MeanConfidenceSequence(const SampleSummary& summary);

// The confidence sequence for candidate mean - baseline mean, from two independent samples
// of any sizes. With v = var_c / n_c + var_b / n_b (the variance of the difference), the
// half-width is sqrt(v) * BoundaryMultiplier(t_eff), where the intrinsic time
// t_eff = (var_c + var_b) / v is the variance-weighted harmonic mean of the two counts:
// n for n observations in each arm, where the formula is exactly the one-sample sequence
// of the n paired differences. Bounds infinite until both arms have kMinCount.
Interval DifferenceConfidenceSequence(const SampleSummary& candidate,
                                      const SampleSummary& baseline, double alpha = kPairAlpha);

// exp() of every field: a log-scale interval (of a mean log, or a difference of mean logs)
// as one for a geometric mean or a ratio of geometric means.
Interval ExpInterval(const Interval& log_scale);

}  // namespace gemserve::stats
