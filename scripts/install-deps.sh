#!/usr/bin/env bash
# The one list of system packages gemserve needs: build, tests, benchmarks, training data.
# Idempotent: installs only what is missing, so `make` can call it every time.
# Used by the Makefile, .ci/run and the Dockerfile alike. Debian 12, apt only.
set -euo pipefail

packages=(
  # toolchain
  build-essential cmake pkg-config
  # LibTorch (CPU) and an optimized BLAS for it (reference BLAS is ~50x slower)
  libtorch-dev libopenblas0-openmp
  # gRPC, protobuf, metrics; grpc-proto: gRPC's own .protos (reflection v1 is built from it)
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler prometheus-cpp-dev
  grpc-proto
  # small libraries
  libstb-dev libpcre2-dev nlohmann-json3-dev libyaml-cpp-dev libcli11-dev
  libcpp-httplib-dev libspdlog-dev zlib1g-dev libpng-dev libjpeg62-turbo-dev
  # tcmalloc: the server's allocator (server/CMakeLists.txt says why); perf for profiles
  libgoogle-perftools-dev linux-perf
  # tests and benchmarks
  libgtest-dev libgmock-dev libbenchmark-dev prometheus openssl
  # make fuzz: clang with libFuzzer and the sanitizer runtimes, and clang's OpenMP
  clang libclang-rt-14-dev libomp-14-dev
  # the live page is tested in a real headless browser
  chromium
  # Python side: training, export, tests, plots
  python3-torch python3-numpy python3-pytest python3-tqdm python3-matplotlib python3-yaml
  python3-pil python3-grpcio python3-protobuf
  # real data sets
  dataset-fashion-mnist bible-kjv bible-kjv-text
)

missing=()
for p in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$p")
  fi
done

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#packages[@]} packages present"
  exit 0
fi

SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-deps: installing ${#missing[@]} packages: ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
