#!/usr/bin/env bash
# Closed-loop Classify throughput and latency of the plain Python baseline server
# (tests/bench/python_server.py, resnet20-fashion/gem-n1, one forward of batch 1 per
# request), measured by `gem-client bench` (32 clients) over a small grid of settings:
#   torch threads 1, 2   x   gRPC workers 1, 2, 4
# The machine this was written on has 2 cores, so threads*workers from 1 to 8 covers
# "one request at a time, 1 or 2 cores per forward" (workers 1) up to oversubscription
# (2 threads x 4 workers); workers 4 shows whether overlapping PNG decode and protobuf
# work (GIL-bound) with forwards (GIL released) gains anything beyond the core count.
# Larger grids only add noise on 2 cores.
# Appends one JSON line per setting (the gem-client bench JSON plus "threads",
# "workers" and "run", the UTC start time of this run) to BUILD_DIR/bench/python_server.jsonl
# and prints the best setting of this run by throughput.
# Usage: tests/bench/python_server_bench.sh BUILD_DIR [SECONDS]
set -euo pipefail
build=$(cd "${1:?usage: $0 BUILD_DIR [SECONDS]}" && pwd)
duration=${2:-10}  # not $SECONDS: bash counts that up by itself
cd "$(dirname "$0")/../.."
source scripts/bench_lib.sh
py=/usr/bin/python3
model_dir=models/repository/resnet20-fashion/gem-n1
out=$build/bench
mkdir -p "$out"
jsonl=$out/python_server.jsonl
png=$out/python_server_input.png
run=$(date -u +%Y-%m-%dT%H:%M:%SZ)
export GEMSERVE_OPS_LIB=${GEMSERVE_OPS_LIB:-$build/server/ops/libgem_ops.so}

write_fashion_png "$png"

server=""
stop_server() {
  if [[ -n $server ]]; then
    kill "$server" 2>/dev/null || true
    wait "$server" 2>/dev/null || true
    server=""
  fi
}
trap stop_server EXIT

echo "python server bench: $model_dir, 32 clients, ${duration} s per setting -> $jsonl"
for threads in 1 2; do
  for workers in 1 2 4; do
    log=$out/python_server-t$threads-w$workers.log
    $py tests/bench/python_server.py --model-dir "$model_dir" --listen 127.0.0.1:0 \
      --workers "$workers" --threads "$threads" > "$log" 2>&1 &
    server=$!
    address=""
    for _ in $(seq 240); do
      address=$(sed -n 's/^listening on //p' "$log")
      [[ -n $address ]] && break
      if ! kill -0 "$server" 2>/dev/null; then break; fi
      sleep 0.5
    done
    if [[ -z $address ]]; then
      echo "python server (threads $threads, workers $workers) did not start:" >&2
      cat "$log" >&2
      exit 1
    fi
    status=0
    result=$("$build/gem-client" --server "$address" bench --model resnet20-fashion \
      --variant gem-n1 --image "$png" --concurrency 32 --duration "${duration}s" --json) \
      || status=$?
    stop_server
    line=$(grep '^{' <<< "$result" | tail -n 1 || true)
    if [[ -z $line ]]; then
      echo "gem-client bench (threads $threads, workers $workers) exited $status, no JSON:" >&2
      echo "$result" >&2
      exit 1
    fi
    $py -c 'import json, sys
line, threads, workers, run, jsonl = sys.argv[1:]
r = json.loads(line)
r.update(threads=int(threads), workers=int(workers), run=run)
with open(jsonl, "a") as f:
    f.write(json.dumps(r, sort_keys=True) + "\n")
lat = r["latency_ms"]
print("  threads %s workers %s: %7.1f req/s, p50 %6.1f ms, p99 %6.1f ms, errors %d"
      % (threads, workers, r["throughput_rps"], lat["p50"], lat["p99"], r.get("errors", 0)))
' "$line" "$threads" "$workers" "$run" "$jsonl"
  done
done
trap - EXIT

$py - "$jsonl" "$run" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
rows = [r for r in rows if r.get("run") == sys.argv[2]]
best = max(rows, key=lambda r: r["throughput_rps"])
print(f"best: threads {best['threads']} workers {best['workers']}: "
      f"{best['throughput_rps']:.1f} req/s, p50 {best['latency_ms']['p50']:.1f} ms, "
      f"p99 {best['latency_ms']['p99']:.1f} ms")
PY
