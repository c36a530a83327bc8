#pragma once

// Graceful shutdown of the RPCs of one service, in three steps (see main.cc):
//
//   Close()         new RPCs are refused (the service answers UNAVAILABLE, retryable);
//   WaitIdle(t)     waits until every admitted RPC has finished, or until t;
//   Abort()         the engine stops what is left at its next step (RequestContext's
//                   `aborted` flag), answering UNAVAILABLE; WaitIdle again then returns
//                   within about one decode step.
//
// Thread-safe.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace gemserve {

class ShutdownGate {
 public:
  // False once closed; otherwise counts the RPC in flight until Leave().
  bool Enter() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (closed_) return false;
    ++in_flight_;
    return true;
  }

  // Once for every Enter() that returned true.
  void Leave() {
    std::lock_guard<std::mutex> lock(mutex_);
    if (--in_flight_ == 0) idle_.notify_all();
  }

  void Close() {
    std::lock_guard<std::mutex> lock(mutex_);
    closed_ = true;
  }

  bool closed() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return closed_;
  }

  // True when nothing is in flight (now or before `until`).
  bool WaitIdle(std::chrono::steady_clock::time_point until) {
    std::unique_lock<std::mutex> lock(mutex_);
    return idle_.wait_until(lock, until, [this] { return in_flight_ == 0; });
  }

  void Abort() { aborted_->store(true); }

  // Shared with every request the service admits (RequestContext::aborted).
  std::shared_ptr<const std::atomic<bool>> aborted() const { return aborted_; }

  int in_flight() const {
    std::lock_guard<std::mutex> lock(mutex_);
    return in_flight_;
  }

 private:
  mutable std::mutex mutex_;
  std::condition_variable idle_;
  int in_flight_ = 0;
  bool closed_ = false;
  const std::shared_ptr<std::atomic<bool>> aborted_ = std::make_shared<std::atomic<bool>>(false);
};

}  // namespace gemserve
