#pragma once

// Choice of the next token from a model's logits: greedy, or sampling with
// temperature, top-k and top-p (nucleus), seeded per request.

#include <cstddef>
#include <cstdint>
#include <random>
#include <vector>

#include "server/engine/status.h"

namespace gemserve {

// The defaults are the zero values of GenerateRequest's fields: greedy decoding.
struct SamplingParams {
  // Divides the logits before the softmax: below 1 sharpens the distribution, above 1
  // flattens it. 0 = greedy: always the highest logit (top_k, top_p and seed unused).
  float temperature = 0.0f;
  // Sample only among the k highest logits. 0 = off.
  int top_k = 0;
  // Sample only among the most likely tokens whose probabilities (after temperature
  // and top-k) first add up to at least top_p; never fewer than one. 0 or 1 = off.
  float top_p = 1.0f;
  // The same seed with the same logits gives the same tokens.
  uint64_t seed = 0;
};

// OK, or InvalidArgument naming the first bad field: temperature negative or not
// finite, top_k negative, top_p outside [0, 1].
Status ValidateSamplingParams(const SamplingParams& params);

// Picks token ids, one per decode step of one request. The random generator
// (std::mt19937_64) is seeded once, at construction, so a request's whole sequence
// follows from its seed.
//
// Sample never picks a NaN logit unless all are (then it returns 0), nor a -inf one
// while another is left; +inf counts as the largest finite float. Params that fail
// ValidateSamplingParams do not crash Sample, but what it picks is unspecified.
//
// Not thread-safe: one Sampler per request.
class Sampler {
 public:
  explicit Sampler(const SamplingParams& params);

  // The id (index into `logits`) of the next token. `size` must be at least 1.
  int32_t Sample(const float* logits, size_t size);
  int32_t Sample(const std::vector<float>& logits) { return Sample(logits.data(), logits.size()); }

 private:
  struct Candidate {
    int32_t id;
    double weight;  // the scaled logit, then its unnormalised probability
  };

  static bool Heavier(const Candidate& a, const Candidate& b);

  void CollectCandidates(const float* logits, size_t size);
  void KeepTopK();
  double Softmax();  // returns the total weight
  void KeepNucleus(double total);
  size_t SortLongerPrefix(size_t sorted);
  int32_t Draw();

  SamplingParams params_;
  std::mt19937_64 random_;
  std::vector<Candidate> candidates_;  // reused between steps
};

}  // namespace gemserve
