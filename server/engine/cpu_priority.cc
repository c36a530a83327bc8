#include "server/engine/cpu_priority.h"

#include <ATen/Parallel.h>
#include <omp.h>
#include <pthread.h>
#include <sched.h>
#include <spdlog/spdlog.h>
#include <sys/resource.h>
#include <unistd.h>

namespace gemserve {

void LowerThreadPriority(BackgroundPriority priority) {
  if (priority == BackgroundPriority::kIdle) {
    sched_param none{};
    if (pthread_setschedparam(pthread_self(), SCHED_IDLE, &none) != 0) {
      spdlog::warn("cannot run a background thread at SCHED_IDLE; it competes with serving");
    }
  } else if (setpriority(PRIO_PROCESS, static_cast<id_t>(gettid()), 10) != 0) {
    // Linux: PRIO_PROCESS with a thread id sets that thread's nice value alone.
    spdlog::warn("cannot lower a background thread to nice 10; it competes with serving");
  }
  // at::get_num_threads() first: LibTorch sets each thread's OpenMP team size on its
  // first call, and would undo an earlier omp_set_num_threads.
  (void)at::get_num_threads();
  omp_set_num_threads(1);
}

}  // namespace gemserve
