#pragma once

// A cache of the children of one Prometheus family labelled {model, variant}.
//
// The engine reports per decode step; prometheus::Family::Add would build a Labels map
// (two string copies, allocations) and hash it on every call. This cache looks a child up
// once per {model, variant} and afterwards finds it with two map lookups.
//
// Thread-safe. Children are never removed, so the returned references stay valid for the
// lifetime of the family.

#include <functional>
#include <map>
#include <mutex>
#include <string>
#include <utility>

#include <prometheus/family.h>
#include <prometheus/labels.h>

#include "server/engine/request.h"

namespace gemserve {

template <typename Metric>
class VariantSeries {
 public:
  // `add` creates (or finds) the child for a label set, e.g. family.Add(labels, buckets).
  using AddFn = std::function<Metric&(const prometheus::Labels&)>;

  explicit VariantSeries(AddFn add) : add_(std::move(add)) {}

  Metric& Get(const VariantKey& key) {
    std::lock_guard<std::mutex> lock(mutex_);
    auto model = series_.find(key.model);
    if (model == series_.end()) model = series_.emplace(key.model, ByVariant{}).first;
    auto child = model->second.find(key.variant);
    if (child == model->second.end()) {
      Metric& added = add_({{"model", key.model}, {"variant", key.variant}});
      child = model->second.emplace(key.variant, &added).first;
    }
    return *child->second;
  }

 private:
  const AddFn add_;
  std::mutex mutex_;
  // model -> variant -> child (two levels, so a lookup copies no string).
  using ByVariant = std::map<std::string, Metric*>;
  std::map<std::string, ByVariant> series_;
};

}  // namespace gemserve
