#include "server/engine/text/sampler.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <sstream>
#include <string>

namespace gemserve {
namespace {

std::string to_text(double value) {
  std::ostringstream text;
  text << value;
  return text.str();
}

// The first highest logit, skipping NaN; 0 when all are NaN.
int32_t argmax(const float* logits, size_t size) {
  int32_t best = -1;
  for (size_t i = 0; i < size; ++i) {
    if (std::isnan(logits[i])) continue;
    if (best < 0 || logits[i] > logits[best]) best = static_cast<int32_t>(i);
  }
  return std::max(best, 0);
}

}  // namespace

Status ValidateSamplingParams(const SamplingParams& params) {
  if (!std::isfinite(params.temperature) || params.temperature < 0) {
    return Status::InvalidArgument("temperature must be a finite number >= 0 (0 = greedy), got " +
                                   to_text(params.temperature));
  }
  if (params.top_k < 0) {
    return Status::InvalidArgument("top_k must be >= 0 (0 = off), got " +
                                   std::to_string(params.top_k));
  }
  if (!(params.top_p >= 0 && params.top_p <= 1)) {
    return Status::InvalidArgument("top_p must be in [0, 1] (0 or 1 = off), got " +
                                   to_text(params.top_p));
  }
  return Status::Ok();
}

Sampler::Sampler(const SamplingParams& params) : params_(params), random_(params.seed) {}

int32_t Sampler::Sample(const float* logits, size_t size) {
  if (!(params_.temperature > 0)) return argmax(logits, size);
  CollectCandidates(logits, size);
  if (candidates_.empty()) return argmax(logits, size);
  KeepTopK();
  KeepNucleus(Softmax());
  return Draw();
}

void Sampler::CollectCandidates(const float* logits, size_t size) {
  candidates_.clear();
  for (size_t i = 0; i < size; ++i) {
    if (std::isnan(logits[i]) || logits[i] == -INFINITY) continue;
    const double logit = std::min(static_cast<double>(logits[i]), static_cast<double>(FLT_MAX));
    candidates_.push_back({static_cast<int32_t>(i), logit / params_.temperature});
  }
}

// Highest weight first; equal weights by id, so that the order is deterministic.
bool Sampler::Heavier(const Candidate& a, const Candidate& b) {
  return a.weight > b.weight || (a.weight == b.weight && a.id < b.id);
}

void Sampler::KeepTopK() {
  const auto k = static_cast<size_t>(params_.top_k);
  if (params_.top_k <= 0 || k >= candidates_.size()) return;
  std::nth_element(candidates_.begin(), candidates_.begin() + (k - 1), candidates_.end(), Heavier);
  candidates_.resize(k);
}

// exp(x - max) cannot overflow, and the largest weight is exactly 1.
double Sampler::Softmax() {
  const double max =
      std::max_element(candidates_.begin(), candidates_.end(),
                       [](const Candidate& a, const Candidate& b) { return a.weight < b.weight; })
          ->weight;
  double total = 0;
  for (Candidate& candidate : candidates_) {
    candidate.weight = std::exp(candidate.weight - max);
    total += candidate.weight;
  }
  return total;
}

// The nucleus is a prefix of the candidates in Heavier order, usually a short one: only
// as long a prefix is sorted as the mass needs (the whole vocabulary's sort cost ~180 us a
// token at 3072 candidates). The result is that of sorting them all.
void Sampler::KeepNucleus(double total) {
  if (!(params_.top_p > 0 && params_.top_p < 1)) return;
  const double target = params_.top_p * total;
  double mass = 0;
  size_t kept = 0;
  size_t sorted = 0;
  while (kept < candidates_.size() && mass < target) {
    if (kept == sorted) sorted = SortLongerPrefix(sorted);
    mass += candidates_[kept++].weight;
  }
  candidates_.resize(std::max<size_t>(kept, 1));
}

// candidates_[0, sorted) are the heaviest, in order: doubles that prefix (at least 64),
// and returns its new length.
size_t Sampler::SortLongerPrefix(size_t sorted) {
  const size_t length = std::min(candidates_.size(), std::max<size_t>(2 * sorted, 64));
  const auto begin = candidates_.begin();
  if (length < candidates_.size()) {
    std::nth_element(begin + sorted, begin + length, candidates_.end(), Heavier);
  }
  std::sort(begin + sorted, begin + length, Heavier);
  return length;
}

int32_t Sampler::Draw() {
  double total = 0;
  for (const Candidate& candidate : candidates_) total += candidate.weight;
  double point = std::uniform_real_distribution<double>(0, total)(random_);
  for (const Candidate& candidate : candidates_) {
    point -= candidate.weight;
    if (point < 0) return candidate.id;
  }
  return candidates_.back().id;  // rounding left `point` at the very end
}

}  // namespace gemserve
