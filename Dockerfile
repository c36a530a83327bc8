# gemserve container image, two stages (docs/DEPLOY.md, "Container").
#
#   docker build -t gemserve .                          # CPU (Debian's LibTorch 1.13)
#   docker build -t gemserve:cuda --build-arg VARIANT=cuda .   # CUDA LibTorch from pytorch.org
#   docker run --rm -p 50051:50051 -p 9464:9464 gemserve
#
# The steps are scripts under scripts/container/, shared with
# tests/python/test_container_scripts.py, which runs runtime-stage.sh into a temporary
# root and serves from it.
ARG VARIANT=cpu

# ---------------------------------------------------------------------------- build
FROM debian:bookworm AS build
ARG VARIANT
# VARIANT=cuda only (scripts/container/cuda-deps.sh):
ARG CUDA_VERSION=12-4
ARG LIBTORCH_URL=https://download.pytorch.org/libtorch/cu124/libtorch-cxx11-abi-shared-with-deps-2.5.1%2Bcu124.zip
ARG LIBTORCH_SHA256=
ARG CUDA_ARCHITECTURES=80;86;89;90
WORKDIR /src
# The one list of system packages, as for `make` and CI (a layer of its own, so that a
# source change does not reinstall it).
COPY scripts/install-deps.sh scripts/install-deps.sh
RUN scripts/install-deps.sh && rm -rf /var/lib/apt/lists/*
COPY scripts/container/cuda-deps.sh scripts/container/cuda-deps.sh
RUN if [ "$VARIANT" = cuda ]; then \
      CUDA_VERSION="$CUDA_VERSION" LIBTORCH_URL="$LIBTORCH_URL" LIBTORCH_SHA256="$LIBTORCH_SHA256" \
        scripts/container/cuda-deps.sh; \
    fi
COPY . .
RUN VARIANT="$VARIANT" CUDA_ARCHITECTURES="$CUDA_ARCHITECTURES" STAGE=/stage \
      scripts/container/build-stage.sh

# -------------------------------------------------------------------------- runtime
FROM debian:bookworm-slim AS runtime
ARG VARIANT
COPY scripts/container/runtime-packages.sh scripts/container/runtime-packages.txt /tmp/gemserve-container/
RUN /tmp/gemserve-container/runtime-packages.sh --install "$VARIANT" \
 && rm -rf /tmp/gemserve-container \
 && groupadd --system --gid 10001 gemserve \
 && useradd --system --uid 10001 --gid gemserve --home-dir /opt/gemserve --no-create-home \
      --shell /usr/sbin/nologin gemserve
# bin/, lib/, models/repository/, deploy/gemserve.yaml (scripts/container/runtime-stage.sh)
COPY --from=build /stage/ /
WORKDIR /opt/gemserve
ENV PATH=/opt/gemserve/bin:$PATH
USER 10001:10001
# gRPC (Inference, Admin, grpc.health.v1, reflection); HTTP /metrics, /healthz, /
EXPOSE 50051 9464
# Through the gRPC health service. With tls: in the config, override it (the check speaks
# plaintext): --health-cmd 'gem-client --tls-ca CA --server HOST:50051 health'.
HEALTHCHECK --interval=15s --timeout=5s --start-period=60s --retries=3 \
  CMD ["gem-client", "--server", "127.0.0.1:50051", "--connect-timeout", "3", "health", "--timeout", "1"]
# The default config listens on 127.0.0.1; in a container the ports must be reachable
# from outside it. Flags override the config; a mounted config: --config /etc/gemserve/gemserve.yaml.
ENTRYPOINT ["gem-server"]
CMD ["--config", "deploy/gemserve.yaml", "--listen", "0.0.0.0:50051", "--metrics-listen", "0.0.0.0:9464"]
