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

bench: build
	scripts/bench.sh $(BUILD_DIR)

models: deps
	@echo "make models: not built yet (the models issue adds training and export)"

run: deps
	@echo "make run: not built yet (the gem-server issue adds the server)"

clean:
	rm -rf $(BUILD_DIR)
