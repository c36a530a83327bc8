"""Turns scripts/throughput_bench.sh's JSON lines into the "throughput" section of
docs/PERFORMANCE.md (tables, the issue-11 bars) and PNG plots."""
import argparse
import json
import os
import platform
import random
import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from perf_doc import replace_section  # noqa: E402

VARIANTS = ["relu", "gelu", "gem-n1", "gem-n2", "egem-n1-e1e-4", "segem-n1-e1e-4"]
GEM_FAMILY = [v for v in VARIANTS if v not in ("relu", "gelu")]

# Where a profiled sample belongs, by shared object (first match wins).
PROFILE_GROUPS = [
    ("model forward (LibTorch, oneDNN and its JIT kernels, OpenMP, BLAS, GEM op)",
     r"libtorch|libc10|libgomp|openblas|libdnnl|libgem_ops|\[JIT\]"),
    ("gRPC + protobuf", r"libgrpc|libgpr|libabsl|libprotobuf|libupb|libaddress_sorting|libre2|libcares|libssl|libcrypto"),
    ("image decode (libpng, libjpeg, zlib; stb before issue 12)", r"libpng|libjpeg|libturbojpeg|libz\.so|libstb"),
    ("allocator (tcmalloc)", r"libtcmalloc"),
    ("kernel (sockets, scheduling, page faults)", r"kernel|vdso"),
    ("libc and libstdc++ (malloc before tcmalloc, memcpy, locks)", r"^libc\.so|^libm\.so|libstdc\+\+|ld-linux"),
    ("gem-server itself (engine, queue, metrics, protobuf glue)", r"gem-server"),
]


def read_lines(path):
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]


def machine():
    model = "unknown CPU"
    flags = ""
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name") and model == "unknown CPU":
            model = line.split(":", 1)[1].strip()
        if line.startswith("flags") and not flags:
            flags = line
    isa = "avx512f" if " avx512f" in flags else "avx2" if " avx2" in flags else "baseline"
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, GEM kernels: {isa}"


def profile_groups(path):
    """{group: percent of samples} from `perf report --sort dso --stdio` text."""
    if not path or not os.path.exists(path):
        return {}
    line_re = re.compile(r"^\s+([\d.]+)%\s+(.+?)\s*$")
    totals = {name: 0.0 for name, _ in PROFILE_GROUPS}
    for line in open(path):
        m = line_re.match(line)
        if not m:
            continue
        percent, dso = float(m.group(1)), m.group(2)
        group = next((name for name, dso_re in PROFILE_GROUPS if re.search(dso_re, dso)), "other")
        totals[group] = totals.get(group, 0.0) + percent
    return totals


def best_inprocess(inprocess, variant):
    rows = [r for r in inprocess if r["model"].endswith("/" + variant)]
    return max(rows, key=lambda r: r["images_per_s"]) if rows else None


def config_name(r):
    return f"{r['threads']} thread{'s' if r['threads'] > 1 else ''} x {r['workers']}"


def inprocess_section(inprocess, decode):
    configs = sorted({(r["threads"], r["workers"]) for r in inprocess})
    batches = sorted({r["batch"] for r in inprocess})
    lines = ["### 1. In-process limit: the model called from C++ (tests/bench/classify_bench.cc)", "",
             "Images/s by batch size; each cell is one (threads per forward x model copies "
             "running at once) setting, interleaved over 6 rounds.", "",
             "| variant | setting | " + " | ".join(f"b{b}" for b in batches) + " |",
             "|---|---|" + "---:|" * len(batches)]
    for v in VARIANTS:
        for threads, workers in configs:
            cells = {r["batch"]: r["images_per_s"] for r in inprocess
                     if r["model"].endswith("/" + v) and r["threads"] == threads and r["workers"] == workers}
            if cells:
                lines.append(f"| {v} | {threads} thr x {workers} | " +
                             " | ".join(f"{cells.get(b, 0):.0f}" for b in batches) + " |")
    if decode:
        dbatches = sorted({r["batch"] for r in decode})
        lines += ["", "GPT-2 decode tokens/s by batch (rows decoded per step, 1 thread, "
                  "tests/bench/decode_bench.cc --batches):", "",
                  "| variant | " + " | ".join(f"b{b}" for b in dbatches) + " |",
                  "|---|" + "---:|" * len(dbatches)]
        for v in VARIANTS:
            cells = {r["batch"]: r["tokens_per_s"] for r in decode if r["model"].endswith("/" + v)}
            if cells:
                lines.append(f"| {v} | " + " | ".join(f"{cells.get(b, 0):.0f}" for b in dbatches) + " |")
    return lines


def variant_section(paired):
    """Model latency of each variant relative to relu, from tests/bench/variant_latency_bench
    (variants taking turns forward by forward, median of paired ratios): batch-1 and
    batch-16 forwards and a batch-1 decode step."""
    columns = [("resnet20-fashion", 1), ("resnet20-fashion", 16), ("gpt2-kjv", 1)]

    def cell(v, model, batch):
        return next((r for r in paired if r["model"] == f"{model}/{v}" and r["batch"] == batch), None)

    lines = ["### 5. Variants: model latency relative to relu", "",
             "The variants take turns, one forward each, the order rotated every step (1 thread, "
             "tests/bench/variant_latency_bench.cc); each cell is the median forward time and the median "
             "of the paired ratios to relu's forward in the same step, with its 95% interval.", "",
             "| variant | b1 ms | vs relu | b16 ms | vs relu | decode ms | vs relu |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    figures = {}
    for v in VARIANTS:
        cells = [cell(v, model, batch) for model, batch in columns]
        if None in cells:
            continue
        figures[v] = [c["ratio_p50"] for c in cells]
        lines.append(f"| {v} | " + " | ".join(
            f"{c['ms_p50']:.3f} | {c['ratio_p50']:.3f}x [{c['ratio_ci_low']:.3f}, {c['ratio_ci_high']:.3f}]"
            for c in cells) + " |")
    steps = sorted({r["steps"] for r in paired})
    lines += ["", f"Steps per cell: {', '.join(str(s) for s in steps)}."]
    return lines, figures


def server_section(classify):
    concurrency = sorted({r["concurrency"] for r in classify})
    lines = ["### 2. gem-server Classify by concurrency (closed loop, loopback, one PNG per request)", "",
             "req/s (p50 / p99 ms); the load generator shares the 2 cores.", "",
             "| variant | " + " | ".join(f"c={c}" for c in concurrency) + " |",
             "|---|" + "---:|" * len(concurrency)]
    for v in VARIANTS:
        cells = []
        for c in concurrency:
            r = next((r for r in classify if r["variant"] == v and r["concurrency"] == c), None)
            cells.append("" if r is None else f"{r['throughput_rps']:.0f} ({r['latency_ms']['p50']:.1f} / "
                         f"{r['latency_ms']['p99']:.1f})")
        lines.append(f"| {v} | " + " | ".join(cells) + " |")
    return lines


def half_saturation_point(open_loop):
    """The open-loop row at half the saturation rate, or None."""
    return next((r for r in open_loop if abs(r["fraction"] - 0.5) < 1e-9), None)


def single_client(classify):
    """gem-n1 at one client (closed loop), or None."""
    return next((r for r in classify if r["variant"] == "gem-n1" and r["concurrency"] == 1), None)


def open_loop_section(open_loop, inprocess, classify, plot):
    lines = ["", "Open loop (Poisson arrivals, latency from each request's scheduled send time), gem-n1:", "",
             "| offered req/s | fraction of saturation | achieved req/s | errors | p50 ms | p99 ms | "
             "gem-server cores | load generator cores |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in sorted(open_loop, key=lambda r: r["fraction"]):
        lines.append(f"| {r.get('offered_rps', r['rate']):.0f} | {r['fraction']:.2f} | {r['throughput_rps']:.0f} | "
                     f"{r['errors']} | {r['latency_ms']['p50']:.2f} | {r['latency_ms']['p99']:.2f} | "
                     f"{r.get('server_cores', float('nan')):.2f} | {r.get('client_cores', float('nan')):.2f} |")
    lines += ["", f"![latency against offered load]({plot})"] + busy_at_half_saturation(open_loop, inprocess, classify)
    return lines


def busy_at_half_saturation(open_loop, inprocess, classify):
    """Why the p99 at half the saturation *rate* is a p99 on nearly busy cores (small
    batches cost more per image than the large ones saturation runs at), and what an ideal
    scheduler of the same forwards would give there."""
    half, single = half_saturation_point(open_loop), single_client(classify)
    forward_ms = {r["batch"]: r["batch_ms_p50"] for r in inprocess
                  if r["model"].endswith("/gem-n1") and r["threads"] == 1 and r["workers"] == 2}
    if not half or "server_cores" not in half or not single or 1 not in forward_ms:
        return []
    cores, largest = os.cpu_count(), max(forward_ms)
    busy = half["server_cores"] + half["client_cores"]
    outside_forward = single["latency_ms"]["p50"] - forward_ms[1]
    shares = (1.0, (cores - half["client_cores"]) / cores)
    ideal = [queueing_model_p99(forward_ms, half["throughput_rps"], workers=2, cpu_share=f) + outside_forward
             for f in shares]
    return ["", f"At half the saturation rate the {cores} cores were {busy:.2f} cores busy "
            f"(gem-server {half['server_cores']:.2f}, load generator {half['client_cores']:.2f}): in process "
            f"(1 thread x 2 copies, as served) a batch of 1 costs {forward_ms[1]:.2f} ms per image and a batch "
            f"of {largest} {forward_ms[largest] / largest:.2f} ms, so at half the requests per second the "
            "batches are small, each image costs more, and the p99 there is measured on nearly full cores. "
            "A queueing model of the batching alone (Poisson arrivals at that rate; 2 workers, each taking "
            "everything queued up to 16; forwards as long as measured in process, divided by the workers' "
            "share of the cores; plus the single-client p50's time outside the forward, "
            f"{outside_forward:.2f} ms) gives a p99 of "
            + " and ".join(f"{p99:.2f} ms at a {f:.0%} share" for f, p99 in zip(shares, ideal))
            + f" (all the cores; all but the load generator's), against the bar's "
            f"{3 * single['latency_ms']['p50']:.2f} ms and the {half['latency_ms']['p99']:.2f} ms measured. "
            "The model leaves out the CPU gem-server spends outside the forwards (gRPC, decoding, answers) and "
            "the delays of sharing the cores among the workers, gRPC's threads and the load generator."]


def queueing_model_p99(forward_ms, rate_per_s, workers, cpu_share, max_batch=16, arrivals=200_000):
    """p99 of wait + forward (ms) for Poisson arrivals served by `workers` that each take
    everything queued (up to max_batch) when free; a batch of b takes forward_ms[b]
    (interpolated between measured sizes) / cpu_share. Fixed seed: the same inputs give
    the same answer."""
    sizes = sorted(forward_ms)

    def forward(b):
        upper = next((s for s in sizes if s >= b), sizes[-1])
        lower = max((s for s in sizes if s <= b), default=sizes[0])
        if upper == lower:
            return forward_ms[lower] * b / lower
        t = (b - lower) / (upper - lower)
        return forward_ms[lower] + t * (forward_ms[upper] - forward_ms[lower])

    rng = random.Random(1)
    now, times = 0.0, []
    for _ in range(arrivals):
        now += rng.expovariate(rate_per_s / 1000)
        times.append(now)
    free_at = [0.0] * workers
    latencies, i = [], 0
    while i < len(times):
        worker = min(range(workers), key=free_at.__getitem__)
        start = max(free_at[worker], times[i])
        j = i
        while j < len(times) and times[j] <= start and j - i < max_batch:
            j += 1
        end = start + forward(j - i) / cpu_share
        latencies += [end - t for t in times[i:j]]
        free_at[worker], i = end, j
    latencies.sort()
    return latencies[int(len(latencies) * 0.99)]


def generate_section(generate):
    lines = ["### 3. Generate by concurrent streams (gpt2-kjv/gem-n2, greedy, 64 new tokens)", "",
             "| streams | tokens/s (aggregate) | vs 1 stream | tokens/s per stream | TTFT p50 ms | "
             "TTFT p99 ms | inter-token p50 ms | inter-token p99 ms |",
             "|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = sorted(generate, key=lambda r: r["streams"])
    one = rows[0]["tokens_per_s"] if rows else 1
    for r in rows:
        lines.append(f"| {r['streams']} | {r['tokens_per_s']:.0f} | {r['tokens_per_s'] / one:.2f}x | "
                     f"{r['tokens_per_s_per_stream']:.0f} | {r['ttft_ms']['p50']:.2f} | "
                     f"{r['ttft_ms']['p99']:.2f} | {r['inter_token_ms']['p50']:.2f} | "
                     f"{r['inter_token_ms']['p99']:.2f} |")
    return lines


def profile_section(after, before, load):
    lines = ["### 4. Where gem-server's CPU time goes at saturation (perf, 32 clients, gem-n1)", "",
             "Share of the server process's CPU samples (`perf record -e cpu-clock -F 499 -p PID`, "
             "grouped by shared object).", ""]
    if load:
        lines.append(f"During the profile: {load['throughput_rps']:.0f} req/s (perf's sampling costs some).")
        lines.append("")
    header = "| where | " + ("before issue 11 | " if before else "") + "now |"
    lines += [header, "|---|" + ("---:|" if before else "") + "---:|"]
    for name in list(dict.fromkeys(list(after) + list(before))):
        b = f"{before.get(name, 0):.1f}% | " if before else ""
        lines.append(f"| {name} | {b}{after.get(name, 0):.1f}% |")
    return lines


def python_section(python):
    lines = ["### Plain Python grpcio + torch server (tests/bench/python_server.py, one forward per request)", "",
             "32 clients of `gem-client bench`, the same PNG; each torch-threads x gRPC-workers setting:", "",
             "| torch threads | workers | req/s | p50 ms | p99 ms |", "|---:|---:|---:|---:|---:|"]
    for r in sorted(python, key=lambda r: (r["threads"], r["workers"])):
        lines.append(f"| {r['threads']} | {r['workers']} | {r['throughput_rps']:.0f} | "
                     f"{r['latency_ms']['p50']:.1f} | {r['latency_ms']['p99']:.1f} |")
    return lines


def bars(inprocess, classify, open_loop, generate, python, same_load, variants):
    out = []
    sat = max((r["throughput_rps"] for r in classify if r["variant"] == "gem-n1"), default=0)
    limit = best_inprocess(inprocess, "gem-n1")
    if limit:
        out.append(("Server Classify at saturation / in-process batched (gem-n1)",
                    f"{sat:.0f} / {limit['images_per_s']:.0f} "
                    f"(b{limit['batch']}, {config_name(limit)}) = {sat / limit['images_per_s']:.2f}", ">= 0.8",
                    sat / limit["images_per_s"] >= 0.8))
    if python and same_load:
        best = max(python, key=lambda r: r["throughput_rps"])
        ratio = same_load["throughput_rps"] / best["throughput_rps"]
        out.append(("gem-server / plain Python server, 32 clients (gem-n1)",
                    f"{same_load['throughput_rps']:.0f} / {best['throughput_rps']:.0f} (threads {best['threads']}, "
                    f"workers {best['workers']}) = {ratio:.2f}", ">= 3", ratio >= 3))
    gen = {r["streams"]: r["tokens_per_s"] for r in generate}
    if 1 in gen and 8 in gen:
        out.append(("Generate tokens/s, 8 streams / 1 stream", f"{gen[8]:.0f} / {gen[1]:.0f} = "
                    f"{gen[8] / gen[1]:.2f}", ">= 3", gen[8] / gen[1] >= 3))
    half, single = half_saturation_point(open_loop), single_client(classify)
    if half and single:
        ratio = half["latency_ms"]["p99"] / single["latency_ms"]["p50"]
        out.append(("Classify p99 at half saturation / single-client p50", f"{half['latency_ms']['p99']:.2f} / "
                    f"{single['latency_ms']['p50']:.2f} ms = {ratio:.2f}", "<= 3", ratio <= 3))
    if variants and "gelu" in variants:
        worst = max(GEM_FAMILY, key=lambda v: max(variants[v]) if v in variants else 0)
        w = variants[worst]
        below_gelu = all(variants[v][i] < variants["gelu"][i] for v in GEM_FAMILY if v in variants
                         for i in range(3))
        out.append(("Slowest GEM-family variant vs relu (b1, b16, decode)",
                    f"{worst}: {w[0]:.2f}x, {w[1]:.2f}x, {w[2]:.2f}x; all below gelu: {below_gelu}",
                    "<= 1.10x and < gelu", max(w) <= 1.10 and below_gelu))
    lines = ["### The bars (issue 11)", "", "| bar | measured | target | met |", "|---|---|---|---|"]
    for name, value, target, met in out:
        lines.append(f"| {name} | {value} | {target} | {'yes' if met else 'NO'} |")
    return lines


def plot_open_loop(open_loop, path):
    rows = sorted(open_loop, key=lambda r: r["fraction"])
    fig, axis = plt.subplots(figsize=(7, 4.5))
    offered = [r.get("offered_rps", r["rate"]) for r in rows]
    axis.plot(offered, [r["latency_ms"]["p50"] for r in rows], "o-", label="p50")
    axis.plot(offered, [r["latency_ms"]["p99"] for r in rows], "s-", label="p99")
    axis.set_yscale("log")
    axis.set_xlabel("offered load, requests/s (Poisson)")
    axis.set_ylabel("latency from scheduled send, ms")
    axis.set_title("gem-server Classify, resnet20-fashion/gem-n1, open loop")
    axis.grid(True, which="both", alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def plot_inprocess(inprocess, classify, path):
    fig, axis = plt.subplots(figsize=(7, 4.5))
    for threads, workers in sorted({(r["threads"], r["workers"]) for r in inprocess}):
        rows = sorted((r for r in inprocess if r["model"].endswith("/gem-n1") and r["threads"] == threads
                       and r["workers"] == workers), key=lambda r: r["batch"])
        axis.plot([r["batch"] for r in rows], [r["images_per_s"] for r in rows], "o-",
                  label=f"in-process, {threads} thread(s) x {workers} cop{'ies' if workers > 1 else 'y'}")
    sat = max((r["throughput_rps"] for r in classify if r["variant"] == "gem-n1"), default=None)
    if sat:
        axis.axhline(sat, color="black", linestyle="--", label="gem-server at saturation (gRPC, PNG)")
    axis.set_xscale("log", base=2)
    axis.set_xlabel("batch size")
    axis.set_ylabel("images/s")
    axis.set_title("resnet20-fashion/gem-n1: in-process limit vs gem-server")
    axis.grid(True, alpha=0.3)
    axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--bench-dir", "--markdown", "--plots", "--command"):
        parser.add_argument(flag, required=True)
    parser.add_argument("--profile-before", default="")
    args = parser.parse_args()
    d = Path(args.bench_dir)
    inprocess = read_lines(d / "inprocess_classify.jsonl")
    decode = read_lines(d / "inprocess_decode.jsonl")
    classify = read_lines(d / "server_classify.jsonl")
    open_loop = read_lines(d / "server_open_loop.jsonl")
    generate = read_lines(d / "server_generate.jsonl")
    python = read_lines(d / "python_server.jsonl")
    load = next(iter(read_lines(d / "profile_load.json")), None)
    same_load = next(iter(read_lines(d / "python_comparison_load.json")), None)
    open_plot, inprocess_plot = "throughput_open_loop.png", "throughput_inprocess.png"
    plot_open_loop(open_loop, os.path.join(args.plots, open_plot))
    plot_inprocess(inprocess, classify, os.path.join(args.plots, inprocess_plot))
    variant_lines, variants = variant_section(read_lines(d / "variant_latency.jsonl"))
    lines = ["## Throughput (issue 11)", "",
             f"Machine: {machine()}. Command: `{args.command}` (part of `make bench`); "
             "gem-server with deploy/gemserve.yaml; client and server on the same cores.", ""]
    lines += bars(inprocess, classify, open_loop, generate, python, same_load, variants) + [""]
    lines += inprocess_section(inprocess, decode) + ["", f"![in-process vs server]({inprocess_plot})", ""]
    lines += server_section(classify) + open_loop_section(open_loop, inprocess, classify, open_plot) + [""]
    lines += generate_section(generate) + [""]
    lines += profile_section(profile_groups(d / "server_profile.txt"),
                             profile_groups(args.profile_before), load) + [""]
    lines += variant_lines + [""] + python_section(python) + [""]
    replace_section(args.markdown, "throughput", lines)


if __name__ == "__main__":
    main()
