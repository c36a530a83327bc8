#!/usr/bin/env bash
# Stages everything the gemserve runtime image holds besides its apt packages under a
# root directory DEST, from a finished build:
#
#   DEST/opt/gemserve/bin/gem-server, gem-client      RUNPATH $ORIGIN/../lib
#   DEST/opt/gemserve/lib/libgem_ops.so               (+ the CUDA LibTorch, TORCH_LIB_DIR)
#   DEST/opt/gemserve/models/repository/              the demo model repository
#   DEST/opt/gemserve/deploy/gemserve.yaml            the default config
#
# so that /opt/gemserve is the working directory of the image and the config's relative
# model_repository resolves as in the source tree. The Dockerfile's build stage runs it
# with DEST=/stage and copies /stage into the runtime image; the tests run it into a
# temporary directory and serve from there.
#
#   DEST=DIR [BUILD_DIR=build] [TORCH_LIB_DIR=/opt/libtorch/lib] scripts/container/runtime-stage.sh
#
# BUILD_DIR: the CMake build directory (gem-server, gem-client, server/ops/libgem_ops.so).
# TORCH_LIB_DIR: set for the CUDA image: LibTorch's lib/ (the official zip ships the CUDA
# runtime, cuBLAS and cuDNN there), copied into DEST/opt/gemserve/lib.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src=$(cd "$here/../.." && pwd)
: "${DEST:?set DEST to the staging root (/ in an image, a temporary directory in a test)}"
build=${BUILD_DIR:-build}
case "$build" in /*) ;; *) build="$src/$build";; esac
python=${PYTHON:-/usr/bin/python3}
prefix="$DEST/opt/gemserve"

for f in gem-server gem-client server/ops/libgem_ops.so; do
  [ -f "$build/$f" ] || { echo "runtime-stage: no $build/$f (build gem-server and gem-client first)" >&2; exit 1; }
done

install -d "$prefix/bin" "$prefix/lib" "$prefix/models" "$prefix/deploy"
install -m 0755 "$build/gem-server" "$build/gem-client" "$prefix/bin/"
install -m 0644 "$build/server/ops/libgem_ops.so" "$prefix/lib/"
if [ -n "${TORCH_LIB_DIR:-}" ]; then
  cp -a "$TORCH_LIB_DIR"/*.so* "$prefix/lib/"
fi

# The linker's RUNPATHs point into the build tree (and, for the CUDA image, into the
# LibTorch it was built with); the staged files find their libraries in lib/ instead.
# A file without one (gem-client; the CPU libgem_ops.so) needs none.
set_runpath() {
  if [ -n "$("$python" "$here/set-runpath.py" --print "$1")" ]; then
    "$python" "$here/set-runpath.py" "$1" "$2"
  fi
}
set_runpath "$prefix/bin/gem-server" '$ORIGIN/../lib'
set_runpath "$prefix/bin/gem-client" '$ORIGIN/../lib'
set_runpath "$prefix/lib/libgem_ops.so" '$ORIGIN'

rm -rf "$prefix/models/repository"
cp -a "$src/models/repository" "$prefix/models/repository"
find "$prefix/models/repository" -name __pycache__ -prune -exec rm -rf {} +
install -m 0644 "$src/deploy/gemserve.yaml" "$prefix/deploy/gemserve.yaml"
echo "runtime-stage: staged $(du -sh "$prefix" | cut -f1) under $prefix"
