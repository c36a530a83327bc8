#include "server/metrics/process_collector.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <limits>
#include <optional>
#include <sstream>
#include <string>

namespace gemserve {
namespace {

using prometheus::MetricFamily;
using prometheus::MetricType;

struct Statm {
  double virtual_bytes = 0;
  double resident_bytes = 0;
};

struct Stat {
  double cpu_seconds = 0;       // user + system
  double start_after_boot = 0;  // seconds between boot and process start
};

std::optional<Statm> ReadStatm() {
  std::ifstream in("/proc/self/statm");
  double size_pages = 0;
  double resident_pages = 0;
  if (!(in >> size_pages >> resident_pages)) return std::nullopt;
  const double page_size = static_cast<double>(sysconf(_SC_PAGESIZE));
  return Statm{size_pages * page_size, resident_pages * page_size};
}

// /proc/self/stat: "pid (comm) state ppid ...". comm may hold spaces and parentheses,
// so the fields are split after the last ')'. Fields 14, 15 and 22 (1-based, as in
// proc(5)) are utime, stime and starttime, in clock ticks.
std::optional<Stat> ReadStat() {
  std::ifstream in("/proc/self/stat");
  const std::string line((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const size_t comm_end = line.rfind(')');
  if (comm_end == std::string::npos) return std::nullopt;
  std::istringstream rest(line.substr(comm_end + 1));
  const std::vector<std::string> fields{std::istream_iterator<std::string>(rest), {}};
  auto field = [&fields](size_t number) {
    return std::strtod(fields[number - 3].c_str(), nullptr);
  };
  if (fields.size() <= 22 - 3) return std::nullopt;  // too short to hold starttime
  const double ticks = static_cast<double>(sysconf(_SC_CLK_TCK));
  return Stat{(field(14) + field(15)) / ticks, field(22) / ticks};
}

// Boot time in seconds since the epoch: the "btime" line of /proc/stat.
std::optional<double> ReadBootTime() {
  std::ifstream in("/proc/stat");
  std::string key;
  double value = 0;
  while (in >> key) {
    if (key == "btime" && in >> value) return value;
    in.ignore(std::numeric_limits<std::streamsize>::max(), '\n');
  }
  return std::nullopt;
}

std::optional<double> CountOpenFds() {
  std::error_code error;
  std::filesystem::directory_iterator it("/proc/self/fd", error);
  if (error) return std::nullopt;
  double count = 0;
  for (; it != std::filesystem::directory_iterator(); it.increment(error)) ++count;
  return count;
}

MetricFamily SingleValueFamily(const char* name, const char* help, MetricType type, double value) {
  prometheus::ClientMetric metric;
  if (type == MetricType::Counter) {
    metric.counter.value = value;
  } else {
    metric.gauge.value = value;
  }
  return MetricFamily{name, help, type, {metric}};
}

}  // namespace

std::vector<MetricFamily> ProcessCollector::Collect() const {
  std::vector<MetricFamily> families;
  if (const auto statm = ReadStatm()) {
    families.push_back(SingleValueFamily("process_resident_memory_bytes",
                                         "Resident memory size in bytes.", MetricType::Gauge,
                                         statm->resident_bytes));
    families.push_back(SingleValueFamily("process_virtual_memory_bytes",
                                         "Virtual memory size in bytes.", MetricType::Gauge,
                                         statm->virtual_bytes));
  }
  if (const auto stat = ReadStat()) {
    families.push_back(SingleValueFamily("process_cpu_seconds_total",
                                         "Total user and system CPU time spent in seconds.",
                                         MetricType::Counter, stat->cpu_seconds));
    if (const auto boot = ReadBootTime()) {
      families.push_back(SingleValueFamily("process_start_time_seconds",
                                           "Start time of the process since unix epoch in seconds.",
                                           MetricType::Gauge, *boot + stat->start_after_boot));
    }
  }
  if (const auto fds = CountOpenFds()) {
    families.push_back(SingleValueFamily("process_open_fds", "Number of open file descriptors.",
                                         MetricType::Gauge, *fds));
  }
  return families;
}

}  // namespace gemserve
