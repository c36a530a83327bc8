"""deploy/prometheus and deploy/grafana against promtool and a real Prometheus.

1. promtool: `check config` on prometheus.yml, `check rules` on gemserve.rules.yml and
   `test rules` on gemserve.rules.test.yml, exactly as shipped; the unit tests give every
   alert a firing and a quiet case and check every recording rule; every metric the rules
   and the dashboard read is one gem-server exports (named in server/metrics/metrics.cc).
2. End to end: gem-server (a repository of resnet20-fashion's gelu, gem-n1 and
   segem-n1-e1e-4; split gelu 50 / gem-n1 50, shadow segem) and /usr/bin/prometheus on
   loopback, started from the shipped prometheus.yml with only the target and the
   intervals (1 s) rewritten, and the shipped rules. Traffic: one Classify per arm
   (so that every series exists before the measured traffic: a counter that appears
   already counting hides its first increments from rate()), then `gem-client bench
   --json` routed across both arms while a second client sends Classify + label Feedback.
   Then, from Prometheus's HTTP API:
   - per variant, gemserve_requests_total equals the requests sent, exactly;
   - the recorded request rate exists for both arms and the two rates stand in the ratio
     of the counts; recorded and ad-hoc histogram_quantile p99 exist for both arms, agree
     with each other, and lie within one latency bucket of bench's own p99;
   - every recording rule this traffic feeds has series, none NaN; every rule evaluates
     without error; no alert is pending or firing (bar the two latency budgets, which a
     busy machine may break);
   - every panel query of deploy/grafana/gemserve.json, its template variables resolved
     the way Grafana would (label_values through the API), returns data, none NaN.
Both processes are stopped at the end, by their PIDs.

    PYTHONPATH=models GEMSERVE_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest -q \
        tests/python/test_prometheus_deploy.py
"""
import json
import math
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest
import yaml

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemserve_testing as gt  # noqa: E402

PROMTOOL = "/usr/bin/promtool"
PROMETHEUS = "/usr/bin/prometheus"
DEPLOY = gt.REPO / "deploy"
PROM_CONFIG = DEPLOY / "prometheus" / "prometheus.yml"
RULES = DEPLOY / "prometheus" / "gemserve.rules.yml"
RULES_TEST = DEPLOY / "prometheus" / "gemserve.rules.test.yml"
DASHBOARD = DEPLOY / "grafana" / "gemserve.json"
IMAGE = gt.REPO / "examples" / "ankle-boot.png"
ANKLE_BOOT = 9                    # its Fashion-MNIST class

MODEL = "resnet20-fashion"
ARMS = ("gelu", "gem-n1")
SHADOW = "segem-n1-e1e-4"
BENCH_SECONDS = 6
BENCH_CONCURRENCY = 4
FEEDBACK_PAUSE_S = 0.1
# What Grafana puts for $__rate_interval with its default 15 s scrape interval
# (max(4 x 15 s, $__interval + 15 s)); the traffic lies well inside it.
RATE_INTERVAL = "1m"

CONFIG = f"""\
# Written by tests/python/test_prometheus_deploy.py.
device: cpu
threads: 1
limits:
  queue_size: 256
  default_deadline: 30s
batching:
  max_batch_size: 16
  max_queue_delay: 0ms
  workers: 2
models:
  {MODEL}: {{default_variant: gem-n1}}
experiments:
  - model: {MODEL}
    split: {{{ARMS[0]}: 50, {ARMS[1]}: 50}}
    sticky: true
    salt: prometheus-deploy-test
    shadow: {{variants: [{SHADOW}], sample_rate: 0.3, queue_size: 64}}
"""


def tool(path):
    if not os.access(path, os.X_OK):
        pytest.fail(f"no {path}: install Debian's prometheus package (scripts/install-deps.sh)")
    return path


def run(args, timeout=120):
    return subprocess.run(args, cwd=gt.REPO, stdin=subprocess.DEVNULL, capture_output=True,
                          text=True, timeout=timeout)


def load_yaml(path):
    with open(path) as f:
        return yaml.safe_load(f)


def rules():
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def dashboard():
    with open(DASHBOARD) as f:
        return json.load(f)


def panels(board):
    for panel in board["panels"]:
        yield panel
        yield from panel.get("panels", [])


def panel_queries(board):
    """[(panel title, expr)] of every query of every panel."""
    return [(p["title"], t["expr"]) for p in panels(board) for t in p.get("targets", [])
            if t.get("expr")]


# ----------------------------------------------------------------------------- promtool

def test_promtool_check_config():
    result = run([tool(PROMTOOL), "check", "config", str(PROM_CONFIG)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 rule files found" in result.stdout, result.stdout
    config = load_yaml(PROM_CONFIG)
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert jobs["gemserve"].get("metrics_path", "/metrics") == "/metrics"
    assert [Path(f).name for f in config["rule_files"]] == [RULES.name]


def test_promtool_check_rules():
    result = run([tool(PROMTOOL), "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout, result.stdout


def test_promtool_test_rules():
    result = run([tool(PROMTOOL), "test", "rules", str(RULES_TEST)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_rule_tests_cover_every_rule():
    """Each alert has a test time where it fires and one where it does not; each
    recording rule is evaluated by some promql_expr_test."""
    tests = load_yaml(RULES_TEST)["tests"]
    firing, quiet, exprs = set(), set(), []
    for test in tests:
        for case in test.get("alert_rule_test", []):
            (firing if case.get("exp_alerts") else quiet).add(case["alertname"])
        exprs += [case["expr"] for case in test.get("promql_expr_test", [])]
    alerts = {r["alert"] for r in rules() if "alert" in r}
    records = [r["record"] for r in rules() if "record" in r]
    assert alerts, "no alerting rules"
    assert alerts - firing == set(), "alerts never tested firing"
    assert alerts - quiet == set(), "alerts never tested quiet"
    untested = [r for r in records
                if not any(re.search(re.escape(r) + r"(?![\w:])", e) for e in exprs)]
    assert untested == [], "recording rules no promql_expr_test evaluates"
    for record in records:
        assert re.fullmatch(r"[a-z_]+:gemserve_[a-z0-9_]+:[a-z0-9_]+", record), record


def test_only_exported_metrics_are_used():
    """Every gemserve_* metric in the rules and the dashboard is a family the server
    registers (histogram series: the family name plus _bucket, _sum or _count)."""
    source = (gt.REPO / "server" / "metrics" / "metrics.cc").read_text()
    families = set(re.findall(r'"(gemserve_[a-z0-9_]+)"', source))
    assert "gemserve_requests_total" in families and "gemserve_model_info" in families
    exprs = [r["expr"] for r in rules()] + [e for _, e in panel_queries(dashboard())]
    used = {m for e in exprs for m in re.findall(r"(?<![\w:])gemserve_[a-z0-9_]+(?![\w:])", e)}
    assert used
    unknown = sorted(m for m in used
                     if m not in families and re.sub(r"_(bucket|sum|count)$", "", m) not in families)
    assert unknown == [], "metrics the server does not export"


def test_dashboard_shape():
    board = dashboard()
    assert 36 <= board["schemaVersion"] <= 39
    variables = {v["name"]: v for v in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    assert variables["model"]["type"] == "query"
    for panel in panels(board):
        if panel["type"] != "row":
            assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
            assert panel.get("targets"), panel["title"]
    text = json.dumps(board)
    for metric in ("gemserve_request_duration_seconds_bucket", "gemserve_requests_total",
                   "gemserve_shadow_comparisons_total", "gemserve_feedback_total",
                   "gemserve_experiment_weight"):
        assert metric in text, metric


# ----------------------------------------------------------------------------- end to end

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Prometheus:
    """/usr/bin/prometheus on 127.0.0.1:<free port> with a temporary storage directory."""

    def __init__(self, config_path, workdir, log_path, timeout_s=60):
        self.address = f"127.0.0.1:{free_port()}"
        self._log = open(log_path, "w")
        self.log_path = log_path
        self.process = subprocess.Popen(
            [tool(PROMETHEUS), f"--config.file={config_path}",
             f"--storage.tsdb.path={workdir / 'data'}", f"--web.listen-address={self.address}",
             "--storage.tsdb.retention.time=1h", "--log.level=warn"],
            cwd=workdir, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + timeout_s
            while gt.http_get(f"http://{self.address}/-/ready", timeout=2)[0] != 200:
                if self.process.poll() is not None:
                    pytest.fail(f"prometheus exited with {self.process.returncode}:\n{self.log()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"prometheus not ready in {timeout_s} s:\n{self.log()}")
                time.sleep(0.2)
        except BaseException:
            self.stop()
            raise

    def log(self):
        self._log.flush()
        return Path(self.log_path).read_text()[-3000:]

    def api(self, path, **params):
        url = f"http://{self.address}/api/v1/{path}"
        if params:
            url += "?" + urllib.parse.urlencode(params, doseq=True)
        status, body = gt.http_get(url)
        assert status == 200, f"{url} answered {status}: {body[:500]}"
        answer = json.loads(body)
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr, at=None):
        """[(labels without __name__, value)] of an instant query; values as floats."""
        params = {"query": expr}
        if at is not None:
            params["time"] = repr(at)
        data = self.api("query", **params)
        if data["resultType"] == "scalar":
            return [({}, float(data["result"][1]))]
        assert data["resultType"] == "vector", data
        return [({k: v for k, v in r["metric"].items() if k != "__name__"}, float(r["value"][1]))
                for r in data["result"]]

    def by_variant(self, expr, at=None, label="variant"):
        result = self.query(expr, at)
        values = {labels.get(label): value for labels, value in result}
        assert len(values) == len(result), f"{expr}: several series per {label}: {result}"
        return values

    def stop(self):
        gt.stop_process(self.process, grace_s=20)
        if not self._log.closed:
            self._log.close()


def prometheus_config(target, workdir):
    """The shipped prometheus.yml with only the scrape target and the intervals changed
    (and the rule files made absolute, since the copy lives elsewhere)."""
    config = load_yaml(PROM_CONFIG)
    config["global"].update(scrape_interval="1s", evaluation_interval="1s", scrape_timeout="1s")
    config["rule_files"] = [str((PROM_CONFIG.parent / f).resolve()) for f in config["rule_files"]]
    (job,) = [j for j in config["scrape_configs"] if j["job_name"] == "gemserve"]
    (static,) = job["static_configs"]
    static["targets"] = [target]
    path = workdir / "prometheus.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def small_repository(workdir):
    """models/repository with only resnet20-fashion's split arms and shadow (symlinks)."""
    return gt.demo_subset(workdir, [f"{MODEL}/{name}" for name in ("labels.txt", *ARMS, SHADOW)])


class FeedbackClient(threading.Thread):
    """Routed Classify + label Feedback, one pair every FEEDBACK_PAUSE_S, until stopped:
    two labels in three are the true class. Counts what it sent per variant."""

    def __init__(self, address):
        super().__init__(daemon=True)
        self.client = gt.InferenceClient(address)
        self.image = IMAGE.read_bytes()
        self.classified = Counter()
        self.outcomes = Counter()      # (variant, "correct" | "incorrect")
        self.error = None
        self.done = threading.Event()

    def run(self):
        pb = gt.inference_pb2()
        try:
            i = 0
            while not self.done.is_set():
                response = self.client.classify(
                    pb.ClassifyRequest(model=MODEL, routing_key=f"feedback-{i}", image=self.image),
                    timeout=30)
                self.classified[response.variant] += 1
                label = ANKLE_BOOT if i % 3 else 0
                answer = self.client.feedback(
                    pb.FeedbackRequest(request_id=response.request_id, label=label), timeout=30)
                assert answer.variant == response.variant
                self.outcomes[(answer.variant, "correct" if answer.correct else "incorrect")] += 1
                i += 1
                self.done.wait(FEEDBACK_PAUSE_S)
        except Exception as error:  # reported by the test
            self.error = error

    def stop(self):
        self.done.set()
        self.join(timeout=60)
        self.client.close()


def bucket_bounds(server):
    bounds = sorted({float(labels["le"]) for labels, _ in
                     server.metrics_samples("gemserve_request_duration_seconds_bucket")})
    assert len(bounds) > 10 and bounds[-1] == math.inf, bounds
    for a, b in zip(bounds[:-2], bounds[1:-1]):
        assert b / a <= 1.5 + 1e-9, (a, b)
    return bounds


def bucket_index(bounds, seconds):
    return next(i for i, bound in enumerate(bounds) if seconds <= bound)


def wait_until(predicate, timeout_s, what, processes=()):
    deadline = time.monotonic() + timeout_s
    while True:
        done, detail = predicate()
        if done:
            return detail
        for name, process in processes:
            if process.poll() is not None:
                pytest.fail(f"{name} exited while waiting for {what}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}: {detail}")
        time.sleep(0.25)


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    """gem-server + Prometheus with the traffic of the module docstring sent; yields
    (prometheus, server, what was sent). Both always stopped."""
    workdir = tmp_path_factory.mktemp("prometheus-deploy")
    config = workdir / "gemserve.yaml"
    config.write_text(CONFIG)
    server = gt.Server(config, workdir / "gem-server.log",
                       model_repository=small_repository(workdir))
    prometheus = None
    try:
        prometheus = Prometheus(prometheus_config(server.metrics, workdir), workdir,
                                workdir / "prometheus.log")
        processes = [("gem-server", server.process), ("prometheus", prometheus.process)]
        sent = Counter()

        # One request per arm, then two scrapes of it before the measured traffic.
        client = gt.InferenceClient(server.grpc)
        pb = gt.inference_pb2()
        for arm in ARMS:
            response = client.classify(pb.ClassifyRequest(model=MODEL, variant=arm,
                                                          image=IMAGE.read_bytes()), timeout=30)
            assert response.variant == arm
            sent[arm] += 1
        client.close()
        wait_until(lambda: (lambda seen: (all(seen.get(a, 0) >= 2 for a in ARMS), seen))(
            prometheus.by_variant(f'count_over_time(gemserve_requests_total{{model="{MODEL}", '
                                  f'rpc="Classify", code="OK"}}[1m])')),
            30, "two scrapes of both arms", processes)

        feedback = FeedbackClient(server.grpc)
        feedback.start()
        try:
            bench = server.client("bench", "--model", MODEL, "--image", IMAGE,
                                  "--routing-keys", 200, "--concurrency", BENCH_CONCURRENCY,
                                  "--duration", f"{BENCH_SECONDS}s", "--json",
                                  timeout=BENCH_SECONDS + 60)
        finally:
            feedback.stop()
        assert bench.returncode == 0, bench.stdout + bench.stderr
        assert feedback.error is None, f"feedback client failed: {feedback.error!r}"
        report = json.loads(bench.stdout)
        assert report["errors"] == 0, report
        for arm in ARMS:
            assert report["variants"].get(arm, {}).get("requests", 0) > 0, report
            sent[arm] += report["variants"][arm]["requests"]
        sent.update(feedback.classified)
        assert set(sent) == set(ARMS), sent

        # Until Prometheus has scraped every request, then until the rules ran on it.
        counts = f'gemserve_requests_total{{model="{MODEL}", rpc="Classify", code="OK"}}'
        wait_until(lambda: (lambda seen: (seen == dict(sent), (seen, dict(sent))))(
            {v: int(c) for v, c in prometheus.by_variant(counts).items()}),
            30, "Prometheus to scrape the final counts", processes)
        scraped_at = max(v for v in prometheus.by_variant(f"timestamp({counts})").values())
        rule = "rpc_model_variant:gemserve_requests:rate5m"
        wait_until(lambda: (lambda t: (t and min(t) > scraped_at, t))(
            list(prometheus.by_variant(f'timestamp({rule}{{model="{MODEL}", rpc="Classify"}})').values())),
            30, "the recording rules to run after the last scrape", processes)
        yield prometheus, server, {"sent": sent, "bench": report, "feedback": feedback.outcomes}
    finally:
        if prometheus is not None:
            prometheus.stop()
        server.stop()


def test_request_counts_and_rates(stack):
    prometheus, _, traffic = stack
    sent = traffic["sent"]
    totals = prometheus.by_variant(
        f'sum by (variant) (gemserve_requests_total{{model="{MODEL}", rpc="Classify", code="OK"}})')
    assert totals == {arm: float(sent[arm]) for arm in ARMS}

    rule = "rpc_model_variant:gemserve_requests:rate5m"
    times = prometheus.by_variant(f'timestamp({rule}{{model="{MODEL}", rpc="Classify"}})')
    at = min(times.values())
    recorded = prometheus.by_variant(f'{rule}{{model="{MODEL}", rpc="Classify"}}', at)
    adhoc = prometheus.by_variant(
        f'sum by (variant) (rate(gemserve_requests_total{{model="{MODEL}", rpc="Classify"}}[5m]))', at)
    assert set(recorded) == set(ARMS), recorded
    for arm in ARMS:
        assert recorded[arm] > 0
        assert recorded[arm] == pytest.approx(adhoc[arm], rel=1e-9), (recorded, adhoc)
    # rate() sees the increase after the first scrape (which held the one request per arm
    # sent first), scaled alike for both arms: the rates stand as the counts do.
    a, b = ARMS
    assert recorded[a] / recorded[b] == pytest.approx((sent[a] - 1) / (sent[b] - 1), rel=0.05), \
        (recorded, dict(sent))


def test_p99_per_variant(stack):
    prometheus, server, traffic = stack
    bounds = bucket_bounds(server)
    bench = traffic["bench"]
    rule = "rpc_model_variant:gemserve_request_duration_seconds:p99_rate5m"
    at = min(prometheus.by_variant(f'timestamp({rule}{{model="{MODEL}", rpc="Classify"}})').values())
    recorded = prometheus.by_variant(f'{rule}{{model="{MODEL}", rpc="Classify"}}', at)
    adhoc = prometheus.by_variant(
        'histogram_quantile(0.99, sum by (le, variant) (rate(gemserve_request_duration_seconds_bucket'
        f'{{model="{MODEL}", rpc="Classify"}}[5m])))', at)
    assert set(recorded) == set(adhoc) == set(ARMS), (recorded, adhoc)
    for arm in ARMS:
        assert recorded[arm] == pytest.approx(adhoc[arm], rel=1e-9)
        measured = bench["variants"][arm]["latency_ms"]["p99"] / 1000
        seen, expected = bucket_index(bounds, recorded[arm]), bucket_index(bounds, measured)
        assert abs(seen - expected) <= 1, (
            f"{arm}: Prometheus p99 {recorded[arm] * 1000:.3f} ms (bucket {seen}), "
            f"bench p99 {measured * 1000:.3f} ms (bucket {expected})")
    quantiles = {q: prometheus.by_variant(
        f'rpc_model_variant:gemserve_request_duration_seconds:{q}_rate5m{{model="{MODEL}", rpc="Classify"}}', at)
        for q in ("p50", "p95", "p99")}
    for arm in ARMS:
        assert 0 < quantiles["p50"][arm] <= quantiles["p95"][arm] <= quantiles["p99"][arm]


def test_recording_rules_produce_series(stack):
    prometheus, _, traffic = stack
    # Everything this traffic feeds; no errors were sent (request_errors:rate5m is empty
    # then) and no Generate (time_to_first_token).
    not_fed = {"rpc_model_variant:gemserve_request_errors:rate5m",
               "model_variant:gemserve_time_to_first_token_seconds:p99_rate5m"}
    for record in (r["record"] for r in rules() if "record" in r):
        result = prometheus.query(record)
        if record in not_fed:
            assert result == [], (record, result)
            continue
        assert result, f"{record} has no series"
        for labels, value in result:
            assert math.isfinite(value), (record, labels, value)
            assert labels.get("model") in (None, MODEL), (record, labels)
    for record in ("rpc_model_variant:gemserve_request_errors:ratio_rate5m",
                   "rpc_model_variant:gemserve_requests_resource_exhausted:ratio_rate5m"):
        values = prometheus.by_variant(f'{record}{{model="{MODEL}", rpc="Classify"}}')
        assert values == {arm: 0.0 for arm in ARMS}, (record, values)
    pairs = prometheus.by_variant(
        f'model_primary_shadow:gemserve_shadow_comparisons:rate15m{{model="{MODEL}"}}', label="primary")
    assert set(pairs) <= set(ARMS) and pairs and min(pairs.values()) > 0, pairs

    # Feedback: the counters are exactly what the server answered; the recorded accuracy
    # (rates, so the first scrape's few are missing) is near the exact fraction.
    outcomes = traffic["feedback"]
    counted = {(labels["variant"], labels["outcome"]): value for labels, value in prometheus.query(
        f'gemserve_feedback_total{{model="{MODEL}"}}')}
    assert counted == {key: float(n) for key, n in outcomes.items()}
    accuracy = prometheus.by_variant(f'model_variant:gemserve_feedback_accuracy:ratio_rate1h{{model="{MODEL}"}}')
    for arm, value in accuracy.items():
        correct, incorrect = outcomes[(arm, "correct")], outcomes[(arm, "incorrect")]
        assert value == pytest.approx(correct / (correct + incorrect), abs=0.15), (arm, value, outcomes)


def test_rules_healthy_and_quiet(stack):
    prometheus, _, _ = stack
    groups = prometheus.api("rules")["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    shipped = {r.get("record") or r.get("alert") for r in rules()}
    assert set(loaded) == shipped
    for name, rule in loaded.items():
        assert rule["health"] == "ok", (name, rule.get("lastError"))
    # Nothing is wrong, so nothing may even be pending (every `for:` is longer than this
    # test), except the latency budgets, which a busy machine can break.
    load_dependent = {"GemserveClassifyP99OverBudget", "GemserveQueueWaitHigh"}
    active = [(a["labels"]["alertname"], a["state"], a["labels"])
              for a in prometheus.api("alerts")["alerts"]
              if a["labels"]["alertname"] not in load_dependent]
    assert active == []
    assert prometheus.by_variant('up{job="gemserve"}', label="job") == {"gemserve": 1.0}


def resolve_variables(board, prometheus):
    """{name: value} the way Grafana substitutes them for these panels: label_values()
    through the label API (first value, or the allValue when All is selected), custom
    variables at their current value, and $__rate_interval."""
    values = {"__rate_interval": RATE_INTERVAL}
    for var in board["templating"]["list"]:
        if var["type"] == "datasource":
            continue
        if var["type"] == "custom":
            values[var["name"]] = var["current"]["value"]
            continue
        assert var["type"] == "query", var
        query = var["query"]["query"] if isinstance(var["query"], dict) else var["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query)
        assert match, query
        selector = substitute(match.group(1), values)
        options = prometheus.api(f"label/{match.group(2)}/values", **{"match[]": selector})
        assert options, f"variable {var['name']}: {query} has no values"
        current = var.get("current", {}).get("value")
        if var.get("includeAll") and current in ("$__all", ["$__all"]):
            values[var["name"]] = var.get("allValue") or "(" + "|".join(map(re.escape, options)) + ")"
        else:
            values[var["name"]] = MODEL if MODEL in options else options[0]
    return values


def substitute(expr, values):
    def one(match):
        name = match.group(1) or match.group(2)
        assert name in values, f"unknown template variable {name} in {expr}"
        return values[name]
    return re.sub(r"\$\{(\w+)\}|\$(\w+)", one, expr)


def test_grafana_panels_return_data(stack):
    prometheus, _, _ = stack
    board = dashboard()
    values = resolve_variables(board, prometheus)
    assert values["model"] == MODEL
    queries = panel_queries(board)
    assert len(queries) >= 6
    titles = " ".join(title.lower() for title, _ in queries)
    for word in ("latency", "throughput", "shadow", "accuracy", "split"):
        assert word in titles, word
    for title, expr in queries:
        result = prometheus.query(substitute(expr, values))
        assert result, f"panel {title!r}: no data for {substitute(expr, values)}"
        nan = [(labels, value) for labels, value in result if not math.isfinite(value)]
        assert nan == [], f"panel {title!r}: NaN or infinite series {nan}"
    # The latency and throughput panels show both arms.
    for title, expr in queries:
        if "by variant" in title.lower() and "variant" in expr:
            seen = {labels.get("variant") for labels, _ in prometheus.query(substitute(expr, values))}
            assert set(ARMS) <= seen, (title, seen)
