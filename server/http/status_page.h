#pragma once

// The live page served at GET /: one self-contained HTML document (inline CSS, plain JS,
// inline SVG; no external assets, so it works offline). Every 2 s it fetches, relative to
// its own URL:
//
//   metrics              Prometheus text. The page keeps a ring of the last ~5 minutes of
//                        scrapes and derives every chart point from the DELTA of counters
//                        and histogram buckets between a scrape and the newest one at least
//                        30 s older (or the oldest one kept, while the ring spans less), so
//                        the charts are windowed, not cumulative, and show points from the
//                        second poll on. A counter that goes down (a server restart) empties
//                        the ring.
//   healthz              the health line at the top.
//   api/v1/experiments   the GetExperiments answer as JSON (proto3 JSON mapping).
//   api/v1/models        the ListModels answer as JSON.
//
// and shows:
//
//   Experiments   per experiment: its model, the split in force as % bars, version,
//                 sticky/salt, baseline and shadow settings; per arm requests, error rate,
//                 p50/p95/p99 latency, live accuracy and mean reward with their 95 %
//                 confidence sequences. "no experiments" when there are none or either
//                 JSON endpoint answers 404.
//   Verdicts      table#verdicts, one tr.verdict-row[data-model][data-baseline]
//                 [data-candidate][data-shadow][data-metric][data-verdict] per comparison:
//                 metric, estimate, [lower, upper], observations, verdict (better green,
//                 worse red, no difference yet grey).
//   Charts        per model, figure.chart[data-chart][data-model] for data-chart in
//                 latency-p50, latency-p99 (histogram_quantile-style, from request
//                 duration bucket deltas), throughput (req/s), shadow-agreement (agree /
//                 (agree + disagree), per primary → shadow) and accuracy (correct /
//                 (correct + incorrect) feedback). One path.series[data-variant] per
//                 variant (for shadow-agreement data-variant is the shadow and
//                 data-primary its primary), a legend with the latest values, axis labels.
//   Variants      table#variants, one tr.variant-row[data-model][data-variant] per variant:
//                 activation (kind, n, eps, neg_slope), load state and model.json quality
//                 (from api/v1/models; from gemserve_model_info when that is missing),
//                 cumulative requests, errors, p50/p99 latency, p50 time to first token and
//                 tokens, and request and token rates over the last 30 s.
//
// Requests counted under model="" (unknown models) and the Compare RPC (which runs every
// variant at once, so its latency is no one variant's serving latency) are left out.

namespace gemserve {

// The page; a static string, valid for the life of the process.
const char* StatusPageHtml();

}  // namespace gemserve
