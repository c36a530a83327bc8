# Sourced by the benchmark scripts (scripts/*_bench.sh, tests/bench/python_server_bench.sh).

# write_fashion_png PATH: the first Fashion-MNIST test image (an ankle boot) as a 28x28
# greyscale PNG, the input every Classify benchmark sends.
write_fashion_png() {
  /usr/bin/python3 - "$1" <<'PY'
import gzip, sys
import numpy as np
from PIL import Image
with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
    pixels = f.read(16 + 784)[16:]
Image.fromarray(np.frombuffer(pixels, dtype=np.uint8).reshape(28, 28), "L").save(sys.argv[1])
PY
}

# start_gem_server BUILD_DIR LOG [FLAGS...]: gem-server with deploy/gemserve.yaml (and
# FLAGS) on free ports, stopped when the calling script exits. Sets `server` (its PID) and
# `address` (gRPC).
start_gem_server() {
  "$1/gem-server" --config deploy/gemserve.yaml --listen 127.0.0.1:0 \
    --metrics-listen 127.0.0.1:0 "${@:3}" > "$2" 2>&1 &
  server=$!
  trap 'kill $server 2>/dev/null; wait $server 2>/dev/null || true' EXIT
  for _ in $(seq 240); do grep -q "grpc listening" "$2" && break; sleep 0.5; done
  address=$(sed -n 's/^grpc listening on //p' "$2")
}
