#pragma once

// Reading the Prometheus text exposition format (what gem-server serves at /metrics)
// and the arithmetic `gem-client report` does on it: sums over label subsets,
// histogram quantiles as PromQL's histogram_quantile computes them, and the change of
// every series between two scrapes.
//
// Everything here is a pure function of its arguments.

#include <map>
#include <string>
#include <vector>

namespace gemserve::client {

using Labels = std::map<std::string, std::string>;

// One line of the exposition: `name{label="value",...} value [timestamp]`.
struct MetricSample {
  std::string name;
  Labels labels;
  double value = 0;
};

// Parses `text`. Comment lines (# HELP, # TYPE) and blank lines are skipped; the
// optional timestamp is ignored. Label values may hold \\, \" and \n escapes. On
// success fills `samples` and returns true; otherwise returns false and `error` says
// which line is malformed and why.
bool ParseMetricsText(const std::string& text, std::vector<MetricSample>* samples,
                      std::string* error);

// True when every label of `subset` is in `labels` with the same value.
bool HasLabels(const Labels& labels, const Labels& subset);

// The sum of the values of the samples called `name` whose labels include `subset`
// (0 when there is none).
double SumOf(const std::vector<MetricSample>& samples, const std::string& name,
             const Labels& subset);

// One cumulative histogram bucket: `count` observations were <= `le`.
struct Bucket {
  double le = 0;
  double count = 0;
};

// A histogram read back from its `_bucket`, `_sum` and `_count` series.
struct Histogram {
  std::vector<Bucket> buckets;  // sorted by le; the last one is +Inf when present
  double sum = 0;
  double count = 0;
};

// The histogram `name` (the family name, without _bucket) summed over every series
// whose labels include `subset` (buckets are added by `le`).
Histogram HistogramOf(const std::vector<MetricSample>& samples, const std::string& name,
                      const Labels& subset);

// The q-quantile (0 <= q <= 1) of `buckets` with PromQL histogram_quantile semantics:
// linear interpolation inside the bucket that holds rank q * total, the lower edge of
// the first bucket taken as 0; a rank in the +Inf bucket gives the highest finite
// upper bound. NaN when there are no observations, fewer than two buckets, or no +Inf
// bucket.
double HistogramQuantile(double q, const std::vector<Bucket>& buckets);

// `current` minus `previous`, series by series (a series absent from `previous` counts
// from 0). A value that went down means the server restarted: the current value is
// kept. Use it on counters and histograms; a gauge's "change" means nothing.
std::vector<MetricSample> Delta(const std::vector<MetricSample>& current,
                                const std::vector<MetricSample>& previous);

}  // namespace gemserve::client
