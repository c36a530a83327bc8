#pragma once

// CPU priority for engine work done beside serving: shadow comparisons, and loading and
// warming up the models a reload brings in.

#include <optional>
#include <thread>
#include <utility>

namespace gemserve {

enum class BackgroundPriority {
  kIdle,    // SCHED_IDLE: only CPU nothing else wants; under full load it may never run
            // (shadows: a mirror dropped costs nothing)
  kLowest,  // nice 10: about a tenth of a core serving wants (CFS weights 110 : 1024),
            // so that a reload still ends soon under full load
};

// Lowers the calling thread to `priority` and its forwards to one core (no intra-op
// threads). Threads it starts later inherit the priority, and could not raise it again
// (that needs CAP_SYS_NICE): call it only on threads that start no serving threads.
void LowerThreadPriority(BackgroundPriority priority);

// Runs `work` on a thread of its own at `priority` and returns what it returns.
template <typename Work>
auto RunInBackground(BackgroundPriority priority, Work work) -> decltype(work()) {
  std::optional<decltype(work())> result;
  std::thread thread([&] {
    LowerThreadPriority(priority);
    result.emplace(work());
  });
  thread.join();
  return std::move(*result);
}

}  // namespace gemserve
