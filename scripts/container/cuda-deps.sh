#!/usr/bin/env bash
# The CUDA image's extra build dependencies (Dockerfile, VARIANT=cuda; untested in CI,
# which has no Docker engine and no GPU):
#  - the CUDA toolkit (nvcc, headers) from NVIDIA's apt repository for Debian 12, the
#    version LibTorch was built for (CUDA_VERSION, e.g. 12-4);
#  - the official LibTorch zip for that CUDA from pytorch.org ("libtorch-cxx11-abi-shared-
#    with-deps": C++11 ABI like Debian's gRPC and protobuf; its lib/ carries the CUDA
#    runtime, cuBLAS, cuDNN and NCCL it needs), unpacked to /opt/libtorch. Set
#    LIBTORCH_SHA256 to have the download checked.
set -euo pipefail
: "${CUDA_VERSION:=12-4}"
: "${LIBTORCH_URL:=https://download.pytorch.org/libtorch/cu124/libtorch-cxx11-abi-shared-with-deps-2.5.1%2Bcu124.zip}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends ca-certificates curl unzip
curl -fsSLo /tmp/cuda-keyring.deb \
  https://developer.download.nvidia.com/compute/cuda/repos/debian12/x86_64/cuda-keyring_1.1-1_all.deb
dpkg -i /tmp/cuda-keyring.deb
apt-get update -qq
apt-get install -y -qq --no-install-recommends "cuda-toolkit-$CUDA_VERSION"
curl -fsSLo /tmp/libtorch.zip "$LIBTORCH_URL"
if [ -n "${LIBTORCH_SHA256:-}" ]; then
  echo "$LIBTORCH_SHA256  /tmp/libtorch.zip" | sha256sum -c -
fi
unzip -q /tmp/libtorch.zip -d /opt
rm -rf /tmp/libtorch.zip /tmp/cuda-keyring.deb /var/lib/apt/lists/*
