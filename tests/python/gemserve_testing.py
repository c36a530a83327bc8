"""Helpers for Python tests that run a real gem-server: the build directory, the server
process on free ports, message classes generated from the .proto at test time (protoc,
no grpc_tools), raw gRPC calls, `gem-client` runs, Prometheus text and the
/api/v1/experiments JSON, the Fashion-MNIST test set, PNG encoding and the GEM operator
library for torch.jit.load.

The build is taken from $GEMSERVE_BUILD_DIR (default: build/ under the repository root);
the GEM operator from $GEMSERVE_OPS_LIB, else $GEMSERVE_BUILD_DIR/server/ops/libgem_ops.so.
"""
import gzip
import importlib.util
import json
import os
import re
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")


def build_dir() -> Path:
    path = Path(os.environ.get("GEMSERVE_BUILD_DIR", REPO / "build"))
    for binary in ("gem-server", "gem-client"):
        if not os.access(path / binary, os.X_OK):
            pytest.fail(f"no {binary} in {path}: build first, or set GEMSERVE_BUILD_DIR")
    return path


def load_gem_ops() -> None:
    """Registers torch.ops.gem.gem (needed by the GEM-family TorchScript models)."""
    os.environ.setdefault("GEMSERVE_OPS_LIB", str(build_dir() / "server" / "ops" / "libgem_ops.so"))
    from gemmodels import ops
    try:
        ops.load()
    except (FileNotFoundError, OSError, RuntimeError) as error:
        pytest.fail(f"cannot load the GEM operator library: {error}")


# ----------------------------------------------------------------------------- protos

_PB2 = None
_PB2_LOCK = threading.Lock()


def inference_pb2():
    """gemserve/v1/inference.proto's message classes, generated once per process."""
    global _PB2
    with _PB2_LOCK:
        if _PB2 is None:
            out = tempfile.mkdtemp(prefix="gemserve-pb2-")
            subprocess.run(["protoc", f"--python_out={out}", "-I", str(REPO / "proto"),
                            str(REPO / "proto" / "gemserve" / "v1" / "inference.proto")],
                           check=True, capture_output=True, text=True)
            path = Path(out) / "gemserve" / "v1" / "inference_pb2.py"
            spec = importlib.util.spec_from_file_location("gemserve_v1_inference_pb2", path)
            module = importlib.util.module_from_spec(spec)
            sys.modules[spec.name] = module
            spec.loader.exec_module(module)
            _PB2 = module
        return _PB2


class InferenceClient:
    """The Inference service over a plain channel, without generated stubs."""

    def __init__(self, address: str):
        import grpc
        pb = inference_pb2()
        self.channel = grpc.insecure_channel(address)
        base = "/gemserve.v1.Inference/"

        def unary(name, request, response):
            return self.channel.unary_unary(base + name,
                                            request_serializer=request.SerializeToString,
                                            response_deserializer=response.FromString)

        self.classify = unary("Classify", pb.ClassifyRequest, pb.ClassifyResponse)
        self.feedback = unary("Feedback", pb.FeedbackRequest, pb.FeedbackResponse)
        self.list_models = unary("ListModels", pb.ListModelsRequest, pb.ListModelsResponse)
        self.generate = self.channel.unary_stream(
            base + "Generate", request_serializer=pb.GenerateRequest.SerializeToString,
            response_deserializer=pb.GenerateResponse.FromString)

    def close(self):
        self.channel.close()


# ----------------------------------------------------------------------------- server

def stop_process(process: subprocess.Popen, grace_s: float = 10) -> None:
    """Terminates, then kills, one process this test started (and reaps it)."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def http_get(url: str, timeout: float = 10):
    """(status, body) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


class Server:
    """build/gem-server on free ports (127.0.0.1:0); the addresses come from the lines it
    prints at start. Always stop() it (it terminates, then kills, only this process).
    model_repository: default models/repository; name: how failures call it (a test that
    runs several servers names them)."""

    def __init__(self, config_path, log_path, start_timeout_s: float = 180,
                 model_repository=None, name: str = "gem-server"):
        self.name = name
        self.log_path = Path(log_path)
        self._log = open(self.log_path, "w")
        self._lines = []
        self._seen = threading.Condition()
        self.process = subprocess.Popen(
            [str(build_dir() / "gem-server"), "--config", str(config_path),
             "--model-repository", str(model_repository or REPO / "models" / "repository"),
             "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()
        try:
            deadline = time.monotonic() + start_timeout_s
            self.grpc = self._address("grpc", deadline)
            self.metrics = self._address("metrics", deadline)
            self._wait_healthy(deadline)
        except BaseException:
            self.stop()
            raise

    def _pump(self):
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            with self._seen:
                self._lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def log_tail(self, chars: int = 4000) -> str:
        with self._seen:
            return "".join(self._lines)[-chars:]

    def _address(self, what, deadline):
        pattern = re.compile(what + r" listening on (\S+)")
        with self._seen:
            while True:
                for line in self._lines:
                    match = pattern.search(line)
                    if match:
                        return match.group(1)
                if self.process.poll() is not None:
                    pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"{self.name} printed no '{what} listening on' line:\n{self.log_tail()}")
                self._seen.wait(timeout=1)

    def _wait_healthy(self, deadline):
        while True:
            status, _ = http_get(f"http://{self.metrics}/healthz", timeout=2)
            if status == 200:
                return
            if self.process.poll() is not None:
                pytest.fail(f"{self.name} exited with {self.process.returncode}:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                pytest.fail(f"{self.name} not healthy in time:\n{self.log_tail()}")
            time.sleep(0.3)

    def alive(self) -> bool:
        return self.process.poll() is None

    def experiments(self) -> dict:
        """/api/v1/experiments as {model: ExperimentStatistics JSON}."""
        status, body = http_get(f"http://{self.metrics}/api/v1/experiments")
        assert status == 200, f"/api/v1/experiments answered {status}: {body[:300]}"
        return {e["experiment"]["model"]: e for e in json.loads(body)["experiments"]}

    def metrics_samples(self, family: str) -> list:
        """[(labels dict, value)] of every sample of one metric family in /metrics."""
        status, body = http_get(f"http://{self.metrics}/metrics")
        assert status == 200, f"/metrics answered {status}"
        return parse_prometheus(body, family)

    def client_command(self, *args) -> list:
        """The argument list of `gem-client --server GRPC ARGS...` against this server."""
        return [str(build_dir() / "gem-client"), "--server", self.grpc, *map(str, args)]

    def client(self, *args, timeout: float = 30) -> subprocess.CompletedProcess:
        """Runs `gem-client --server GRPC ARGS...` to its end; stdout and stderr captured."""
        return subprocess.run(self.client_command(*args), cwd=REPO, stdin=subprocess.DEVNULL,
                              capture_output=True, text=True, timeout=timeout)

    def stop(self, grace_s: float = 10):
        stop_process(self.process, grace_s)
        if not self._log.closed:
            self._log.close()


_SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)')
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def parse_prometheus(text: str, family: str) -> list:
    samples = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        match = _SAMPLE.match(line)
        if not match or match.group(1) != family:
            continue
        labels = dict(_LABEL.findall(match.group(3) or ""))
        samples.append((labels, float(match.group(4))))
    return samples


def uint(value) -> int:
    """A uint64 field of protobuf JSON (a string) or a plain number."""
    return int(value)


def comparison(pair: dict, metric: str) -> dict:
    for c in pair.get("comparisons", []):
        if c["metric"] == metric:
            return c
    raise AssertionError(f"pair {pair['baseline']}->{pair['candidate']} has no {metric}: {pair}")


def shadow_pairs(experiment: dict) -> dict:
    """{(primary, shadow): PairStatistics JSON} of an experiment's shadow pairs."""
    return {(p["baseline"], p["candidate"]): p for p in experiment.get("pairs", [])
            if p.get("shadow")}


def wait_for(predicate, timeout_s: float, what: str, server: "Server" = None, poll_s: float = 0.5):
    """Polls predicate() -> (done, detail) until done; fails with the last detail."""
    deadline = time.monotonic() + timeout_s
    while True:
        done, detail = predicate()
        if done:
            return detail
        if server is not None and not server.alive():
            pytest.fail(f"gem-server died while waiting for {what}:\n{server.log_tail()}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}: {detail}")
        time.sleep(poll_s)


def demo_subset(root: Path, parts) -> Path:
    """A model repository at root/"repository" holding only `parts` of the demo one
    ("resnet20-fashion/labels.txt", "resnet20-fashion/gem-n1", ...) as symlinks: a server
    on a few variants starts in about a second. Returns its path."""
    repository = Path(root) / "repository"
    for part in parts:
        target = repository / part
        target.parent.mkdir(parents=True, exist_ok=True)
        os.symlink(REPO / "models" / "repository" / part, target)
    return repository


# ----------------------------------------------------------------------------- data

def fashion_mnist_installed() -> bool:
    """Whether the Fashion-MNIST test set is at FASHION_MNIST."""
    return all((FASHION_MNIST / name).exists()
               for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"))


def fashion_mnist_test(count: int, start: int = 0):
    """[(28*28 uint8 pixel bytes, label)] of test images start .. start+count-1; skips the
    test when the set is not installed."""
    images = FASHION_MNIST / "t10k-images-idx3-ubyte.gz"
    labels = FASHION_MNIST / "t10k-labels-idx1-ubyte.gz"
    if not fashion_mnist_installed():
        pytest.skip(f"Fashion-MNIST test set not installed at {FASHION_MNIST}")
    with gzip.open(images) as f, gzip.open(labels) as g:
        magic, available, height, width = struct.unpack(">IIII", f.read(16))
        label_magic, label_count = struct.unpack(">II", g.read(8))
        assert magic == 2051 and label_magic == 2049 and (height, width) == (28, 28)
        assert start + count <= min(available, label_count)
        f.seek(16 + start * 28 * 28)
        g.seek(8 + start)
        pixels = f.read(count * 28 * 28)
        classes = g.read(count)
    return [(pixels[i * 784:(i + 1) * 784], classes[i]) for i in range(count)]


def png_bytes(pixels: bytes) -> bytes:
    """A 28x28 8-bit greyscale PNG of the pixels (PIL)."""
    import io
    from PIL import Image
    buffer = io.BytesIO()
    Image.frombytes("L", (28, 28), pixels).save(buffer, format="PNG")
    return buffer.getvalue()


def model_json(model: str, variant: str) -> dict:
    with open(REPO / "models" / "repository" / model / variant / "model.json") as f:
        return json.load(f)


def tokenize(model: str, variant: str, text: str) -> list:
    """GPT-2 BPE ids of text via `gem-client tokenize` and the tokenizer of model.json."""
    config = model_json(model, variant)
    variant_dir = REPO / "models" / "repository" / model / variant
    vocab = (variant_dir / config["tokenizer"]["vocab"]).resolve()
    merges = (variant_dir / config["tokenizer"]["merges"]).resolve()
    result = subprocess.run([str(build_dir() / "gem-client"), "tokenize", "--vocab", str(vocab),
                             "--merges", str(merges), text],
                            check=True, capture_output=True, text=True)
    return [int(t) for t in result.stdout.split()]
