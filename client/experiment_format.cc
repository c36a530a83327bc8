#include "client/experiment_format.h"

#include <cmath>
#include <iomanip>
#include <map>
#include <sstream>

#include "client/text_table.h"

namespace gemserve::client {
namespace {

const char kDash[] = "–";

std::string SplitText(const v1::Experiment& experiment) {
  const std::map<std::string, uint32_t> sorted(experiment.split().begin(),
                                               experiment.split().end());
  std::string text;
  for (const auto& [variant, weight] : sorted) {
    text += (text.empty() ? "" : " ") + variant + "=" + std::to_string(weight);
  }
  return text.empty() ? "(none)" : text;
}

std::string ShadowText(const v1::ShadowSettings& shadow) {
  std::string names;
  for (const std::string& variant : shadow.variants())
    names += (names.empty() ? "" : ", ") + variant;
  return names + " (sample rate " + FormatNumber(shadow.sample_rate()) + ", queue " +
         std::to_string(shadow.queue_size()) + ")";
}

// "0.912 [0.88, 0.94] (250)", or "–" when `count` is 0.
std::string FeedbackCell(const v1::Interval& interval, uint64_t count) {
  if (count == 0) return kDash;
  return FormatInterval(interval, count) + " (" + std::to_string(count) + ")";
}

// A latency quantile of `arm`, or "–" before its first request.
std::string LatencyCell(const v1::ArmStatistics& arm, double ms) {
  return arm.requests() == 0 ? kDash : FormatMs(ms);
}

void PrintArms(std::ostream& out, const v1::ExperimentStatistics& statistics) {
  TextTable table({"arm", ">requests", ">errors", "error rate", ">p50 ms", ">p95 ms", ">p99 ms",
                   "accuracy (labelled)", "reward (rewarded)"});
  for (const v1::ArmStatistics& arm : statistics.arms()) {
    table.AddRow(
        {arm.variant(), std::to_string(arm.requests()), std::to_string(arm.errors()),
         FormatInterval(arm.error_rate(), arm.requests()), LatencyCell(arm, arm.latency_p50_ms()),
         LatencyCell(arm, arm.latency_p95_ms()), LatencyCell(arm, arm.latency_p99_ms()),
         FeedbackCell(arm.accuracy(), arm.labelled()), FeedbackCell(arm.reward(), arm.rewarded())});
  }
  table.Print(out, "  ");
}

void PrintPair(std::ostream& out, const v1::PairStatistics& pair) {
  out << "  " << pair.baseline() << " vs " << pair.candidate()
      << (pair.shadow() ? " (shadow, same inputs)" : "") << ":\n";
  TextTable table({"metric", "estimate [95% interval]", "verdict", ">observations"});
  for (const v1::Comparison& c : pair.comparisons()) {
    table.AddRow({c.metric(), FormatInterval(c.value(), c.observations()), c.verdict(),
                  std::to_string(c.observations())});
  }
  table.Print(out, "    ");
}

}  // namespace

std::string FormatNumber(double value) {
  if (std::isnan(value)) return kDash;
  std::ostringstream text;
  text << std::setprecision(4) << value;
  return text.str();
}

std::string FormatMs(double value) {
  if (std::isnan(value)) return kDash;
  std::ostringstream text;
  text << std::fixed << std::setprecision(2) << value;
  return text.str();
}

std::string FormatInterval(const v1::Interval& interval, uint64_t observations) {
  if (observations == 0 || std::isnan(interval.estimate())) return kDash;
  const std::string estimate = FormatNumber(interval.estimate());
  if (std::isinf(interval.lower()) || std::isinf(interval.upper())) return estimate + " (too few)";
  return estimate + " [" + FormatNumber(interval.lower()) + ", " + FormatNumber(interval.upper()) +
         "]";
}

void PrintExperiment(std::ostream& out, const v1::Experiment& experiment) {
  out << experiment.model() << ": version " << experiment.version() << ", split "
      << SplitText(experiment) << (experiment.sticky() ? ", sticky" : ", not sticky");
  if (!experiment.baseline().empty()) out << ", baseline " << experiment.baseline();
  if (!experiment.salt().empty()) out << ", salt " << experiment.salt();
  out << "\n";
  if (experiment.shadow().variants_size() > 0) {
    out << "  shadow: " << ShadowText(experiment.shadow()) << "\n";
  }
}

void PrintExperimentStatistics(std::ostream& out, const v1::ExperimentStatistics& statistics) {
  PrintExperiment(out, statistics.experiment());
  PrintArms(out, statistics);
  for (const v1::PairStatistics& pair : statistics.pairs()) PrintPair(out, pair);
  if (statistics.experiment().shadow().variants_size() > 0) {
    out << "  shadow mirrors dropped: " << statistics.shadow_dropped() << "\n";
  }
}

}  // namespace gemserve::client
