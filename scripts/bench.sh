#!/usr/bin/env bash
# make bench: runs the GEM operator benchmark and writes docs/PERFORMANCE.md and
# docs/gem_bandwidth.png. Usage: scripts/bench.sh [BUILD_DIR]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
out=$build/bench
mkdir -p "$out" docs

echo "bench: head-to-head, 8 MiB float32, 2 threads (best of 400 interleaved rounds)"
"$build/tests/bench/gem_op_bench" --head-to-head "$out/head_to_head.json"

echo "bench: full sweep (sizes 64 KiB - 256 MiB, 1 and 2 threads, forward and backward)"
"$build/tests/bench/gem_op_bench" --benchmark_min_time=0.2 --benchmark_min_warmup_time=0.2 \
  --benchmark_out="$out/sweep.json" --benchmark_out_format=json \
  --benchmark_counters_tabular=true

/usr/bin/python3 scripts/bench_report.py --head-to-head "$out/head_to_head.json" \
  --sweep "$out/sweep.json" --markdown docs/PERFORMANCE.md --plot docs/gem_bandwidth.png \
  --command "make bench"
echo "bench: wrote docs/PERFORMANCE.md and docs/gem_bandwidth.png"
