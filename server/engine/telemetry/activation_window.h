#pragma once

// The sliding window of activation statistics of one variant: the last `capacity`
// sampled requests, each folded in as one observation per site (what the model's
// statistics method returned for that request alone), summarised per site on demand.
//
// Memory: per site, one bit per unit and three doubles per sample, plus a 32-bit count
// per unit — at most capacity x (units bits + 24 bytes) + 4 x units bytes, allocated as
// samples arrive. Not thread-safe: the owner serialises Add and Summaries.

#include <cstddef>
#include <cstdint>
#include <vector>

#include "server/engine/model_config.h"
#include "server/engine/status.h"
#include "server/engine/telemetry/site_summary.h"

namespace gemserve {

// One site's statistics for one sampled request.
struct SiteObservation {
  double zero_fraction = 0;   // fraction of the output elements exactly 0
  std::vector<bool> nonzero;  // per unit: some output element of the unit was != 0
  double input_mean = 0;
  double input_std = 0;       // population std
};

class ActivationWindow {
 public:
  // `capacity` >= 1 samples of `sites` (the variant's model.json activation_sites).
  ActivationWindow(std::vector<ActivationSite> sites, size_t capacity);

  // Folds in one sampled request: one observation per site, in the order of `sites`; once
  // `capacity` samples are held, the oldest is forgotten. InvalidArgument (and nothing
  // changes) when the count of observations or of a mask's units differs from the sites'.
  Status Add(const std::vector<SiteObservation>& observations);

  // One summary per site, in order; empty while no sample is held.
  std::vector<SiteSummary> Summaries() const;

  size_t samples() const { return samples_; }
  size_t capacity() const { return capacity_; }
  const std::vector<ActivationSite>& sites() const { return sites_; }

 private:
  // One site's share of the window: slot s holds the sample written s-th modulo capacity.
  struct SiteRing {
    size_t words = 0;                     // 64-bit words per mask
    std::vector<double> zero_fraction;    // per slot
    std::vector<double> input_mean;       // per slot
    std::vector<double> input_std;        // per slot
    std::vector<uint64_t> masks;          // slot s: words [s * words, (s + 1) * words)
    std::vector<uint32_t> nonzero_count;  // per unit: samples held in which it was non-zero
  };

  Status Check(const std::vector<SiteObservation>& observations) const;
  void Write(SiteRing& ring, size_t slot, const SiteObservation& observation);
  SiteSummary Summarise(const ActivationSite& site, const SiteRing& ring) const;

  const std::vector<ActivationSite> sites_;
  const size_t capacity_;
  std::vector<SiteRing> rings_;  // one per site
  size_t samples_ = 0;           // held, <= capacity_
  size_t next_ = 0;              // the slot the next sample goes to
};

}  // namespace gemserve
