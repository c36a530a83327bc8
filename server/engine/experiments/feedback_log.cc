#include "server/engine/experiments/feedback_log.h"

#include <cstdio>
#include <random>

namespace gemserve {
namespace {

std::string RandomPrefix() {
  std::random_device device;
  const uint64_t bits = (static_cast<uint64_t>(device()) << 32) ^ device();
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(bits));
  return text;
}

}  // namespace

FeedbackLog::FeedbackLog(size_t capacity) : capacity_(capacity), prefix_(RandomPrefix()) {}

std::string FeedbackLog::Remember(ServedRequest request) {
  std::lock_guard<std::mutex> lock(mutex_);
  std::string id = prefix_ + "-" + std::to_string(next_++);
  if (capacity_ == 0) return id;
  if (order_.size() >= capacity_) {
    entries_.erase(order_.front());
    order_.pop_front();
  }
  entries_.emplace(id, Entry{std::move(request), false});
  order_.push_back(id);
  return id;
}

StatusOr<ServedRequest> FeedbackLog::Claim(
    const std::string& id, const std::function<Status(const ServedRequest&)>& accept) {
  std::lock_guard<std::mutex> lock(mutex_);
  const auto it = entries_.find(id);
  if (it == entries_.end()) {
    return Status::NotFound("request_id " + QuoteForMessage(id) +
                            " is unknown or older than the last " + std::to_string(capacity_) +
                            " requests");
  }
  if (it->second.claimed) {
    return Status::AlreadyExists("request_id " + QuoteForMessage(id) + " already has feedback");
  }
  if (Status accepted = accept(it->second.request); !accepted.ok()) return accepted;
  it->second.claimed = true;
  return it->second.request;
}

}  // namespace gemserve
