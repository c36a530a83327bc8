#include "server/engine/text/stop_strings.h"

#include <algorithm>
#include <utility>

namespace gemserve {

StopStringMatcher::StopStringMatcher(std::vector<std::string> stop_strings)
    : stop_strings_(std::move(stop_strings)) {
  stop_strings_.erase(std::remove(stop_strings_.begin(), stop_strings_.end(), std::string()),
                      stop_strings_.end());
}

// pending_ never holds a whole stop string between calls, and what was released could
// not be the start of one; so any occurrence lies within pending_ plus the new text.
StopStringMatcher::Output StopStringMatcher::Feed(std::string_view text) {
  if (stopped_) return {"", true};
  pending_.append(text);

  size_t first_stop = std::string::npos;
  for (const std::string& stop : stop_strings_)
    first_stop = std::min(first_stop, pending_.find(stop));
  if (first_stop != std::string::npos) {
    stopped_ = true;
    Output output{pending_.substr(0, first_stop), true};
    pending_.clear();
    return output;
  }

  const size_t released = pending_.size() - HeldBackLength();
  Output output{pending_.substr(0, released), false};
  pending_.erase(0, released);
  return output;
}

std::string StopStringMatcher::Flush() {
  std::string rest = stopped_ ? std::string() : std::move(pending_);
  pending_.clear();
  return rest;
}

size_t StopStringMatcher::HeldBackLength() const {
  const std::string_view pending = pending_;
  size_t longest = 0;
  for (const std::string& stop : stop_strings_) {
    for (size_t length = std::min(stop.size() - 1, pending.size()); length > longest; --length) {
      if (pending.substr(pending.size() - length) == std::string_view(stop).substr(0, length)) {
        longest = length;
        break;
      }
    }
  }
  return longest;
}

}  // namespace gemserve
