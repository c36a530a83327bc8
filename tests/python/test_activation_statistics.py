"""Activation telemetry, models side (issue 15, docs/TELEMETRY.md):

- the re-export added `activation_statistics` without changing the served program:
  the printed code of every method that existed before (forward; GPT-2 also prefill,
  decode, new_cache, and every submodule method) is the same text, the weights and
  constants are the same, and the outputs on real inputs are bit-identical, both for the
  model source (scripted from the source before the change vs now) and for the
  committed model.pt files (before vs after the re-export);
- for every variant of models/repository the exported method's statistics equal a
  forward-hook reference on the eager model (gemmodels/telemetry_reference.py) on 1,000
  Fashion-MNIST test images (ResNet, 4 batches) and 8 held-out KJV windows (GPT-2):
  identical zero counts and non-zero masks, input mean and std within 1e-5, the site
  names and order of model.json;
- properties of the gem::gem operator itself on random tensors: SE-GEM outputs no zero
  where its input is non-zero, GEM outputs zero exactly where its input is <= 0 (above
  float32's underflow, which is measured too).

    PYTHONPATH=models /usr/bin/python3 -m pytest tests/python/test_activation_statistics.py
"""
import importlib.util
import io
import json
import re
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import torch

from gemserve_testing import load_gem_ops

REPO = Path(__file__).resolve().parents[2]
REPOSITORY = REPO / "models" / "repository"
# The commit before issue 15's model change: its model sources and model.pt files are
# the "before" of the comparisons.
BEFORE = "3165891"
VARIANT_DIRS = sorted(p.parent for p in REPOSITORY.glob("*/*/model.json"))
RESNET_SITES = ["stem.act"] + [f"stage{s}.block{b}.act{a}" for s in (1, 2, 3)
                               for b in range(3) for a in (1, 2)]
GPT_SITES = [f"h.{i}.mlp.act" for i in range(4)]


@pytest.fixture(scope="module", autouse=True)
def gem_ops():
    load_gem_ops()
    torch.set_num_threads(2)


def git_show(path: str) -> bytes:
    """A file as it was at BEFORE (skips when this is not a git checkout holding it)."""
    try:
        return subprocess.run(["git", "-C", str(REPO), "show", f"{BEFORE}:{path}"],
                              check=True, capture_output=True).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"git history with {BEFORE} is needed: {error}")


def before_module(name: str):
    """models/gemmodels/<name>.py as it was at BEFORE, imported under another name."""
    # "gemmodels_<name>": as long as "gemmodels.<name>", so that qualified names such as
    # __torch__.gemmodels_gpt2.attention print the same way (the printer hoists long
    # ones into a variable)
    module_name = f"gemmodels_{name}"
    if module_name in sys.modules:
        return sys.modules[module_name]
    path = Path(tempfile.mkdtemp(prefix="before-issue15-")) / f"{module_name}.py"
    path.write_bytes(git_show(f"models/gemmodels/{name}.py"))  # TorchScript reads the source
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[module_name] = module
    spec.loader.exec_module(module)
    return module


def method_code(module, prefix: str = "") -> dict:
    """'<submodule path>.<method>' -> printed code, for every method of every submodule."""
    out = {prefix + name: module._c._get_method(name).code for name in module._c._method_names()}
    for child_name, child in module.named_children():
        out.update(method_code(child, f"{prefix}{child_name}."))
    return out


def normalised_graph(method) -> str:
    """A method's graph without source locations, with class names reduced to their last
    part (the module they come from and the in-process mangling counter differ) and SSA
    values renumbered in order of appearance (freezing a second method shifts the ids)."""
    text = re.sub(r" # .*$", "", str(method.graph), flags=re.M)
    text = re.sub(r"__torch__\.[\w.]*\.(\w+)", r"\1", text)
    names = {}
    return re.sub(r"%[\w.]+", lambda m: names.setdefault(m.group(0), f"%v{len(names)}"), text)


def reloaded(scripted):
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


QUALIFIED = re.compile(r"__torch__\.[\w.]*\.(\w+)")


def assert_same_program(before, after, other_module: bool = False):
    """Every method `before` has is the same printed code in `after`; same constants.
    `other_module`: `before` was compiled from a module of another name, so a free
    function's qualified name (`__torch__.<module>.attention`) is cut to its last part."""
    before_code, after_code = method_code(before), method_code(after)
    if other_module:
        before_code = {k: QUALIFIED.sub(r"\1", v) for k, v in before_code.items()}
        after_code = {k: QUALIFIED.sub(r"\1", v) for k, v in after_code.items()}
    changed = [name for name, code in before_code.items() if after_code.get(name) != code]
    assert not changed, f"methods whose program text changed: {changed}"
    assert normalised_graph(before.forward) == normalised_graph(after.forward)
    old_constants = before.code_with_constants[1].const_mapping
    new_constants = after.code_with_constants[1].const_mapping
    assert old_constants.keys() == new_constants.keys()
    assert all(torch.equal(old_constants[k], new_constants[k]) for k in old_constants)


@pytest.fixture(scope="module")
def test_images():
    from gemmodels import telemetry_reference
    return telemetry_reference.fashion_images("test", 1000)


@pytest.fixture(scope="module")
def held_out_windows():
    from gemmodels import telemetry_reference
    return torch.stack(telemetry_reference.kjv_windows(
        REPOSITORY / "gpt2-kjv" / "tokenizer", "validation", 8))


# ---------------------------------------------------------------- the program is unchanged

@pytest.mark.parametrize("variant", ["relu", "segem-n1-e1e-4"])
def test_model_source_scripts_to_the_same_program_as_before(variant, test_images, held_out_windows):
    from gemmodels import gpt2, resnet
    old_resnet, old_gpt2 = before_module("resnet"), before_module("gpt2")
    torch.manual_seed(0)
    new = resnet.resnet("resnet20", variant, 1, 10).eval()
    old = old_resnet.resnet("resnet20", variant, 1, 10).eval()
    old.load_state_dict(new.state_dict())
    before, after = reloaded(torch.jit.script(old)), reloaded(torch.jit.script(new))
    assert_same_program(before, after, other_module=True)
    assert not before._c._has_method("activation_statistics")
    assert after._c._has_method("activation_statistics")
    with torch.no_grad():
        assert torch.equal(before(test_images[:100]), after(test_images[:100]))

    config = gpt2.PRESETS["gpt2-kjv-small"]
    new = gpt2.GPT2(config, variant).eval()
    old = old_gpt2.GPT2(old_gpt2.GPTConfig(**vars(config)), variant).eval()
    old.load_state_dict(new.state_dict())
    before, after = reloaded(torch.jit.script(old)), reloaded(torch.jit.script(new))
    assert_same_program(before, after, other_module=True)
    for name in ("prefill", "decode", "new_cache"):
        assert normalised_graph(getattr(before, name)) == normalised_graph(getattr(after, name))
    tokens = held_out_windows[:2, :100]
    with torch.no_grad():
        assert torch.equal(before(tokens), after(tokens))


@pytest.mark.parametrize("variant_dir", VARIANT_DIRS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_committed_model_serves_the_same_program_as_before(variant_dir, test_images,
                                                           held_out_windows):
    relative = variant_dir.relative_to(REPO)
    before = torch.jit.load(io.BytesIO(git_show(f"{relative}/model.pt")))
    after = torch.jit.load(str(variant_dir / "model.pt"))
    assert_same_program(before, after)
    assert not before._c._has_method("activation_statistics")
    before_state, after_state = before.state_dict(), after.state_dict()
    assert before_state.keys() == after_state.keys()
    assert all(torch.equal(before_state[k], after_state[k]) for k in before_state)
    before_json = json.loads(git_show(f"{relative}/model.json"))
    after_json = json.loads((variant_dir / "model.json").read_text())
    added = {"activation_sites", "activation_statistics_data", "methods"}
    assert {k: v for k, v in after_json.items() if k not in added} == \
        {k: v for k, v in before_json.items() if k not in added}
    assert after_json["methods"] == {**before_json.get("methods", {}),
                                     "activation_statistics": after_json["methods"]["activation_statistics"]}
    assert (variant_dir / "reference.json").read_bytes() == git_show(f"{relative}/reference.json")
    with torch.no_grad():
        if after_json["task"] == "classify":
            x = test_images[:250]
            assert torch.equal(before(x), after(x))
        else:
            tokens = held_out_windows[:2, :200]
            assert torch.equal(before(tokens), after(tokens))
            (old_logits, old_kv), (new_logits, new_kv) = before.prefill(tokens), after.prefill(tokens)
            assert torch.equal(old_logits, new_logits) and torch.equal(old_kv, new_kv)
            step, position = tokens[:, -1:], torch.tensor([200, 200])
            assert torch.equal(before.decode(step, position, old_kv)[0],
                               after.decode(step, position, new_kv)[0])


# ---------------------------------------------------------------- statistics = hook reference

@pytest.mark.parametrize("variant_dir", VARIANT_DIRS, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_exported_statistics_equal_the_hook_reference(variant_dir, test_images, held_out_windows):
    from gemmodels import telemetry_reference
    config = json.loads((variant_dir / "model.json").read_text())
    scripted = torch.jit.load(str(variant_dir / "model.pt"))
    eager = telemetry_reference.eager_from_repository(variant_dir)
    classify = config["task"] == "classify"
    batches = test_images.split(250) if classify else held_out_windows.split(4)
    names = [site["name"] for site in config["activation_sites"]]
    assert names == (RESNET_SITES if classify else GPT_SITES)
    assert "activation_statistics" in config["methods"] and config["activation_statistics_data"]
    total_zero = {name: 0 for name in names}
    for index, batch in enumerate(batches):
        with torch.no_grad():
            logits, stats = scripted.activation_statistics(batch)
            if index == 0:
                assert torch.equal(logits, scripted(batch))
        reference_logits, recorded = telemetry_reference.hook_statistics(eager, batch)
        assert torch.equal(reference_logits, logits), "the eager reference computes another network"
        assert list(stats) == names and list(recorded) == names
        for site, entry in zip(names, config["activation_sites"]):
            ours, ref = stats[site], recorded[site]
            assert sorted(ours) == ["input_mean", "input_std", "nonzero", "zero_fraction"]
            assert ours["zero_fraction"].dtype == torch.float64 and ours["zero_fraction"].dim() == 0
            assert ours["input_mean"].dtype == ours["input_std"].dtype == torch.float64
            assert ours["nonzero"].dtype == torch.bool
            assert ours["nonzero"].numel() == entry["units"]
            # exact: the same count of zero outputs (a ratio of two exact integers)
            assert float(ours["zero_fraction"]) == ref["zero_count"] / ref["elements"], site
            assert torch.equal(ours["nonzero"], ref["nonzero"]), site
            assert abs(float(ours["input_mean"]) - ref["input_mean"]) <= 1e-5, site
            assert abs(float(ours["input_std"]) - ref["input_std"]) <= 1e-5, site
            total_zero[site] += ref["zero_count"]
    if config["activation"]["kind"] in ("relu", "gem", "egem"):
        assert all(total_zero.values()), "a ReLU-like activation with no zero output at a site"


def test_model_json_training_figures_are_the_methods_own(tmp_path):
    """The train_* figures of one model.json, recomputed from its model.pt on the
    documented subset (first 2000 Fashion-MNIST training images)."""
    from gemmodels import telemetry, telemetry_reference
    variant_dir = REPOSITORY / "resnet20-fashion" / "gem-n1"
    config = json.loads((variant_dir / "model.json").read_text())
    assert config["activation_statistics_data"] == telemetry_reference.TRAIN_DATA_DESCRIPTION["classify"]
    images = telemetry_reference.fashion_images("train", telemetry_reference.TRAIN_IMAGES)
    summary = telemetry.method_summary(torch.jit.load(str(variant_dir / "model.pt")),
                                       list(images.split(500)))
    recomputed = telemetry.model_json_sites(summary)
    assert [(s["name"], s["units"], s["train_dead_units"]) for s in recomputed] == \
        [(s["name"], s["units"], s["train_dead_units"]) for s in config["activation_sites"]]
    # model.json was written on an AVX2 machine; kernels for other instruction sets round
    # differently, so a few of the millions of outputs of a site fall on the other side of
    # zero and the float64 sums of float32 inputs agree to float32's precision. Largest
    # gaps on an AVX-512 machine: zero fraction 3.2e-7, input mean 3.7e-8, input std
    # 1.4e-7 (relative 1.1e-7; every site's std is above 0.74).
    for ours, stored in zip(recomputed, config["activation_sites"]):
        assert ours["train_zero_fraction"] == pytest.approx(stored["train_zero_fraction"], abs=1e-6)
        assert ours["train_input_mean"] == pytest.approx(stored["train_input_mean"], abs=1e-6)
        assert ours["train_input_std"] == pytest.approx(stored["train_input_std"], rel=1e-6)


# ---------------------------------------------------------------- the operator's zeros

def random_inputs(seed: int) -> torch.Tensor:
    """Random float32 tensors, |x| log-uniform in [1e-3, 1e3] with random signs, with
    exact zeros (+0 and -0) mixed in. Above 1e-3 no output of the tested parameters
    underflows (the smallest, SE-GEM n=3 eps=10 at 1e-3: 1e-23); below it see
    test_tiny_inputs_underflow_to_zero_in_float32."""
    generator = torch.Generator().manual_seed(seed)
    magnitude = 10.0 ** (torch.rand(64, 4096, generator=generator) * 6 - 3)
    sign = torch.where(torch.rand(64, 4096, generator=generator) < 0.5, -1.0, 1.0)
    x = (magnitude * sign).float()
    x[torch.rand(x.shape, generator=generator) < 0.05] = 0.0
    x[torch.rand(x.shape, generator=generator) < 0.01] = -0.0
    return x


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n,eps", [(1, 1e-4), (2, 1e-4), (1, 1.0), (3, 10.0)])
def test_segem_outputs_zero_only_where_its_input_is_zero(seed, n, eps):
    x = random_inputs(seed)
    y = torch.ops.gem.gem(x, n, eps, 0.01)
    assert torch.equal(y == 0, x == 0)
    rows = x != 0
    assert (rows.all(dim=1) <= (y != 0).all(dim=1)).all()  # rows without zero inputs: fraction 0


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("n,eps", [(1, 1.0), (2, 1.0), (1, 1e-4)])
def test_gem_zero_fraction_is_the_fraction_of_inputs_at_most_zero(seed, n, eps):
    x = random_inputs(seed)
    y = torch.ops.gem.gem(x, n, eps, 0.0)
    assert torch.equal(y == 0, x <= 0)
    assert float((y == 0).double().mean()) == float((x <= 0).double().mean())


def test_tiny_inputs_underflow_to_zero_in_float32():
    """The exact GEM value x^(2n+1) / (eps + x^(2n)) of a tiny positive x is below
    float32's smallest subnormal, so it rounds to 0: there GEM is zero for an x > 0 and
    SE-GEM for an x != 0. The thresholds, for the variants of the repository."""
    tiny = torch.tensor([1e-16, 1e-20])
    assert not torch.ops.gem.gem(tiny, 1, 1.0, 0.0).any()       # GEM n=1: x^3 ~ 1e-48
    assert not torch.ops.gem.gem(-tiny, 1, 1e-4, 0.01).any()    # SE-GEM x < 0: 0.01 x^3 / 1e-4
    assert torch.ops.gem.gem(torch.tensor([-1e-10]), 1, 1e-4, 0.01).item() < 0  # -1e-28
    assert torch.ops.gem.gem(torch.tensor([1e-12]), 1, 1.0, 0.0).item() > 0   # 1e-36: normal
    assert torch.ops.gem.gem(torch.tensor([5e-10]), 2, 1.0, 0.0).item() == 0  # GEM n=2: x^5 ~ 3e-47
    assert torch.ops.gem.gem(torch.tensor([1e-7]), 2, 1.0, 0.0).item() > 0    # 1e-35: normal
