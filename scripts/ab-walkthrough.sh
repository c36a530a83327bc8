#!/usr/bin/env bash
# The README's "A/B in five minutes" as one script: starts gem-server with
# deploy/gemserve.yaml (what `make run` serves), runs the commands, prints their output.
set -u
cd "$(dirname "$0")/.."
log="${TMPDIR:-/tmp}/gemserve-ab-walkthrough.log"
build/gem-server --config deploy/gemserve.yaml > "$log" 2>&1 &
SERVER=$!
for _ in $(seq 120); do grep -q "metrics listening" "$log" && break; sleep 1; done
run() { echo "\$ $*"; eval "$@"; echo; }
run build/gem-client experiments
run build/gem-client classify --model resnet20-fashion --routing-key user-42 examples/ankle-boot.png
run build/gem-client classify --model resnet20-fashion --routing-key user-42 examples/pullover.png
echo '$ for i in $(seq 1 100); do ...classify --routing-key user-$i ... ; gem-client feedback --request-id $id --label $label; done'
for i in $(seq 1 100); do for item in ankle-boot:9 pullover:2 trouser:1; do
  id=$(build/gem-client classify --model resnet20-fashion --routing-key user-$i examples/${item%:*}.png | sed -n 's/.*request_id \([^,]*\),.*/\1/p')
  build/gem-client feedback --request-id "$id" --label "${item#*:}" > /dev/null
done; done
echo
run build/gem-client bench --model resnet20-fashion --image examples/pullover.png --routing-keys 1000 --concurrency 8 --duration 60s
run build/gem-client experiments
run build/gem-client split --model resnet20-fashion gelu=70,gem-n1=30
run build/gem-client compare --model resnet20-fashion examples/trouser.png
run build/gem-client report
run "curl -s 127.0.0.1:9464/metrics | grep -E '^gemserve_(ab_assignments_total|experiment_weight|shadow_comparisons_total)'"
kill $SERVER; wait $SERVER
