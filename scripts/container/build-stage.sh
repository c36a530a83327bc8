#!/usr/bin/env bash
# The Dockerfile's build stage after scripts/install-deps.sh: configures a Release build
# of gem-server and gem-client only (no tests, no benchmarks), builds them, then stages
# the runtime files under STAGE with runtime-stage.sh.
#
#   [VARIANT=cpu|cuda] [BUILD_DIR=/tmp/gemserve-build] [STAGE=/stage] scripts/container/build-stage.sh
#
# VARIANT=cuda builds against the LibTorch in TORCH_DIR (default /opt/libtorch, put there
# by cuda-deps.sh) with the CUDA GEM kernels for CUDA_ARCHITECTURES (no GPU is visible
# while an image builds, so CMake's default "native" cannot work), and bundles that
# LibTorch's lib/ into the image.
set -euo pipefail
src=$(cd "$(dirname "$0")/../.." && pwd)
variant=${VARIANT:-cpu}
build=${BUILD_DIR:-/tmp/gemserve-build}
stage=${STAGE:-/stage}
flags=(-DCMAKE_BUILD_TYPE=Release -DGEMSERVE_TESTS=OFF -DGEMSERVE_BENCHMARKS=OFF)
torch_lib=""
case "$variant" in
  cpu) flags+=(-DGEMSERVE_CUDA=OFF) ;;
  cuda)
    torch=${TORCH_DIR:-/opt/libtorch}
    flags+=(-DGEMSERVE_CUDA=ON -DCMAKE_PREFIX_PATH="$torch"
            -DCMAKE_CUDA_COMPILER=/usr/local/cuda/bin/nvcc
            -DCMAKE_CUDA_ARCHITECTURES="${CUDA_ARCHITECTURES:-80;86;89;90}")
    torch_lib="$torch/lib" ;;
  *) echo "build-stage: VARIANT must be cpu or cuda, not '$variant'" >&2; exit 2 ;;
esac
cmake -S "$src" -B "$build" "${flags[@]}"
cmake --build "$build" --target gem-server gem-client -j "$(nproc)"
DEST="$stage" BUILD_DIR="$build" TORCH_LIB_DIR="$torch_lib" "$src/scripts/container/runtime-stage.sh"
