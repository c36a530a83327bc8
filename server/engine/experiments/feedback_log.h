#pragma once

// The requests a server answered recently, by request id, so that Feedback can credit
// the variant that served one. A bounded window: once `capacity` ids are remembered, each
// new one evicts the oldest. Thread-safe.
//
// Request ids are "<16 hex digits chosen at random when the log is made>-<counter>": unique
// per process, and across replicas and restarts with overwhelming probability.

#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <unordered_map>

#include "server/engine/model_config.h"
#include "server/engine/request.h"
#include "server/engine/status.h"

namespace gemserve {

struct ServedRequest {
  VariantKey key;
  Task task = Task::kClassify;
  int top1 = -1;          // classify: the class answered first
  int classes = 0;        // classify: how many classes the model has
  bool routed = false;    // an experiment chose the variant
};

class FeedbackLog {
 public:
  explicit FeedbackLog(size_t capacity);

  // Remembers `request` under a new id and returns the id.
  std::string Remember(ServedRequest request);

  // The request behind `id`, marked as having had its feedback when `accept` returns OK
  // for it (an error from `accept` is returned and leaves the id unclaimed).
  // NotFound: never issued or already evicted. AlreadyExists: feedback was given before.
  StatusOr<ServedRequest> Claim(const std::string& id,
                                const std::function<Status(const ServedRequest&)>& accept);

 private:
  struct Entry {
    ServedRequest request;
    bool claimed = false;
  };

  const size_t capacity_;
  const std::string prefix_;
  std::mutex mutex_;
  uint64_t next_ = 1;
  std::unordered_map<std::string, Entry> entries_;
  std::deque<std::string> order_;  // oldest first
};

}  // namespace gemserve
