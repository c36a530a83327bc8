"""tests/bench/python_server.py, the plain Python baseline of the benchmarks, answers
Classify like torch.jit.load of the same model.pt does, lists its model as a classify
model and rejects undecodable images with INVALID_ARGUMENT."""
import json
import os
import queue
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import gemserve_testing as gt

VARIANT_DIR = gt.REPO / "models" / "repository" / "resnet20-fashion" / "gem-n1"


@pytest.fixture(scope="module")
def python_server():
    env = dict(os.environ)
    env.setdefault("GEMSERVE_OPS_LIB", str(gt.build_dir() / "server" / "ops" / "libgem_ops.so"))
    process = subprocess.Popen(
        [sys.executable, str(gt.REPO / "tests" / "bench" / "python_server.py"),
         "--model-dir", str(VARIANT_DIR), "--listen", "127.0.0.1:0",
         "--workers", "2", "--threads", "1"],
        cwd=gt.REPO, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True)
    lines = queue.Queue()

    def pump():
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    output, address = [], None
    deadline = time.monotonic() + 60
    try:
        while address is None:
            try:
                line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                pytest.fail("python_server.py printed no 'listening on' line:\n" + "".join(output))
            if line is None:
                pytest.fail(f"python_server.py exited with {process.wait()}:\n" + "".join(output))
            output.append(line)
            if line.startswith("listening on "):
                address = line.split()[-1]
        client = gt.InferenceClient(address)
        yield client
        client.close()
    finally:
        gt.stop_process(process)


def test_top1_matches_torch_jit_load(python_server):
    import torch
    gt.load_gem_ops()
    config = json.loads((VARIANT_DIR / "model.json").read_text())
    model = torch.jit.load(str(VARIANT_DIR / "model.pt"), map_location="cpu").eval()
    labels = (VARIANT_DIR / config["labels"]).read_text().splitlines()
    mean, std = config["input"]["mean"][0], config["input"]["std"][0]
    pb = gt.inference_pb2()
    for pixels, _ in gt.fashion_mnist_test(4):
        x = (np.frombuffer(pixels, dtype=np.uint8).astype(np.float32) / 255.0 - mean) / std
        with torch.inference_mode():
            expected = torch.softmax(model(torch.from_numpy(x).view(1, 1, 28, 28))[0], 0)
        response = python_server.classify(pb.ClassifyRequest(
            model="resnet20-fashion", variant="gem-n1", image=gt.png_bytes(pixels), top_k=3),
            timeout=30)
        assert (response.model, response.variant) == ("resnet20-fashion", "gem-n1")
        assert len(response.predictions) == 3
        top = response.predictions[0]
        assert top.index == int(expected.argmax())
        assert top.label == labels[top.index]
        assert top.probability == pytest.approx(float(expected.max()), abs=1e-4)
        probabilities = [p.probability for p in response.predictions]
        assert probabilities == sorted(probabilities, reverse=True)


def test_lists_a_classify_model(python_server):
    pb = gt.inference_pb2()
    response = python_server.list_models(pb.ListModelsRequest(), timeout=30)
    assert [(m.name, m.task, m.default_variant) for m in response.models] == [
        ("resnet20-fashion", "classify", "gem-n1")]
    assert [v.name for v in response.models[0].variants] == ["gem-n1"]


def test_undecodable_image_is_invalid_argument(python_server):
    import grpc
    pb = gt.inference_pb2()
    with pytest.raises(grpc.RpcError) as error:
        python_server.classify(pb.ClassifyRequest(model="resnet20-fashion", image=b"not a png"),
                               timeout=30)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "image" in error.value.details()
