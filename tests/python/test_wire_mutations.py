"""Mutated requests on the wire: valid gemserve requests, serialized, then corrupted at
random (bit flips, bytes inserted, deleted, repeated, truncated; fixed seed), sent as raw
bytes to every RPC of a real gem-server. Every answer must be OK or a status a client can
act on, with a message (never UNKNOWN, INTERNAL or UNIMPLEMENTED, never an empty
message), and the server must keep answering a valid request. Complements the catalogue
of tests/integration/errors_test.cc, whose cases are chosen by hand. Run from the
repository root:

    PYTHONPATH=models GEMSERVE_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest -q \
        tests/python/test_wire_mutations.py
"""
import os
import random
import sys

import grpc
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemserve_testing as gt  # noqa: E402

MUTANTS_PER_RPC = 1000
ACTIONABLE = {grpc.StatusCode.OK, grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.NOT_FOUND,
              grpc.StatusCode.ALREADY_EXISTS, grpc.StatusCode.RESOURCE_EXHAUSTED,
              grpc.StatusCode.DEADLINE_EXCEEDED}


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    directory = tmp_path_factory.mktemp("wire")
    running = gt.Server(gt.REPO / "deploy" / "gemserve.yaml", directory / "server.log")
    yield running
    running.stop()


def seeds():
    """(method, streaming, serialized valid request) for every Inference and Admin RPC."""
    pb = gt.inference_pb2()
    image = gt.png_bytes(bytes(range(256)) * 3 + bytes(16))
    classify = pb.ClassifyRequest(model="resnet20-fashion", variant="gem-n1", image=image, top_k=3)
    tensor = pb.ClassifyRequest(model="resnet20-fashion", routing_key="user-7",
                                tensor=pb.Tensor(shape=[1, 28, 28], data=[0.5] * 784))
    generate = pb.GenerateRequest(model="gpt2-kjv", variant="gem-n2", prompt="And God said",
                                  max_new_tokens=4, temperature=0.8, top_k=5, top_p=0.9, seed=3,
                                  stop=["LORD"])
    compare = pb.CompareRequest(model="resnet20-fashion", variants=["gelu", "gem-n1"],
                                tensor=pb.Tensor(shape=[1, 28, 28], data=[0.25] * 784))
    feedback = pb.FeedbackRequest(request_id="0123456789abcdef-1", label=3)
    split = pb.SetTrafficSplitRequest(model="resnet20-fashion", split={"gelu": 50, "gem-n1": 50})
    inference, admin = "/gemserve.v1.Inference/", "/gemserve.v1.Admin/"
    return [
        (inference + "Classify", False, classify.SerializeToString()),
        (inference + "Classify", False, tensor.SerializeToString()),
        (inference + "Generate", True, generate.SerializeToString()),
        (inference + "Compare", False, compare.SerializeToString()),
        (inference + "Feedback", False, feedback.SerializeToString()),
        (inference + "ListModels", False, pb.ListModelsRequest().SerializeToString()),
        (admin + "SetTrafficSplit", False, split.SerializeToString()),
        (admin + "GetExperiments", False, pb.GetExperimentsRequest(model="gpt2-kjv").SerializeToString()),
    ]


def mutate(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        kind = rng.randrange(6)
        at = rng.randrange(len(out) + 1)
        if kind == 0 and out:
            out[min(at, len(out) - 1)] ^= 1 << rng.randrange(8)
        elif kind == 1:
            out[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
        elif kind == 2:
            del out[at:at + rng.randint(1, 16)]
        elif kind == 3:
            out[at:at] = out[max(0, at - 32):at]  # a repeated run: fields twice, odd lengths
        elif kind == 4:
            out = out[:at]
        else:
            out[at:at] = rng.choice([b"\xff" * 10, b"\x80" * 9 + b"\x7f", b"\x0a\xff\xff\xff\x0f"])
    return bytes(out)


def send(channel, method: str, streaming: bool, data: bytes):
    """The status code and message the server answered `data` with."""
    identity = dict(request_serializer=lambda b: b, response_deserializer=lambda b: b)
    try:
        if streaming:
            for _ in channel.unary_stream(method, **identity)(data, timeout=30):
                pass
        else:
            channel.unary_unary(method, **identity)(data, timeout=30)
        return grpc.StatusCode.OK, ""
    except grpc.RpcError as error:
        return error.code(), error.details() or ""


def test_mutated_requests_get_actionable_statuses_and_the_server_goes_on(server):
    rng = random.Random(20261201)
    channel = grpc.insecure_channel(server.grpc)
    valid_method, _, valid = seeds()[1]
    seen = {}
    try:
        for method, streaming, data in seeds():
            for _ in range(MUTANTS_PER_RPC):
                mutant = mutate(data, rng)
                code, message = send(channel, method, streaming, mutant)
                seen[code] = seen.get(code, 0) + 1
                assert code in ACTIONABLE, (method, mutant.hex(), code, message)
                assert code == grpc.StatusCode.OK or message, (method, mutant.hex(), code)
                assert len(message) <= 400, (method, message)
            assert send(channel, valid_method, False, valid)[0] == grpc.StatusCode.OK, \
                f"the server stopped answering after mutants of {method}:\n{server.log_tail()}"
    finally:
        channel.close()
    assert server.alive()
    print("answers by code:", {code.name: n for code, n in sorted(seen.items(), key=str)})
    assert seen.get(grpc.StatusCode.INVALID_ARGUMENT, 0) > 0 and seen.get(grpc.StatusCode.OK, 0) > 0, seen
