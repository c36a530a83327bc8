#pragma once

// How an experiment shares traffic between its arms (variants of one model).
//
// Two ways to pick an arm, both in proportion to the weights:
//   - PickForKey: deterministic weighted rendezvous (highest-random-weight) hashing of
//     (salt, key, arm). The same key gets the same arm on every call, in every process
//     and on every machine (the hash is spelled out here, not std::hash), and a weight
//     change moves only the keys it must: from 50/50 to 60/40, 10 % of the keys move.
//   - PickAtRandom: an independent weighted draw, for requests without a routing key.
//
// Immutable after construction, so safe to share between threads.

#include <cstdint>
#include <random>
#include <string>
#include <utility>
#include <vector>

namespace gemserve {

// Arms in the order they were configured, each with its weight (0 = no traffic).
using Weights = std::vector<std::pair<std::string, uint32_t>>;

class TrafficSplit {
 public:
  // `weights` must hold at least one positive weight (the engine validates splits).
  TrafficSplit(Weights weights, std::string salt);

  const std::string& PickForKey(const std::string& routing_key) const;
  const std::string& PickAtRandom(std::mt19937_64& random) const;

  const Weights& weights() const { return weights_; }
  const std::string& salt() const { return salt_; }

 private:
  Weights weights_;
  std::string salt_;
  uint64_t total_weight_ = 0;
};

// A uniform number in (0, 1) derived from the bytes of (salt, key, arm) alone.
double StableUniform(const std::string& salt, const std::string& key, const std::string& arm);

}  // namespace gemserve
