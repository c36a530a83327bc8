#include "server/http/status_page.h"

namespace gemserve {

const char* StatusPageHtml() {
  return R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>gemserve</title>
<style>
  body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
  table { border-collapse: collapse; }
  th, td { padding: 0.3em 0.8em; border-bottom: 1px solid #ddd; text-align: right; }
  th:nth-child(-n+3), td:nth-child(-n+3) { text-align: left; }
  th { background: #f4f4f4; }
  #status { color: #666; margin-bottom: 1em; }
  .unhealthy { color: #b00; }
</style>
</head>
<body>
<h1>gemserve: variants side by side</h1>
<div id="status">loading…</div>
<table>
  <thead><tr>
    <th>model</th><th>variant</th><th>activation</th><th>requests</th><th>errors</th>
    <th>req/s</th><th>p50 latency</th><th>p99 latency</th><th>p50 TTFT</th>
    <th>tokens</th><th>tokens/s</th>
  </tr></thead>
  <tbody id="rows"></tbody>
</table>
<script>
"use strict";

// One sample per exposition line: {name, labels, value}.
function parseExposition(text) {
  const samples = [];
  for (const line of text.split("\n")) {
    const m = line.match(/^([a-zA-Z_:][\w:]*)(?:\{(.*)\})?\s+(\S+)/);
    if (!m) continue;  // comments, blank lines
    const labels = {};
    for (const l of (m[2] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[l[1]] = l[2].replace(/\\(.)/g, (_, c) => (c === "n" ? "\n" : c));
    }
    samples.push({name: m[1], labels, value: m[3] === "+Inf" ? Infinity : Number(m[3])});
  }
  return samples;
}

// Per {model, variant}: counters summed over the other labels, histogram buckets merged.
function summarize(samples) {
  const rows = new Map();
  const row = (labels) => {
    const key = JSON.stringify([labels.model, labels.variant]);
    if (!rows.has(key)) {
      rows.set(key, {model: labels.model, variant: labels.variant, activation: "",
                     requests: 0, errors: 0, tokens: 0, latency: new Map(), ttft: new Map()});
    }
    return rows.get(key);
  };
  const addBucket = (buckets, s) => {
    const le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
    buckets.set(le, (buckets.get(le) || 0) + s.value);
  };
  for (const s of samples) {
    if (s.labels.model === undefined || s.labels.variant === undefined) continue;
    switch (s.name) {
      case "gemserve_model_info": row(s.labels).activation = s.labels.activation; break;
      case "gemserve_requests_total":
        row(s.labels).requests += s.value;
        if (s.labels.code !== "OK") row(s.labels).errors += s.value;
        break;
      case "gemserve_generated_tokens_total": row(s.labels).tokens += s.value; break;
      case "gemserve_request_duration_seconds_bucket": addBucket(row(s.labels).latency, s); break;
      case "gemserve_time_to_first_token_seconds_bucket": addBucket(row(s.labels).ttft, s); break;
    }
  }
  return [...rows.values()].filter((r) => r.variant !== "")
      .sort((a, b) => (a.model + "\0" + a.variant).localeCompare(b.model + "\0" + b.variant));
}

// The q-quantile of cumulative buckets {le -> count}, as PromQL's histogram_quantile.
function quantile(q, buckets) {
  const total = buckets.get(Infinity) || 0;
  if (total === 0) return null;
  const rank = q * total;
  let lower = 0, below = 0;
  for (const le of [...buckets.keys()].sort((a, b) => a - b)) {
    const count = buckets.get(le);
    if (count >= rank) {
      if (le === Infinity) return lower;  // beyond the last finite bucket
      return lower + (le - lower) * (rank - below) / Math.max(count - below, 1e-12);
    }
    lower = le;
    below = count;
  }
  return null;
}

function seconds(s) {
  if (s === null) return "–";
  return s < 1 ? (s * 1000).toPrecision(3) + " ms" : s.toPrecision(3) + " s";
}

// Per second between two polls `dt` seconds apart; "–" on the first poll.
function rate(now, before, dt) {
  return before === undefined || dt <= 0 ? "–" : ((now - before) / dt).toFixed(1);
}

let previous = {time: 0, rows: new Map()};

function render(rows) {
  const now = Date.now() / 1000;
  const dt = now - previous.time;
  const body = document.getElementById("rows");
  body.replaceChildren();
  const seen = new Map();
  for (const r of rows) {
    const key = r.model + "\0" + r.variant;
    const before = previous.rows.get(key) || {};
    seen.set(key, r);
    const tr = body.insertRow();
    for (const text of [r.model, r.variant, r.activation, r.requests, r.errors,
                        rate(r.requests, before.requests, dt),
                        seconds(quantile(0.5, r.latency)), seconds(quantile(0.99, r.latency)),
                        seconds(quantile(0.5, r.ttft)), r.tokens,
                        rate(r.tokens, before.tokens, dt)]) {
      tr.insertCell().textContent = text;
    }
  }
  previous = {time: now, rows: seen};
}

async function refresh() {
  const status = document.getElementById("status");
  try {
    const [metrics, health] = await Promise.all([fetch("metrics"), fetch("healthz")]);
    render(summarize(parseExposition(await metrics.text())));
    const healthText = (await health.text()).trim();
    status.textContent = (health.ok ? "healthy" : "unhealthy: " + healthText) +
                         " · updated " + new Date().toLocaleTimeString();
    status.className = health.ok ? "" : "unhealthy";
  } catch (e) {
    status.textContent = "cannot reach the server: " + e;
    status.className = "unhealthy";
  }
}

refresh();
setInterval(refresh, 2000);
</script>
</body>
</html>
)html";
}

}  // namespace gemserve
