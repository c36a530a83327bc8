"""Several gem-server replicas with one experiment config, as a client-side load-balanced
deployment sees them: sticky routing agrees across the replicas (the same routing_key gets
the same variant everywhere), and one grpcio channel with round_robin and a retry policy
spreads Classify over three replicas, then rides out one replica's SIGTERM drain (health
NOT_SERVING, new requests UNAVAILABLE, in-flight ones finish, exit 0) with every request
accounted for and the load carrying on on the two left.

Per-replica counts come from each server's /metrics (gemserve_requests_total)."""

import json
import signal
import threading
import time

import pytest

import gemserve_testing as gt

grpc = pytest.importorskip("grpc")

MODEL = "resnet20-fashion"
ARMS = ("gelu", "gem-n1")
SALT = "replicas-issue-13"
KEYS = 200
LOAD_THREADS = 4
DEADLINE_S = 30          # per Classify: generous, the machine may be busy
BURST = 96               # requests held in flight on the replica that is stopped
IMAGE = (gt.REPO / "examples" / "ankle-boot.png").read_bytes()
RETRY_POLICY = {
    "maxAttempts": 5,
    "initialBackoff": "0.2s",
    "maxBackoff": "2s",
    "backoffMultiplier": 2,
    "retryableStatusCodes": ["UNAVAILABLE"],
}
SERVICE_CONFIG = {
    "loadBalancingConfig": [{"round_robin": {}}],
    "methodConfig": [{"name": [{"service": "gemserve.v1.Inference"}],
                      "retryPolicy": RETRY_POLICY}],
}


def small_repository(root):
    """resnet20-fashion with only labels.txt and the experiment's arms (symlinks)."""
    return gt.demo_subset(root, [f"{MODEL}/{name}" for name in ("labels.txt", *ARMS)])


@pytest.fixture(scope="module")
def replicas(tmp_path_factory):
    work = tmp_path_factory.mktemp("replicas")
    repository = small_repository(work)
    config = work / "gemserve.yaml"
    config.write_text(
        f"models:\n  {MODEL}: {{default_variant: {ARMS[0]}}}\n"
        "experiments:\n"
        f"  - model: {MODEL}\n"
        f"    split: {{{ARMS[0]}: 50, {ARMS[1]}: 50}}\n"
        "    sticky: true\n"
        f"    salt: {SALT}\n")
    servers = []
    try:
        for name in ("replica-a", "replica-b", "replica-c"):
            servers.append(gt.Server(config, work / f"{name}.log", model_repository=repository,
                                     name=name))
        yield servers
    finally:
        for server in servers:
            server.stop()


def classify_request(pb, routing_key, variant=""):
    return pb.ClassifyRequest(model=MODEL, variant=variant, routing_key=routing_key,
                              image=IMAGE, top_k=1)


def classify_counts(server, metrics_text=None):
    """{code: Classify requests} of one replica, summed over variants (every model)."""
    if metrics_text is None:
        samples = server.metrics_samples("gemserve_requests_total")
    else:
        samples = gt.parse_prometheus(metrics_text, "gemserve_requests_total")
    counts = {}
    for labels, value in samples:
        if labels.get("rpc") == "Classify":
            counts[labels["code"]] = counts.get(labels["code"], 0) + int(value)
    return counts


def ok_counts(servers):
    return [classify_counts(s).get("OK", 0) for s in servers]


def inflight_classify(server):
    for labels, value in server.metrics_samples("gemserve_inflight_requests"):
        if labels.get("rpc") == "Classify":
            return int(value)
    return 0


def assert_spread(deltas, names, what):
    total = sum(deltas)
    detail = f"{what}: {dict(zip(names, deltas))}"
    assert total > 0, detail
    for delta in deltas:
        # round_robin rotates its picks over the ready replicas: about 1/n each.
        assert delta >= 0.2 * total, detail


# ----------------------------------------------------------------------------- sticky

def test_sticky_keys_get_the_same_variant_on_every_replica(replicas):
    pb = gt.inference_pb2()
    keys = [f"user-{i:04d}" for i in range(KEYS)]
    clients = [gt.InferenceClient(s.grpc) for s in replicas]
    try:
        futures = [[c.classify.future(classify_request(pb, key), timeout=DEADLINE_S * 2)
                    for key in keys] for c in clients]
        answers = [[f.result() for f in per_server] for per_server in futures]
    finally:
        for c in clients:
            c.close()

    versions = {r.experiment_version for per_server in answers for r in per_server}
    assert len(versions) == 1 and 0 not in versions, f"experiment versions {versions}"
    disagreeing = []
    arms = {arm: 0 for arm in ARMS}
    for i, key in enumerate(keys):
        variants = [per_server[i].variant for per_server in answers]
        assert all(v in ARMS for v in variants), f"{key}: {variants}"
        if len(set(variants)) != 1:
            disagreeing.append((key, variants))
        arms[variants[0]] += 1
    assert not disagreeing, f"{len(disagreeing)} keys routed differently: {disagreeing[:10]}"
    # 50/50 split: fewer than 50 of 200 keys on one arm has probability ~1e-13.
    assert min(arms.values()) >= KEYS // 4, f"keys per arm {arms}"


# ----------------------------------------------------------------------------- failover

class Load:
    """LOAD_THREADS threads issuing Classify over one channel until stop(); every call's
    outcome is counted by the phase in which it was issued."""

    PHASES = ("before", "draining", "after")

    def __init__(self, channel, pb):
        self.classify = channel.unary_unary(
            "/gemserve.v1.Inference/Classify",
            request_serializer=pb.ClassifyRequest.SerializeToString,
            response_deserializer=pb.ClassifyResponse.FromString)
        self.pb = pb
        self.phase = "before"
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self.issued = {p: 0 for p in self.PHASES}
        self.ok = {p: 0 for p in self.PHASES}
        self.failed = []         # (phase, code, details)
        self.malformed = []      # OK answers that are not a routed resnet20-fashion answer
        self.variants = {}
        self.threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                        for i in range(LOAD_THREADS)]

    def start(self):
        for thread in self.threads:
            thread.start()

    def _run(self, index):
        n = 0
        while not self._stop.is_set():
            n += 1
            phase = self.phase
            with self._lock:
                self.issued[phase] += 1
            try:
                response = self.classify(classify_request(self.pb, f"load-{index}-{n}"),
                                         timeout=DEADLINE_S)
            except grpc.RpcError as error:
                with self._lock:
                    self.failed.append((phase, error.code(), error.details()))
                continue
            except Exception as error:  # anything else is a failure the client saw, too
                with self._lock:
                    self.failed.append((phase, type(error).__name__, str(error)))
                continue
            with self._lock:
                self.ok[phase] += 1
                self.variants[response.variant] = self.variants.get(response.variant, 0) + 1
                if (response.model != MODEL or response.variant not in ARMS
                        or len(response.predictions) != 1 or not response.request_id):
                    self.malformed.append(str(response)[:300])

    def ok_total(self, phase=None):
        with self._lock:
            return sum(self.ok.values()) if phase is None else self.ok[phase]

    def stop(self):
        self._stop.set()
        for thread in self.threads:
            thread.join(timeout=DEADLINE_S + 30)


class MetricsWatcher:
    """Scrapes a stopping replica's /metrics until it stops answering; keeps the last
    answer and whether /healthz ever said 503 (NOT_SERVING)."""

    def __init__(self, server):
        self.server = server
        self.last = None
        self.scrapes = 0
        self.saw_not_serving = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self):
        while True:
            status, body = gt.http_get(f"http://{self.server.metrics}/metrics", timeout=2)
            if status != 200:
                return
            self.last = body
            self.scrapes += 1
            health, _ = gt.http_get(f"http://{self.server.metrics}/healthz", timeout=2)
            if health == 503:
                self.saw_not_serving = True
            if not self.server.alive():
                return
            time.sleep(0.005)


def test_round_robin_with_retries_rides_out_one_replica_stopping(replicas):
    assert all(s.alive() for s in replicas), "a replica is down before the failover test"
    names = [s.name for s in replicas]
    victim, survivors = replicas[0], replicas[1:]
    pb = gt.inference_pb2()
    target = "ipv4:" + ",".join(s.grpc for s in replicas)
    channel = grpc.insecure_channel(target, options=[
        ("grpc.service_config", json.dumps(SERVICE_CONFIG)), ("grpc.enable_retries", 1)])
    direct = grpc.insecure_channel(victim.grpc, options=[("grpc.enable_retries", 0)])
    load = Load(channel, pb)
    try:
        grpc.channel_ready_future(channel).result(timeout=30)
        at_start = ok_counts(replicas)
        load.start()
        gt.wait_for(lambda: (load.ok_total() >= 300, f"{load.ok_total()} answers"), 60,
                    "300 load-balanced answers", poll_s=0.1)
        before_stop = ok_counts(replicas)
        assert_spread([b - a for a, b in zip(at_start, before_stop)], names,
                      "Classify served per replica before the stop")

        # Hold requests in flight on the victim so that its drain lasts a while and the
        # balanced load meets a replica that answers UNAVAILABLE.
        burst_call = direct.unary_unary(
            "/gemserve.v1.Inference/Classify",
            request_serializer=pb.ClassifyRequest.SerializeToString,
            response_deserializer=pb.ClassifyResponse.FromString)
        burst = [burst_call.future(classify_request(pb, f"burst-{i}", variant=ARMS[0]),
                                   timeout=DEADLINE_S * 2) for i in range(BURST)]
        held = gt.wait_for(lambda: ((n := inflight_classify(victim)) >= BURST // 3, n), 30,
                           f"{BURST // 3} Classify in flight on {victim.name}", poll_s=0.005)
        victim.process.send_signal(signal.SIGTERM)
        load.phase = "draining"
        watcher = MetricsWatcher(victim)
        code = victim.process.wait(timeout=60)
        load.phase = "after"
        at_exit = ok_counts(survivors)
        watcher.thread.join(timeout=10)
        assert code == 0, f"{victim.name} exited with {code}:\n{victim.log_tail()}"

        gt.wait_for(lambda: (load.ok_total("after") >= 200, f"{load.ok_total('after')} answers"),
                    60, "200 answers after the stopped replica exited", poll_s=0.1)
        load.stop()
        at_end = ok_counts(survivors)
    finally:
        load.stop()
        channel.close()
        direct.close()

    assert not any(t.is_alive() for t in load.threads), \
        f"a Classify call did not return within its {DEADLINE_S} s deadline"
    issued, ok, failed = sum(load.issued.values()), sum(load.ok.values()), len(load.failed)
    burst_outcomes = {}
    for future in burst:
        outcome = future.code().name if future.exception() else "OK"
        burst_outcomes[outcome] = burst_outcomes.get(outcome, 0) + 1
    victim_last = classify_counts(victim, watcher.last) if watcher.last else {}
    victim_unavailable = victim_last.get("UNAVAILABLE", 0)
    summary = (f"issued {load.issued}, ok {load.ok}, failed {failed}, variants {load.variants}; "
               f"per replica OK before the stop {dict(zip(names, before_stop))} "
               f"(from {dict(zip(names, at_start))}), survivors at exit "
               f"{dict(zip(names[1:], at_exit))}, at end {dict(zip(names[1:], at_end))}; "
               f"burst {burst_outcomes} with {held} in flight at SIGTERM; {victim.name}'s last "
               f"/metrics ({watcher.scrapes} scrapes while stopping, NOT_SERVING seen: "
               f"{watcher.saw_not_serving}): {victim_last}; load-balanced attempts it refused "
               f"(retried) >= {victim_unavailable - burst_outcomes.get('UNAVAILABLE', 0)}")
    print(summary)

    # Every request issued came back, as an answer or as an error the client saw.
    assert issued == ok + failed, summary
    assert not load.malformed, f"{load.malformed[:3]}; {summary}"
    # The retry policy hides the drain: a request the stopping replica refuses with
    # UNAVAILABLE is retried (with backoff) on another pick.
    assert all(code == grpc.StatusCode.UNAVAILABLE for _, code, _ in load.failed), \
        f"{load.failed[:5]}; {summary}"
    assert failed == 0, f"{load.failed[:5]}; {summary}"
    # Requests in flight when the signal came finished: only ones the victim had not yet
    # admitted may be refused, and only with UNAVAILABLE (the load may account for up to
    # LOAD_THREADS of the `held` in flight).
    assert set(burst_outcomes) <= {"OK", "UNAVAILABLE"}, summary
    assert burst_outcomes.get("OK", 0) >= held - LOAD_THREADS, summary
    # The load carried on on both remaining replicas after the stopped one exited.
    assert load.ok["after"] >= 200, summary
    assert_spread([e - x for x, e in zip(at_exit, at_end)], names[1:],
                  "Classify served per remaining replica after the stop")
    # The replicas never counted more OK Classify answers than the load and burst got
    # (the victim's last scrape may miss its final few).
    served = (sum(e - a for a, e in zip(at_start[1:], at_end))
              + victim_last.get("OK", 0) - at_start[0])
    assert served <= ok + burst_outcomes.get("OK", 0), f"served {served}; {summary}"
