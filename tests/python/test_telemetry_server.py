"""Activation telemetry through gem-server (docs/TELEMETRY.md, "Server"; issue 15).

One gem-server with `telemetry: {sample_rate: 1.0, window: 8}` on a small repository:
symlinks of the demo's resnet20-fashion gem-n1 and relu and gpt2-kjv gem-n1 (exported with
the activation_statistics method), and copies of resnet20-fashion/gem-n1 (model.pt linked,
model.json edited) as three more models:
  - plain: model.json without activation_sites and methods.activation_statistics;
  - wide:  65 activation sites (one more than the server takes);
  - fresh: its model.json is rewritten before a reload.

Checked: after Classify traffic (12 images to gem-n1: the window keeps the last 8; 3 to
relu) and Generate traffic (3 prompts), /api/v1/activations and the gemserve_activation_*
gauges equal the same figures computed here from the model's own method, run offline with
torch.jit.load on the same inputs (each at batch 1, as the server runs them); the samples
counter counts each request; `gem-client activations` prints the table and the JSON; the
model without telemetry serves the same answers with no activation series; 65 sites fail
the variant's load with a message saying so; a reloaded variant starts an empty window.

Needs the re-exported repository (model.json with "activation_sites"); skipped without it.

Run: PYTHONPATH=models GEMSERVE_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest -q \
       tests/python/test_telemetry_server.py
"""
import json
import math
import os
import shutil
import sys

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemserve_testing as gt  # noqa: E402

RESNET, GPT = "resnet20-fashion", "gpt2-kjv"
WINDOW = 8
PROMPTS = ["And God said", "In the beginning", "The LORD is my shepherd"]

pytestmark = pytest.mark.skipif(
    "activation_sites" not in gt.model_json(RESNET, "gem-n1")
    or "activation_sites" not in gt.model_json(GPT, "gem-n1"),
    reason="models/repository is not yet exported with activation_statistics")


# ----------------------------------------------------------------------------- setup

def copy_variant(repository, model, edit):
    """repository/model/gem-n1: resnet20-fashion/gem-n1's model.pt (linked) and its
    model.json renamed to `model` and changed by edit(dict)."""
    source = gt.REPO / "models" / "repository" / RESNET
    variant = repository / model / "gem-n1"
    variant.mkdir(parents=True)
    os.symlink(source / "labels.txt", repository / model / "labels.txt")
    os.symlink(source / "gem-n1" / "model.pt", variant / "model.pt")
    config = json.loads((source / "gem-n1" / "model.json").read_text())
    config["name"] = model
    edit(config)
    (variant / "model.json").write_text(json.dumps(config))
    return variant


def without_telemetry(config):
    del config["activation_sites"]
    config["methods"].pop("activation_statistics", None)


def with_65_sites(config):
    site = config["activation_sites"][0]
    config["activation_sites"] = [dict(site, name=f"s{i}") for i in range(65)]


@pytest.fixture(scope="module")
def repository(tmp_path_factory):
    root = tmp_path_factory.mktemp("telemetry")
    repository = gt.demo_subset(root, [f"{RESNET}/labels.txt", f"{RESNET}/gem-n1", f"{RESNET}/relu",
                                       f"{GPT}/tokenizer", f"{GPT}/gem-n1"])
    copy_variant(repository, "plain", without_telemetry)
    copy_variant(repository, "wide", with_65_sites)
    copy_variant(repository, "fresh", lambda config: None)
    return repository


@pytest.fixture(scope="module")
def server(tmp_path_factory, repository):
    work = tmp_path_factory.mktemp("telemetry-server")
    config = {"telemetry": {"sample_rate": 1.0, "window": WINDOW, "queue_size": 10000},
              "batching": {"workers": 1}}
    (work / "gemserve.yaml").write_text(yaml.safe_dump(config))
    server = gt.Server(work / "gemserve.yaml", work / "gem-server.log", model_repository=repository)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def client(server):
    client = gt.InferenceClient(server.grpc)
    yield client
    client.close()


@pytest.fixture(scope="module")
def images():
    """12 images [1, 28, 28] of pixels in [0, 1]: the examples, and two of them transposed."""
    import numpy as np
    from PIL import Image
    pictures = sorted(p for p in (gt.REPO / "examples").iterdir()
                      if p.suffix in (".png", ".jpg", ".jpeg"))
    pixels = [np.asarray(Image.open(p).convert("L").resize((28, 28)), dtype=np.float32) / 255.0
              for p in pictures]
    pixels += [pixels[0].T.copy(), pixels[1].T.copy()]
    assert len(pixels) >= 12, pictures
    return [p.reshape(1, 28, 28) for p in pixels[:12]]


# ----------------------------------------------------------------------------- reference

def load_model(model, variant):
    import torch
    gt.load_gem_ops()
    return torch.jit.load(str(gt.REPO / "models" / "repository" / model / variant / "model.pt"))


def normalised(model, variant, pixels):
    """The model's input for pixels [1, 28, 28], as the server normalises them."""
    import torch
    spec = gt.model_json(model, variant)["input"]
    x = torch.from_numpy(pixels.copy())
    return ((x - spec["mean"][0]) / spec["std"][0]).unsqueeze(0)


def expected_window(module, inputs, window):
    """{site: figures} over the last `window` inputs, each run alone through the method."""
    import numpy as np
    runs = []
    for x in inputs:
        _, stats = module.activation_statistics(x)
        runs.append({site: (float(s["zero_fraction"]), s["nonzero"].numpy().copy(),
                            float(s["input_mean"]), float(s["input_std"]))
                     for site, s in stats.items()})
    last = runs[-window:]
    out = {}
    for site in last[0]:
        zero, masks, means, stds = zip(*(run[site] for run in last))
        units = masks[0].size
        dead = int((~np.stack(masks).any(axis=0)).sum())
        mean = sum(means) / len(last)
        second = sum(s * s + m * m for s, m in zip(stds, means)) / len(last)
        out[site] = {"units": units, "zero_fraction": sum(zero) / len(last), "dead_units": dead,
                     "dead_units_ratio": dead / units, "input_mean": mean,
                     "input_std": math.sqrt(max(0.0, second - mean * mean))}
    return out


# ----------------------------------------------------------------------------- server side

def activations(server):
    status, body = gt.http_get(f"http://{server.metrics}/api/v1/activations")
    assert status == 200, body[:300]
    return {(m["model"], v["variant"]): v for m in json.loads(body)["models"] for v in m["variants"]}


def recorded(server, model, variant):
    return sum(value for labels, value in server.metrics_samples("gemserve_activation_samples_total")
               if labels["model"] == model and labels["variant"] == variant
               and labels["result"] == "recorded")


def wait_recorded(server, model, variant, count):
    gt.wait_for(lambda: (recorded(server, model, variant) >= count,
                         recorded(server, model, variant)),
                120, f"{count} activation samples of {model}/{variant}", server, poll_s=0.2)


def gauges(server, model, variant):
    """{family suffix: {site: value}} of the variant's activation gauges."""
    out = {}
    for figure in ("zero_fraction", "dead_units_ratio", "input_mean", "input_std"):
        out[figure] = {labels["site"]: value for labels, value in
                       server.metrics_samples(f"gemserve_activation_{figure}")
                       if labels["model"] == model and labels["variant"] == variant}
    return out


def check_against(server, model, variant, expected, samples):
    served = activations(server)[(model, variant)]
    assert served["samples"] == samples and served["window"] == WINDOW
    train = {s["name"]: s for s in gt.model_json(model, variant)["activation_sites"]}
    assert [s["site"] for s in served["sites"]] == list(expected) == list(train)
    for site in served["sites"]:
        want = expected[site["site"]]
        assert site["units"] == want["units"]
        assert site["dead_units"] == want["dead_units"], site["site"]
        for figure in ("zero_fraction", "dead_units_ratio"):  # counts: exact
            assert site[figure] == pytest.approx(want[figure], rel=1e-12, abs=1e-12), (
                site["site"], figure)
        # The inputs are float32 activations: LibTorch in gem-server and torch here may
        # sum a convolution in another order (a full `make test` run saw 4e-8 relative).
        for figure in ("input_mean", "input_std"):
            assert site[figure] == pytest.approx(want[figure], rel=1e-6, abs=1e-9), (
                site["site"], figure)
        t = train[site["site"]]
        assert site["train"]["input_mean"] == pytest.approx(t["train_input_mean"])
        assert site["train"]["dead_units"] == t["train_dead_units"]
        assert site["drift"]["input_std_ratio"] == pytest.approx(
            want["input_std"] / t["train_input_std"], rel=1e-6)
    scraped = gauges(server, model, variant)
    for figure, by_site in scraped.items():
        assert set(by_site) == set(expected), figure
        for site, value in by_site.items():
            assert value == pytest.approx(expected[site][figure], rel=1e-6, abs=1e-9), (site, figure)


# ----------------------------------------------------------------------------- tests

def classify(client, model, variant, pixels):
    pb = gt.inference_pb2()
    request = pb.ClassifyRequest(model=model, variant=variant,
                                 tensor=pb.Tensor(shape=list(pixels.shape),
                                                  data=pixels.ravel().tolist()))
    return client.classify(request, timeout=30)


def test_classify_windows_equal_the_method_run_offline(server, client, images):
    for pixels in images:
        classify(client, RESNET, "gem-n1", pixels)
    for pixels in images[:3]:
        classify(client, RESNET, "relu", pixels)
    wait_recorded(server, RESNET, "gem-n1", len(images))
    wait_recorded(server, RESNET, "relu", 3)
    for variant, sent in (("gem-n1", images), ("relu", images[:3])):
        module = load_model(RESNET, variant)
        expected = expected_window(module, [normalised(RESNET, variant, p) for p in sent], WINDOW)
        check_against(server, RESNET, variant, expected, min(len(sent), WINDOW))
    assert recorded(server, RESNET, "gem-n1") == len(images)


def test_generate_window_equals_the_method_run_offline(server, client):
    import torch
    pb = gt.inference_pb2()
    for prompt in PROMPTS:
        for _ in client.generate(pb.GenerateRequest(model=GPT, variant="gem-n1", prompt=prompt,
                                                    max_new_tokens=2), timeout=60):
            pass
    wait_recorded(server, GPT, "gem-n1", len(PROMPTS))
    inputs = [torch.tensor([gt.tokenize(GPT, "gem-n1", p)], dtype=torch.long) for p in PROMPTS]
    expected = expected_window(load_model(GPT, "gem-n1"), inputs, WINDOW)
    check_against(server, GPT, "gem-n1", expected, len(PROMPTS))


def test_gem_client_activations_prints_the_table_and_the_json(server, client, images):
    classify(client, RESNET, "gem-n1", images[0])
    wait_recorded(server, RESNET, "gem-n1", 1)
    url = f"http://{server.metrics}/metrics"
    table = server.client("activations", "--model", RESNET, "--metrics", url)
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert "gem-n1 dead" in lines[1] and "gem-n1 zero" in lines[1]
    sites = [s["name"] for s in gt.model_json(RESNET, "gem-n1")["activation_sites"]]
    assert [line.split()[0] for line in lines[2:2 + len(sites)]] == sites
    assert "samples in window:" in lines[-1]
    as_json = server.client("activations", "--model", RESNET, "--metrics", url, "--json")
    assert as_json.returncode == 0, as_json.stderr
    assert json.loads(as_json.stdout)["model"] == RESNET
    missing = server.client("activations", "--model", "plain", "--metrics", url)
    assert missing.returncode == 1
    assert "has no activation telemetry" in missing.stderr and RESNET in missing.stderr


def test_a_model_without_telemetry_serves_as_before_with_no_activation_series(
        server, client, images):
    for pixels in images[:3]:
        plain = classify(client, "plain", "gem-n1", pixels)
        same = classify(client, RESNET, "gem-n1", pixels)
        assert [(p.index, p.probability) for p in plain.predictions] == [
            (p.index, p.probability) for p in same.predictions]
    wait_recorded(server, RESNET, "gem-n1", 3)
    assert ("plain", "gem-n1") not in activations(server)
    status, body = gt.http_get(f"http://{server.metrics}/metrics")
    assert status == 200
    assert not [line for line in body.splitlines()
                if line.startswith("gemserve_activation") and 'model="plain"' in line]


def test_more_than_64_sites_fail_the_variants_load(server):
    status, body = gt.http_get(f"http://{server.metrics}/api/v1/models")
    assert status == 200
    wide = next(m for m in json.loads(body)["models"] if m["name"] == "wide")
    variant = wide["variants"][0]
    assert variant["state"] != "ready"
    assert "activation_sites has 65 sites; at most 64 are served" in variant["error"]


def test_a_reloaded_variant_starts_a_fresh_window(server, client, images, repository):
    for pixels in images[:2]:
        classify(client, "fresh", "gem-n1", pixels)
    wait_recorded(server, "fresh", "gem-n1", 2)
    assert activations(server)[("fresh", "gem-n1")]["samples"] == 2
    model_json = repository / "fresh" / "gem-n1" / "model.json"
    config = json.loads(model_json.read_text())
    config["note"] = "re-exported"
    model_json.write_text(json.dumps(config))
    reload = server.client("reload")  # exit 1: wide fails again
    assert any(line.split()[:3] == ["fresh", "gem-n1", "UPDATED"]
               for line in reload.stdout.splitlines()), reload.stdout + reload.stderr
    assert activations(server)[("fresh", "gem-n1")]["samples"] == 0
    assert not any(gauges(server, "fresh", "gem-n1").values())
    classify(client, "fresh", "gem-n1", images[2])
    gt.wait_for(lambda: (activations(server)[("fresh", "gem-n1")]["samples"] == 1,
                         activations(server)[("fresh", "gem-n1")]["samples"]),
                60, "the fresh window's first sample", server, poll_s=0.2)
    assert set(gauges(server, "fresh", "gem-n1")["zero_fraction"]) == set(
        s["name"] for s in config["activation_sites"])
