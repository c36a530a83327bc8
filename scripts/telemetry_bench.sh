#!/usr/bin/env bash
# What activation telemetry costs the request path (issue 15): Classify p50 on gem-n1 with
# telemetry.sample_rate 0 (off) and 0.01 (deploy/gemserve.yaml's), side by side. Both
# servers run at once and take turns, the order swapped every round, so that both see the
# same machine; one is idle while the other is measured. Per round and concurrency it runs
# `gem-client bench --concurrency C`; it prints one JSON object with every window, the
# median p50 of each setting and their ratio (sampling / off), per concurrency.
# Usage: scripts/telemetry_bench.sh [BUILD_DIR] [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_lib.sh
build=${1:-build}
rounds=${2:-6}
seconds=${3:-5}
out=$build/bench
mkdir -p "$out"
write_fashion_png "$out/shirt.png"

servers=()
trap 'kill "${servers[@]}" 2>/dev/null; wait 2>/dev/null || true' EXIT
declare -A address
for rate in 0 0.01; do
  config="$out/telemetry_$rate.yaml"
  sed "s/^  sample_rate: 0.01 /  sample_rate: $rate /" deploy/gemserve.yaml > "$config"
  grep -q "^  sample_rate: $rate " "$config" || { echo "cannot set telemetry.sample_rate" >&2; exit 1; }
  log="$out/telemetry_server_$rate.log"
  "$build/gem-server" --config "$config" --listen 127.0.0.1:0 --metrics-listen 127.0.0.1:0 \
    > "$log" 2>&1 &
  servers+=($!)
  for _ in $(seq 240); do grep -q "metrics listening" "$log" && break; sleep 0.5; done
  address[$rate]=$(sed -n 's/^grpc listening on //p' "$log")
  echo "telemetry bench: sample_rate $rate at ${address[$rate]}" >&2
done

bench() {  # RATE CONCURRENCY ROUND
  "$build/gem-client" --server "${address[$1]}" bench --model resnet20-fashion --variant gem-n1 \
    --image "$out/shirt.png" --concurrency "$2" --duration "${seconds}s" --json 2> /dev/null \
    > "$out/telemetry_${1}_c${2}_$3.json"
}
for rate in 0 0.01; do bench "$rate" 4 warmup; done
for round in $(seq "$rounds"); do
  order="0 0.01"
  [ $((round % 2)) -eq 0 ] && order="0.01 0"
  for concurrency in 1 8; do
    for rate in $order; do bench "$rate" "$concurrency" "$round"; done
  done
  echo "telemetry bench: round $round of $rounds done" >&2
done

/usr/bin/python3 - "$out" "$rounds" "${address[0.01]}" <<'PY'
import json, statistics, sys
out, rounds = sys.argv[1], int(sys.argv[2])
result = {"windows": [], "by_concurrency": {}}
for c in (1, 8):
    p50 = {"0": [], "0.01": []}
    for r in range(1, rounds + 1):
        for rate in p50:
            run = json.load(open(f"{out}/telemetry_{rate}_c{c}_{r}.json"))
            p50[rate].append(run["latency_ms"]["p50"])
            result["windows"].append({"round": r, "concurrency": c, "sample_rate": float(rate),
                                      "p50_ms": run["latency_ms"]["p50"],
                                      "throughput_rps": run["throughput_rps"],
                                      "errors": run["errors"]})
    off, on = statistics.median(p50["0"]), statistics.median(p50["0.01"])
    result["by_concurrency"][c] = {"median_p50_off_ms": off, "median_p50_sampling_ms": on,
                                   "ratio": on / off}
print(json.dumps(result, indent=1))
PY
curl -s "http://$(sed -n 's/^metrics listening on //p' "$out/telemetry_server_0.01.log")/metrics" |
  grep '^gemserve_activation_samples_total' >&2 || true
