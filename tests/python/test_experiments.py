"""Live experiments of a real gem-server checked against an offline Python recomputation.

One gem-server (module fixture, always stopped) runs two experiments:
  - resnet20-fashion: every variant routed with equal weight, not sticky, shadows
    segem-n1-e1e-4 and gem-n2 on every routed request;
  - gpt2-kjv: gelu 50 / gem-n2 50, shadow relu on every routed request.

1. Classify shadows: 300 routed Fashion-MNIST tensors. For each (primary, shadow) pair
   the server's observation count is the number of requests that primary served (a
   primary that is itself the shadow is skipped), its shadow_agreement and shadow_kl
   estimates equal the batch-1 TorchScript recomputation (top-1 agreement, mean
   KL(primary || shadow) of log_softmax), and gemserve_shadow_comparisons_total agrees.
2. Generate shadows: 20 routed greedy completions; the server's teacher-forced
   agreement (fraction of completion positions where relu's argmax is the primary's
   token) and mean KL per pair equal prefill() over prompt + completion in Python.
3. Feedback: the first 1,000 Fashion-MNIST test images as PNG, routed, each with its
   label as Feedback; per variant the server's correct count (metrics and the arm's
   accuracy / labelled) equals the offline accuracy of exactly the images it served.

Argmax comparisons allow a difference only where Python sees a near-tie (top-2 logit gap
below TIE_GAP), at most one per comparison. Run from the repository root:

    PYTHONPATH=models GEMSERVE_BUILD_DIR=$PWD/build /usr/bin/python3 -m pytest -q \
        tests/python/test_experiments.py
"""
import os
import sys
import time
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gemserve_testing as gt  # noqa: E402

RESNET = "resnet20-fashion"
GPT = "gpt2-kjv"
RESNET_VARIANTS = ("relu", "gelu", "gem-n1", "gem-n2", "egem-n1-e1e-4", "segem-n1-e1e-4")
RESNET_SHADOWS = ("segem-n1-e1e-4", "gem-n2")
GPT_SPLIT = {"gelu": 50, "gem-n2": 50}
GPT_SHADOWS = ("relu",)

SHADOW_REQUESTS = 300
SHADOW_IMAGES_START = 5000      # disjoint from the feedback images
FEEDBACK_IMAGES = 1000          # the first 1,000 test images
GENERATE_NEW_TOKENS = 16
SHADOW_WAIT_S = 240             # shadows run at SCHED_IDLE on a busy machine
THREADS = 6
TIE_GAP = 1e-3                  # top-2 logit gap below which an argmax may flip
KL_ABS, KL_REL = 1e-4, 1e-3

PROMPTS = [
    "And God said", "In the beginning", "The LORD is my shepherd", "Blessed are the meek",
    "And it came to pass", "Thus saith the LORD", "Let there be light", "Honour thy father",
    "For God so loved the world", "And Jesus answered", "The heavens declare",
    "Then Moses", "And the LORD spake unto Moses, saying", "Hear, O Israel",
    "My son, hear", "Vanity of vanities", "And the earth was without form",
    "Wherefore I say unto you", "And David said", "Praise ye the LORD",
]

CONFIG = f"""\
# Written by tests/python/test_experiments.py.
device: cpu
# One intra-op thread: with 2 (deploy/gemserve.yaml) and several variants' runners busy
# at once, Debian's OpenMP OpenBLAS busy-waits in exec_blas for its single parallel slot
# and routed Classify throughput collapses ~18x (300 -> 17 rps at 6 clients).
threads: 1
limits:
  max_message_bytes: 4194304
  max_prompt_tokens: 192
  max_new_tokens: 256
  default_new_tokens: 64
  queue_size: 256
  default_deadline: 60s
batching:
  max_batch_size: 8
  max_queue_delay: 2ms
models:
  {RESNET}: {{default_variant: gem-n1}}
  {GPT}: {{default_variant: gem-n2}}
experiments:
  - model: {RESNET}
    split: {{{", ".join(f"{v}: 1" for v in RESNET_VARIANTS)}}}
    sticky: false
    shadow: {{variants: [{", ".join(RESNET_SHADOWS)}], sample_rate: 1.0, queue_size: 5000}}
  - model: {GPT}
    split: {{{", ".join(f"{v}: {w}" for v, w in GPT_SPLIT.items())}}}
    sticky: false
    shadow: {{variants: [{", ".join(GPT_SHADOWS)}], sample_rate: 1.0, queue_size: 5000}}
"""


# ----------------------------------------------------------------------------- fixtures

class Harness:
    def __init__(self, server):
        self.server = server
        self.client = gt.InferenceClient(server.grpc)
        self.pb = gt.inference_pb2()
        # Every routed Classify this module sent: (pixels [1,28,28] in [0,1], variant).
        # The shadow statistics are cumulative, so test 1 recomputes over all of them.
        self.classified = []
        self.generated = []  # (prompt, completion ids, variant)

    def classify_routed(self, pixels01, image_png=None):
        """One routed Classify (tensor, or PNG when given); returns the response."""
        pb = self.pb
        if image_png is not None:
            request = pb.ClassifyRequest(model=RESNET, image=image_png, top_k=1)
        else:
            request = pb.ClassifyRequest(
                model=RESNET, top_k=1,
                tensor=pb.Tensor(shape=[1, 28, 28], data=pixels01.flatten().tolist()))
        response = self.client.classify(request, timeout=120)
        self.classified.append((pixels01, response.variant))
        return response


@pytest.fixture(scope="module")
def harness(tmp_path_factory):
    gt.load_gem_ops()
    directory = tmp_path_factory.mktemp("experiments")
    config = directory / "gemserve.yaml"
    config.write_text(CONFIG)
    server = gt.Server(config, directory / "gem-server.log")
    h = None
    try:
        h = Harness(server)
        yield h
    finally:
        if h is not None:
            h.client.close()
        server.stop()


class Models:
    """torch.jit.load of each variant's model.pt, loaded once."""

    def __init__(self):
        self._models = {}

    def __call__(self, model, variant):
        key = (model, variant)
        if key not in self._models:
            path = gt.REPO / "models" / "repository" / model / variant / "model.pt"
            self._models[key] = torch.jit.load(str(path), map_location="cpu").eval()
        return self._models[key]


@pytest.fixture(scope="module")
def models(harness):
    torch.set_num_threads(2)
    return Models()


def pixels01(raw: bytes) -> torch.Tensor:
    """8-bit pixels -> float [1, 28, 28] in [0, 1], as the server decodes a PNG."""
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(torch.float32).div(255.0).view(1, 28, 28)


def normalise(x01: torch.Tensor, variant: str) -> torch.Tensor:
    """(x - mean[c]) / std[c] with the variant's model.json, as server/engine/image_input.cc."""
    spec = gt.model_json(RESNET, variant)["input"]
    x = x01.clone()
    for c in range(x.shape[0]):
        x[c].sub_(spec["mean"][c]).div_(spec["std"][c])
    return x


def log_probabilities(logits: torch.Tensor) -> torch.Tensor:
    return torch.log_softmax(logits.to(torch.float32), -1)


def mean_kl(log_p: torch.Tensor, log_q: torch.Tensor) -> float:
    """Mean over rows of KL(p || q), as the shadow worker computes it."""
    return (log_p.exp() * (log_p - log_q)).sum(1).mean().item()


def top2_gap(logits: torch.Tensor) -> float:
    top = logits.flatten().topk(2).values
    return float(top[0] - top[1])


def kl_close(server: float, python: float) -> bool:
    return abs(server - python) <= KL_ABS or abs(server - python) <= KL_REL * abs(python)


def in_parallel(function, items):
    with ThreadPoolExecutor(THREADS) as pool:
        return list(pool.map(function, items))


def wait_for_shadow_pairs(harness, model, expected):
    """Waits until the shadow pairs of `model` are exactly `expected` {(primary, shadow): n}
    in /api/v1/experiments and in gemserve_shadow_comparisons_total (agree + disagree);
    returns (pairs JSON, {(primary, shadow): {result: count}})."""
    server = harness.server

    def settled():
        experiment = server.experiments()[model]
        pairs = gt.shadow_pairs(experiment)
        seen = {key: gt.uint(gt.comparison(p, "shadow_agreement")["observations"])
                for key, p in pairs.items()}
        counters = defaultdict(Counter)
        for labels, value in server.metrics_samples("gemserve_shadow_comparisons_total"):
            if labels.get("model") == model:
                counters[(labels["primary"], labels["shadow"])][labels["result"]] += int(value)
        counted = {key: c["agree"] + c["disagree"] for key, c in counters.items()
                   if c["agree"] + c["disagree"]}
        done = seen == expected and counted == expected
        return done, {"expected": expected, "api": seen, "metrics": counted,
                      "shadow_dropped": experiment.get("shadow_dropped")}

    gt.wait_for(settled, SHADOW_WAIT_S, f"{model} shadow comparisons", server)
    experiment = server.experiments()[model]
    counters = defaultdict(Counter)
    for labels, value in server.metrics_samples("gemserve_shadow_comparisons_total"):
        if labels.get("model") == model:
            counters[(labels["primary"], labels["shadow"])][labels["result"]] += int(value)
    assert gt.uint(experiment["shadow_dropped"]) == 0, experiment["shadow_dropped"]
    assert all(c["dropped"] == 0 for c in counters.values()), dict(counters)
    return gt.shadow_pairs(experiment), counters


# ----------------------------------------------------------------------------- 1. classify

def test_classify_shadow_statistics_match_python(harness, models):
    samples = gt.fashion_mnist_test(SHADOW_REQUESTS, start=SHADOW_IMAGES_START)
    started = time.monotonic()
    responses = in_parallel(lambda s: harness.classify_routed(pixels01(s[0])), samples)
    served = Counter(r.variant for r in responses)
    assert set(served) <= set(RESNET_VARIANTS), served
    assert all(r.experiment_version >= 1 and r.request_id for r in responses)

    ledger = list(harness.classified)  # this test's requests, plus any sent before it
    by_primary = Counter(variant for _, variant in ledger)
    expected = {(p, s): n for s in RESNET_SHADOWS for p, n in by_primary.items() if p != s}

    # Python: batch 1, the primary's normalisation, both models on the same input.
    sums = defaultdict(lambda: {"n": 0, "agree": 0, "kl": 0.0, "ties": 0})
    with torch.no_grad():
        for x01, primary in ledger:
            x = normalise(x01, primary).unsqueeze(0)
            logits_p = models(RESNET, primary)(x)
            log_p = log_probabilities(logits_p)
            for shadow in RESNET_SHADOWS:
                if shadow == primary:
                    continue
                logits_q = models(RESNET, shadow)(x)
                log_q = log_probabilities(logits_q)
                pair = sums[(primary, shadow)]
                pair["n"] += 1
                pair["agree"] += int(log_p.argmax(1).item() == log_q.argmax(1).item())
                pair["kl"] += max(mean_kl(log_p, log_q), 0.0)  # the server clamps at 0
                pair["ties"] += int(min(top2_gap(logits_p), top2_gap(logits_q)) < TIE_GAP)

    pairs, counters = wait_for_shadow_pairs(harness, RESNET, expected)
    print(f"\n[classify shadows] {len(ledger)} routed requests, served {dict(by_primary)}, "
          f"settled after {time.monotonic() - started:.1f} s")
    failures = []
    for key in sorted(expected):
        n = expected[key]
        py = sums[key]
        assert py["n"] == n
        agreement = gt.comparison(pairs[key], "shadow_agreement")
        kl = gt.comparison(pairs[key], "shadow_kl")
        server_rate = agreement["value"]["estimate"]
        server_kl = kl["value"]["estimate"]
        server_agree = counters[key]["agree"]
        py_rate, py_kl = py["agree"] / n, py["kl"] / n
        print(f"  {key[0]:>15} || {key[1]:<15} n={n:3d}  agreement server {server_rate:.6f} "
              f"python {py_rate:.6f} (agree {server_agree} vs {py['agree']}, near-ties "
              f"{py['ties']})  KL server {server_kl:.8f} python {py_kl:.8f}")
        allowed = min(1, py["ties"])
        if gt.uint(kl["observations"]) != n:
            failures.append(f"{key}: shadow_kl observations {kl['observations']} != {n}")
        if round(server_rate * n) != server_agree or abs(server_rate * n - server_agree) > 1e-6:
            failures.append(f"{key}: shadow_agreement {server_rate} * {n} != agree counter "
                            f"{server_agree}")
        if abs(server_agree - py["agree"]) > allowed:
            failures.append(f"{key}: server agreeing count {server_agree} (rate {server_rate}) "
                            f"!= python {py['agree']} (rate {py_rate}); near-ties {py['ties']}")
        if abs(server_rate - py_rate) > allowed / n + 1e-9:
            failures.append(f"{key}: shadow_agreement {server_rate} != python {py_rate}")
        if not kl_close(server_kl, py_kl):
            failures.append(f"{key}: shadow_kl {server_kl} != python {py_kl}")
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------- 2. generate

def generate_routed(harness, prompt):
    pb = harness.pb
    request = pb.GenerateRequest(model=GPT, prompt=prompt, max_new_tokens=GENERATE_NEW_TOKENS,
                                 temperature=0.0)
    ids, variants, last = [], set(), None
    for message in harness.client.generate(request, timeout=180):
        ids.extend(message.token_ids)
        if message.variant:
            variants.add(message.variant)
        last = message
    assert last is not None and len(variants) == 1, (prompt, variants)
    variant = variants.pop()
    harness.generated.append((prompt, ids, variant))
    return ids, variant, last


def test_generate_shadow_matches_teacher_forced_python(harness, models):
    started = time.monotonic()
    results = in_parallel(lambda p: generate_routed(harness, p), PROMPTS)
    ledger = list(harness.generated)
    served = Counter(variant for _, _, variant in ledger)
    assert set(served) <= set(GPT_SPLIT), served
    expected = {(p, s): n for s in GPT_SHADOWS for p, n in served.items() if p != s}

    prompt_ids = {p: gt.tokenize(GPT, "gelu", p) for p in {prompt for prompt, _, _ in ledger}}
    for prompt, (ids, variant, last) in zip(PROMPTS, results):
        assert last.usage.prompt_tokens == len(prompt_ids[prompt]), (prompt, last.usage)
        assert last.usage.completion_tokens == len(ids), (prompt, last.usage, len(ids))
        assert 0 < len(ids) <= GENERATE_NEW_TOKENS

    sums = defaultdict(lambda: {"n": 0, "agreement": 0.0, "kl": 0.0, "min_len": 10 ** 9,
                                "all_agree": 0})
    self_agreement = []  # the primary's own prefill argmax vs its greedy (cached) decode
    with torch.no_grad():
        for prompt, completion, primary in ledger:
            prompt_tokens = prompt_ids[prompt]
            tokens = torch.tensor([prompt_tokens + completion], dtype=torch.int64)
            first, count = len(prompt_tokens) - 1, len(completion)
            targets = tokens[0, len(prompt_tokens):]
            logits_p = models(GPT, primary).prefill(tokens)[0][0, first:first + count]
            log_p = log_probabilities(logits_p)
            self_agreement.append(log_p.argmax(1).eq(targets).double().mean().item())
            for shadow in GPT_SHADOWS:
                if shadow == primary:
                    continue
                logits_q = models(GPT, shadow).prefill(tokens)[0][0, first:first + count]
                log_q = log_probabilities(logits_q)
                pair = sums[(primary, shadow)]
                pair["n"] += 1
                agreement = log_q.argmax(1).eq(targets).double().mean().item()
                pair["agreement"] += agreement
                pair["all_agree"] += int(agreement == 1.0)  # counted as result="agree"
                pair["kl"] += max(mean_kl(log_p, log_q), 0.0)
                pair["min_len"] = min(pair["min_len"], count)

    pairs, counters = wait_for_shadow_pairs(harness, GPT, expected)
    print(f"\n[generate shadows] {len(ledger)} routed completions, served {dict(served)}, "
          f"settled after {time.monotonic() - started:.1f} s; primary prefill argmax == its "
          f"greedy token on {sum(self_agreement) / len(self_agreement):.4f} of positions")
    failures = []
    for key in sorted(expected):
        n = expected[key]
        py = sums[key]
        assert py["n"] == n
        server_rate = gt.comparison(pairs[key], "shadow_agreement")["value"]["estimate"]
        server_kl = gt.comparison(pairs[key], "shadow_kl")["value"]["estimate"]
        py_rate, py_kl = py["agreement"] / n, py["kl"] / n
        print(f"  {key[0]:>8} || {key[1]:<6} n={n:2d}  agreement server {server_rate:.6f} "
              f"python {py_rate:.6f}  KL server {server_kl:.6f} python {py_kl:.6f}  "
              f"(metrics agree={counters[key]['agree']} disagree={counters[key]['disagree']})")
        # one position of one completion may flip on a float near-tie
        if abs(server_rate - py_rate) > 1.0 / (py["min_len"] * n) + 1e-9:
            failures.append(f"{key}: mean agreement {server_rate} != python {py_rate}")
        if not kl_close(server_kl, py_kl):
            failures.append(f"{key}: mean KL {server_kl} != python {py_kl}")
        # gemserve_shadow_comparisons_total counts a completion as "agree" only when every
        # position agreed (shadow_worker.cc: agreement == 1.0).
        if counters[key]["agree"] != py["all_agree"]:
            failures.append(f"{key}: metrics agree {counters[key]['agree']} != python fully "
                            f"agreeing completions {py['all_agree']}")
    # Greedy decoding with the KV cache must match argmax of the full prefill.
    if sum(self_agreement) / len(self_agreement) < 0.95:
        failures.append(f"greedy completions disagree with the primary's own prefill argmax: "
                        f"{self_agreement}")
    assert not failures, "\n".join(failures)


# ----------------------------------------------------------------------------- 3. feedback

def test_feedback_accuracy_equals_offline_accuracy_per_variant(harness, models):
    pb = harness.pb
    samples = gt.fashion_mnist_test(FEEDBACK_IMAGES, start=0)

    def classify(sample):
        raw, label = sample
        response = harness.classify_routed(pixels01(raw), image_png=gt.png_bytes(raw))
        return response

    started = time.monotonic()
    responses = in_parallel(classify, samples)
    classified_s = time.monotonic() - started
    assert len({r.request_id for r in responses}) == FEEDBACK_IMAGES, "request ids repeat"

    def feedback(item):
        response, (_, label) = item
        return harness.client.feedback(pb.FeedbackRequest(request_id=response.request_id,
                                                          label=label), timeout=60)

    acks = in_parallel(feedback, list(zip(responses, samples)))
    feedback_s = time.monotonic() - started - classified_s
    for response, ack, (_, label) in zip(responses, acks, samples):
        assert ack.model == RESNET and ack.variant == response.variant, (response, ack)
        assert ack.correct == (response.predictions[0].index == label), (response, ack, label)

    served = defaultdict(list)  # variant -> indices of the images it served
    for i, response in enumerate(responses):
        served[response.variant].append(i)
    assert set(served) == set(RESNET_VARIANTS), f"not every variant served: {dict(served)}"

    # Python offline: the same decoded pixels, the variant's normalisation, argmax.
    offline = {}
    with torch.no_grad():
        for variant, indices in served.items():
            batch = torch.stack([normalise(pixels01(samples[i][0]), variant) for i in indices])
            logits = torch.cat([models(RESNET, variant)(chunk) for chunk in batch.split(128)])
            labels = torch.tensor([samples[i][1] for i in indices])
            predicted = logits.argmax(1)
            top2 = logits.topk(2, dim=1).values
            ties = (top2[:, 0] - top2[:, 1] < TIE_GAP)
            server_top1 = torch.tensor([responses[i].predictions[0].index for i in indices])
            offline[variant] = {
                "n": len(indices), "correct": int(predicted.eq(labels).sum()),
                "ties": int(ties.sum()),
                "top1_mismatch": int(predicted.ne(server_top1).sum()),
                "top1_mismatch_not_tie": int((predicted.ne(server_top1) & ~ties).sum()),
            }

    feedback_total = defaultdict(Counter)
    for labels, value in harness.server.metrics_samples("gemserve_feedback_total"):
        if labels.get("model") == RESNET:
            feedback_total[labels["variant"]][labels["outcome"]] += int(value)
    arms = {a["variant"]: a for a in harness.server.experiments()[RESNET]["arms"]}

    print(f"\n[feedback] {FEEDBACK_IMAGES} labelled PNG requests: classify {classified_s:.1f} s, "
          f"feedback {feedback_s:.1f} s, offline {time.monotonic() - started - classified_s - feedback_s:.1f} s")
    failures = []
    total_labelled = 0
    for variant in RESNET_VARIANTS:
        py = offline[variant]
        arm = arms[variant]
        labelled = gt.uint(arm["labelled"])
        total_labelled += labelled
        accuracy = arm["accuracy"]["estimate"]
        correct = feedback_total[variant]["correct"]
        incorrect = feedback_total[variant]["incorrect"]
        print(f"  {variant:>15}: served {py['n']:3d}  server {correct}/{correct + incorrect} "
              f"= {correct / max(1, correct + incorrect):.4f} (api accuracy {accuracy:.4f}, "
              f"labelled {labelled})  python {py['correct']}/{py['n']} = "
              f"{py['correct'] / py['n']:.4f}  top-1 mismatches {py['top1_mismatch']} "
              f"(near-ties {py['ties']})")
        if labelled != py["n"] or correct + incorrect != py["n"]:
            failures.append(f"{variant}: labelled {labelled}, metrics {correct}+{incorrect}, "
                            f"served {py['n']}")
        if abs(accuracy * labelled - correct) > 1e-6:
            failures.append(f"{variant}: api accuracy {accuracy} * {labelled} != metrics correct "
                            f"{correct}")
        if abs(correct - py["correct"]) > min(1, py["ties"]):
            failures.append(f"{variant}: server correct {correct} != python {py['correct']} of "
                            f"{py['n']} (near-ties {py['ties']})")
        if py["top1_mismatch_not_tie"]:
            failures.append(f"{variant}: {py['top1_mismatch_not_tie']} served top-1 classes differ "
                            f"from python's argmax without a near-tie")
    if total_labelled != FEEDBACK_IMAGES:
        failures.append(f"total labelled {total_labelled} != {FEEDBACK_IMAGES}")
    assert not failures, "\n".join(failures)
