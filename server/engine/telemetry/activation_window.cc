#include "server/engine/telemetry/activation_window.h"

#include <algorithm>
#include <cmath>

namespace gemserve {
namespace {

constexpr size_t kBitsPerWord = 64;

bool Bit(const uint64_t* words, size_t unit) {
  return (words[unit / kBitsPerWord] >> (unit % kBitsPerWord)) & 1u;
}

}  // namespace

ActivationWindow::ActivationWindow(std::vector<ActivationSite> sites, size_t capacity)
    : sites_(std::move(sites)), capacity_(std::max<size_t>(capacity, 1)), rings_(sites_.size()) {
  for (size_t i = 0; i < sites_.size(); ++i) {
    const auto units = static_cast<size_t>(sites_[i].units);
    rings_[i].words = (units + kBitsPerWord - 1) / kBitsPerWord;
    rings_[i].nonzero_count.assign(units, 0);
  }
}

Status ActivationWindow::Check(const std::vector<SiteObservation>& observations) const {
  if (observations.size() != sites_.size()) {
    return Status::InvalidArgument(std::to_string(observations.size()) + " sites observed, " +
                                   std::to_string(sites_.size()) + " expected");
  }
  for (size_t i = 0; i < sites_.size(); ++i) {
    if (observations[i].nonzero.size() != static_cast<size_t>(sites_[i].units)) {
      return Status::InvalidArgument("site " + sites_[i].name + ": " +
                                     std::to_string(observations[i].nonzero.size()) +
                                     " units observed, " + std::to_string(sites_[i].units) +
                                     " expected");
    }
  }
  return Status::Ok();
}

Status ActivationWindow::Add(const std::vector<SiteObservation>& observations) {
  if (Status valid = Check(observations); !valid.ok()) return valid;
  for (size_t i = 0; i < sites_.size(); ++i) Write(rings_[i], next_, observations[i]);
  next_ = (next_ + 1) % capacity_;
  samples_ = std::min(samples_ + 1, capacity_);
  return Status::Ok();
}

// Overwrites `slot` (uncounting the sample it held, if any) with `observation`.
void ActivationWindow::Write(SiteRing& ring, size_t slot, const SiteObservation& observation) {
  const bool evicting = samples_ == capacity_;
  if (!evicting) {
    ring.zero_fraction.push_back(0);
    ring.input_mean.push_back(0);
    ring.input_std.push_back(0);
    ring.masks.resize(ring.masks.size() + ring.words, 0);
  }
  uint64_t* mask = ring.masks.data() + slot * ring.words;
  for (size_t unit = 0; unit < ring.nonzero_count.size(); ++unit) {
    if (evicting && Bit(mask, unit)) --ring.nonzero_count[unit];
  }
  std::fill(mask, mask + ring.words, 0);
  for (size_t unit = 0; unit < observation.nonzero.size(); ++unit) {
    if (!observation.nonzero[unit]) continue;
    mask[unit / kBitsPerWord] |= uint64_t{1} << (unit % kBitsPerWord);
    ++ring.nonzero_count[unit];
  }
  ring.zero_fraction[slot] = observation.zero_fraction;
  ring.input_mean[slot] = observation.input_mean;
  ring.input_std[slot] = observation.input_std;
}

std::vector<SiteSummary> ActivationWindow::Summaries() const {
  std::vector<SiteSummary> out;
  if (samples_ == 0) return out;
  for (size_t i = 0; i < sites_.size(); ++i) out.push_back(Summarise(sites_[i], rings_[i]));
  return out;
}

SiteSummary ActivationWindow::Summarise(const ActivationSite& site, const SiteRing& ring) const {
  double zero_fraction = 0, mean = 0, second_moment = 0;
  for (size_t slot = 0; slot < samples_; ++slot) {
    zero_fraction += ring.zero_fraction[slot];
    mean += ring.input_mean[slot];
    second_moment += ring.input_std[slot] * ring.input_std[slot] +
                     ring.input_mean[slot] * ring.input_mean[slot];
  }
  const auto n = static_cast<double>(samples_);
  mean /= n;
  const auto dead = static_cast<int64_t>(
      std::count(ring.nonzero_count.begin(), ring.nonzero_count.end(), uint32_t{0}));
  return {site.name,
          site.units,
          samples_,
          zero_fraction / n,
          dead,
          static_cast<double>(dead) / static_cast<double>(site.units),
          mean,
          std::sqrt(std::max(0.0, second_moment / n - mean * mean))};
}

}  // namespace gemserve
