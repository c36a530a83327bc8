#pragma once

// A bounded multi-producer queue from which one or more workers take batches.
//
// Push never blocks: it fails when the queue holds `capacity` items, so callers can
// answer RESOURCE_EXHAUSTED. PopBatch blocks until at least one item is queued (or the
// queue is closed), then waits up to `max_delay` for the batch to fill to `max_batch`.
// Thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstddef>
#include <deque>
#include <mutex>
#include <vector>

namespace gemserve {

template <typename T>
class RequestQueue {
 public:
  explicit RequestQueue(size_t capacity) : capacity_(capacity) {}

  // False when full or closed; `item` is left untouched then.
  bool Push(T& item) {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      if (closed_ || items_.size() >= capacity_) return false;
      items_.push_back(std::move(item));
    }
    ready_.notify_one();
    return true;
  }

  // Up to `max_batch` items, oldest first; empty only when the queue is closed.
  std::vector<T> PopBatch(size_t max_batch, std::chrono::microseconds max_delay) {
    std::unique_lock<std::mutex> lock(mutex_);
    ready_.wait(lock, [&] { return closed_ || !items_.empty(); });
    if (!items_.empty() && items_.size() < max_batch && max_delay.count() > 0) {
      ready_.wait_for(lock, max_delay, [&] { return closed_ || items_.size() >= max_batch; });
    }
    return TakeLocked(max_batch);
  }

  // Up to `max_batch` items without waiting; possibly none.
  std::vector<T> TryPopBatch(size_t max_batch) {
    std::lock_guard<std::mutex> lock(mutex_);
    return TakeLocked(max_batch);
  }

  // Wakes every waiter; later pushes fail. Items still queued can be popped.
  void Close() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      closed_ = true;
    }
    ready_.notify_all();
  }

  size_t size() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return items_.size();
  }

 private:
  std::vector<T> TakeLocked(size_t max_batch) {
    std::vector<T> batch;
    while (!items_.empty() && batch.size() < max_batch) {
      batch.push_back(std::move(items_.front()));
      items_.pop_front();
    }
    return batch;
  }

  const size_t capacity_;
  mutable std::mutex mutex_;
  std::condition_variable ready_;
  std::deque<T> items_;
  bool closed_ = false;
};

}  // namespace gemserve
