"""client/python's gemserve_client package against a real gem-server over loopback: the
package as the build assembles it in $GEMSERVE_BUILD_DIR/client/python (stubs generated
by protoc + grpc_python_plugin), its results checked against gem-client and the known
classes of examples/*.png, its typed exceptions, bearer tokens, mutual TLS and the
example script. Run from the repository root:

    PYTHONPATH=models GEMSERVE_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest -q \
        tests/python/test_python_client.py
"""
import os
import re
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemserve_testing as gt  # noqa: E402

INFERENCE_TOKEN = "inference-token-for-the-python-client-test"
ADMIN_TOKEN = "admin-token-for-the-python-client-test"
CLASSIFY, GENERATE = "resnet20-fashion", "gpt2-kjv"
EXAMPLES = {"ankle-boot.png": "Ankle boot", "pullover.png": "Pullover", "trouser.png": "Trouser"}
VARIANTS = {"relu", "gelu", "gem-n1", "gem-n2", "egem-n1-e1e-4", "segem-n1-e1e-4"}


def package_dir() -> Path:
    return gt.build_dir() / "client" / "python"


@pytest.fixture(scope="module")
def gc():
    """The gemserve_client package from the build tree (never the source tree's copy,
    which has no generated modules)."""
    directory = package_dir()
    generated = directory / "gemserve_client" / "_proto" / "gemserve" / "v1" / "inference_pb2_grpc.py"
    if not generated.exists():
        pytest.fail(f"no {generated}: build the gemserve_python_client target")
    sys.path.insert(0, str(directory))
    try:
        import gemserve_client
    finally:
        sys.path.remove(str(directory))
    assert Path(gemserve_client.__file__).resolve().parent == (directory / "gemserve_client").resolve()
    return gemserve_client


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """deploy/gemserve.yaml plus bearer tokens for both Inference and Admin."""
    directory = tmp_path_factory.mktemp("python-client")
    (directory / "inference.token").write_text(INFERENCE_TOKEN + "\n")
    (directory / "admin.token").write_text(ADMIN_TOKEN + "\n")
    config = directory / "gemserve.yaml"
    config.write_text((gt.REPO / "deploy" / "gemserve.yaml").read_text()
                      + f"\nauth:\n  admin_token_file: {directory / 'admin.token'}\n"
                      + f"  inference_token_file: {directory / 'inference.token'}\n")
    running = gt.Server(config, directory / "server.log")
    yield running
    running.stop()


@pytest.fixture(scope="module")
def client(gc, server):
    with gc.Client(server.grpc, inference_token=INFERENCE_TOKEN, admin_token=ADMIN_TOKEN,
                   timeout=30) as c:
        yield c


def gem_client(server, *args):
    result = server.client("--inference-token", INFERENCE_TOKEN, *args)
    assert result.returncode == 0, result.stderr
    return result


def test_generated_modules_are_a_private_subpackage(gc):
    import pickle
    assert not Path(grpc.__file__).resolve().is_relative_to(package_dir().resolve())  # grpcio
    assert "gemserve" not in sys.modules  # no top-level package from the generated tree
    request = gc.proto.ClassifyRequest(model=CLASSIFY, top_k=3)
    assert type(request).__module__ == "gemserve_client._proto.gemserve.v1.inference_pb2"
    assert pickle.loads(pickle.dumps(request)) == request


# ----------------------------------------------------------------------------- classify

def test_classify_agrees_with_gem_client_and_known_labels(client, server):
    for name, label in EXAMPLES.items():
        path = gt.REPO / "examples" / name
        result = client.classify(path, model=CLASSIFY, variant="gem-n1")
        assert (result.model, result.variant) == (CLASSIFY, "gem-n1")
        assert result.top.label == label
        assert result.experiment_version == 0  # named its variant: not routed
        assert result.request_id and result.timing.total_us > 0
        printed = gem_client(server, "classify", "--model", CLASSIFY, "--variant", "gem-n1",
                             str(path)).stdout
        rows = re.findall(r"^\s+([0-9.]+)\s+(\d+)\s+(.+)$", printed, re.MULTILINE)
        assert len(rows) == len(result.predictions) == 5
        for (probability, index, row_label), p in zip(rows, result.predictions):
            assert (int(index), row_label) == (p.index, p.label)
            assert p.probability == pytest.approx(float(probability), abs=1e-4)
        probabilities = [p.probability for p in result.predictions]
        assert probabilities == sorted(probabilities, reverse=True)


def test_classify_inputs_bytes_path_and_array_agree(client):
    import numpy as np
    from PIL import Image
    path = gt.REPO / "examples" / "pullover.png"
    by_path = client.classify(str(path), model=CLASSIFY, variant="relu", top_k=3)
    by_bytes = client.classify(path.read_bytes(), model=CLASSIFY, variant="relu", top_k=3)
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.uint8)
    by_array = client.classify(pixels.reshape(1, 28, 28), model=CLASSIFY, variant="relu", top_k=3)
    floats = client.classify(pixels.reshape(1, 1, 28, 28).astype(np.float32) / 255,
                             model=CLASSIFY, variant="relu", top_k=3)
    assert len(by_path.predictions) == 3
    for other in (by_bytes, by_array, floats):
        assert [p.index for p in other.predictions] == [p.index for p in by_path.predictions]
        assert other.top.probability == pytest.approx(by_path.top.probability, abs=1e-4)
    ids = {r.request_id for r in (by_path, by_bytes, by_array, floats)}
    assert len(ids) == 4


def test_classify_routed_by_the_experiment_is_sticky(client):
    first = client.classify(gt.REPO / "examples" / "trouser.png", model=CLASSIFY,
                            routing_key="user-42")
    assert first.variant in {"gelu", "gem-n1"}  # deploy/gemserve.yaml's split
    assert first.experiment_version >= 1
    for _ in range(3):
        again = client.classify(gt.REPO / "examples" / "trouser.png", model=CLASSIFY,
                                routing_key="user-42")
        assert again.variant == first.variant


# ----------------------------------------------------------------------------- generate

def test_generate_streams_pieces_that_make_the_text(client, server):
    prompt = "And God said"
    generation = client.generate(prompt, model=GENERATE, variant="gem-n2", max_new_tokens=12)
    assert generation.summary is None and not generation.done
    pieces = list(generation)
    summary = generation.summary
    assert len(pieces) >= 2 and all(isinstance(p, str) and p for p in pieces)
    assert "".join(pieces) == summary.text == generation.text
    assert (summary.model, summary.variant) == (GENERATE, "gem-n2")
    assert summary.finish_reason == "LENGTH"
    assert summary.completion_tokens == 12 == len(summary.token_ids)
    assert summary.prompt_tokens == len(gt.tokenize(GENERATE, "gem-n2", prompt))
    assert summary.request_id
    printed = gem_client(server, "generate", "--model", GENERATE, "--variant", "gem-n2",
                         "--max-tokens", "12", prompt).stdout
    assert printed == prompt + summary.text + "\n"  # greedy: the same text


def test_generate_seed_stop_and_result(client):
    def sampled():
        return client.generate("In the beginning", model=GENERATE, variant="gelu",
                               max_new_tokens=10, temperature=0.9, top_k=20, seed=11).result()
    first, second = sampled(), sampled()
    assert first.text == second.text and first.token_ids == second.token_ids
    assert first.request_id != second.request_id
    greedy = client.generate("And God said", model=GENERATE, variant="gem-n2",
                             max_new_tokens=12).result()
    stop = greedy.text.strip().split()[1]  # a word the greedy continuation contains
    stopped = client.generate("And God said", model=GENERATE, variant="gem-n2",
                              max_new_tokens=12, stop=[stop]).result()
    assert stopped.finish_reason == "STOP"
    assert stop not in stopped.text and greedy.text.startswith(stopped.text)


def test_generate_cancel_stops_the_stream(client):
    with client.generate("And God said", model=GENERATE, variant="relu",
                         max_new_tokens=200) as generation:
        first = next(generation)
    assert first and generation.done
    assert list(generation) == []


# ----------------------------------------------------------------------------- compare

def test_compare_classify_matches_classify(client):
    path = gt.REPO / "examples" / "ankle-boot.png"
    result = client.compare(model=CLASSIFY, image=path, variants=["gelu", "gem-n1"], top_k=2)
    assert result.model == CLASSIFY
    assert [r.variant for r in result.results] == ["gelu", "gem-n1"]
    for r in result.results:
        alone = client.classify(path, model=CLASSIFY, variant=r.variant, top_k=2)
        assert [p.index for p in r.predictions] == [p.index for p in alone.predictions]
        assert r.predictions[0].label == "Ankle boot"
    assert [(p.a, p.b) for p in result.pairs] == [("gelu", "gem-n1")]
    assert result.pairs[0].agree and result.agreement == 1.0
    assert result.result("gem-n1").variant == "gem-n1"
    with pytest.raises(KeyError):
        result.result("relu")


def test_compare_generate_every_variant(client):
    result = client.compare(model=GENERATE, prompt="And God said", max_new_tokens=4)
    assert {r.variant for r in result.results} == VARIANTS
    assert len(result.pairs) == 15
    assert result.agreement == pytest.approx(sum(p.agree for p in result.pairs) / 15)
    alone = client.generate("And God said", model=GENERATE, variant="gem-n2",
                            max_new_tokens=4).result()
    assert result.result("gem-n2").text == alone.text
    assert len(result.result("gem-n2").token_ids) == 4
    with pytest.raises(ValueError):
        client.compare(model=GENERATE)


# ----------------------------------------------------------------------------- feedback

def test_feedback_credits_the_serving_variant(gc, client):
    result = client.classify(gt.REPO / "examples" / "ankle-boot.png", model=CLASSIFY,
                             routing_key="feedback-user")
    credited = client.feedback(result, label=9)
    assert (credited.model, credited.variant) == (CLASSIFY, result.variant)
    assert credited.correct == (result.top.index == 9)
    with pytest.raises(gc.AlreadyExists):
        client.feedback(result.request_id, label=9)
    wrong = client.classify(gt.REPO / "examples" / "trouser.png", model=CLASSIFY, variant="gelu")
    assert client.feedback(wrong.request_id, label=9).correct is False
    summary = client.generate("And God said", model=GENERATE, max_new_tokens=2).result()
    rewarded = client.feedback(summary, reward=0.75)
    assert (rewarded.model, rewarded.variant) == (GENERATE, summary.variant)
    with pytest.raises(ValueError):
        client.feedback(summary, label=1, reward=0.5)
    with pytest.raises(ValueError):
        client.feedback(summary)


# ----------------------------------------------------------------------------- models, health, admin

def test_models_and_health(client):
    models = {m.name: m for m in client.models()}
    assert set(models) == {CLASSIFY, GENERATE}
    assert (models[CLASSIFY].task, models[CLASSIFY].default_variant) == ("classify", "gem-n1")
    assert (models[GENERATE].task, models[GENERATE].default_variant) == ("generate", "gem-n2")
    for model in models.values():
        assert {v.name for v in model.variants} == VARIANTS
        assert all(v.state == "READY" and not v.error for v in model.variants)
    gem = models[CLASSIFY].variant("gem-n2")
    assert (gem.activation, gem.n) == ("gem", 2) and "test_accuracy" in gem.quality
    assert models[GENERATE].variant("segem-n1-e1e-4").neg_slope == pytest.approx(0.01)
    assert client.health() == "SERVING"


def test_admin_calls_use_the_admin_token(gc, client, server):
    before = {e.experiment.model: e.experiment.version for e in client.experiments()}
    assert CLASSIFY in before
    changed = client.set_traffic_split(CLASSIFY, {"gelu": 60, "gem-n1": 40})
    assert changed.model == CLASSIFY and dict(changed.split) == {"gelu": 60, "gem-n1": 40}
    assert changed.version > before[CLASSIFY]
    experiment = client.set_traffic_split(CLASSIFY, {"gelu": 50, "gem-n1": 50})  # as configured
    assert dict(experiment.split) == {"gelu": 50, "gem-n1": 50}
    assert experiment.version > changed.version
    with gc.Client(server.grpc, inference_token=INFERENCE_TOKEN) as no_admin:
        with pytest.raises(gc.Unauthenticated) as error:
            no_admin.experiments()
        assert error.value.code == grpc.StatusCode.UNAUTHENTICATED
        assert no_admin.models()  # Inference still works with its own token
    with gc.Client(server.grpc, inference_token=INFERENCE_TOKEN, admin_token="wrong") as bad:
        with pytest.raises(gc.Unauthenticated):
            bad.set_traffic_split(CLASSIFY, {"gelu": 100})
    assert client.experiments(CLASSIFY)[0].experiment.version == experiment.version


# ----------------------------------------------------------------------------- errors

def test_typed_exceptions(gc, client, server):
    boot = gt.REPO / "examples" / "ankle-boot.png"
    with pytest.raises(gc.NotFound) as error:
        client.classify(boot, model="no-such-model")
    assert isinstance(error.value, gc.GemserveError)
    assert error.value.code == grpc.StatusCode.NOT_FOUND and error.value.rpc == "Classify"
    assert "no-such-model" in error.value.message
    with pytest.raises(gc.NotFound):
        client.classify(boot, model=CLASSIFY, variant="no-such-variant")
    with pytest.raises(gc.NotFound):
        list(client.generate("x", model="no-such-model"))
    with pytest.raises(gc.InvalidArgument) as error:
        client.classify(b"this is not an image", model=CLASSIFY, variant="gem-n1")
    assert "image" in error.value.message
    with pytest.raises(gc.InvalidArgument):
        client.classify(boot, model=GENERATE, variant="gem-n2")  # a generate model
    with pytest.raises(gc.DeadlineExceeded):
        client.classify(boot, model=CLASSIFY, variant="gem-n1", timeout=1e-6)
    with pytest.raises(gc.DeadlineExceeded):
        list(client.generate("And God said", model=GENERATE, max_new_tokens=256, timeout=0.005))
    with pytest.raises(gc.NotFound):
        client.feedback("0000000000000000-999999", label=1)
    with gc.Client(server.grpc) as anonymous:  # no inference token
        with pytest.raises(gc.Unauthenticated):
            anonymous.models()
        assert anonymous.health() == "SERVING"  # health stays open
    with pytest.raises(ValueError):
        client.classify(boot, model=CLASSIFY, timeout=0)
    with pytest.raises(TypeError):
        client.classify(12, model=CLASSIFY)
    assert client.models()  # the server still answers


def test_unreachable_server_is_unavailable(gc):
    import socket
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with gc.Client(f"127.0.0.1:{port}", timeout=5) as nobody:
        with pytest.raises(gc.Unavailable):
            nobody.health()


# ----------------------------------------------------------------------------- TLS

def make_ca_and_leaf(directory: Path, name: str) -> None:
    """name.pem/.key (a CA) and name-leaf.pem/.key for 127.0.0.1 signed by it (P-256)."""
    d = str(directory) + "/"
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    run = lambda *args: subprocess.run(["openssl", *args], check=True, capture_output=True)  # noqa: E731
    run("req", "-x509", *ec, "-keyout", d + name + ".key", "-out", d + name + ".pem",
        "-days", "2", "-subj", "/CN=" + name)
    run("req", *ec, "-keyout", d + name + "-leaf.key", "-out", d + name + "-leaf.csr",
        "-subj", "/CN=localhost")
    (directory / "san.cnf").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    run("x509", "-req", "-in", d + name + "-leaf.csr", "-CA", d + name + ".pem", "-CAkey",
        d + name + ".key", "-CAcreateserial", "-days", "2", "-extfile", d + "san.cnf",
        "-out", d + name + "-leaf.pem")


def test_mutual_tls(gc, tmp_path):
    make_ca_and_leaf(tmp_path, "ca")
    config = tmp_path / "mtls.yaml"
    config.write_text(f"tls: {{cert_file: {tmp_path}/ca-leaf.pem, key_file: {tmp_path}/ca-leaf.key,"
                      f" client_ca_file: {tmp_path}/ca.pem}}\n")
    running = gt.Server(config, tmp_path / "server.log", name="gem-server (mTLS)")
    try:
        with gc.Client(running.grpc, root_certificates=tmp_path / "ca.pem",
                       certificate_chain=tmp_path / "ca-leaf.pem",
                       private_key=(tmp_path / "ca-leaf.key").read_bytes()) as good:
            assert good.health() == "SERVING"
            assert good.classify(gt.REPO / "examples" / "trouser.png", model=CLASSIFY,
                                 variant="gem-n1").top.label == "Trouser"
        with gc.Client(running.grpc, root_certificates=tmp_path / "ca.pem", timeout=5) as no_cert:
            with pytest.raises(gc.Unavailable):
                no_cert.health()
        with gc.Client(running.grpc, timeout=5) as plaintext:
            with pytest.raises(gc.Unavailable):
                plaintext.health()
    finally:
        running.stop()
    with pytest.raises(ValueError):
        gc.Client("127.0.0.1:1", certificate_chain=tmp_path / "ca-leaf.pem")


# ----------------------------------------------------------------------------- example

def test_example_script_runs(client, server):
    env = dict(os.environ, PYTHONPATH=str(package_dir()), GEMSERVE_INFERENCE_TOKEN=INFERENCE_TOKEN)
    result = subprocess.run([sys.executable, str(gt.REPO / "client" / "python" / "example.py"),
                             "--server", server.grpc, "--max-tokens", "6"],
                            cwd=gt.REPO, env=env, stdin=subprocess.DEVNULL, capture_output=True,
                            text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    lines = result.stdout.splitlines()
    assert re.match(r"ankle-boot\.png: resnet20-fashion/(gelu|gem-n1) \(request_id \S+\)$", lines[0])
    assert lines[1].split()[1:] == ["9", "Ankle", "boot"]
    greedy = client.generate("And God said", model=GENERATE, max_new_tokens=6).result()
    assert "\nAnd God said" + greedy.text + "\n[gem-n2: LENGTH, 3 prompt + 6 new tokens, " \
        "request_id " in result.stdout
    # Without the token the example fails with the typed error's message, exit 1.
    env.pop("GEMSERVE_INFERENCE_TOKEN")
    denied = subprocess.run([sys.executable, str(gt.REPO / "client" / "python" / "example.py"),
                             "--server", server.grpc], cwd=gt.REPO, env=env,
                            stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert denied.returncode == 1 and "UNAUTHENTICATED" in denied.stderr
