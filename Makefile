# gemserve — the commands of the README. Each target installs missing system
# packages first (scripts/install-deps.sh, idempotent), so they work on a fresh
# Debian 12 machine.

BUILD_DIR ?= build
JOBS ?= $(shell nproc)
PYTHON := /usr/bin/python3
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps build build-serve test test-cpp test-python test-sanitize fuzz soak bench models run clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

# Only what `make run` and the README's sessions need: gem-server (with the GEM operator
# library), gem-client and the Python client package (build/client/python).
build-serve: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS) --target gem-server gem-client gemserve_python_client

test: build
	$(MAKE) --no-print-directory test-cpp test-python

test-cpp:
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

test-python:
	PYTHONPATH=models GEMSERVE_BUILD_DIR=$(abspath $(BUILD_DIR)) \
	  $(PYTHON) -m pytest -q --durations=15 tests/python

# The C++ unit and integration tests built with ASan + UBSan (GEMSERVE_SANITIZE) in their
# own build dir. -O1 -g1: line tables are all a report needs, and they build about a third
# faster than RelWithDebInfo's -O2 -g. No CUDA: `make test` compile-checks the kernels,
# and nothing here could run them. The options reach the integration tests' sanitized
# gem-server through the environment:
#   detect_leaks=1              LeakSanitizer at every exit, gem-server's after SIGTERM too
#   quarantine_size_mb=64       freed memory ASan holds back (default 256 MB) counts as
#                               RSS: GenerateLimitsTest's check that RSS stays within 10%
#                               across 100 cancelled streams saw +100-115 MB at 256 and
#                               passes at 64; use after free is still caught within 64 MB
#   check_initialization_order=1, strict_init_order=1
#                               a gemserve global read by another file's initializer
#                               before its own initializer has run is a report
#   detect_stack_use_after_return=1
#                               pointers to a returned frame's locals (callbacks, reactors)
#   print_stacktrace=1          UBSan prints no stack by default
#   halt_on_error=1             a UBSan report ends the process, so its test fails
# gem-server's reports at exit (leaks after SIGTERM) go to its test's output, which fails
# only if the test checks the exit status: the last step fails on any report in the log.
SANITIZE_DIR := build-sanitize
SANITIZE_ENV := \
  ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=64:check_initialization_order=1:strict_init_order=1:detect_stack_use_after_return=1 \
  UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
SANITIZER_REPORT := ^==[0-9]+==ERROR: (Address|Leak)Sanitizer|: runtime error:

test-sanitize: deps
	cmake -S . -B $(SANITIZE_DIR) -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g1 -DNDEBUG" \
	  -DGEMSERVE_SANITIZE=ON -DGEMSERVE_BENCHMARKS=OFF -DGEMSERVE_CUDA=OFF
	cmake --build $(SANITIZE_DIR) -j $(JOBS)
	$(SANITIZE_ENV) ctest --test-dir $(SANITIZE_DIR) --output-on-failure -j $(JOBS); \
	  status=$$?; \
	  if grep -E -A40 '$(SANITIZER_REPORT)' $(SANITIZE_DIR)/Testing/Temporary/LastTest.log; then \
	    echo "test-sanitize: sanitizer reports above ($(SANITIZE_DIR)/Testing/Temporary/LastTest.log)"; \
	    exit 1; \
	  fi; \
	  exit $$status

# libFuzzer targets (tests/fuzz: image decoding, tokenizer, config, requests) built with
# clang, ASan and UBSan (GEMSERVE_FUZZ) in their own build dir, only what they need; then
# each runs FUZZ_SECONDS on a temporary copy of its seed corpus (tests/fuzz/run.sh). Any
# crash, failed check, leak, timeout or out-of-memory report fails the target.
FUZZ_DIR := build-fuzz
FUZZ_SECONDS ?= 60

fuzz: deps
	cmake -S . -B $(FUZZ_DIR) -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo \
	  -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -gline-tables-only" -DGEMSERVE_FUZZ=ON \
	  -DGEMSERVE_TESTS=OFF -DGEMSERVE_BENCHMARKS=OFF -DGEMSERVE_CUDA=OFF
	cmake --build $(FUZZ_DIR) --target gemserve_fuzzers -j $(JOBS)
	tests/fuzz/run.sh $(FUZZ_DIR) $(FUZZ_SECONDS)

# The operator benchmark, serving latency per variant, then throughput against the
# in-process limit and a plain Python server; each writes its section of docs/PERFORMANCE.md.
# Mixed load for SOAK_MINUTES (Classify, Generate, cancelled streams, reloads, hostile
# requests); fails on an unexpected error, RSS growth or an unstable p99. Not in CI.
SOAK_MINUTES ?= 10
soak: build
	$(PYTHON) scripts/soak.py $(BUILD_DIR) $(SOAK_MINUTES)

bench: build
	scripts/bench.sh $(BUILD_DIR)
	scripts/serving_bench.sh $(BUILD_DIR)
	scripts/throughput_bench.sh $(BUILD_DIR)

# Retrains every demo variant and re-exports models/repository (long: about 98 minutes
# on 2 cores; progress bars and per-epoch lines show where it is).
models: build
	PYTHONPATH=models $(PYTHON) models/train.py --model all --variant all
	PYTHONPATH=models $(PYTHON) models/export.py --model all --variant all
	PYTHONPATH=models $(PYTHON) models/plots.py

# Serves the committed demo repository with deploy/gemserve.yaml.
run: build-serve
	$(BUILD_DIR)/gem-server --config deploy/gemserve.yaml

clean:
	rm -rf $(BUILD_DIR)
