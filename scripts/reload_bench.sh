#!/usr/bin/env bash
# Classify latency while gem-server reloads (issue 12): open-loop Classify on gem-n1 at
# half its saturation rate, in windows that alternate between quiet and reloading. In a
# reloading window gem-n1's model.pt (and gpt2-kjv/gem-n1's) is touched and ReloadModels
# called back to back, so the variant under load is loaded, warmed up and swapped again
# and again. Windows alternate so that both kinds see the same machine. Prints one JSON
# object: per window its kind, p50/p99 and errors, the reloads it saw, and the ratio of
# the median reloading p99 to the median quiet p99.
# Usage: scripts/reload_bench.sh [BUILD_DIR] [ROUNDS] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_lib.sh
build=${1:-build}
rounds=${2:-4}
seconds=${3:-4}
out=$build/bench
mkdir -p "$out"
repository=$(mktemp -d)
cp -r models/repository/. "$repository"
write_fashion_png "$out/shirt.png"
bench() {
  "$build/gem-client" --server "$address" bench --model resnet20-fashion --variant gem-n1 \
    --image "$out/shirt.png" --json "$@" 2> /dev/null
}
start_gem_server "$build" "$out/reload_server.log" --model-repository "$repository"
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true; rm -rf "$repository"' EXIT
echo "reload bench: gem-server at $address, repository copy $repository" >&2
saturation=$(bench --concurrency 16 --duration 4s | /usr/bin/python3 -c \
  'import json, sys; print(json.load(sys.stdin)["throughput_rps"])')
rate=$(/usr/bin/python3 -c "print(round($saturation / 2))")
echo "reload bench: saturation $saturation req/s; windows at $rate req/s" >&2
# Reloads until the file $out/reload_stop appears; counts them into $out/reload_count.
reload_loop() {
  local count=0
  while [ ! -e "$out/reload_stop" ]; do
    touch "$repository/resnet20-fashion/gem-n1/model.pt" "$repository/gpt2-kjv/gem-n1/model.pt"
    "$build/gem-client" --server "$address" reload > /dev/null
    count=$((count + 1))
  done
  echo $count > "$out/reload_count"
}
for round in $(seq "$rounds"); do
  for kind in quiet reloading; do
    rm -f "$out/reload_stop" "$out/reload_count"
    reloader=""
    if [ $kind = reloading ]; then
      reload_loop &
      reloader=$!
    fi
    bench --rate "$rate" --duration "${seconds}s" > "$out/reload_${kind}_$round.json"
    touch "$out/reload_stop"
    [ -n "$reloader" ] && wait $reloader
    reloads=$(cat "$out/reload_count" 2> /dev/null || echo 0)
    echo "$reloads" > "$out/reload_${kind}_${round}.reloads"
    echo "reload bench: round $round $kind done ($reloads reloads)" >&2
  done
done
/usr/bin/python3 - "$out" "$rounds" "$saturation" "$rate" <<'PY'
import json, statistics, sys
out, rounds, saturation, rate = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
windows = []
for r in range(1, rounds + 1):
    for kind in ("quiet", "reloading"):
        result = json.load(open(f"{out}/reload_{kind}_{r}.json"))
        reloads = int(open(f"{out}/reload_{kind}_{r}.reloads").read())
        windows.append({"round": r, "kind": kind, "reloads": reloads,
                        "p50_ms": result["latency_ms"]["p50"], "p99_ms": result["latency_ms"]["p99"],
                        "requests": result["requests"], "errors": result["errors"]})
p99 = lambda kind: statistics.median(w["p99_ms"] for w in windows if w["kind"] == kind)
print(json.dumps({"saturation_rps": saturation, "rate_rps": rate, "windows": windows,
                  "median_p99_quiet_ms": p99("quiet"), "median_p99_reloading_ms": p99("reloading"),
                  "p99_ratio": p99("reloading") / p99("quiet")}, indent=1))
PY
