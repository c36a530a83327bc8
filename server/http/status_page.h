#pragma once

// The page served at GET /: one self-contained HTML document (inline CSS and plain JS,
// no external assets) that fetches ./metrics and ./healthz every 2 s and shows, per model
// and variant, its activation, requests, errors, request rate, p50/p99 latency, p50 time
// to first token, tokens generated and tokens per second. Quantiles are estimated from the
// histogram buckets the way PromQL's histogram_quantile does (linear within a bucket).

namespace gemserve {

const char* StatusPageHtml();

}  // namespace gemserve
