#!/usr/bin/env bash
# Serving latency of every demo variant, single client, through gem-server on loopback:
# Classify p50/p99 (resnet20-fashion, a Fashion-MNIST PNG), time to first token and
# inter-token latency (gpt2-kjv, greedy, 32 new tokens), and the decode-step cost at
# position 200 vs 10. Writes the "serving" section of docs/PERFORMANCE.md and
# docs/serving_latency.png. Usage: scripts/serving_bench.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_lib.sh
build=${1:-build}
seconds=${2:-8}
out=$build/bench
mkdir -p "$out"
variants="relu gelu gem-n1 gem-n2 egem-n1-e1e-4 segem-n1-e1e-4"

write_fashion_png "$out/shirt.png"

start_gem_server "$build" "$out/server.log"
echo "serving bench: gem-server at $address, $seconds s per variant"

: > "$out/serving.jsonl"
for v in $variants; do
  echo "  resnet20-fashion/$v"
  "$build/gem-client" --server "$address" bench --model resnet20-fashion --variant "$v" \
    --image "$out/shirt.png" --duration "${seconds}s" --json >> "$out/serving.jsonl"
  echo "  gpt2-kjv/$v"
  "$build/gem-client" --server "$address" bench --model gpt2-kjv --variant "$v" \
    --max-tokens 32 --duration "${seconds}s" --json >> "$out/serving.jsonl"
done
kill $server; wait $server 2>/dev/null || true
trap - EXIT

: > "$out/decode.jsonl"
for v in $variants; do
  "$build/tests/bench/decode_bench" "models/repository/gpt2-kjv/$v" >> "$out/decode.jsonl"
done

/usr/bin/python3 scripts/serving_report.py --serving "$out/serving.jsonl" \
  --decode "$out/decode.jsonl" --markdown docs/PERFORMANCE.md \
  --plot docs/serving_latency.png --command "scripts/serving_bench.sh $build $seconds"
echo "serving bench: wrote docs/PERFORMANCE.md and docs/serving_latency.png"
