#!/usr/bin/env bash
# GPU check of the GEM operator, for a machine whose python3 has a CUDA PyTorch (2.x),
# CMake, ninja and nvcc, and no gRPC. One command, under 8 minutes; everything it
# prints is also written to gpu-check.log (or $1).
#
#   1. builds gem_ops with CMake against that PyTorch's LibTorch (CUDA kernels on);
#      if that fails, builds the same sources with torch.utils.cpp_extension instead;
#   2. runs the CUDA-vs-CPU numerics tests (tests/python/test_gem_cuda.py);
#   3. prints GB/s for fused GEM, torch GELU and a device-to-device copy at 256 MiB.
set -uo pipefail
cd "$(dirname "$0")/.."
log=${1:-gpu-check.log}
exec > >(tee "$log") 2>&1

python=${PYTHON:-python3}
build=build-gpu
export PYTHONPATH=models PYTHONUNBUFFERED=1
echo "gpu-check: $(date -u) on $(hostname)"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader || exit 1
$python -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda)" || exit 1
prefix=$($python -c "import torch; print(torch.utils.cmake_prefix_path)")
torch_lib=$($python -c "import torch, os; print(os.path.join(os.path.dirname(torch.__file__), 'lib'))")

library=""
echo "== 1. CMake build against $prefix"
if timeout 300 cmake -S . -B $build -G Ninja -DCMAKE_BUILD_TYPE=Release \
     -DCMAKE_PREFIX_PATH="$prefix" -DGEMSERVE_SERVER=OFF -DGEMSERVE_TESTS=OFF -DGEMSERVE_BENCHMARKS=OFF \
     -DCMAKE_CUDA_COMPILER="$(command -v nvcc || echo /usr/local/cuda/bin/nvcc)" &&
   timeout 300 cmake --build $build --target gem_ops; then
  library=$build/server/ops/libgem_ops.so
else
  echo "gpu-check: CMake build failed; building with torch.utils.cpp_extension instead"
  library=$($python - <<'PY'
import glob, torch.utils.cpp_extension as ext
sources = sorted(glob.glob("server/ops/gem_*.cc")) + ["server/ops/gem_cuda_kernels.cu"]
ext.load(name="gem_ops", sources=sources, extra_include_paths=["."],
         extra_cflags=["-O3", "-fopenmp", "-Wno-psabi"], extra_cuda_cflags=["-O3"],
         extra_ldflags=["-fopenmp"], is_python_module=False, verbose=False)
import os
print(os.path.join(ext._get_build_directory("gem_ops", False), "gem_ops.so"))
PY
) || { echo "gpu-check: FAILED to build the op"; exit 1; }
fi
export GEMSERVE_OPS_LIB=$(realpath "$library") LD_LIBRARY_PATH=$torch_lib:${LD_LIBRARY_PATH:-}
echo "gpu-check: op library $GEMSERVE_OPS_LIB"
ldd "$GEMSERVE_OPS_LIB" "$torch_lib/libc10.so" | grep -E "^/|stdc|gcc_s|gomp"

echo "== 2. CUDA vs CPU numerics"
$python -m pytest -q -p no:cacheprovider tests/python/test_gem_cuda.py
cuda_tests=$?
$python -m pytest -q -p no:cacheprovider tests/python/test_gem_op.py -k "not torchscript"
tests=$(( cuda_tests != 0 || $? != 0 ))

echo "== 3. bandwidth at 256 MiB"
$python scripts/gpu_bandwidth.py --mib 256
bandwidth=$?

echo "gpu-check: tests exit $tests, bandwidth exit $bandwidth; log in $log"
exit $(( tests != 0 || bandwidth != 0 ))
