#!/usr/bin/env bash
# gem-server under a flood (issue 12): Classify at 10x its saturation rate, open loop,
# then 2048 clients in a closed loop (the load generator shares the cores, so it cannot
# send 10x on its own; open-loop latency counts from the scheduled send and so includes
# the generator's lag, closed-loop latency from the actual send), with a newcomer sending
# 50 req/s of its own during the closed loop. Prints one JSON object:
# the single-client p50 before and after, each flood's successes and errors by code with
# how fast the refusals came, and the server's RSS idle, at its peak and after.
# Usage: scripts/overload_bench.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_lib.sh
build=${1:-build}
seconds=${2:-5}
out=$build/bench
mkdir -p "$out"
write_fashion_png "$out/shirt.png"
bench() {
  "$build/gem-client" --server "$address" bench --model resnet20-fashion --variant gem-n1 \
    --image "$out/shirt.png" --json "$@" 2> /dev/null
}
rss_kib() { awk '/^VmRSS/ {print $2}' "/proc/$server/status"; }

start_gem_server "$build" "$out/overload_server.log"
echo "overload bench: gem-server at $address" >&2
bench --concurrency 1 --duration 3s > "$out/overload_before.json"
saturation=$(bench --concurrency 64 --duration 4s | /usr/bin/python3 -c \
  'import json, sys; print(json.load(sys.stdin)["throughput_rps"])')
idle_kib=$(rss_kib)
echo "overload bench: saturation $saturation req/s; flooding at 10x for $seconds s" >&2
rate=$(/usr/bin/python3 -c "print(round(10 * $saturation))")
peak_kib=$idle_kib
# Runs one flood (bench arguments) into $out/overload_NAME.json, tracking peak RSS.
flood() {
  local name=$1
  shift
  bench "$@" --duration "${seconds}s" > "$out/overload_$name.json" &
  local load=$!
  while kill -0 $load 2> /dev/null; do
    local now
    now=$(rss_kib)
    [ "$now" -gt "$peak_kib" ] && peak_kib=$now
    sleep 0.1
  done
  wait $load
}
flood open --rate "$rate" --max-in-flight 8192
# A newcomer during the closed-loop flood: 50 req/s from a process of its own, from 1 s
# into the flood to 1 s before its end. Its latency is how long a client that is not
# part of the flood waits for its answer (the flood's own clients each wait behind 2047
# others, so theirs is 2048 / answers per second, whatever the server does).
( sleep 1; bench --rate 50 --duration "$((seconds > 2 ? seconds - 2 : 1))s" > "$out/overload_newcomer.json" ) &
newcomer=$!
flood closed --concurrency 2048
wait $newcomer
bench --concurrency 1 --duration 3s > "$out/overload_after.json"
after_kib=$(rss_kib)
/usr/bin/python3 - "$out" "$saturation" "$idle_kib" "$peak_kib" "$after_kib" <<'PY'
import json, sys
out, saturation, idle, peak, after = sys.argv[1], float(sys.argv[2]), *map(int, sys.argv[3:])
load = lambda name: json.load(open(f"{out}/overload_{name}.json"))
before, later = load("before"), load("after")
keys = ("offered_rps", "throughput_rps", "requests", "errors", "errors_by_code",
        "error_latency_ms", "latency_ms", "unsent", "send_lag_ms")
print(json.dumps({
    "saturation_rps": saturation,
    "open_loop_10x": {k: v for k, v in load("open").items() if k in keys},
    "closed_loop_2048": {k: v for k, v in load("closed").items() if k in keys},
    "newcomer_during_closed_loop": {k: v for k, v in load("newcomer").items() if k in keys},
    "single_client_p50_ms": {"before": before["latency_ms"]["p50"], "after": later["latency_ms"]["p50"]},
    "rss_mib": {"idle": idle / 1024, "flood_peak": peak / 1024, "after": after / 1024},
}, indent=1))
PY
