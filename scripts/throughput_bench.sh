#!/usr/bin/env bash
# Throughput of gem-server against its limits, on this machine (issue 11): writes JSON
# lines under BUILD_DIR/bench/ and the "throughput" section of docs/PERFORMANCE.md with
# docs/throughput_*.png.
#   1. the in-process limit: resnet20-fashion forwards from C++ by batch size, per
#      variant (classify_bench), and GPT-2 decode tokens/s by batch (decode_bench);
#   2. gem-server Classify at concurrency 1, 4, 16, 64 per variant, and latency against
#      offered load (open loop, Poisson arrivals) up to past saturation;
#   3. Generate at 1, 2, 4, 8, 16 concurrent streams;
#   4. a CPU profile of gem-server at saturation (perf), grouped by where the time goes;
#   5. a plain Python grpcio + torch server under the same load (tests/bench/python_server.py).
# The load generator runs on the same cores as the server. Usage:
#   scripts/throughput_bench.sh [BUILD_DIR] [SECONDS]
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/bench_lib.sh
build=${1:-build}
seconds=${2:-4}
out=$build/bench
mkdir -p "$out"
variants="relu gelu gem-n1 gem-n2 egem-n1-e1e-4 segem-n1-e1e-4"
resnet=models/repository/resnet20-fashion
gpt=models/repository/gpt2-kjv
client="$build/gem-client"

write_fashion_png "$out/shirt.png"
image="$out/shirt.png"

step() { echo "throughput bench: $*" >&2; }

# Tags each JSON line read on stdin with the given key=value pairs (values as JSON).
tag() {
  /usr/bin/python3 -c '
import json, sys
extra = {k: json.loads(v) for k, v in (a.split("=", 1) for a in sys.argv[1:])}
for line in sys.stdin:
    if line.strip():
        print(json.dumps({**json.loads(line), **extra}))' "$@"
}

step "1/5 in-process Classify by batch size, per variant (1 thread x 2 copies at once, 1 x 1)"
: > "$out/inprocess_classify.jsonl"
dirs=""
for v in $variants; do dirs="$dirs $resnet/$v"; done
"$build/tests/bench/classify_bench" --threads 1 --workers 2 --seconds 2 \
  --batches 1,2,4,8,16,32,64 $dirs >> "$out/inprocess_classify.jsonl"
"$build/tests/bench/classify_bench" --threads 1 --workers 1 --seconds 2 \
  --batches 1,2,4,8,16,32,64 $dirs >> "$out/inprocess_classify.jsonl"

step "1/5 in-process decode tokens/s by batch, per variant"
gpt_dirs=""
for v in $variants; do gpt_dirs="$gpt_dirs $gpt/$v"; done
"$build/tests/bench/decode_bench" --batches 1,2,4,8,16 --threads 1 $gpt_dirs > "$out/inprocess_decode.jsonl"

step "1/5 (and 5/5) each variant's model latency relative to relu, variants taking turns"
"$build/tests/bench/variant_latency_bench" --steps 1000 --batch 1 $dirs \
  > "$out/variant_latency.jsonl"
"$build/tests/bench/variant_latency_bench" --steps 150 --batch 16 $dirs \
  >> "$out/variant_latency.jsonl"
"$build/tests/bench/variant_latency_bench" --steps 1000 --batch 1 $gpt_dirs \
  >> "$out/variant_latency.jsonl"

start_gem_server "$build" "$out/throughput_server.log"
step "gem-server at $address (deploy/gemserve.yaml), $seconds s per point"

step "2/5 Classify by concurrency, per variant"
: > "$out/server_classify.jsonl"
for c in 1 4 16 64; do
  for v in $variants; do
    "$client" --server "$address" bench --model resnet20-fashion --variant "$v" --image "$image" \
      --concurrency "$c" --duration "${seconds}s" --json | tag "variant=\"$v\"" "concurrency=$c" \
      >> "$out/server_classify.jsonl"
  done
done

step "2/5 Classify latency against offered load (open loop, gem-n1)"
saturation=$(/usr/bin/python3 -c '
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
print(max(r["throughput_rps"] for r in rows if r["variant"] == "gem-n1"))' "$out/server_classify.jsonl")
: > "$out/server_open_loop.jsonl"
# CPU seconds gem-server has used so far (user + system).
server_cpu_s() { awk -v tick="$(getconf CLK_TCK)" '{print ($14 + $15) / tick}' "/proc/$server/stat"; }
for fraction in 0.1 0.25 0.5 0.75 0.9 1.0 1.2; do
  rate=$(/usr/bin/python3 -c "print(round($saturation * $fraction, 1))")
  before=$(server_cpu_s)
  /usr/bin/time -f '%U %S' -o "$out/client_cpu" "$client" --server "$address" bench \
    --model resnet20-fashion --variant gem-n1 --image "$image" \
    --rate "$rate" --duration "${seconds}s" --json > "$out/open_loop_point.json"
  # Cores each side used over the point's wall time: how busy the 2 cores really were.
  cores=$(/usr/bin/python3 -c '
import json, sys
wall = json.load(open(sys.argv[1]))["wall_s"]
user, system = map(float, open(sys.argv[2]).read().split()[-2:])
print(round((float(sys.argv[4]) - float(sys.argv[3])) / wall, 3), round((user + system) / wall, 3))' \
    "$out/open_loop_point.json" "$out/client_cpu" "$before" "$(server_cpu_s)")
  tag "fraction=$fraction" "saturation_rps=$saturation" "server_cores=${cores% *}" \
    "client_cores=${cores#* }" < "$out/open_loop_point.json" >> "$out/server_open_loop.jsonl"
done

step "3/5 Generate by concurrent streams (gpt2-kjv/gem-n2, 64 new tokens)"
: > "$out/server_generate.jsonl"
for s in 1 2 4 8 16; do
  "$client" --server "$address" bench --model gpt2-kjv --variant gem-n2 --max-tokens 64 \
    --concurrency "$s" --duration "${seconds}s" --json | tag "streams=$s" >> "$out/server_generate.jsonl"
done

step "4/5 CPU profile of gem-server at saturation (perf, 32 clients, gem-n1)"
"$client" --server "$address" bench --model resnet20-fashion --variant gem-n1 --image "$image" \
  --concurrency 32 --duration "$((seconds + 2))s" --json > "$out/profile_load.json" &
load=$!
sleep 1
perf record -e cpu-clock -F 499 -p "$server" -o "$out/server.perf" -- sleep "$seconds" 2> /dev/null
wait $load
perf report -i "$out/server.perf" --no-children --sort dso --stdio -g none 2> /dev/null \
  > "$out/server_profile.txt"
step "5/5 gem-server and a plain Python grpcio + torch server under the same load (32 clients)"
"$client" --server "$address" bench --model resnet20-fashion --variant gem-n1 --image "$image" \
  --concurrency 32 --duration "${seconds}s" --json > "$out/python_comparison_load.json"
kill $server; wait $server 2>/dev/null || true
trap - EXIT
rm -f "$out/python_server.jsonl"
tests/bench/python_server_bench.sh "$build" "$seconds" >&2

/usr/bin/python3 scripts/throughput_report.py --bench-dir "$out" --markdown docs/PERFORMANCE.md \
  --plots docs --profile-before docs/profile_before_issue11.txt \
  --command "scripts/throughput_bench.sh $build $seconds"
step "wrote the throughput section of docs/PERFORMANCE.md and docs/throughput_*.png"
