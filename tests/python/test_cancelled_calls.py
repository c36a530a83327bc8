"""Classify calls that their clients cancel or let expire, by the thousand: the server
goes on answering, nothing stays in flight, and each call is counted as its client saw it.

A call cancelled early can reach gem-server's handler with no request bytes at all; it
used to be counted as the error of an empty request (NOT_FOUND for model ""), 108 of 3000
calls in one run. Cancelled calls are now counted CANCELLED (DEADLINE_EXCEEDED once their
deadline has passed). (An OK answer whose client cancels while it is on the wire is
counted OK by the server and seen CANCELLED by the client: the counts are compared by
class, not one by one.)"""
import random
import time

import pytest

import gemserve_testing as gt

grpc = pytest.importorskip("grpc")

MODEL, VARIANT = "resnet20-fashion", "gem-n1"
CALLS = 3000
IMAGE = (gt.REPO / "examples" / "ankle-boot.png").read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("cancelled")
    config = work / "gemserve.yaml"
    config.write_text("telemetry: {sample_rate: 0}\n")
    repository = gt.demo_subset(work, [f"{MODEL}/labels.txt", f"{MODEL}/{VARIANT}"])
    server = gt.Server(config, work / "server.log", model_repository=repository,
                       name="gem-server (cancelled calls)")
    yield server
    server.stop()


def classify_counts(server):
    """{(model, code): Classify requests} from /metrics."""
    return {(labels["model"], labels["code"]): value
            for labels, value in server.metrics_samples("gemserve_requests_total")
            if labels["rpc"] == "Classify"}


def test_cancelled_and_expired_calls_are_counted_as_their_clients_saw_them(server):
    pb = gt.inference_pb2()
    channel = grpc.insecure_channel(server.grpc)
    classify = channel.unary_unary(
        "/gemserve.v1.Inference/Classify",
        request_serializer=pb.ClassifyRequest.SerializeToString,
        response_deserializer=pb.ClassifyResponse.FromString)
    request = pb.ClassifyRequest(model=MODEL, variant=VARIANT, image=IMAGE, top_k=1)
    rng = random.Random(7)
    futures = []
    for _ in range(CALLS):
        kind = rng.random()
        future = classify.future(request, timeout=0.001 if kind < 0.3 else 30)
        if 0.3 <= kind < 0.6:
            time.sleep(rng.random() * 0.002)
            future.cancel()
        futures.append(future)
    seen = {}
    for future in futures:
        try:
            future.result()
            outcome = "OK"
        except grpc.FutureCancelledError:
            outcome = "CANCELLED"
        except grpc.RpcError as error:
            outcome = error.code().name
        seen[outcome] = seen.get(outcome, 0) + 1

    answer = classify(request, timeout=30)
    assert answer.variant == VARIANT and answer.predictions[0].label == "Ankle boot"
    gt.wait_for(lambda: ((n := server.metrics_samples("gemserve_inflight_requests")[0][1]) == 0, n),
                30, "no Classify in flight", poll_s=0.1)
    counted = classify_counts(server)
    print(f"clients saw {seen}; the server counted {counted}")
    assert set(seen) <= {"OK", "CANCELLED", "DEADLINE_EXCEEDED"}, seen
    # Every valid request that ran was counted under its model; those cut short before
    # their handler saw a request are counted CANCELLED or DEADLINE_EXCEEDED, never as the
    # error of an empty request.
    assert {code for _, code in counted} <= {"OK", "CANCELLED", "DEADLINE_EXCEEDED"}, counted
    channel.close()
