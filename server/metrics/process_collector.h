#pragma once

// The standard Prometheus process metrics, read from /proc/self at each scrape:
//
//   process_resident_memory_bytes   gauge    /proc/self/statm resident pages x page size
//   process_virtual_memory_bytes    gauge    /proc/self/statm size x page size
//   process_cpu_seconds_total       counter  /proc/self/stat (utime + stime) / CLK_TCK
//   process_start_time_seconds      gauge    /proc/self/stat starttime / CLK_TCK + btime
//   process_open_fds                gauge    entries of /proc/self/fd
//
// A metric whose source cannot be read (no /proc, e.g. not Linux) is left out of the
// result; Collect() never throws. Thread-safe: Collect() holds no state.

#include <vector>

#include <prometheus/collectable.h>
#include <prometheus/metric_family.h>

namespace gemserve {

class ProcessCollector final : public prometheus::Collectable {
 public:
  std::vector<prometheus::MetricFamily> Collect() const override;
};

}  // namespace gemserve
