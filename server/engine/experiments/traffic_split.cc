#include "server/engine/experiments/traffic_split.h"

#include <cmath>
#include <limits>

namespace gemserve {
namespace {

// FNV-1a over the bytes, each field followed by a 0 byte so that ("ab", "c") and
// ("a", "bc") hash differently.
uint64_t Fnv1a(uint64_t hash, const std::string& field) {
  constexpr uint64_t kPrime = 0x100000001b3ULL;
  for (const unsigned char byte : field) hash = (hash ^ byte) * kPrime;
  return hash * kPrime;  // the terminating 0 byte: hash ^ 0 == hash
}

// splitmix64's finaliser: spreads FNV's weak low bits over the whole word.
uint64_t Mix(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

}  // namespace

double StableUniform(const std::string& salt, const std::string& key, const std::string& arm) {
  constexpr uint64_t kOffsetBasis = 0xcbf29ce484222325ULL;
  const uint64_t hash = Mix(Fnv1a(Fnv1a(Fnv1a(kOffsetBasis, salt), key), arm));
  return (static_cast<double>(hash >> 11) + 0.5) * 0x1.0p-53;  // 53 bits, never 0 or 1
}

TrafficSplit::TrafficSplit(Weights weights, std::string salt)
    : weights_(std::move(weights)), salt_(std::move(salt)) {
  for (const auto& [arm, weight] : weights_) total_weight_ += weight;
}

// Each arm scores weight / -ln(u) with u uniform from the hash: the scores are
// exponential races, so arm i wins with probability weight_i / total, and raising one
// weight only lets that arm win keys it was close on.
const std::string& TrafficSplit::PickForKey(const std::string& routing_key) const {
  const std::string* best = &weights_.front().first;
  double best_score = -1;
  for (const auto& [arm, weight] : weights_) {
    if (weight == 0) continue;
    const double score = weight / -std::log(StableUniform(salt_, routing_key, arm));
    if (score > best_score) {
      best_score = score;
      best = &arm;
    }
  }
  return *best;
}

const std::string& TrafficSplit::PickAtRandom(std::mt19937_64& random) const {
  uint64_t ticket = std::uniform_int_distribution<uint64_t>(0, total_weight_ - 1)(random);
  for (const auto& [arm, weight] : weights_) {
    if (ticket < weight) return arm;
    ticket -= weight;
  }
  return weights_.back().first;  // unreachable: tickets are below the total
}

}  // namespace gemserve
