#include "server/http/status_page.h"

namespace gemserve {

// What the page shows and fetches is described in status_page.h.
const char* StatusPageHtml() {
  return R"html(<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>gemserve</title>
<style>
  :root { --better: #1a7f37; --worse: #c62828; --same: #6e6e6e; --muted: #666; --rule: #ddd; }
  body { font-family: system-ui, sans-serif; margin: 1.2em 1.6em; color: #222; }
  h1 { font-size: 1.5em; margin: 0 0 0.2em; }
  h2 { font-size: 1.2em; margin: 1.3em 0 0.5em; padding-bottom: 0.15em; border-bottom: 2px solid #eee; }
  h3 { font-size: 1.05em; margin: 0.9em 0 0.4em; }
  .meta, .note, .empty { color: var(--muted); font-weight: normal; }
  .note { font-size: 0.85em; }
  table { border-collapse: collapse; font-size: 0.88em; }
  th, td { padding: 0.22em 0.55em; border-bottom: 1px solid var(--rule); text-align: right;
           white-space: nowrap; }
  th { background: #f4f4f4; font-weight: 600; }
  .left { text-align: left; }
  .wrap { white-space: normal; max-width: 18em; }
  .quality { white-space: normal; min-width: 12em; max-width: 17em; }
  #status { color: var(--muted); margin-bottom: 0.5em; }
  .unhealthy { color: var(--worse); font-weight: 600; }
  .experiment { margin-bottom: 1.2em; }
  .split { display: grid; grid-template-columns: max-content 22em max-content; gap: 0.2em 0.6em;
           align-items: center; margin: 0.3em 0 0.5em; font-size: 0.9em; }
  .bar { height: 0.9em; background: #eee; border-radius: 2px; overflow: hidden; }
  .bar > span { display: block; height: 100%; }
  .swatch { display: inline-block; width: 0.8em; height: 0.8em; border-radius: 2px;
            margin-right: 0.35em; vertical-align: -0.05em; }
  .verdict { font-weight: 600; border-radius: 3px; padding: 0.05em 0.45em; color: #fff; }
  .verdict-better { background: var(--better); }
  .verdict-worse { background: var(--worse); }
  .verdict-same { background: var(--same); }
  tbody.model-rows th { background: #fafafa; padding-top: 0.6em; }
  .charts-model { margin-bottom: 0.8em; }
  .charts { display: flex; flex-wrap: wrap; gap: 0.8em 1.4em; }
  figure.chart { margin: 0; width: 420px; }
  figure.chart figcaption { font-weight: 600; font-size: 0.92em; }
  figure.chart svg { display: block; width: 100%; height: auto; }
  svg text { font-size: 11px; fill: #555; }
  svg .grid { stroke: #e6e6e6; }
  svg .axis { stroke: #999; }
  svg .series { fill: none; stroke-width: 1.8; stroke-linejoin: round; }
  svg .nodata { font-size: 13px; fill: #999; }
  ul.legend { list-style: none; margin: 0.1em 0 0; padding: 0; font-size: 0.82em; }
  ul.legend li { display: inline-block; margin-right: 1.1em; }
  .strip-row { display: grid; grid-template-columns: 22em auto; align-items: center;
               margin: 0.15em 0; }
  .strip { display: flex; gap: 2px; }
  .strip > span { width: 14px; height: 14px; border-radius: 2px; }
</style>
</head>
<body>
<h1>gemserve: variants side by side</h1>
<div id="status">loading…</div>

<h2>Experiments</h2>
<div id="experiments"><p class="empty">loading…</p></div>

<h2>Verdicts <span class="note">95 % confidence sequences: valid however often the page
  looks</span></h2>
<table id="verdicts">
  <thead><tr>
    <th class="left">model</th><th class="left">baseline → candidate</th>
    <th class="left">kind</th><th class="left">metric</th><th>estimate</th>
    <th>95 % interval</th><th>observations</th><th class="left">verdict</th>
  </tr></thead>
</table>

<h2>Activations <span class="note">one cell per activation site, in network order: the
  share of its units never non-zero over the variant's last sampled requests (green 0,
  red 1, grey: no sample yet); hover a cell for its figures</span></h2>
<div id="activations"><p class="empty">loading…</p></div>

<h2>Over the last minutes <span class="note" id="window-note"></span></h2>
<div id="charts"><p class="empty">waiting for a second scrape…</p></div>

<h2>Variants <span class="note">counts and quantiles since the server started; rates over
  the last 30 s</span></h2>
<table id="variants">
  <thead><tr>
    <th class="left">variant</th><th class="left">state</th><th class="left">activation</th><th>n</th><th>eps</th><th>neg_slope</th>
    <th class="left">quality (model.json)</th><th>requests</th><th>errors</th><th>req/s</th>
    <th>p50 latency</th><th>p99 latency</th><th>p50 TTFT</th><th>tokens</th><th>tokens/s</th>
  </tr></thead>
</table>

<script>
"use strict";

const POLL_MS = 2000;
const RING_SECONDS = 300;   // scrapes kept for the charts
const WINDOW_SECONDS = 30;  // each chart point: deltas over this long (less while the ring is short)

// ---------------------------------------------------------------- DOM helpers

// The SVG namespace, read from the parser rather than spelled out as a URL.
const SVG_NS = (() => {
  const div = document.createElement("div");
  div.innerHTML = "<svg></svg>";
  return div.firstChild.namespaceURI;
})();

function fill(element, attrs, children) {
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value !== null && value !== undefined) element.setAttribute(name, value);
  }
  for (const child of children) {
    if (child !== null && child !== undefined) {
      element.append(child instanceof Node ? child : String(child));
    }
  }
  return element;
}

// el("td", {class: "left"}, "text", otherNode, ...)
function el(tag, attrs, ...children) { return fill(document.createElement(tag), attrs, children); }
function svg(tag, attrs, ...children) { return fill(document.createElementNS(SVG_NS, tag), attrs, children); }

function row(cells, attrs) {
  const isCell = (c) => c instanceof Node && (c.tagName === "TD" || c.tagName === "TH");
  return el("tr", attrs, ...cells.map((c) => (isCell(c) ? c : el("td", {}, c))));
}
function left(content, cls) { return el("td", {class: "left" + (cls ? " " + cls : "")}, content); }

// ---------------------------------------------------------------- colours

// One colour per variant slug on every chart, bar and legend (Okabe-Ito palette).
const KNOWN_COLOURS = {
  "relu": "#e69f00", "gelu": "#0072b2", "gem-n1": "#d55e00", "gem-n2": "#009e73",
  "egem-n1-e1e-4": "#cc79a7", "segem-n1-e1e-4": "#56b4e9",
};
const OTHER_COLOURS = ["#8c564b", "#17becf", "#7f7f7f", "#bcbd22", "#1f1f1f", "#9467bd"];

function colourOf(variant) {
  if (KNOWN_COLOURS[variant]) return KNOWN_COLOURS[variant];
  let hash = 0;
  for (const c of variant) hash = (hash * 31 + c.codePointAt(0)) >>> 0;
  return OTHER_COLOURS[hash % OTHER_COLOURS.length];
}

function swatch(variant) {
  return el("span", {class: "swatch", style: "background:" + colourOf(variant)});
}

// ---------------------------------------------------------------- number formatting

// proto3 JSON writes uint64 as strings and infinite doubles as "Infinity"/"-Infinity";
// fields at their default value may be left out.
function num(value, fallback = 0) {
  if (value === undefined || value === null || value === "") return fallback;
  return Number(value);
}

function seconds(s) {
  if (s === null || s === undefined || !isFinite(s)) return "–";
  return s < 1 ? (s * 1000).toPrecision(3) + " ms" : s.toPrecision(3) + " s";
}

function ms(value) { return value === null || !isFinite(value) ? "–" : Number(value).toPrecision(3) + " ms"; }
function percent(value, digits = 1) { return (value * 100).toFixed(digits) + " %"; }
function percentagePoints(value) { return (value >= 0 ? "+" : "−") + Math.abs(value * 100).toFixed(2) + " pp"; }
function times(value) { return "×" + value.toFixed(3); }
function plain(value) { return value.toPrecision(3); }

// A number, ±∞ spelled as such.
function finite(format) {
  return (value) => {
    const v = Number(value);
    if (Number.isNaN(v)) return "–";
    if (v === Infinity) return "∞";
    if (v === -Infinity) return "−∞";
    return format(v);
  };
}

function interval(value, format) {
  if (!value) return "–";
  const f = finite(format);
  return "[" + f(num(value.lower, -Infinity)) + ", " + f(num(value.upper, Infinity)) + "]";
}

// ---------------------------------------------------------------- /metrics

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
    samples.push({name: m[1], labels, value: parseValue(m[3])});
  }
  return samples;
}

function parseValue(text) {
  if (text === "+Inf") return Infinity;
  if (text === "-Inf") return -Infinity;
  return Number(text);
}

function emptyVariant(model, variant) {
  return {model, variant, info: null, weight: null, requests: 0, errors: 0, tokens: 0,
          latency: new Map(), ttft: new Map(), correct: 0, incorrect: 0, rewards: 0, rewardSum: 0};
}

function emptyShadow(model, primary, shadow) {
  return {model, primary, shadow, agree: 0, disagree: 0, dropped: 0};
}

// Cumulative buckets {le -> count}, summed over the other labels.
function addBucket(buckets, le, count) {
  const bound = le === "+Inf" ? Infinity : Number(le);
  buckets.set(bound, (buckets.get(bound) || 0) + count);
}

// One scrape, reduced to what the page shows: per model and variant, per shadow pair.
function summarize(samples, time) {
  const variants = new Map();
  const shadows = new Map();
  const variant = (l) => {
    const key = l.model + "\0" + l.variant;
    if (!variants.has(key)) variants.set(key, emptyVariant(l.model, l.variant));
    return variants.get(key);
  };
  const shadow = (l) => {
    const key = l.model + "\0" + l.primary + "\0" + l.shadow;
    if (!shadows.has(key)) shadows.set(key, emptyShadow(l.model, l.primary, l.shadow));
    return shadows.get(key);
  };
  for (const {name, labels: l, value} of samples) {
    if (!l.model) continue;  // model="": requests for unknown models
    if (name === "gemserve_shadow_comparisons_total") {
      if (["agree", "disagree", "dropped"].includes(l.result)) shadow(l)[l.result] += value;
      continue;
    }
    if (!l.variant) continue;
    if (l.rpc === "Compare") continue;  // runs every variant at once; not one arm's traffic
    switch (name) {
      case "gemserve_model_info":
        variant(l).info = {activation: l.activation, n: l.n, eps: l.eps, neg_slope: l.neg_slope};
        break;
      case "gemserve_experiment_weight": variant(l).weight = value; break;
      case "gemserve_requests_total":
        variant(l).requests += value;
        if (l.code !== "OK") variant(l).errors += value;
        break;
      case "gemserve_request_duration_seconds_bucket": addBucket(variant(l).latency, l.le, value); break;
      case "gemserve_time_to_first_token_seconds_bucket": addBucket(variant(l).ttft, l.le, value); break;
      case "gemserve_generated_tokens_total": variant(l).tokens += value; break;
      case "gemserve_feedback_total":
        if (l.outcome === "correct") variant(l).correct += value;
        else if (l.outcome === "incorrect") variant(l).incorrect += value;
        else if (l.outcome === "reward") variant(l).rewards += value;
        break;
      case "gemserve_feedback_reward_sum": variant(l).rewardSum += value; break;
    }
  }
  return {time, variants, shadows};
}

// ---------------------------------------------------------------- the ring of scrapes

const ring = [];  // summaries, oldest first, spanning at most RING_SECONDS

// A counter that went down means the server restarted: older scrapes no longer subtract.
function restarted(before, now) {
  for (const [key, b] of before.variants) {
    const n = now.variants.get(key);
    if (n && (n.requests < b.requests || n.tokens < b.tokens)) return true;
  }
  return false;
}

function record(scrape) {
  if (ring.length > 0 && restarted(ring[ring.length - 1], scrape)) ring.length = 0;
  ring.push(scrape);
  while (ring.length > 1 && scrape.time - ring[0].time > RING_SECONDS) ring.shift();
}

// The scrape ring[i]'s deltas are taken against: the newest one at least WINDOW_SECONDS
// older, or the oldest one kept while the ring spans less.
function baseIndex(i) {
  let j = 0;
  while (j + 1 < i && ring[i].time - ring[j + 1].time >= WINDOW_SECONDS) j++;
  return j;
}

// ---------------------------------------------------------------- windowed quantities

// The q-quantile of cumulative buckets {le -> count}, as PromQL's histogram_quantile.
function quantile(q, buckets) {
  const total = buckets.get(Infinity) || 0;
  if (total <= 0) return null;
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

function bucketDelta(now, before) {
  const delta = new Map();
  for (const [le, count] of now) delta.set(le, count - (before.get(le) || 0));
  return delta;
}

function fraction(hits, misses) { return hits + misses > 0 ? hits / (hits + misses) : null; }

// Each quantity: value(now, before, seconds between them) -> number, or null for no data.
const QUANTITIES = [
  {chart: "latency-p50", title: "Latency p50", axis: "ms", source: "variants", format: ms,
   value: (n, b) => scaled(quantile(0.5, bucketDelta(n.latency, b.latency)), 1000)},
  {chart: "latency-p99", title: "Latency p99", axis: "ms", source: "variants", format: ms,
   value: (n, b) => scaled(quantile(0.99, bucketDelta(n.latency, b.latency)), 1000)},
  {chart: "throughput", title: "Throughput", axis: "requests / s", source: "variants",
   format: (v) => v.toFixed(1) + " req/s",
   value: (n, b, dt) => (n.requests === 0 ? null : (n.requests - b.requests) / dt)},
  {chart: "shadow-agreement", title: "Shadow agreement (top-1)", axis: "agreement",
   source: "shadows", format: (v) => percent(v), unitRange: true,
   value: (n, b) => fraction(n.agree - b.agree, n.disagree - b.disagree)},
  {chart: "accuracy", title: "Live accuracy (feedback)", axis: "accuracy", source: "variants",
   format: (v) => percent(v), unitRange: true,
   value: (n, b) => fraction(n.correct - b.correct, n.incorrect - b.incorrect)},
];

function scaled(value, factor) { return value === null ? null : value * factor; }

function seriesLabel(entry) {
  return entry.primary !== undefined ? entry.primary + " → " + entry.shadow : entry.variant;
}

// Per variant (per shadow pair) of `model`: [[time, value or null], ...] over the ring.
function seriesOf(quantity, model) {
  const series = new Map();
  for (let i = 1; i < ring.length; i++) {
    const now = ring[i], base = ring[baseIndex(i)];
    const dt = now.time - base.time;
    for (const [key, n] of now[quantity.source]) {
      if (n.model !== model) continue;
      const b = base[quantity.source].get(key) ||
                (quantity.source === "shadows" ? emptyShadow() : emptyVariant());
      const v = quantity.value(n, b, dt);
      if (!series.has(key)) series.set(key, {entry: n, points: []});
      series.get(key).points.push([now.time, v !== null && isFinite(v) ? v : null]);
    }
  }
  return [...series.values()]
      .filter((s) => s.points.some((p) => p[1] !== null))
      .sort((a, b) => seriesLabel(a.entry).localeCompare(seriesLabel(b.entry)));
}

// Per second between the newest scrape and its window base; null without two scrapes.
function windowRate(key, field) {
  if (ring.length < 2) return null;
  const i = ring.length - 1;
  const now = ring[i].variants.get(key), base = ring[baseIndex(i)];
  if (!now || now[field] === 0) return null;
  const before = base.variants.get(key) || emptyVariant();
  return (now[field] - before[field]) / (ring[i].time - base.time);
}

// ---------------------------------------------------------------- charts

const CHART = {width: 440, height: 200, left: 64, right: 12, top: 10, bottom: 36};

// About `count` round tick values covering [lo, hi].
function ticks(lo, hi, count) {
  const raw = (hi - lo) / count;
  const magnitude = Math.pow(10, Math.floor(Math.log10(raw)));
  const step = [1, 2, 2.5, 5, 10].map((m) => m * magnitude).find((s) => s >= raw);
  const values = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) values.push(v);
  return {step, values};
}

function yDomain(quantity, series) {
  const values = series.flatMap((s) => s.points.map((p) => p[1]).filter((v) => v !== null));
  const max = Math.max(...values), min = Math.min(...values);
  if (quantity.unitRange) return [Math.max(0, Math.min(0.9, Math.floor(min * 10) / 10)), 1];
  if (max <= 0) return [0, 1];
  const top = max * 1.05;
  const step = ticks(0, top, 4).step;
  return [0, Math.ceil(top / step) * step];
}

// Enough decimals to tell ticks `step` apart (2.5 -> 1, 0.02 -> 2, 50 -> 0).
function tickText(value, step) {
  let digits = 0;
  while (digits < 6 && Math.abs(step * 10 ** digits - Math.round(step * 10 ** digits)) > 1e-6) digits++;
  return value.toFixed(digits);
}

function agoText(secondsAgo) {
  if (secondsAgo === 0) return "now";
  const s = Math.round(secondsAgo);
  return s % 60 === 0 ? "−" + s / 60 + " min" : "−" + s + " s";
}

function chart(quantity, model, now) {
  const series = seriesOf(quantity, model);
  const span = Math.min(RING_SECONDS, Math.max(60, now - ring[0].time));
  const w = CHART.width - CHART.left - CHART.right, h = CHART.height - CHART.top - CHART.bottom;
  const [y0, y1] = series.length ? yDomain(quantity, series) : [0, 1];
  const x = (t) => CHART.left + w * (1 - (now - t) / span);
  const y = (v) => CHART.top + h * (1 - (v - y0) / (y1 - y0));

  const plot = svg("svg", {viewBox: `0 0 ${CHART.width} ${CHART.height}`, role: "img"});
  const yTicks = ticks(y0, y1, 4);
  for (const v of yTicks.values) {
    plot.append(svg("line", {class: "grid", x1: CHART.left, x2: CHART.left + w, y1: y(v), y2: y(v)}),
                svg("text", {x: CHART.left - 5, y: y(v) + 4, "text-anchor": "end"},
                    quantity.unitRange ? tickText(v * 100, yTicks.step * 100) + " %"
                                       : tickText(v, yTicks.step)));
  }
  const xStep = span > 120 ? 60 : 15;
  for (let ago = 0; ago <= span + 1e-9; ago += xStep) {
    plot.append(svg("line", {class: "axis", x1: x(now - ago), x2: x(now - ago),
                             y1: CHART.top + h, y2: CHART.top + h + 4}),
                svg("text", {x: x(now - ago), y: CHART.top + h + 16, "text-anchor": "middle"},
                    agoText(ago)));
  }
  plot.append(
      svg("line", {class: "axis", x1: CHART.left, x2: CHART.left + w, y1: CHART.top + h, y2: CHART.top + h}),
      svg("line", {class: "axis", x1: CHART.left, x2: CHART.left, y1: CHART.top, y2: CHART.top + h}),
      svg("text", {x: CHART.left + w / 2, y: CHART.height - 3, "text-anchor": "middle"}, "time (2 s polls)"),
      svg("text", {x: 11, y: CHART.top + h / 2, "text-anchor": "middle",
                   transform: `rotate(-90 11 ${CHART.top + h / 2})`}, quantity.axis));

  const legend = el("ul", {class: "legend"});
  for (const s of series) {
    const shadow = s.entry.primary !== undefined;
    const colour = colourOf(shadow ? s.entry.primary : s.entry.variant);
    const visible = s.points.filter((p) => p[1] !== null && now - p[0] <= span);
    plot.append(svg("path", {class: "series", stroke: colour, d: pathData(s.points, x, y, now - span),
                             "data-variant": shadow ? s.entry.shadow : s.entry.variant,
                             "data-primary": shadow ? s.entry.primary : null}));
    const last = visible[visible.length - 1];
    if (last) plot.append(svg("circle", {class: "last-point", cx: x(last[0]), cy: y(last[1]), r: 2.5, fill: colour}));
    legend.append(el("li", {"data-variant": shadow ? s.entry.shadow : s.entry.variant},
                     el("span", {class: "swatch", style: "background:" + colour}),
                     seriesLabel(s.entry) + "  ", el("b", {}, last ? quantity.format(last[1]) : "–")));
  }
  if (!series.length) {
    plot.append(svg("text", {class: "nodata", x: CHART.left + w / 2, y: CHART.top + h / 2,
                             "text-anchor": "middle"}, "no data in the window"));
  }
  return el("figure", {class: "chart", "data-chart": quantity.chart, "data-model": model},
            el("figcaption", {}, quantity.title), plot, legend);
}

// An SVG path through the points, broken where a point has no value.
function pathData(points, x, y, since) {
  let d = "", pen = false;
  for (const [t, v] of points) {
    if (v === null || t < since) { pen = false; continue; }
    d += (pen ? "L" : "M") + x(t).toFixed(1) + " " + y(v).toFixed(1) + " ";
    pen = true;
  }
  return d.trim();
}

function modelsInRing() {
  const models = new Set();
  for (const scrape of ring) for (const v of scrape.variants.values()) models.add(v.model);
  return [...models].sort();
}

// A model whose variants saw no request in the ring gets one line, not five empty charts.
function hadTraffic(model) {
  const first = ring[0], last = ring[ring.length - 1];
  for (const [key, v] of last.variants) {
    if (v.model === model && v.requests > ((first.variants.get(key) || {}).requests || 0)) return true;
  }
  return false;
}

function renderCharts() {
  const box = document.getElementById("charts");
  document.getElementById("window-note").textContent =
      `each point: counter and bucket deltas over ${WINDOW_SECONDS} s (less for the first ` +
      `${WINDOW_SECONDS} s); ${ring.length} scrapes kept`;
  if (ring.length < 2) return;
  const now = ring[ring.length - 1].time;
  const blocks = [];
  for (const model of modelsInRing()) {
    if (!hadTraffic(model)) {
      blocks.push(el("p", {class: "empty", "data-model": model},
                     model + ": no requests in the last " + Math.round(now - ring[0].time) + " s"));
      continue;
    }
    blocks.push(el("div", {class: "charts-model", "data-model": model}, el("h3", {}, model),
                   el("div", {class: "charts"}, ...QUANTITIES.map((q) => chart(q, model, now)))));
  }
  box.replaceChildren(...blocks);
}

// ---------------------------------------------------------------- experiments

const COMPARISONS = {
  latency_ratio: {label: "latency ratio (geometric mean)", format: times},
  error_rate_diff: {label: "error rate difference", format: percentagePoints},
  accuracy_diff: {label: "accuracy difference", format: percentagePoints},
  reward_diff: {label: "mean reward difference", format: (v) => (v >= 0 ? "+" : "−") + Math.abs(v).toFixed(3)},
  shadow_agreement: {label: "top-1 agreement", format: (v) => percent(v, 2)},
  shadow_kl: {label: "KL(primary ‖ shadow), nats", format: (v) => v.toPrecision(3)},
  shadow_latency_ratio: {label: "paired latency ratio", format: times},
};

function comparisonInfo(metric) {
  return COMPARISONS[metric] || {label: metric, format: plain};
}

function verdictClass(verdict) {
  if (verdict === "better") return "verdict-better";
  if (verdict === "worse") return "verdict-worse";
  return "verdict-same";
}

function splitBars(split) {
  const entries = Object.entries(split || {}).map(([v, w]) => [v, num(w)]).sort();
  const total = entries.reduce((sum, [, w]) => sum + w, 0);
  const bars = el("div", {class: "split"});
  for (const [variant, weight] of entries) {
    const share = total > 0 ? weight / total : 0;
    bars.append(el("span", {}, swatch(variant), variant),
                el("span", {class: "bar", title: "weight " + weight},
                   el("span", {style: `width:${(share * 100).toFixed(1)}%;background:${colourOf(variant)}`})),
                el("span", {class: "share", "data-variant": variant}, percent(share, 0)));
  }
  return bars;
}

function settingsLine(e, dropped) {
  const parts = ["version " + num(e.version)];
  parts.push(e.sticky ? "sticky routing" + (e.salt ? " (salt " + e.salt + ")" : "") : "not sticky");
  if (e.baseline) parts.push("baseline " + e.baseline);
  const shadow = e.shadow || {};
  const shadowVariants = shadow.variants || [];
  if (shadowVariants.length) {
    parts.push("shadow " + shadowVariants.join(", ") + " on " + percent(num(shadow.sample_rate), 0) +
               " of routed requests, queue " + num(shadow.queue_size) + ", " + num(dropped) + " dropped");
  } else {
    parts.push("no shadow");
  }
  return parts.join(" · ");
}

function armsTable(arms) {
  const head = ["variant", "requests", "errors", "error rate", "p50", "p95", "p99",
                "labelled", "accuracy", "rewarded", "mean reward"];
  const table = el("table", {class: "arms"},
                   el("thead", {}, row(head.map((h, i) => el("th", {class: i === 0 ? "left" : null}, h)))));
  const body = el("tbody");
  for (const a of arms || []) {
    const requests = num(a.requests), labelled = num(a.labelled), rewarded = num(a.rewarded);
    const latency = (value) => (requests > 0 ? ms(num(value, null)) : "–");
    body.append(row([
      left(el("span", {}, swatch(a.variant), a.variant)),
      requests, num(a.errors),
      requests > 0 ? estimateWithInterval(a.error_rate, (v) => percent(v, 2)) : "–",
      latency(a.latency_p50_ms), latency(a.latency_p95_ms), latency(a.latency_p99_ms),
      labelled, labelled > 0 ? estimateWithInterval(a.accuracy, (v) => percent(v, 1)) : "–",
      rewarded, rewarded > 0 ? estimateWithInterval(a.reward, (v) => v.toFixed(3)) : "–",
    ], {class: "arm-row", "data-variant": a.variant}));
  }
  table.append(body);
  return table;
}

function estimateWithInterval(value, format) {
  if (!value) return "–";
  return finite(format)(num(value.estimate)) + " " + interval(value, format);
}

function renderExperiments(answer) {
  const box = document.getElementById("experiments");
  const verdicts = document.getElementById("verdicts");
  for (const old of verdicts.querySelectorAll("tbody")) old.remove();
  if (typeof answer === "string") {  // an error, not a 404
    box.replaceChildren(el("p", {class: "empty unhealthy"}, "experiments unavailable: " + answer));
    return;
  }
  const experiments = (answer && answer.experiments) || [];
  if (!experiments.length) {
    box.replaceChildren(el("p", {class: "empty", id: "no-experiments"}, "no experiments"));
    verdicts.append(el("tbody", {}, el("tr", {}, el("td", {class: "left empty", colspan: 8}, "no experiments"))));
    return;
  }
  box.replaceChildren(...experiments.map((x) => {
    const e = x.experiment || {};
    return el("div", {class: "experiment", "data-model": e.model},
              el("h3", {}, e.model, " ", el("span", {class: "meta"}, settingsLine(e, x.shadow_dropped))),
              splitBars(e.split), armsTable(x.arms));
  }));
  for (const x of experiments) verdicts.append(verdictRows(x));
}

function verdictRows(x) {
  const model = (x.experiment || {}).model;
  const body = el("tbody", {class: "experiment-rows", "data-model": model});
  // Routed pairs first, then shadow pairs, each in the server's order (sort is stable).
  const pairs = [...(x.pairs || [])].sort((a, b) => Number(!!a.shadow) - Number(!!b.shadow));
  for (const pair of pairs) {
    for (const c of pair.comparisons || []) {
      const info = comparisonInfo(c.metric);
      const verdict = c.verdict || "no difference yet";
      body.append(row([
        left(model), left(pair.baseline + " → " + pair.candidate),
        left(pair.shadow ? "shadow (paired)" : "routed"),
        left(info.label),
        finite(info.format)(num((c.value || {}).estimate, NaN)),
        interval(c.value, info.format), num(c.observations),
        left(el("span", {class: "verdict " + verdictClass(verdict)}, verdict)),
      ], {class: "verdict-row", "data-model": model, "data-baseline": pair.baseline,
          "data-candidate": pair.candidate, "data-shadow": pair.shadow ? "true" : "false",
          "data-metric": c.metric, "data-verdict": verdict}));
    }
  }
  if (!body.children.length) {
    body.append(el("tr", {}, el("td", {class: "left empty", colspan: 8}, model + ": no comparisons yet")));
  }
  return body;
}

// ---------------------------------------------------------------- activations

// A dead-unit ratio as a colour: 0 green, 1 red; grey while the window is empty.
function deadColour(ratio) {
  if (ratio === null || ratio === undefined) return "#ddd";
  const t = Math.max(0, Math.min(1, Number(ratio)));
  return "hsl(" + Math.round(120 * (1 - t)) + ", 65%, " + Math.round(75 - 25 * t) + "%)";
}

function siteTitle(s) {
  const figure = (v, digits) => (v === null || v === undefined ? "–" : Number(v).toFixed(digits));
  return s.site + ": " + (s.dead_units === null ? "–" : s.dead_units) + " of " + s.units +
         " units dead, zero fraction " + figure(s.zero_fraction, 3) + ", input mean " +
         figure(s.input_mean, 3) + " (train " + figure((s.train || {}).input_mean, 3) + "), std " +
         figure(s.input_std, 3) + " (train " + figure((s.train || {}).input_std, 3) + ")";
}

function activationStrip(v) {
  return el("div", {class: "strip-row", "data-variant": v.variant},
            el("span", {}, swatch(v.variant), v.variant, " ",
               el("span", {class: "meta"}, num(v.samples) + " of " + num(v.window) + " sampled")),
            el("span", {class: "strip"}, ...(v.sites || []).map((s) => el("span", {
                class: "site", "data-site": s.site, "data-dead-ratio": s.dead_units_ratio,
                title: siteTitle(s), style: "background:" + deadColour(s.dead_units_ratio)}))));
}

// api/v1/activations: a strip of sites per variant, one block per model.
function renderActivations(report) {
  const box = document.getElementById("activations");
  if (typeof report === "string") {
    box.replaceChildren(el("p", {class: "empty unhealthy"}, "api/v1/activations: " + report));
    return;
  }
  const models = (report && report.models) || [];
  if (!models.length) {
    box.replaceChildren(el("p", {class: "empty"}, "no variant reports activation statistics " +
                                                   "(telemetry.sample_rate is 0, or no model.json " +
                                                   "names an activation_statistics method)"));
    return;
  }
  box.replaceChildren(...models.map((m) => el("div", {class: "activations-model", "data-model": m.model},
                                              el("h3", {}, m.model),
                                              ...(m.variants || []).map(activationStrip))));
}

// ---------------------------------------------------------------- variants

// Per model {name, task, defaultVariant, variants}: from api/v1/models when it answers,
// else from the gemserve_model_info series of the latest scrape.
function modelList(models) {
  if (models && models.models) {
    return models.models.map((m) => ({
      name: m.name, task: m.task || "", defaultVariant: m.default_variant || "",
      variants: (m.variants || []).map((v) => ({
        name: v.name, state: v.state || "", error: v.error || "", activation: v.activation || "",
        n: num(v.n), eps: num(v.eps), neg_slope: num(v.neg_slope), quality: v.quality || ""})),
    }));
  }
  const byModel = new Map();
  const latest = ring[ring.length - 1];
  for (const v of latest ? latest.variants.values() : []) {
    if (!byModel.has(v.model)) byModel.set(v.model, {name: v.model, task: "", defaultVariant: "", variants: []});
    const info = v.info || {};
    byModel.get(v.model).variants.push({
        name: v.variant, state: v.info ? "READY" : "", error: "", activation: info.activation || "",
        n: num(info.n, ""), eps: num(info.eps, ""), neg_slope: num(info.neg_slope, ""), quality: ""});
  }
  const list = [...byModel.values()].sort((a, b) => a.name.localeCompare(b.name));
  for (const m of list) m.variants.sort((a, b) => a.name.localeCompare(b.name));
  return list;
}

function rateText(value) { return value === null || !isFinite(value) ? "–" : value.toFixed(1); }

const VARIANT_COLUMNS = 15;

// "test_accuracy=0.92 (fashion-mnist test (10k))" -> ["test_accuracy=0.92", "fashion-mnist test (10k)"].
function splitQuality(quality) {
  const open = quality.indexOf(" (");
  if (open < 0 || !quality.endsWith(")")) return [quality, ""];
  return [quality.slice(0, open), quality.slice(open + 2, -1)];
}

// The dataset every variant's quality was measured on, when they all name the same one.
function sharedDataset(model) {
  const datasets = new Set(model.variants.map((v) => splitQuality(v.quality)[1]));
  return datasets.size === 1 ? [...datasets][0] : "";
}

function variantRow(model, v, latest, dataset) {
  const key = model.name + "\0" + v.name;
  const m = (latest && latest.variants.get(key)) || emptyVariant(model.name, v.name);
  const state = left(v.state + (v.error ? ": " + v.error : ""),
                     v.state === "FAILED" ? "unhealthy wrap" : null);
  return row([
    left(el("span", {}, swatch(v.name), v.name, v.name === model.defaultVariant ? " (default)" : "")),
    state, left(v.activation), v.n, v.eps, v.neg_slope,
    left((dataset ? splitQuality(v.quality)[0] : v.quality) || "–", "quality"),
    m.requests, m.errors, rateText(windowRate(key, "requests")),
    seconds(quantile(0.5, m.latency)), seconds(quantile(0.99, m.latency)),
    seconds(quantile(0.5, m.ttft)), m.tokens, rateText(windowRate(key, "tokens")),
  ], {class: "variant-row", "data-model": model.name, "data-variant": v.name});
}

// One tbody per model: a heading row, then one row per variant.
function renderVariants(models) {
  const latest = ring[ring.length - 1];
  const table = document.getElementById("variants");
  for (const old of table.querySelectorAll("tbody")) old.remove();
  for (const model of modelList(models)) {
    const dataset = sharedDataset(model);
    const about = [model.task, model.defaultVariant ? "default variant " + model.defaultVariant : "",
                   dataset ? "quality measured on " + dataset : ""].filter((t) => t).join(" · ");
    table.append(el("tbody", {class: "model-rows", "data-model": model.name},
                    el("tr", {}, el("th", {class: "left", colspan: VARIANT_COLUMNS}, model.name, " ",
                                    el("span", {class: "meta"}, about))),
                    ...model.variants.map((v) => variantRow(model, v, latest, dataset))));
  }
}

// ---------------------------------------------------------------- polling

// The parsed JSON; null when the endpoint is absent (404); a string saying what failed.
async function fetchJson(path) {
  try {
    const response = await fetch(path);
    if (response.status === 404) return null;
    if (!response.ok) return response.status + " " + (await response.text()).trim();
    return await response.json();
  } catch (e) {
    return String(e);
  }
}

function renderHealth(ok, text) {
  const status = document.getElementById("status");
  status.textContent = (ok ? "healthy" : "unhealthy: " + text) + " · updated " +
                       new Date().toLocaleTimeString();
  status.className = ok ? "" : "unhealthy";
}

async function refresh() {
  try {
    const [metrics, health, experiments, models, activations] = await Promise.all([
      fetch("metrics"), fetch("healthz"), fetchJson("api/v1/experiments"), fetchJson("api/v1/models"),
      fetchJson("api/v1/activations")]);
    record(summarize(parseExposition(await metrics.text()), Date.now() / 1000));
    renderHealth(health.ok, (await health.text()).trim());
    renderExperiments(experiments);
    renderActivations(activations);
    renderCharts();
    renderVariants(typeof models === "string" ? null : models);
  } catch (e) {
    const status = document.getElementById("status");
    status.textContent = "cannot reach the server: " + e;
    status.className = "unhealthy";
  }
}

// The next poll starts POLL_MS after this one ends, so slow answers never overlap.
async function poll() {
  await refresh();
  setTimeout(poll, POLL_MS);
}

poll();
</script>
</body>
</html>
)html";
}

}  // namespace gemserve
