"""The live page at / in a real browser, against a real gem-server under load.

Starts $GEMSERVE_BUILD_DIR/gem-server with an experiment on resnet20-fashion (gelu 50 /
gem-n1 50, sticky, shadow segem-n1-e1e-4 on half the routed requests), loads it with
`gem-client bench` (64 sticky routing keys) and a loop of `gem-client classify` +
`gem-client feedback --label` on Fashion-MNIST test images, opens http://METRICS/ in
headless chromium, lets the page poll for real for ~16 s (see headless_chromium.py for
why not --dump-dom / --virtual-time-budget) and checks what it rendered:

- the latency-p50 chart of resnet20-fashion has exactly one series per routed variant,
  and so has the accuracy chart; latency and throughput series have several points;
- every chart of that model is there, and the shadow-agreement chart has a series for
  segem-n1-e1e-4 against a routed primary;
- table#verdicts has a latency_ratio row for gelu → gem-n1 and rows for the shadow pair,
  each with one of the three verdicts;
- the experiment shows the 50/50 split, and the variants table lists every variant of
  resnet20-fashion with its activation kind.

It saves a screenshot to docs/img/live-page.png with GEMSERVE_UPDATE_SCREENSHOT=1, else
to the test's temporary directory.

Run: PYTHONPATH=models GEMSERVE_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest -q \
         tests/python/test_live_page.py
"""

import os
import re
import subprocess
import sys
import threading
import time

import pytest

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemserve_testing as gt  # noqa: E402
from headless_chromium import HeadlessChromium, find_chromium  # noqa: E402

MODEL = "resnet20-fashion"
ROUTED = ("gelu", "gem-n1")
SHADOW = "segem-n1-e1e-4"
CHARTS = ("latency-p50", "latency-p99", "throughput", "shadow-agreement", "accuracy")
VERDICTS = {"better", "worse", "no difference yet"}

SERVER_START_S = 180   # loading every variant of both demo models takes ~20 s
LOAD_S = 45            # the bench outlasts the page's whole visit
PAGE_AFTER_LOAD_S = 4  # the page's first scrape already sees traffic
PAGE_POLL_S = 16       # ~8 real 2-s polls: a window with several points per series

CONFIG = f"""\
# Written by tests/python/test_live_page.py.
limits:
  queue_size: 256
  default_deadline: 30s
batching:
  max_batch_size: 8
  max_queue_delay: 2ms
models:
  {MODEL}: {{default_variant: gem-n1}}
  gpt2-kjv: {{default_variant: gem-n2}}
experiments:
  - model: {MODEL}
    split: {{gelu: 50, gem-n1: 50}}
    sticky: true
    salt: e2e-live-page
    baseline: gelu
    shadow: {{variants: [{SHADOW}], sample_rate: 0.5, queue_size: 64}}
telemetry:
  sample_rate: 0.2
  window: 200
"""


# ---------------------------------------------------------------------------- helpers

def labelled_images(directory, count):
    """[(PNG path, true class)]: the first `count` Fashion-MNIST test images when the dataset
    is installed, else one plain grey image (whose "true class" 0 is arbitrary)."""
    if gt.fashion_mnist_installed():
        samples = gt.fashion_mnist_test(count)
    else:
        samples = [(bytes([128]) * (28 * 28), 0)]
    paths = []
    for i, (pixels, label) in enumerate(samples):
        path = directory / f"image-{i}.png"
        path.write_bytes(gt.png_bytes(pixels))
        paths.append((str(path), label))
    return paths


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("live_page")


@pytest.fixture(scope="module")
def server(workdir):
    """A started, healthy gem-server running the experiment. Always stopped."""
    config = workdir / "gemserve.yaml"
    config.write_text(CONFIG)
    process = gt.Server(config, workdir / "gem-server.log", start_timeout_s=SERVER_START_S)
    try:
        experiments = process.experiments()
        assert MODEL in experiments, \
            f"the server did not take the experiment: /api/v1/experiments lists {sorted(experiments)}"
        yield process
    finally:
        process.stop()


class FeedbackLoop(threading.Thread):
    """Classifies labelled images one at a time, routed by the experiment, and sends each
    answer's true class back with `gem-client feedback`, until stopped: the live accuracy
    the page charts."""

    def __init__(self, server, samples):
        super().__init__(daemon=True)
        self._server, self._samples = server, samples
        self._stopping = threading.Event()  # not _stop: Thread has one
        self.sent = 0
        self.problems = []

    def run(self):
        i = 0
        while not self._stopping.is_set() and len(self.problems) < 5:
            path, label = self._samples[i % len(self._samples)]
            i += 1
            answer = self._server.client("classify", "--model", MODEL, path)
            request = re.search(r"request_id ([^,\s)\]]+)", answer.stdout)
            if answer.returncode != 0 or request is None:
                self.problems.append(f"classify: {answer.stdout}{answer.stderr}")
                continue
            credit = self._server.client("feedback", "--request-id", request.group(1), "--label", str(label))
            if credit.returncode != 0:
                self.problems.append(f"feedback: {credit.stdout}{credit.stderr}")
                continue
            self.sent += 1

    def stop(self):
        self._stopping.set()
        self.join(timeout=40)


@pytest.fixture
def load(server, workdir):
    """gem-client bench on the experiment plus a feedback loop, in the background. Always
    stopped."""
    samples = labelled_images(workdir, 50)
    log = open(workdir / "bench.log", "w")
    bench = subprocess.Popen(
        server.client_command("bench", "--model", MODEL, "--concurrency", "4",
                              "--duration", f"{LOAD_S}s", "--image", samples[0][0],
                              "--routing-keys", "64"),  # sticky: 64 keys over both arms
        cwd=gt.REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    feedback = FeedbackLoop(server, samples)
    try:
        feedback.start()
        yield bench, feedback
    finally:
        gt.stop_process(bench)
        feedback.stop()
        log.close()


# ---------------------------------------------------------------------------- the test

# What the test reads from the live DOM: the selectors the page promises (status_page.h).
FACTS_JS = """(() => {
  const all = (selector, root = document) => [...root.querySelectorAll(selector)];
  const charts = {};
  for (const chart of all('figure.chart[data-model="%(model)s"]')) {
    charts[chart.dataset.chart] = all('.series', chart).map((s) => ({
        variant: s.dataset.variant, primary: s.dataset.primary || null,
        points: (s.getAttribute('d').match(/[ML]/g) || []).length}));
  }
  return {
    status: document.getElementById('status').textContent,
    charts,
    verdicts: document.getElementById('verdicts') === null ? null :
        all('#verdicts tr.verdict-row').map((r) => ({...r.dataset})),
    shares: Object.fromEntries(all('.experiment[data-model="%(model)s"] .share')
        .map((s) => [s.dataset.variant, s.textContent])),
    variants: Object.fromEntries(all('#variants tr.variant-row[data-model="%(model)s"]')
        .map((r) => [r.dataset.variant, r.cells[2].textContent])),
    activations: Object.fromEntries(all('.activations-model[data-model="%(model)s"] .strip-row')
        .map((r) => [r.dataset.variant, all('.site', r).map((c) => c.dataset.site)])),
  };
})()""" % {"model": MODEL}


def screenshot_path(workdir):
    if os.environ.get("GEMSERVE_UPDATE_SCREENSHOT") == "1":
        path = gt.REPO / "docs" / "img" / "live-page.png"
        path.parent.mkdir(parents=True, exist_ok=True)
        return str(path)
    return str(workdir / "live-page.png")


def models_of_repository():
    """{variant: activation kind} of MODEL, from the repository's model.json files."""
    root = gt.REPO / "models" / "repository" / MODEL
    return {spec.parent.name: gt.model_json(MODEL, spec.parent.name)["activation"]["kind"]
            for spec in sorted(root.glob("*/model.json"))}


def test_live_page_compares_the_variants(server, load, workdir):
    metrics = server.metrics
    browser_binary = find_chromium()
    if browser_binary is None:
        pytest.fail("no chromium on PATH: scripts/install-deps.sh installs it")

    time.sleep(PAGE_AFTER_LOAD_S)
    with HeadlessChromium(browser_binary, width=1400, height=1800,
                          log_path=str(workdir / "chromium.log")) as browser:
        browser.open(f"http://{metrics}/")
        time.sleep(PAGE_POLL_S)  # real time: the page polls every 2 s
        facts = browser.evaluate(FACTS_JS)
        shot = screenshot_path(workdir)
        browser.screenshot(shot)
    bench, feedback = load
    assert bench.poll() is None, "the load generator stopped before the page was read"
    context = f"\npage facts: {facts}\nscreenshot: {shot}"
    assert feedback.sent > 0 and not feedback.problems, \
        f"feedback loop: {feedback.sent} sent, problems: {feedback.problems}"

    assert facts["status"].startswith("healthy"), context

    charts = facts["charts"]
    assert set(CHARTS) <= set(charts), context
    p50 = [s["variant"] for s in charts["latency-p50"]]
    for variant in ROUTED:
        assert p50.count(variant) == 1, f"latency-p50 series of {variant}: {p50}" + context
    for chart in ("latency-p50", "latency-p99", "throughput"):
        for series in charts[chart]:
            if series["variant"] in ROUTED:
                # A window of ~8 polls: the path has a point per poll after the first.
                assert series["points"] >= 3, f"{chart}: {series}" + context
    accuracy = [s["variant"] for s in charts["accuracy"]]
    for variant in ROUTED:
        assert accuracy.count(variant) == 1, f"accuracy series of {variant}: {accuracy}" + context
    shadow = charts["shadow-agreement"]
    assert any(s["variant"] == SHADOW and s["primary"] in ROUTED for s in shadow), context

    verdicts = facts["verdicts"]
    assert verdicts is not None, "no table#verdicts" + context
    assert all(v["verdict"] in VERDICTS for v in verdicts), context
    assert any(v["metric"] == "latency_ratio" and v["baseline"] == "gelu" and
               v["candidate"] == "gem-n1" and v["shadow"] == "false" for v in verdicts), context
    assert any(v["shadow"] == "true" and v["candidate"] == SHADOW and
               v["metric"].startswith("shadow_") for v in verdicts), context

    assert facts["shares"] == {"gelu": "50 %", "gem-n1": "50 %"}, context

    # One strip per routed variant (the sampled ones), a cell per site of model.json.
    for variant in ROUTED:
        sites = [site["name"] for site in gt.model_json(MODEL, variant)["activation_sites"]]
        assert facts["activations"].get(variant) == sites, f"activation strip of {variant}" + context

    kinds = models_of_repository()
    assert set(kinds) <= set(facts["variants"]), context
    for variant, kind in kinds.items():
        assert facts["variants"][variant] == kind, f"activation of {variant}" + context
