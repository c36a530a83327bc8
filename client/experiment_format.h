#pragma once

// Text rendering of experiments and their statistics, shared by `gem-client split`,
// `gem-client experiments` and `gem-client report`.

#include <cstdint>
#include <ostream>
#include <string>

#include "gemserve/v1/inference.pb.h"

namespace gemserve::client {

// `value` with 4 significant digits ("0.01234", "1.032", "120"); "–" for NaN.
std::string FormatNumber(double value);

// `value` in milliseconds with two decimals ("3.10"); "–" for NaN.
std::string FormatMs(double value);

// A 95% confidence sequence: "E [L, U]"; "–" when nothing was observed; "E (too few)"
// while a bound is still infinite.
std::string FormatInterval(const v1::Interval& interval, uint64_t observations);

// The settings in force: model, version, split, stickiness, baseline, shadow.
void PrintExperiment(std::ostream& out, const v1::Experiment& experiment);

// The settings, a table of the arms, each pair's comparisons with their verdicts, and
// the shadow mirrors dropped.
void PrintExperimentStatistics(std::ostream& out, const v1::ExperimentStatistics& statistics);

}  // namespace gemserve::client
