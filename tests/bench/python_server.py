#!/usr/bin/python3
"""The baseline gem-server is benchmarked against: the plain Python gRPC server a user
would write in an afternoon. It serves one classify variant of the model repository
(gemserve.v1.Inference: Classify and ListModels; every other method is UNIMPLEMENTED)
with grpcio's thread pool: one torch forward of batch 1 per request, no batching.

  /usr/bin/python3 tests/bench/python_server.py \
      --model-dir models/repository/resnet20-fashion/gem-n1 --listen 127.0.0.1:0 \
      --workers 2 --threads 1

It prints `listening on HOST:PORT` once the model is loaded and warmed up. The GEM
operator library comes from $GEMSERVE_OPS_LIB, else build/server/ops/libgem_ops.so.
Message classes are generated from proto/ with protoc at start (no grpc_tools), as
tests/python/gemserve_testing.py does. Uses Debian's Python (python3-grpcio,
python3-protobuf, python3-torch, numpy, PIL).
"""
import argparse
import importlib.util
import io
import json
import signal
import subprocess
import sys
import tempfile
import threading
import time
from concurrent import futures
from pathlib import Path

import grpc
import numpy as np
import torch
from PIL import Image

REPO = Path(__file__).resolve().parents[2]
SERVICE = "gemserve.v1.Inference"


def inference_pb2():
    """proto/gemserve/v1/inference.proto's message classes, generated with protoc."""
    out = tempfile.mkdtemp(prefix="python-server-pb2-")
    subprocess.run(["protoc", f"--python_out={out}", "-I", str(REPO / "proto"),
                    str(REPO / "proto" / "gemserve" / "v1" / "inference.proto")],
                   check=True, capture_output=True, text=True)
    spec = importlib.util.spec_from_file_location(
        "gemserve_v1_inference_pb2", Path(out) / "gemserve" / "v1" / "inference_pb2.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def load_gem_ops():
    """Registers torch.ops.gem.gem, which the GEM-family TorchScript models call."""
    sys.path.insert(0, str(REPO / "models"))
    from gemmodels import ops
    ops.load()


class Classifier:
    """One variant directory: model.pt, model.json (input normalisation) and its labels."""

    def __init__(self, model_dir: Path, pb):
        self.pb = pb
        config = json.loads((model_dir / "model.json").read_text())
        if config.get("task", "classify") != "classify":
            raise SystemExit(f"{model_dir}: task {config.get('task')!r}, not classify")
        self.config = config
        self.name, self.variant = config["name"], config["variant"]
        channels, self.height, self.width = config["input"]["shape"]
        if channels not in (1, 3):
            raise SystemExit(f"{model_dir}: {channels} input channels (1 or 3 handled)")
        self.mode = "L" if channels == 1 else "RGB"
        self.mean = torch.tensor(config["input"]["mean"], dtype=torch.float32).view(-1, 1, 1)
        self.std = torch.tensor(config["input"]["std"], dtype=torch.float32).view(-1, 1, 1)
        self.labels = (model_dir / config["labels"]).read_text().splitlines()
        self.model = torch.jit.load(str(model_dir / "model.pt"), map_location="cpu").eval()

    def warm_up(self, forwards: int = 5):
        x = torch.zeros(1, len(self.mode), self.height, self.width)
        with torch.inference_mode():
            for _ in range(forwards):
                self.model(x)

    def list_models(self, request, context):
        activation = self.config.get("activation", {})
        variant = self.pb.VariantInfo(
            name=self.variant, state="READY", activation=activation.get("kind", ""),
            n=int(activation.get("n", 0)), eps=float(activation.get("eps", 0)),
            neg_slope=float(activation.get("neg_slope", 0)))
        if "test_accuracy" in self.config:
            variant.quality = f"test_accuracy={self.config['test_accuracy']}"
        model = self.pb.ModelInfo(name=self.name, task="classify",
                                  default_variant=self.variant, variants=[variant])
        return self.pb.ListModelsResponse(models=[model])

    def classify(self, request, context):
        start = time.perf_counter()
        if request.model and request.model != self.name:
            context.abort(grpc.StatusCode.NOT_FOUND, f"no model {request.model!r}")
        if request.variant and request.variant != self.variant:
            context.abort(grpc.StatusCode.NOT_FOUND,
                          f"model {self.name!r} has no variant {request.variant!r}")
        if request.WhichOneof("input") != "image":
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          "set image (PNG or JPEG bytes); this server takes no tensor input")
        if request.top_k < 0:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, "top_k must be >= 0")
        try:
            image = Image.open(io.BytesIO(request.image)).convert(self.mode)
            if image.size != (self.width, self.height):
                image = image.resize((self.width, self.height), Image.BILINEAR)
            pixels = np.asarray(image, dtype=np.float32) / 255.0
        except Exception as error:  # PIL raises OSError, ValueError, SyntaxError, ...
            context.abort(grpc.StatusCode.INVALID_ARGUMENT,
                          f"image could not be decoded as PNG or JPEG: {error}")
        x = torch.from_numpy(pixels.reshape(self.height, self.width, -1)).permute(2, 0, 1)
        x = ((x - self.mean) / self.std).unsqueeze(0)
        inference_start = time.perf_counter()
        with torch.inference_mode():
            probabilities = torch.softmax(self.model(x)[0], dim=0)
        inference_us = int((time.perf_counter() - inference_start) * 1e6)
        k = min(request.top_k or 5, probabilities.numel())
        values, indices = torch.topk(probabilities, k)
        response = self.pb.ClassifyResponse(model=self.name, variant=self.variant)
        for p, i in zip(values.tolist(), indices.tolist()):
            response.predictions.add(index=i, probability=p,
                                     label=self.labels[i] if i < len(self.labels) else str(i))
        response.timing.inference_us = inference_us
        response.timing.total_us = int((time.perf_counter() - start) * 1e6)
        return response


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model-dir", default="models/repository/resnet20-fashion/gem-n1",
                        help="a classify variant directory of the model repository")
    parser.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT (port 0: any free)")
    parser.add_argument("--workers", type=int, default=4,
                        help="gRPC thread pool size (requests served at once)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)
    pb = inference_pb2()
    load_gem_ops()
    classifier = Classifier(Path(args.model_dir), pb)
    classifier.warm_up()

    def unary(method, request_class, response_class):
        return grpc.unary_unary_rpc_method_handler(
            method, request_deserializer=request_class.FromString,
            response_serializer=response_class.SerializeToString)

    handler = grpc.method_handlers_generic_handler(SERVICE, {
        "Classify": unary(classifier.classify, pb.ClassifyRequest, pb.ClassifyResponse),
        "ListModels": unary(classifier.list_models, pb.ListModelsRequest, pb.ListModelsResponse),
    })
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=args.workers),
                         handlers=[handler])
    port = server.add_insecure_port(args.listen)
    if port == 0:
        raise SystemExit(f"cannot listen on {args.listen}")
    server.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    print(f"listening on {args.listen.rsplit(':', 1)[0]}:{port}", flush=True)
    while not stop.wait(0.5):
        pass
    server.stop(grace=0.5).wait()


if __name__ == "__main__":
    main()
