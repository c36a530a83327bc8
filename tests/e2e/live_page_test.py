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

Run: PYTHONPATH=models GEMSERVE_BUILD_DIR=$PWD/build python3 -m pytest -q tests/e2e
"""

import gzip
import json
import os
import re
import struct
import subprocess
import threading
import time
import urllib.error
import urllib.request
import zlib

import pytest

from headless_chromium import HeadlessChromium, find_chromium

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
MODEL = "resnet20-fashion"
ROUTED = ("gelu", "gem-n1")
SHADOW = "segem-n1-e1e-4"
CHARTS = ("latency-p50", "latency-p99", "throughput", "shadow-agreement", "accuracy")
VERDICTS = {"better", "worse", "no difference yet"}
FASHION_MNIST = "/usr/share/datasets/fashion-mnist"

SERVER_START_S = 180   # loading every variant of both demo models takes ~20 s
LOAD_S = 45            # the bench outlasts the page's whole visit
PAGE_AFTER_LOAD_S = 4  # the page's first scrape already sees traffic
PAGE_POLL_S = 16       # ~8 real 2-s polls: a window with several points per series

CONFIG = f"""\
# Written by tests/e2e/live_page_test.py.
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
"""


# ---------------------------------------------------------------------------- helpers

def build_dir():
    path = os.environ.get("GEMSERVE_BUILD_DIR", os.path.join(REPO, "build"))
    for binary in ("gem-server", "gem-client"):
        if not os.access(os.path.join(path, binary), os.X_OK):
            pytest.fail(f"no {binary} in {path}: build first, or set GEMSERVE_BUILD_DIR")
    return path


def png(width, height, grey_rows):
    """An 8-bit greyscale PNG; grey_rows: `height` bytes objects of `width` pixels."""
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    raw = b"".join(b"\0" + row for row in grey_rows)  # filter type 0 per row
    return (b"\x89PNG\r\n\x1a\n" +
            chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) +
            chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def labelled_images(directory, count):
    """[(PNG path, true class)]: the first `count` Fashion-MNIST test images when the dataset
    is installed, else one plain grey image (whose "true class" 0 is arbitrary)."""
    samples = []
    images = os.path.join(FASHION_MNIST, "t10k-images-idx3-ubyte.gz")
    labels = os.path.join(FASHION_MNIST, "t10k-labels-idx1-ubyte.gz")
    if os.path.exists(images) and os.path.exists(labels):
        with gzip.open(images) as f, gzip.open(labels) as g:
            magic, available, height, width = struct.unpack(">IIII", f.read(16))
            label_magic, _ = struct.unpack(">II", g.read(8))
            if magic == 2051 and label_magic == 2049 and (height, width) == (28, 28):
                for i in range(min(count, available)):
                    pixels = f.read(28 * 28)
                    samples.append(([pixels[r * 28:(r + 1) * 28] for r in range(28)], g.read(1)[0]))
    if not samples:
        samples = [([bytes([128] * 28)] * 28, 0)]
    paths = []
    for i, (rows, label) in enumerate(samples):
        path = os.path.join(directory, f"image-{i}.png")
        with open(path, "wb") as f:
            f.write(png(28, 28, rows))
        paths.append((path, label))
    return paths


def http_get(url, timeout=5):
    """(status, body) of a GET; status 0 when nothing answered."""
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(errors="replace")
    except (urllib.error.URLError, OSError):
        return 0, ""


def stop(process, grace_s=10):
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=grace_s)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


class Server:
    """gem-server on free ports; the addresses come from the lines it prints at start."""

    def __init__(self, build, config_path, log_path):
        self.log_path = log_path
        self._log = open(log_path, "w")
        self._lines = []
        self._seen = threading.Condition()
        self.process = subprocess.Popen(
            [os.path.join(build, "gem-server"), "--config", config_path,
             "--model-repository", os.path.join(REPO, "models", "repository"),
             "--listen", "127.0.0.1:0", "--metrics-listen", "127.0.0.1:0"],
            cwd=REPO, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT, text=True)
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.process.stdout:
            self._log.write(line)
            self._log.flush()
            with self._seen:
                self._lines.append(line)
                self._seen.notify_all()
        with self._seen:
            self._seen.notify_all()

    def log(self):
        with self._seen:
            return "".join(self._lines)[-4000:]

    def address(self, what, deadline):
        """HOST:PORT from the 'WHAT listening on HOST:PORT' line."""
        pattern = re.compile(what + r" listening on (\S+)")
        with self._seen:
            while True:
                for line in self._lines:
                    match = pattern.search(line)
                    if match:
                        return match.group(1)
                if self.process.poll() is not None:
                    pytest.fail(f"gem-server exited with {self.process.returncode}:\n{self.log()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"gem-server printed no '{what} listening on' line:\n{self.log()}")
                self._seen.wait(timeout=1)

    def wait_healthy(self, metrics, deadline):
        while True:
            status, _ = http_get(f"http://{metrics}/healthz")
            if status == 200:
                return
            if self.process.poll() is not None:
                pytest.fail(f"gem-server exited with {self.process.returncode}:\n{self.log()}")
            if time.monotonic() > deadline:
                pytest.fail(f"gem-server not healthy after {SERVER_START_S} s:\n{self.log()}")
            time.sleep(0.5)

    def stop(self):
        stop(self.process)
        self._log.close()


# ---------------------------------------------------------------------------- fixtures

@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("live_page")


@pytest.fixture(scope="module")
def server(workdir):
    """A started, healthy gem-server: (grpc address, metrics address). Always stopped."""
    build = build_dir()
    config = workdir / "gemserve.yaml"
    config.write_text(CONFIG)
    process = Server(build, str(config), str(workdir / "gem-server.log"))
    try:
        deadline = time.monotonic() + SERVER_START_S
        grpc = process.address("grpc", deadline)
        metrics = process.address("metrics", deadline)
        process.wait_healthy(metrics, deadline)
        status, body = http_get(f"http://{metrics}/api/v1/experiments")
        assert status == 200 and MODEL in body, \
            f"the server did not take the experiment: /api/v1/experiments answered {status} {body[:300]}"
        yield grpc, metrics
    finally:
        process.stop()


class FeedbackLoop(threading.Thread):
    """Classifies labelled images one at a time, routed by the experiment, and sends each
    answer's true class back with `gem-client feedback`, until stopped: the live accuracy
    the page charts."""

    def __init__(self, client, grpc, samples):
        super().__init__(daemon=True)
        self._client, self._grpc, self._samples = client, grpc, samples
        self._stopping = threading.Event()  # not _stop: Thread has one
        self.sent = 0
        self.problems = []

    def _run(self, *args):
        return subprocess.run([self._client, "--server", self._grpc, *args], cwd=REPO,
                              capture_output=True, text=True, timeout=30)

    def run(self):
        i = 0
        while not self._stopping.is_set() and len(self.problems) < 5:
            path, label = self._samples[i % len(self._samples)]
            i += 1
            answer = self._run("classify", "--model", MODEL, path)
            request = re.search(r"request_id ([^,\s)\]]+)", answer.stdout)
            if answer.returncode != 0 or request is None:
                self.problems.append(f"classify: {answer.stdout}{answer.stderr}")
                continue
            credit = self._run("feedback", "--request-id", request.group(1), "--label", str(label))
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
    grpc, _ = server
    client = os.path.join(build_dir(), "gem-client")
    samples = labelled_images(str(workdir), 50)
    log = open(workdir / "bench.log", "w")
    bench = subprocess.Popen(
        [client, "--server", grpc, "bench", "--model", MODEL, "--concurrency", "4",
         "--duration", f"{LOAD_S}s", "--image", samples[0][0],
         "--routing-keys", "64"],  # sticky routing: 64 keys spread over both arms
        cwd=REPO, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    feedback = FeedbackLoop(client, grpc, samples)
    try:
        feedback.start()
        yield bench, feedback
    finally:
        stop(bench)
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
  };
})()""" % {"model": MODEL}


def screenshot_path(workdir):
    if os.environ.get("GEMSERVE_UPDATE_SCREENSHOT") == "1":
        path = os.path.join(REPO, "docs", "img", "live-page.png")
        os.makedirs(os.path.dirname(path), exist_ok=True)
        return path
    return str(workdir / "live-page.png")


def models_of_repository():
    """{variant: activation kind} of MODEL, from the repository's model.json files."""
    root = os.path.join(REPO, "models", "repository", MODEL)
    kinds = {}
    for variant in sorted(os.listdir(root)):
        spec = os.path.join(root, variant, "model.json")
        if os.path.exists(spec):
            with open(spec) as f:
                kinds[variant] = json.load(f)["activation"]["kind"]
    return kinds


def test_live_page_compares_the_variants(server, load, workdir):
    _, metrics = server
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

    kinds = models_of_repository()
    assert set(kinds) <= set(facts["variants"]), context
    for variant, kind in kinds.items():
        assert facts["variants"][variant] == kind, f"activation of {variant}" + context
