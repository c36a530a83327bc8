#include "client/metrics_text.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <sstream>

namespace gemserve::client {
namespace {

// Reads one exposition line from left to right. Each Read* returns false with `error`
// set when the text at the cursor is not what the format requires.
class LineReader {
 public:
  explicit LineReader(const std::string& line) : line_(line) {}

  bool ReadSample(MetricSample* sample) {
    if (!ReadName(&sample->name, /*allow_colon=*/true)) return Error("expected a metric name");
    if (Peek() == '{' && !ReadLabels(&sample->labels)) return false;
    SkipSpaces();
    std::string value = ReadWord();
    if (!ParseDouble(value, &sample->value)) return Error("bad value \"" + value + "\"");
    SkipSpaces();
    ReadWord();  // the optional timestamp
    SkipSpaces();
    if (pos_ != line_.size()) return Error("unexpected text after the value");
    return true;
  }

  const std::string& error() const { return error_; }

 private:
  char Peek() const { return pos_ < line_.size() ? line_[pos_] : '\0'; }

  void SkipSpaces() {
    while (Peek() == ' ' || Peek() == '\t') ++pos_;
  }

  std::string ReadWord() {
    const size_t start = pos_;
    while (pos_ < line_.size() && Peek() != ' ' && Peek() != '\t') ++pos_;
    return line_.substr(start, pos_ - start);
  }

  bool ReadName(std::string* name, bool allow_colon) {
    const size_t start = pos_;
    auto is_name_char = [&](char c, bool first) {
      return std::isalpha(static_cast<unsigned char>(c)) || c == '_' || (allow_colon && c == ':') ||
             (!first && std::isdigit(static_cast<unsigned char>(c)));
    };
    while (pos_ < line_.size() && is_name_char(Peek(), pos_ == start)) ++pos_;
    *name = line_.substr(start, pos_ - start);
    return !name->empty();
  }

  // {a="1",b="2"} — a trailing comma is allowed.
  bool ReadLabels(Labels* labels) {
    ++pos_;  // '{'
    while (true) {
      SkipSpaces();
      if (Peek() == '}') {
        ++pos_;
        return true;
      }
      std::string name, value;
      if (!ReadName(&name, /*allow_colon=*/false)) return Error("expected a label name");
      if (Peek() != '=') return Error("expected '=' after label " + name);
      ++pos_;
      if (!ReadQuoted(&value)) return Error("bad value of label " + name);
      (*labels)[name] = value;
      SkipSpaces();
      if (Peek() == ',')
        ++pos_;
      else if (Peek() != '}')
        return Error("expected ',' or '}' after label " + name);
    }
  }

  // "text" with the escapes \\, \" and \n.
  bool ReadQuoted(std::string* value) {
    if (Peek() != '"') return false;
    ++pos_;
    while (pos_ < line_.size() && Peek() != '"') {
      char c = line_[pos_++];
      if (c == '\\' && pos_ < line_.size()) {
        const char escaped = line_[pos_++];
        c = escaped == 'n' ? '\n' : escaped;
      }
      value->push_back(c);
    }
    if (Peek() != '"') return false;
    ++pos_;
    return true;
  }

  static bool ParseDouble(const std::string& text, double* value) {
    if (text.empty()) return false;
    char* end = nullptr;
    *value = std::strtod(text.c_str(), &end);  // also reads +Inf, -Inf and NaN
    return end == text.c_str() + text.size();
  }

  bool Error(const std::string& message) {
    if (error_.empty()) error_ = message;
    return false;
  }

  const std::string& line_;
  size_t pos_ = 0;
  std::string error_;
};

// "name_bucket" -> true and "name" in `family`.
bool StripSuffix(const std::string& name, const std::string& suffix, std::string* family) {
  if (name.size() <= suffix.size() ||
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) != 0) {
    return false;
  }
  *family = name.substr(0, name.size() - suffix.size());
  return true;
}

}  // namespace

bool ParseMetricsText(const std::string& text, std::vector<MetricSample>* samples,
                      std::string* error) {
  std::istringstream in(text);
  std::string line;
  for (int number = 1; std::getline(in, line); ++number) {
    if (!line.empty() && line.back() == '\r') line.pop_back();
    const size_t first = line.find_first_not_of(" \t");
    if (first == std::string::npos || line[first] == '#') continue;
    LineReader reader(line);
    MetricSample sample;
    if (!reader.ReadSample(&sample)) {
      *error = "line " + std::to_string(number) + ": " + reader.error() + ": " + line;
      return false;
    }
    samples->push_back(std::move(sample));
  }
  return true;
}

bool HasLabels(const Labels& labels, const Labels& subset) {
  for (const auto& [name, value] : subset) {
    const auto it = labels.find(name);
    if (it == labels.end() || it->second != value) return false;
  }
  return true;
}

double SumOf(const std::vector<MetricSample>& samples, const std::string& name,
             const Labels& subset) {
  double sum = 0;
  for (const MetricSample& s : samples) {
    if (s.name == name && HasLabels(s.labels, subset)) sum += s.value;
  }
  return sum;
}

Histogram HistogramOf(const std::vector<MetricSample>& samples, const std::string& name,
                      const Labels& subset) {
  std::map<double, double> by_le;
  Histogram histogram;
  for (const MetricSample& s : samples) {
    std::string family;
    if (!HasLabels(s.labels, subset)) continue;
    if (StripSuffix(s.name, "_bucket", &family) && family == name) {
      const auto le = s.labels.find("le");
      if (le != s.labels.end()) by_le[std::strtod(le->second.c_str(), nullptr)] += s.value;
    } else if (StripSuffix(s.name, "_sum", &family) && family == name) {
      histogram.sum += s.value;
    } else if (StripSuffix(s.name, "_count", &family) && family == name) {
      histogram.count += s.value;
    }
  }
  for (const auto& [le, count] : by_le) histogram.buckets.push_back({le, count});
  return histogram;
}

double HistogramQuantile(double q, const std::vector<Bucket>& buckets) {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  if (buckets.size() < 2 || !std::isinf(buckets.back().le)) return nan;
  const double total = buckets.back().count;
  if (total <= 0) return nan;
  const double rank = std::clamp(q, 0.0, 1.0) * total;
  size_t i = 0;
  while (i + 1 < buckets.size() && buckets[i].count < rank) ++i;
  if (i + 1 == buckets.size()) return buckets[i - 1].le;  // in the +Inf bucket
  if (i == 0 && buckets[0].le <= 0) return buckets[0].le;
  const double lower = i == 0 ? 0 : buckets[i - 1].le;
  const double below = i == 0 ? 0 : buckets[i - 1].count;
  const double in_bucket = buckets[i].count - below;
  if (in_bucket <= 0) return lower;
  return lower + (buckets[i].le - lower) * (rank - below) / in_bucket;
}

std::vector<MetricSample> Delta(const std::vector<MetricSample>& current,
                                const std::vector<MetricSample>& previous) {
  std::map<std::pair<std::string, Labels>, double> before;
  for (const MetricSample& s : previous) before[{s.name, s.labels}] = s.value;
  std::vector<MetricSample> delta = current;
  for (MetricSample& s : delta) {
    const auto it = before.find({s.name, s.labels});
    if (it != before.end() && s.value >= it->second) s.value -= it->second;
  }
  return delta;
}

}  // namespace gemserve::client
