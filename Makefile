# gemserve — the commands of the README. Each target installs missing system
# packages first (scripts/install-deps.sh, idempotent), so they work on a fresh
# Debian 12 machine.

BUILD_DIR ?= build
JOBS ?= $(shell nproc)
PYTHON := /usr/bin/python3
CMAKE_FLAGS ?= -DCMAKE_BUILD_TYPE=Release

.PHONY: all deps build test test-cpp test-python bench models run clean

all: build

deps:
	@scripts/install-deps.sh

$(BUILD_DIR)/CMakeCache.txt: | deps
	cmake -S . -B $(BUILD_DIR) $(CMAKE_FLAGS)

build: deps $(BUILD_DIR)/CMakeCache.txt
	cmake --build $(BUILD_DIR) -j $(JOBS)

test: build
	$(MAKE) --no-print-directory test-cpp test-python

test-cpp:
	ctest --test-dir $(BUILD_DIR) --output-on-failure -j $(JOBS)

test-python:
	PYTHONPATH=models GEMSERVE_BUILD_DIR=$(abspath $(BUILD_DIR)) \
	  $(PYTHON) -m pytest -q tests/python

# The operator benchmark, serving latency per variant, then throughput against the
# in-process limit and a plain Python server; each writes its section of docs/PERFORMANCE.md.
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
run: build
	$(BUILD_DIR)/gem-server --config deploy/gemserve.yaml

clean:
	rm -rf $(BUILD_DIR)
