#include "client/bench_stats.h"

#include <algorithm>
#include <cmath>
#include <sstream>

namespace gemserve::client {

bool ParseDuration(const std::string& text, double* seconds) {
  std::istringstream in(text);
  double value = 0;
  std::string unit;
  if (!(in >> value) || !(in >> unit) || !(value > 0) || !std::isfinite(value)) return false;
  const double scale = unit == "ms" ? 1e-3 : unit == "s" ? 1 : unit == "m" ? 60 : -1;
  *seconds = value * scale;
  return scale > 0 && *seconds <= kMaxDurationSeconds;
}

PoissonArrivals::PoissonArrivals(double rate_per_s, uint64_t seed)
    : engine_(seed), gap_(rate_per_s) {}

double PoissonArrivals::Next() {
  time_s_ += gap_(engine_);
  return time_s_;
}

namespace {

// The ceil(q * n)-th smallest of `sorted` (not empty).
double NearestRank(const std::vector<double>& sorted, double q) {
  const auto rank = static_cast<size_t>(std::ceil(q * static_cast<double>(sorted.size())));
  return sorted[std::clamp<size_t>(rank, 1, sorted.size()) - 1];
}

}  // namespace

double Percentile(std::vector<double> values, double q) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  return NearestRank(values, q);
}

Distribution Summarize(std::vector<double> values) {
  if (values.empty()) return {};
  std::sort(values.begin(), values.end());
  return {NearestRank(values, 0.5), NearestRank(values, 0.9), NearestRank(values, 0.99),
          values.back()};
}

bool ErrorTally::Add(const std::string& code, const std::string& message, double latency_ms) {
  ++total_;
  latencies_ms_.push_back(latency_ms);
  const bool first = by_code_[code]++ == 0;
  if (first) first_messages_[code] = message;
  return first;
}

std::string ErrorTally::Describe() const {
  std::string out;
  for (const auto& [code, n] : by_code_) {
    if (!out.empty()) out += ", ";
    out += code + " " + std::to_string(n);
  }
  return out;
}

GenerationRates ComputeGenerationRates(const std::vector<RequestSample>& samples, double wall_s) {
  GenerationRates rates;
  if (samples.empty()) return rates;
  double tokens = 0;
  double stream_rates = 0;
  for (const RequestSample& s : samples) {
    tokens += s.tokens;
    if (s.latency_ms > 0) stream_rates += s.tokens / (s.latency_ms / 1e3);
  }
  rates.tokens_per_s = wall_s > 0 ? tokens / wall_s : 0;
  rates.tokens_per_s_per_stream = stream_rates / static_cast<double>(samples.size());
  return rates;
}

std::vector<double> InterTokenMs(const std::vector<RequestSample>& samples) {
  std::vector<double> out;
  for (const RequestSample& s : samples) {
    if (s.tokens > 1) out.push_back((s.latency_ms - s.ttft_ms) / (s.tokens - 1));
  }
  return out;
}

bool ShouldGiveUp(uint64_t successes, uint64_t failures, double elapsed_s) {
  return successes == 0 && failures > 0 &&
         (failures >= kGiveUpFailures || elapsed_s >= kGiveUpSeconds);
}

}  // namespace gemserve::client
