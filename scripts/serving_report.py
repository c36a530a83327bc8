"""Turns scripts/serving_bench.sh's JSON lines into the serving section of
docs/PERFORMANCE.md and a PNG of latency by variant."""
import argparse
import json

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from perf_doc import replace_section  # noqa: E402


def read_lines(path):
    return [json.loads(line) for line in open(path) if line.strip()]


def rows(reports, rpc):
    """[(variant, figures)] of the reports of one RPC, in the order measured."""
    out = []
    for report in reports:
        if report["rpc"] == rpc:
            out += list(report["variants"].items())
    return out


def markdown(serving, decode, command, plot):
    lines = ["## Serving latency (single client, loopback gRPC)", "",
             f"Command: `{command}`. One client, one request in flight, CPU, "
             "deploy/gemserve.yaml (1 intra-op thread per forward, 2 classify workers).", "",
             "### Classify, resnet20-fashion (one 28x28 PNG per request)", "",
             "| variant | requests | p50 ms | p90 ms | p99 ms |", "|---|---:|---:|---:|---:|"]
    for variant, f in rows(serving, "Classify"):
        lat = f["latency_ms"]
        lines.append(f"| {variant} | {f['requests']} | {lat['p50']:.2f} | {lat['p90']:.2f} | "
                     f"{lat['p99']:.2f} |")
    lines += ["", "### Generate, gpt2-kjv (greedy, 32 new tokens, prompt \"And God said\")", "",
              "| variant | requests | TTFT p50 ms | TTFT p99 ms | inter-token p50 ms | "
              "inter-token p99 ms | tokens/s |", "|---|---:|---:|---:|---:|---:|---:|"]
    for variant, f in rows(serving, "Generate"):
        t, it = f["ttft_ms"], f["inter_token_ms"]
        lines.append(f"| {variant} | {f['requests']} | {t['p50']:.2f} | {t['p99']:.2f} | "
                     f"{it['p50']:.2f} | {it['p99']:.2f} | {f['tokens_per_s']:.0f} |")
    lines += ["", "### KV cache: one decode step at position 200 vs position 10", "",
              "Median of 60 interleaved steps, batch of one (tests/bench/decode_bench.cc).", "",
              "| model | position 10 ms | position 200 ms | ratio |", "|---|---:|---:|---:|"]
    for d in decode:
        lines.append(f"| {d['model']} | {d['position_10_ms']:.3f} | {d['position_200_ms']:.3f} | "
                     f"{d['ratio']:.2f} |")
    lines += ["", f"![latency by variant]({plot.split('/')[-1]})", ""]
    return lines


def plot_latency(serving, path):
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    classify = rows(serving, "Classify")
    generate = rows(serving, "Generate")
    for axis, data, key, title in [
            (axes[0], classify, "latency_ms", "Classify latency, resnet20-fashion"),
            (axes[1], generate, "inter_token_ms", "Inter-token latency, gpt2-kjv")]:
        names = [v for v, _ in data]
        p50 = [f[key]["p50"] for _, f in data]
        p99 = [f[key]["p99"] for _, f in data]
        x = range(len(names))
        axis.bar([i - 0.2 for i in x], p50, width=0.4, label="p50")
        axis.bar([i + 0.2 for i in x], p99, width=0.4, label="p99")
        axis.set_xticks(list(x))
        axis.set_xticklabels(names, rotation=30, ha="right")
        axis.set_ylabel("ms")
        axis.set_title(title)
        axis.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    for flag in ("--serving", "--decode", "--markdown", "--plot", "--command"):
        parser.add_argument(flag, required=True)
    args = parser.parse_args()
    serving, decode = read_lines(args.serving), read_lines(args.decode)
    plot_latency(serving, args.plot)
    replace_section(args.markdown, "serving",
                    markdown(serving, decode, args.command, args.plot))


if __name__ == "__main__":
    main()
