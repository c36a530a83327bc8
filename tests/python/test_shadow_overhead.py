"""A shadow much slower than the primary does not slow the primary down, and what it
cannot keep up with is dropped and counted (DESIGN.md "Experiments and their statistics").

At test time, in a temporary directory, this builds a model repository with one classify
model `shadowtest` and two variants with the same contract (1x28x28 in, 10 logits out):

- `fast`: a copy of models/repository/resnet20-fashion/gem-n1;
- `slow`: a deliberately large TorchScript model (wide 3x3 convolutions at 28x28), whose
  batch-1 forward is measured here (CPU time, one thread) to be >= 10x the fast one's
  (~50x by design: ~125 ms against ~2.5 ms; ~40x in the shadow worker's own paired latency
  ratio, where both run at one thread as the shipped config has them).

Nothing in the server is slowed down for the test: the shadow is slow because it is big.

Two gem-servers run on that repository, both alive for the whole measurement:

- A: no experiment; the bench names variant `fast`;
- B: an experiment on shadowtest, split {fast: 100}, shadow {variants: [slow],
  sample_rate: 1.0, queue_size: 4}; the bench names no variant (routed, so every request
  is mirrored, and almost every mirror is dropped because the shadow worker is busy).

`gem-client bench --concurrency 2 --duration 4s --json` runs against A and B in turn (8
rounds, A B / B A alternating), and the test asserts median(p50 of B) <= 1.10 x median(p50
of A), then that B counted
dropped mirrors (`gemserve_shadow_comparisons_total{result="dropped"}` and `shadow_dropped`
in /api/v1/experiments) and still finished some comparisons (agree + disagree > 0).

Run: PYTHONPATH=models GEMSERVE_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest -q \
       tests/python/test_shadow_overhead.py
(-s shows the measured numbers.) GEMSERVE_SHADOW_ROUNDS sets the number of rounds (8).

On a shared 2-core machine the p50 of one 4-to-8-s run moves by 10-20 % from run to run with the
background load (a third server with an experiment but no shadow, measured alongside at
threads: 2, came out at 0.86x and 1.16x of A in two sessions), so the 10 % bound is near
the noise; it is not widened here. The printed table also gives, per run, the primary's
mean forward measured by the server and the involuntary context switches of the server's
SCHED_OTHER threads per forward, which tell a real overhead (both higher with the shadow)
from noise.

Needs torch (Debian's, /usr/bin/python3) and build/server/ops/libgem_ops.so (the fast model
uses the fused GEM op; GEMSERVE_OPS_LIB overrides the path), for timing the two models.
"""

import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import time

import pytest

torch = pytest.importorskip("torch")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemserve_testing as gt  # noqa: E402

SOURCE_MODEL = gt.REPO / "models" / "repository" / "resnet20-fashion"
SOURCE_VARIANT = "gem-n1"

MODEL = "shadowtest"
FAST, SLOW = "fast", "slow"
THREADS = 1               # intra-op threads of the primary, as deploy/gemserve.yaml (the
                          # shadow worker runs its forwards on one thread whatever this is)
SLOW_WIDTH, SLOW_DEPTH = 256, 10   # ~125 ms CPU a batch-1 forward; resnet20 ~2.5 ms
MIN_SLOWDOWN = 10.0       # the test means nothing if the shadow is not much slower
MAX_P50_RATIO = 1.10      # the requirement: primary p50 within 10 % of the no-shadow p50

ROUNDS = int(os.environ.get("GEMSERVE_SHADOW_ROUNDS", "8"))
BENCH_S = 4
WARMUP_BENCH_S = 2
CONCURRENCY = 2
SERVER_START_S = 120
LOAD_MAX = 1.5            # 1-minute load average under which measuring starts
LOAD_QUIET_S = 5          # ... for this long
LOAD_WAIT_S = 60          # bounded: past it, measure anyway and say so
DRAIN_S = 60              # how long to wait for B's shadow queue to drain

# Batching: max_batch_size 1, so that a request's latency is its own forward plus gRPC and
# nothing else. With the demo config (8, 2 ms) every request at concurrency 2 waits ~2 ms
# for a batch that never fills, a fixed timer that would hide CPU taken by the shadow.
CONFIG_A = f"""\
# Written by tests/python/test_shadow_overhead.py.
threads: {THREADS}
device: cpu
limits:
  queue_size: 256
  default_deadline: 30s
batching:
  max_batch_size: 1
  max_queue_delay: 1ms
telemetry:           # off: its idle-priority sampling is not what this test measures
  sample_rate: 0
"""
CONFIG_B = CONFIG_A + f"""\
experiments:
  - model: {MODEL}
    split: {{{FAST}: 100}}
    sticky: false
    shadow: {{variants: [{SLOW}], sample_rate: 1.0, queue_size: 4}}
"""


# ---------------------------------------------------------------------------- helpers

def sample_image(path):
    """The first Fashion-MNIST test image as a PNG (a plain grey one without the dataset)."""
    if gt.fashion_mnist_installed():
        pixels = gt.fashion_mnist_test(1)[0][0]
    else:
        pixels = bytes([128] * 28 * 28)
    with open(path, "wb") as f:
        f.write(gt.png_bytes(pixels))
    return path


def scrape(server):
    """The text of a server's /metrics."""
    status, body = gt.http_get(f"http://{server.metrics}/metrics")
    assert status == 200, f"/metrics answered {status}"
    return body


def metric(text, name, **labels):
    """Sum of the samples of `name` in /metrics text whose labels include `labels`."""
    return sum(value for l, value in gt.parse_prometheus(text, name)
               if all(l.get(k) == v for k, v in labels.items()))


def shadow_counts(server):
    text = scrape(server)
    pair = dict(model=MODEL, primary=FAST, shadow=SLOW)
    return {result: metric(text, "gemserve_shadow_comparisons_total", result=result, **pair)
            for result in ("agree", "disagree", "dropped")}


def forward_stats(server):
    """(sum seconds, count) of the primary's forwards on a server (one scrape)."""
    text = scrape(server)
    labels = dict(model=MODEL, variant=FAST)
    return (metric(text, "gemserve_inference_duration_seconds_sum", **labels),
            metric(text, "gemserve_inference_duration_seconds_count", **labels))


def cpu_jiffies():
    """(busy, steal) jiffies of the whole machine from /proc/stat."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system, idle, iowait, irq, softirq, steal = (fields + [0] * 8)[:8]
    return user + nice + system + irq + softirq, steal


def process_jiffies(pid):
    """utime + stime of a process (all its threads)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return int(fields[11]) + int(fields[12])
    except OSError:
        return 0


def thread_policies(pid):
    """{policy number: (threads, utime + stime jiffies, involuntary context switches)}
    over the threads of a process; SCHED_OTHER is 0, SCHED_IDLE 5."""
    out = {}
    try:
        tids = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return out
    for tid in tids:
        try:
            with open(f"/proc/{pid}/task/{tid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                status = f.read()
        except OSError:
            continue
        policy = int(fields[38])  # field 41 of stat; fields here start at field 3
        preempted = int(status.split("nonvoluntary_ctxt_switches:")[1].split()[0])
        threads, jiffies, switches = out.get(policy, (0, 0, 0))
        out[policy] = (threads + 1, jiffies + int(fields[11]) + int(fields[12]),
                       switches + preempted)
    return out


def wait_for_quiet_machine():
    """Waits (bounded) until the 1-minute load average stays below LOAD_MAX for LOAD_QUIET_S;
    returns (quiet?, load average, seconds waited)."""
    start = time.monotonic()
    quiet_since = None
    while True:
        load = os.getloadavg()[0]
        now = time.monotonic()
        if load < LOAD_MAX:
            quiet_since = quiet_since or now
            if now - quiet_since >= LOAD_QUIET_S:
                return True, load, now - start
        else:
            quiet_since = None
        if now - start > LOAD_WAIT_S:
            return False, load, now - start
        time.sleep(1)


def start_server(name, config_path, repository, log_path):
    """gem-server `name` on `repository`, healthy and with both variants loaded."""
    server = gt.Server(config_path, log_path, start_timeout_s=SERVER_START_S,
                       model_repository=repository, name=f"gem-server {name}")
    loaded = server.log_tail()
    for variant in (FAST, SLOW):
        if f"loaded {MODEL}/{variant}" not in loaded:
            server.stop()
            pytest.fail(f"gem-server {name} did not load {MODEL}/{variant}:\n{loaded}")
    return server


# ---------------------------------------------------------------------------- the models

class WideConvNet(torch.nn.Module):
    """SLOW_DEPTH wide 3x3 convolutions at full 28x28 resolution, then a linear head:
    big on purpose, the same contract as resnet20-fashion (1x28x28 -> 10 logits)."""

    def __init__(self, width, depth):
        super().__init__()
        layers = [torch.nn.Conv2d(1, width, 3, padding=1), torch.nn.ReLU()]
        for _ in range(depth):
            layers += [torch.nn.Conv2d(width, width, 3, padding=1), torch.nn.ReLU()]
        self.features = torch.nn.Sequential(*layers)
        self.head = torch.nn.Linear(width, 10)

    def forward(self, x):
        return self.head(self.features(x).mean(dim=(2, 3)))


def forward_cpu_s(fast, slow, rounds):
    """(fast, slow) CPU seconds of one batch-1 forward, at one intra-op thread: the work each
    model is. CPU time of the calling thread (which, at one thread, does all of the forward)
    does not count time the thread spent preempted, so it holds on a shared machine where
    wall-clock times do not: on 2 busy cores, OpenMP's barriers make a 2-thread wall time
    of the 4-ms model swing by 5x and more. Interleaved, median of `rounds` each."""
    x = torch.zeros(1, 1, 28, 28)
    times = {"fast": [], "slow": []}
    with torch.inference_mode():
        for _ in range(4):  # the profiling executor's first runs
            fast(x)
            slow(x)
        for _ in range(rounds):
            for name, module in (("fast", fast), ("fast", fast), ("slow", slow)):
                start = time.thread_time()
                module(x)
                times[name].append(time.thread_time() - start)
    return statistics.median(times["fast"]), statistics.median(times["slow"])


def make_repository(root):
    """root/shadowtest/{fast,slow}; returns (fast, slow) CPU seconds per batch-1 forward."""
    model_dir = os.path.join(root, MODEL)
    os.makedirs(model_dir)
    shutil.copy(os.path.join(SOURCE_MODEL, "labels.txt"), os.path.join(model_dir, "labels.txt"))
    with open(os.path.join(SOURCE_MODEL, SOURCE_VARIANT, "model.json")) as f:
        source = json.load(f)
    assert source["labels"] == "../labels.txt", source["labels"]

    fast_dir = os.path.join(model_dir, FAST)
    os.makedirs(fast_dir)
    for name in ("model.pt", "reference.json"):
        shutil.copy(os.path.join(SOURCE_MODEL, SOURCE_VARIANT, name), os.path.join(fast_dir, name))
    fast = dict(source, name=MODEL, variant=FAST)
    with open(os.path.join(fast_dir, "model.json"), "w") as f:
        json.dump(fast, f, indent=1)

    slow_dir = os.path.join(model_dir, SLOW)
    os.makedirs(slow_dir)
    torch.manual_seed(0)
    scripted = torch.jit.script(WideConvNet(SLOW_WIDTH, SLOW_DEPTH).eval())
    torch.jit.save(scripted, os.path.join(slow_dir, "model.pt"))
    # The slow net has no activation_statistics method: nor does its model.json.
    slow = {k: v for k, v in source.items()
            if k not in ("training", "reference", "methods", "activation_sites",
                         "activation_statistics_data")}
    slow.update(name=MODEL, variant=SLOW,
                architecture={"name": "wide-conv", "width": SLOW_WIDTH, "depth": SLOW_DEPTH,
                              "in_channels": 1, "num_classes": 10},
                activation={"slug": "relu", "kind": "relu", "n": 0, "eps": 0.0,
                            "neg_slope": 0.0},
                test_accuracy=0.1, evaluated_on="untrained (test fixture)")
    with open(os.path.join(slow_dir, "model.json"), "w") as f:
        json.dump(slow, f, indent=1)

    try:  # the fast model calls the fused GEM op
        gt.load_gem_ops()
    except ImportError:
        pytest.fail("gemmodels is not importable: run with PYTHONPATH=models")
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fast_s, slow_s = forward_cpu_s(torch.jit.load(os.path.join(fast_dir, "model.pt")).eval(),
                                       torch.jit.load(os.path.join(slow_dir, "model.pt")).eval(),
                                       rounds=8)
    finally:
        torch.set_num_threads(threads)
    return fast_s, slow_s


# ---------------------------------------------------------------------------- the test

def bench(server, variant, image, seconds):
    """One `gem-client bench --json` against `server`; the report plus what the machine did
    meanwhile: the primary's mean forward (server-side), involuntary context switches of the
    server's SCHED_OTHER threads per forward, CPU used by its SCHED_IDLE thread (the shadow
    worker), by the whole server, by the client, by anything else
    (busy jiffies of the machine minus server and client: rough; /proc/stat is tick-sampled,
    so on a machine that is not saturated it reads up to ~1 s low, even below 0), and steal."""
    args = server.client_command("bench", "--model", MODEL, "--image", image,
                                 "--concurrency", CONCURRENCY, "--duration", f"{seconds}s",
                                 "--json")
    if variant:
        args += ["--variant", variant]
    forward_before = forward_stats(server)
    threads_before = thread_policies(server.process.pid)
    busy_before, steal_before = cpu_jiffies()
    server_before = process_jiffies(server.process.pid)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load_before = os.getloadavg()[0]
    done = subprocess.run(args, cwd=gt.REPO, capture_output=True, text=True, timeout=seconds + 60)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    server_after = process_jiffies(server.process.pid)
    busy_after, steal_after = cpu_jiffies()
    forward_after = forward_stats(server)
    threads_after = thread_policies(server.process.pid)
    assert done.returncode == 0, f"bench on {server.name} failed:\n{done.stdout}\n{done.stderr}"
    report = json.loads(done.stdout[done.stdout.index("{"):])
    assert report["requests"] > 0 and report["errors"] == 0, \
        f"bench on {server.name}: {done.stdout}\n{done.stderr}"
    tick = os.sysconf("SC_CLK_TCK")
    client_s = (children_after.ru_utime + children_after.ru_stime -
                children_before.ru_utime - children_before.ru_stime)
    server_s = (server_after - server_before) / tick
    forwards = forward_after[1] - forward_before[1]
    def serving(stats):  # SCHED_OTHER threads: (CPU jiffies, involuntary switches)
        _, jiffies, switches = stats.get(0, (0, 0, 0))
        return jiffies, switches
    def idle(stats):  # SCHED_IDLE threads: CPU jiffies
        return stats.get(5, (0, 0, 0))[1]
    report["_env"] = {
        "load": load_before,
        "forward_ms": 1e3 * (forward_after[0] - forward_before[0]) / max(forwards, 1),
        "preempted_per_forward":
            (serving(threads_after)[1] - serving(threads_before)[1]) / max(forwards, 1),
        "idle_cpu_s": (idle(threads_after) - idle(threads_before)) / tick,
        "server_cpu_s": server_s,
        "client_cpu_s": client_s,
        "other_cpu_s": (busy_after - busy_before) / tick - server_s - client_s,
        "steal_s": (steal_after - steal_before) / tick,
    }
    return report


def drain_shadow(server_b):
    """Waits until B's shadow worker has finished what it had queued (its comparisons stop
    growing), so that no shadow work overlaps the next measurement of A."""
    deadline = time.monotonic() + DRAIN_S
    last, stable_since = None, time.monotonic()
    while time.monotonic() < deadline:
        counts = shadow_counts(server_b)
        done = counts["agree"] + counts["disagree"]
        if done != last:
            last, stable_since = done, time.monotonic()
        elif time.monotonic() - stable_since >= 1.0:
            return
        time.sleep(0.2)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    return tmp_path_factory.mktemp("shadow_overhead")


def test_slow_shadow_does_not_slow_the_primary(workdir):
    started = time.monotonic()
    gt.build_dir()  # fails early without a build
    repository = str(workdir / "repository")
    fast_s, slow_s = make_repository(repository)
    slowdown = slow_s / fast_s
    print(f"\nbatch-1 forward, CPU time at 1 thread: fast {1e3 * fast_s:.2f} ms, "
          f"slow {1e3 * slow_s:.1f} ms: slow/fast = {slowdown:.1f}x")
    assert slowdown >= MIN_SLOWDOWN, \
        f"the shadow is only {slowdown:.1f}x slower than the primary; the test needs >= {MIN_SLOWDOWN}x"
    image = sample_image(str(workdir / "image.png"))
    (workdir / "a.yaml").write_text(CONFIG_A)
    (workdir / "b.yaml").write_text(CONFIG_B)

    # Both servers stay up for the whole measurement and bench runs alternate between them
    # (round 1: A then B, round 2: B then A, ...; the order flips each round, so that a
    # drift of the machine's background load over time falls on both alike). That is the
    # fairer comparison on a 2-core shared machine than restarting a server per run: each
    # run meets a warm server of the same age, the runs of A and B are as close in time as
    # possible, and no run follows a server start (model loading, warm-up, page faults).
    # The idle server costs nothing meanwhile: its runners block on empty queues, and
    # before each run B's shadow queue is drained, so that leftover shadow work (SCHED_IDLE
    # or not) never overlaps a run of A, which is the no-shadow baseline.
    servers = {}
    try:
        for name, config in (("A", "a.yaml"), ("B", "b.yaml")):
            servers[name] = start_server(name, workdir / config, repository,
                                         workdir / f"gem-server-{name}.log")
        b = servers["B"]
        experiments = b.experiments()
        assert MODEL in experiments, \
            f"B did not take the experiment: /api/v1/experiments lists {sorted(experiments)}"

        # A names the variant; B is routed, so B's p50 also carries the experiment's routing
        # and statistics bookkeeping (as a user's would): the bound covers both.
        variant_of = {"A": FAST, "B": ""}
        for name, server in servers.items():  # first connections, first requests: not timed
            bench(server, variant_of[name], image, WARMUP_BENCH_S)
        drain_shadow(b)

        quiet, load, waited = wait_for_quiet_machine()
        print(f"load average before measuring: {load:.2f} after {waited:.0f} s"
              + ("" if quiet else f" (never below {LOAD_MAX} for {LOAD_QUIET_S} s within "
                                  f"{LOAD_WAIT_S} s: measuring on a busy machine)"))

        p50 = {"A": [], "B": []}
        forward = {"A": [], "B": []}
        print(f"{'run':>4} {'srv':>3} {'p50 ms':>7} {'p90 ms':>7} {'p99 ms':>7} {'rps':>6} "
              f"{'fwd ms':>7} {'preempt':>7} {'load':>5} {'idle s':>6} {'srv s':>6} "
              f"{'cli s':>5} {'other':>6} {'steal':>5}")
        run = 0
        for round_index in range(ROUNDS):
            order = ("A", "B") if round_index % 2 == 0 else ("B", "A")
            for name in order:
                drain_shadow(b)
                report = bench(servers[name], variant_of[name], image, BENCH_S)
                run += 1
                latency, env = report["latency_ms"], report["_env"]
                assert set(report.get("variants", {FAST: None})) == {FAST}, report["variants"]
                p50[name].append(latency["p50"])
                forward[name].append(env["forward_ms"])
                print(f"{run:>4} {name:>3} {latency['p50']:>7.3f} {latency['p90']:>7.3f} "
                      f"{latency['p99']:>7.3f} {report['throughput_rps']:>6.0f} "
                      f"{env['forward_ms']:>7.3f} {env['preempted_per_forward']:>7.1f} "
                      f"{env['load']:>5.2f} {env['idle_cpu_s']:>6.2f} {env['server_cpu_s']:>6.2f} "
                      f"{env['client_cpu_s']:>5.2f} {env['other_cpu_s']:>6.2f} "
                      f"{env['steal_s']:>5.2f}")

        # The shadow worker starves while the bench keeps the CPUs busy (that is the point of
        # SCHED_IDLE); the mirrors it queued are compared once the load stops.
        deadline = time.monotonic() + DRAIN_S
        while True:
            counts = shadow_counts(b)
            if counts["agree"] + counts["disagree"] > 0 or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        experiment = b.experiments().get(MODEL)
        text = scrape(b)
        pair = dict(model=MODEL, primary=FAST, shadow=SLOW)
        ratio_count = metric(text, "gemserve_shadow_latency_ratio_count", **pair)
        ratio_sum = metric(text, "gemserve_shadow_latency_ratio_sum", **pair)
        policies = thread_policies(b.process.pid)
    finally:
        for server in servers.values():
            server.stop()

    median_a, median_b = statistics.median(p50["A"]), statistics.median(p50["B"])
    ratio = median_b / median_a
    shadow_dropped = int(experiment.get("shadow_dropped", 0)) if experiment else 0
    print(f"p50 A (no shadow): {', '.join(f'{v:.3f}' for v in p50['A'])} ms; "
          f"median {median_a:.3f} ms")
    print(f"p50 B (slow shadow): {', '.join(f'{v:.3f}' for v in p50['B'])} ms; "
          f"median {median_b:.3f} ms")
    print(f"B / A = {ratio:.3f} (bound {MAX_P50_RATIO}); per round (adjacent runs): "
          + ", ".join(f"{b_ / a_:.3f}" for a_, b_ in zip(p50["A"], p50["B"])))
    forward_ratio = statistics.median(forward["B"]) / statistics.median(forward["A"])
    print(f"server-side mean forward of the primary, median over runs: A "
          f"{statistics.median(forward['A']):.3f} ms, B {statistics.median(forward['B']):.3f} ms "
          f"(B / A = {forward_ratio:.3f})")
    print(f"B shadow comparisons: {counts}; /api/v1/experiments shadow_dropped {shadow_dropped}; "
          f"paired latency ratio slow/fast in the worker: "
          f"{ratio_sum / ratio_count if ratio_count else float('nan'):.1f}x (mean of "
          f"{ratio_count:.0f})")
    print("B threads by scheduling policy (0 SCHED_OTHER, 5 SCHED_IDLE): "
          + ", ".join(f"policy {p}: {n} threads, {j / os.sysconf('SC_CLK_TCK'):.1f} s CPU"
                      for p, (n, j, _) in sorted(policies.items())))
    print(f"test time {time.monotonic() - started:.0f} s")

    assert counts["dropped"] > 0, f"no dropped mirrors counted: {counts}"
    assert counts["agree"] + counts["disagree"] > 0, \
        f"the shadow finished no comparison within {DRAIN_S} s of the load: {counts}"
    assert experiment and shadow_dropped > 0, \
        f"/api/v1/experiments shows no dropped mirrors: {str(experiment)[:500]}"
    assert ratio <= MAX_P50_RATIO, (
        f"a slow shadow slows the primary: median p50 {median_b:.3f} ms with it vs "
        f"{median_a:.3f} ms without ({ratio:.3f}x > {MAX_P50_RATIO}x); per run A {p50['A']}, "
        f"B {p50['B']}; server-side forward B / A {forward_ratio:.3f} (run with -s for the "
        f"per-run table)")
