#!/usr/bin/env bash
# Runs every fuzz target of a GEMSERVE_FUZZ build for a while each (`make fuzz`):
#
#   tests/fuzz/run.sh BUILD_DIR SECONDS [TARGET...]
#
# (TARGET: image_decode, tokenizer, server_config, request; default all.)
# Each target runs alone for SECONDS on a temporary copy of its seed corpus
# (tests/fuzz/corpus/<target>/, never written to), one after the other. New inputs go to
# the copy and are thrown away; an input that crashes, leaks, times out (-timeout) or
# goes over the memory limit (-rss_limit_mb, -malloc_limit_mb) is saved as
# BUILD_DIR/fuzz-artifacts/<target>-<kind>-<sha1>, and the run fails. To keep one as a
# regression seed, copy it into the corpus as regression-<what> once it is fixed.
# Logs: BUILD_DIR/fuzz-logs/<target>.log. Reproduce: BUILD_DIR/tests/fuzz/<target>_fuzz FILE
set -euo pipefail

if [ $# -lt 2 ]; then
  echo "usage: $0 BUILD_DIR SECONDS [TARGET...]" >&2
  exit 2
fi
source_dir=$(cd "$(dirname "$0")/../.." && pwd)
build=$(cd "$1" && pwd)  # absolute: server_config_fuzz runs in a scratch directory
seconds=$2
shift 2
only=" $* "
work=$(mktemp -d "${TMPDIR:-/tmp}/gemserve-fuzz.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$build/fuzz-artifacts" "$build/fuzz-logs"

# target  max_len  extra flags. max_len: the longest input mutations make, above the
# largest seed (a 28x28 float tensor request is 3.2 KB; deploy/gemserve.yaml 3.9 KB).
targets=(
  "image_decode   16384"
  "tokenizer      4096"
  "server_config  8192   -dict=$source_dir/tests/fuzz/server_config.dict"
  "request        8192"
)

export ASAN_OPTIONS=detect_leaks=1:check_initialization_order=1:strict_init_order=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1

failed=()
for entry in "${targets[@]}"; do
  read -r name max_len extra <<<"$entry"
  [ "$only" = "  " ] || [[ "$only" == *" $name "* ]] || continue
  corpus="$work/$name"
  mkdir -p "$corpus"
  cp "$source_dir/tests/fuzz/corpus/$name/"* "$corpus/"
  log="$build/fuzz-logs/$name.log"
  echo "fuzz: $name for ${seconds}s ($(ls "$corpus" | wc -l) seeds, log $log)"
  status=0
  # shellcheck disable=SC2086  # $extra: zero or more flags
  "$build/tests/fuzz/${name}_fuzz" "$corpus" -max_total_time="$seconds" -max_len="$max_len" \
    -timeout=10 -rss_limit_mb=2048 -malloc_limit_mb=2048 -print_final_stats=1 \
    -artifact_prefix="$build/fuzz-artifacts/$name-" $extra </dev/null >"$log" 2>&1 || status=$?
  # The last status line: runs, coverage (cov: edges, ft: features), corpus, exec/s, rss.
  grep -E '^#[0-9]+' "$log" | tail -1 | sed "s/^/fuzz: $name: /" || true
  if [ "$status" -ne 0 ] ||
     grep -qE '^==[0-9]+==ERROR: |: runtime error: |^SUMMARY: |FUZZ_CHECK\(' "$log"; then
    echo "fuzz: $name FAILED (exit $status); the end of $log:"
    tail -n 60 "$log"
    failed+=("$name")
  fi
done

if [ ${#failed[@]} -ne 0 ]; then
  echo "fuzz: failed: ${failed[*]} (inputs in $build/fuzz-artifacts)"
  exit 1
fi
echo "fuzz: every target ran ${seconds}s without a report"
