#!/usr/bin/python3
"""make soak: gem-server under mixed load for MINUTES (default 10), minute by minute.

At once, on a copy of the demo repository with deploy/gemserve.yaml:
  - Classify, closed loop, 4 clients, routed by the experiment (gem-client bench);
  - Generate, closed loop, 2 streams of 32 tokens (gem-client bench);
  - streams cancelled mid-flight: a 200-token gem-client generate killed after 0.2 s;
  - a reload every 20 s, gem-n1 of both models touched first (every one must be UPDATED);
  - hostile requests in turn (garbage image bytes, an image above the message limit, an
    unknown model, max_new_tokens out of range), each of which must get its own code.

Prints, per minute, the server's RSS, the Classify and Generate p99 and every unexpected
error, then a JSON summary, and exits 1 unless: zero unexpected errors, RSS at the end
within 10 % of RSS after the first (warm-up) minute, no minute's Classify p99 above 3x
the median minute's, no sequence or KV reservation left once the load stops, and exit 0
on SIGTERM. Usage: scripts/soak.py [BUILD_DIR] [MINUTES]
"""
import gzip
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import numpy as np
from PIL import Image

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BUILD = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "build"))
MINUTES = int(sys.argv[2]) if len(sys.argv) > 2 else 10
CLIENT = os.path.join(BUILD, "gem-client")
SERVER = os.path.join(BUILD, "gem-server")


def log(message):
    print(f"soak: {message}", file=sys.stderr, flush=True)


def fashion_png(path):
    with gzip.open("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz") as f:
        pixels = f.read(16 + 784)[16:]
    Image.fromarray(np.frombuffer(pixels, dtype=np.uint8).reshape(28, 28), "L").save(path)


class Soak:
    def __init__(self, work):
        self.work = work
        self.repository = os.path.join(work, "repository")
        shutil.copytree(os.path.join(ROOT, "models/repository"), self.repository)
        self.image = os.path.join(work, "shirt.png")
        fashion_png(self.image)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.unexpected = []  # (minute, what)
        self.counts = {"cancelled_streams": 0, "reloads": 0, "hostile": 0}
        self.minute = 0

    def start_server(self):
        self.server_log = open(os.path.join(self.work, "server.log"), "w+")
        self.server = subprocess.Popen(
            [SERVER, "--config", os.path.join(ROOT, "deploy/gemserve.yaml"),
             "--model-repository", self.repository, "--listen", "127.0.0.1:0",
             "--metrics-listen", "127.0.0.1:0"],
            stdout=self.server_log, stderr=subprocess.STDOUT, cwd=ROOT)
        for _ in range(480):
            self.server_log.seek(0)
            found = re.search(r"grpc listening on (\S+)", self.server_log.read())
            if found:
                self.address = found.group(1)
                return
            time.sleep(0.25)
        raise SystemExit("soak: gem-server did not start")

    def client(self, *args, timeout=120):
        return subprocess.run([CLIENT, "--server", self.address, *args], capture_output=True,
                              text=True, timeout=timeout)

    def flag(self, what):
        with self.lock:
            self.unexpected.append((self.minute, what))
        log(f"UNEXPECTED: {what}")

    def rss_mib(self):
        with open(f"/proc/{self.server.pid}/status") as f:
            return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1)) / 1024

    def bench(self, *args):
        """One minute of a closed-loop bench; its JSON."""
        result = self.client("bench", "--duration", "60s", "--json", *args, timeout=180)
        figures = json.loads(result.stdout)
        if figures.get("errors", 0):
            self.flag(f"bench {' '.join(args[:2])}: {figures['errors']} errors "
                      f"{figures.get('errors_by_code')}")
        return figures

    def cancelled_streams(self):
        while not self.stop.is_set():
            stream = subprocess.Popen(
                [CLIENT, "--server", self.address, "generate", "--model", "gpt2-kjv",
                 "--max-tokens", "200", "And it came to pass"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(0.2)
            stream.kill()
            stream.wait()
            with self.lock:
                self.counts["cancelled_streams"] += 1

    def reloads(self):
        while not self.stop.wait(20):
            for part in ("resnet20-fashion/gem-n1/model.pt", "gpt2-kjv/gem-n1/model.pt"):
                os.utime(os.path.join(self.repository, part))
            result = self.client("reload", "--json")
            try:
                variants = json.loads(result.stdout)["variants"]
            except (json.JSONDecodeError, KeyError):
                self.flag(f"reload: exit {result.returncode}: {result.stderr.strip()}")
                continue
            for v in variants:
                touched = v["variant"] == "gem-n1"
                action = v.get("action", "RELOAD_UNCHANGED")
                if action != ("RELOAD_UPDATED" if touched else "RELOAD_UNCHANGED"):
                    self.flag(f"reload: {v['model']}/{v['variant']} {action} {v.get('error', '')}")
            with self.lock:
                self.counts["reloads"] += 1

    def hostile_requests(self):
        garbage = os.path.join(self.work, "garbage.png")
        with open(garbage, "wb") as f:
            f.write(os.urandom(4096))
        too_big = os.path.join(self.work, "too_big.png")
        with open(too_big, "wb") as f:
            f.write(b"\x89PNG\r\n\x1a\n" + os.urandom(5 << 20))
        cases = [
            (("classify", "--model", "resnet20-fashion", garbage), "INVALID_ARGUMENT"),
            (("classify", "--model", "resnet20-fashion", too_big), "RESOURCE_EXHAUSTED"),
            (("classify", "--model", "no-such-model", self.image), "NOT_FOUND"),
            (("generate", "--model", "gpt2-kjv", "--max-tokens", "100000", "Amen"),
             "INVALID_ARGUMENT"),
        ]
        while not self.stop.is_set():
            for args, code in cases:
                result = self.client(*args)
                if result.returncode != 1 or code not in result.stderr:
                    self.flag(f"{' '.join(args[:3])}: exit {result.returncode}, wanted {code}: "
                              f"{result.stderr.strip()[:200]}")
                with self.lock:
                    self.counts["hostile"] += 1
                time.sleep(0.25)

    def run(self):
        self.start_server()
        log(f"gem-server at {self.address}; {MINUTES} minutes of mixed load")
        background = [threading.Thread(target=t, daemon=True)
                      for t in (self.cancelled_streams, self.reloads, self.hostile_requests)]
        for thread in background:
            thread.start()
        minutes = []
        for minute in range(1, MINUTES + 1):
            self.minute = minute
            figures = {}
            benches = [
                ("classify", ("--model", "resnet20-fashion", "--image", self.image,
                              "--concurrency", "4")),
                ("generate", ("--model", "gpt2-kjv", "--max-tokens", "32", "--concurrency", "2")),
            ]
            threads = [threading.Thread(target=lambda n=n, a=a: figures.update({n: self.bench(*a)}))
                       for n, a in benches]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join()
            row = {"minute": minute, "rss_mib": round(self.rss_mib(), 1),
                   "classify_rps": round(figures["classify"]["throughput_rps"], 1),
                   "classify_p99_ms": round(figures["classify"]["latency_ms"]["p99"], 2),
                   "generate_p99_ms": round(figures["generate"]["latency_ms"]["p99"], 1),
                   **dict(self.counts),
                   "unexpected": sum(1 for m, _ in self.unexpected if m == minute)}
            minutes.append(row)
            log(json.dumps(row))
        self.stop.set()
        for thread in background:
            thread.join(timeout=60)
        time.sleep(2)  # the last killed stream's cancellation reaches the server
        idle = self.idle_gauges()
        self.server.terminate()
        exit_code = self.server.wait(timeout=60)
        return self.summary(minutes, idle, exit_code)

    def idle_gauges(self):
        """Generating sequences and reserved KV positions once the load stopped."""
        self.server_log.seek(0)
        metrics = re.search(r"metrics listening on (\S+)", self.server_log.read()).group(1)
        with urllib.request.urlopen(f"http://{metrics}/metrics", timeout=10) as response:
            text = response.read().decode()
        total = lambda family: sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
                                   if line.startswith(family + "{"))
        return {"generate_sequences": total("gemserve_generate_sequences"),
                "kv_positions_reserved": total("gemserve_kv_positions_reserved")}

    def summary(self, minutes, idle, exit_code):
        warm, last = minutes[0]["rss_mib"], minutes[-1]["rss_mib"]
        p99s = [m["classify_p99_ms"] for m in minutes]
        median = statistics.median(p99s)
        summary = {
            "minutes": minutes,
            "unexpected_errors": [what for _, what in self.unexpected],
            "rss_after_warmup_mib": warm, "rss_end_mib": last,
            "rss_growth": round(last / warm - 1, 4),
            "classify_p99_median_ms": median, "classify_p99_worst_over_median": round(max(p99s) / median, 2),
            "after_the_load": idle,
            "server_exit_code": exit_code,
        }
        print(json.dumps(summary, indent=1))
        ok = (not self.unexpected and summary["rss_growth"] < 0.10 and
              summary["classify_p99_worst_over_median"] <= 3 and exit_code == 0 and
              not any(idle.values()))
        log("PASS" if ok else "FAIL")
        return 0 if ok else 1


def main():
    with tempfile.TemporaryDirectory(prefix="gemserve-soak-") as work:
        soak = Soak(work)
        try:
            return soak.run()
        finally:
            if getattr(soak, "server", None) and soak.server.poll() is None:
                soak.server.kill()


if __name__ == "__main__":
    sys.exit(main())
