"""Turns the GEM operator benchmark's JSON into docs/PERFORMANCE.md and a PNG."""
import argparse
import json
import platform
import re
import subprocess
from collections import defaultdict

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from perf_doc import replace_section  # noqa: E402

NAME = re.compile(r"^(?P<direction>forward|backward)/(?P<op>.+)/(?P<size>\d+[KM]iB)/"
                  r"threads:(?P<threads>\d)$")


def machine_description() -> str:
    cpu = "unknown CPU"
    for line in open("/proc/cpuinfo"):
        if line.startswith("model name"):
            cpu = line.split(":", 1)[1].strip()
            break
    cores = subprocess.run(["nproc"], capture_output=True, text=True).stdout.strip()
    return f"{cpu}, {cores} cores, {platform.system()} {platform.release()}"


def size_bytes(label: str) -> int:
    number = int(label[:-3])
    return number << (20 if label.endswith("MiB") else 10)


def parse_sweep(path):
    """{(direction, threads): {op: {size_label: GB/s}}}"""
    table = defaultdict(lambda: defaultdict(dict))
    for bench in json.load(open(path))["benchmarks"]:
        match = NAME.match(bench["name"])
        if match:
            key = (match["direction"], int(match["threads"]))
            table[key][match["op"]][match["size"]] = bench["bytes_per_second"] / 1e9
    return table


def sweep_tables(table) -> list:
    lines = []
    for (direction, threads) in sorted(table, key=lambda k: (k[0] != "forward", k[1])):
        ops = table[(direction, threads)]
        sizes = sorted({s for row in ops.values() for s in row}, key=size_bytes)
        lines += [f"### {direction}, float32, {threads} thread{'s' if threads > 1 else ''} (GB/s)",
                  "", "| op | " + " | ".join(sizes) + " |",
                  "|---|" + "---:|" * len(sizes)]
        for op, row in ops.items():
            lines.append(f"| {op} | " + " | ".join(f"{row.get(s, float('nan')):.1f}"
                                                   for s in sizes) + " |")
        lines.append("")
    return lines


def large_size_lines(table) -> list:
    """What the largest size shows: out-of-place ops pay for faulting in a fresh output."""
    ops = table.get(("forward", 2), {})
    need = ("fused gem-n1", "torch relu", "copy (preallocated)")
    if not all(op in ops for op in need):
        return []
    size = max(ops["copy (preallocated)"], key=size_bytes)
    gem, relu, copy = (ops[op].get(size, float("nan")) for op in need)
    return [f"The {size} column measures page faults, not kernels: a fresh output that large "
            f"is mmap()ed by glibc and every page of it faults on first write (forward, "
            f"2 threads: fused gem-n1 {gem:.1f} GB/s, torch relu {relu:.1f} GB/s, a copy into "
            f"a preallocated tensor {copy:.1f} GB/s). Smaller fresh outputs above glibc's 32 MiB "
            f"threshold fault too, but their cost varies from run to run on these VMs. A server "
            f"avoids it by reusing buffers "
            f"(the in-place `gem_`, or a caching allocator: gem-server links tcmalloc, "
            f"see the throughput section).", ""]


def head_to_head_lines(h2h) -> list:
    gbps = h2h["gb_per_s"]
    fused = {k: v for k, v in gbps.items() if k.startswith("fused ")}
    lines = [f"Best of {h2h['rounds']} interleaved rounds, {h2h['bytes'] >> 20} MiB float32, "
             f"{h2h['threads']} threads, forward, out-of-place; kernels run with "
             f"{h2h['instruction_set']}.", "",
             "| op | GB/s | vs torch relu | vs torch gelu | vs gem-n1 as torch ops |",
             "|---|---:|---:|---:|---:|"]
    for op, value in sorted(gbps.items(), key=lambda kv: -kv[1]):
        lines.append(f"| {op} | {value:.1f} | {value / gbps['torch relu']:.2f}x | "
                     f"{value / gbps['torch gelu']:.2f}x | "
                     f"{value / gbps['gem-n1 as torch ops']:.1f}x |")
    worst = min(fused.values())
    lines += ["", f"Slowest fused variant: {worst / gbps['torch relu']:.2f}x torch ReLU "
              f"(bar 0.85x), {worst / gbps['torch gelu']:.2f}x torch GELU (bar 1.7x), "
              f"{worst / gbps['gem-n1 as torch ops']:.1f}x GEM as torch ops (bar 4x).", ""]
    return lines


def plot(table, path):
    fig, axes = plt.subplots(1, 2, figsize=(13, 5), sharey=True)
    for axis, direction in zip(axes, ["forward", "backward"]):
        ops = table.get((direction, 2), {})
        for op, row in ops.items():
            sizes = sorted(row, key=size_bytes)
            axis.plot([size_bytes(s) for s in sizes], [row[s] for s in sizes], marker="o",
                      label=op, linestyle="--" if not op.startswith("fused") else "-")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_xlabel("input size (bytes)")
        axis.set_title(f"{direction}, float32, 2 threads")
        axis.grid(True, which="both", alpha=0.3)
    axes[0].set_ylabel("GB/s (bytes moved / time)")
    for axis in axes:
        axis.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--head-to-head", required=True)
    parser.add_argument("--sweep", required=True)
    parser.add_argument("--markdown", required=True)
    parser.add_argument("--plot", required=True)
    parser.add_argument("--command", required=True)
    args = parser.parse_args()
    table = parse_sweep(args.sweep)
    plot(table, args.plot)
    section = ["## GEM operator bandwidth (CPU)", "",
               f"Machine: {machine_description()}. Command: `{args.command}` "
               "(tests/bench/gem_op_bench.cc). GB/s counts the bytes an op must move: "
               "forward reads x and writes y, backward reads grad and x and writes grad_in.",
               "", "### The bar: fused GEM vs torch", ""]
    section += head_to_head_lines(json.load(open(args.head_to_head)))
    section += [f"![bandwidth by size]({args.plot.split('/')[-1]})", ""]
    section += large_size_lines(table) + sweep_tables(table)
    replace_section(args.markdown, "gem-op-bench", section)


if __name__ == "__main__":
    main()
