"""Exports trained runs into the model repository that gem-server serves.

    PYTHONPATH=models /usr/bin/python3 models/export.py --model all --variant all

Reads <runs-dir>/<model>/<variant>/{checkpoint.pt,metrics.json} (written by train.py)
and writes, per DESIGN.md:

    <repository>/<model>/<variant>/model.pt        TorchScript (needs the gem_ops library);
                                                   classify models frozen (gemmodels/serving.py)
    <repository>/<model>/<variant>/model.json      this variant's config (below)
    <repository>/<model>/<variant>/reference.json  an input and the Python outputs for it
    <repository>/resnet20-fashion/labels.txt       class names, one per line, in index order
    <repository>/gpt2-kjv/tokenizer/{vocab.json,merges.txt}   GPT-2-format BPE files

model.json: `name`, `variant`, `task` ("classify" | "generate"), `architecture`,
`activation` {slug, kind, n, eps, neg_slope}; for classify `input` (shape [1, 28, 28],
pixels scaled to [0, 1] then (x - mean) / std), `output`, `labels` (path relative to
the variant directory) and `test_accuracy`; for generate `tokenizer` (relative paths),
`max_positions`, `vocab_size`, `eos_id`, `kv_cache` (see gemmodels/gpt2.py), `methods`
and `val_perplexity`; both: `evaluated_on` (the split), `training` (seed, epochs,
seconds, recipe, command) and `reference`.

reference.json: classify: `input` {shape, data} (normalised model input: the first
Fashion-MNIST test image), `logits`, and `first_images_accuracy`, the accuracy on the
first `first_images` test images. generate: `prompt`, `prompt_tokens`,
`last_logits` (forward logits at the last prompt position) and `greedy_tokens` (20 steps
of prefill + decode, no EOS stop). A C++ test can check LibTorch against these.

Activation telemetry (docs/TELEMETRY.md): every model.pt also has the method
`activation_statistics`, and model.json gets `methods.activation_statistics`,
`activation_sites` (per site: units and train_input_mean / train_input_std /
train_zero_fraction / train_dead_units, measured by that method on the fixed training
subset of gemmodels/telemetry_reference.py) and `activation_statistics_data` (that subset).

Re-export without the training runs (adds the method to an exported repository):

    PYTHONPATH=models /usr/bin/python3 models/export.py --reexport-from-repository

reads the trained weights from each committed model.pt (the state_dict of a GPT-2 file;
a frozen ResNet file has no state_dict, so its weights come from the same file at
--weights-revision, the last commit where it was not frozen, and must freeze to exactly
the committed program), rebuilds the eager model, exports it again and checks that
forward (and prefill, decode, new_cache) is the same program text as before and gives
bit-identical outputs; reference.json is left as it is, model.json gains the three
fields above and keeps every other field.
"""
import argparse
import io
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import torch

from gemmodels import bpe, data, gpt2, ops, resnet, serving, telemetry
from gemmodels import telemetry_reference as reference
from gemmodels.activations import STANDARD_VARIANTS

MODELS_DIR = Path(__file__).resolve().parent
MODELS = ("resnet20-fashion", "gpt2-kjv")
MAX_REPOSITORY_BYTES = 40 * 1024 * 1024
REFERENCE_STEPS = 20
REFERENCE_IMAGES = 1000  # the server's integration test classifies these too
# The last commit whose resnet20-fashion model.pt files are unfrozen (still hold the
# BatchNorm parameters): 825ccad froze them with freeze.py and changed nothing else.
UNFROZEN_WEIGHTS_REVISION = "3020976"
# The commit before activation_statistics was added: the program a re-export must keep.
BEFORE_TELEMETRY_REVISION = "3165891"
STATISTICS_METHOD = {
    "classify": "x float32 [B, 1, 28, 28] -> (logits [B, 10], {site: {zero_fraction, nonzero, "
                "input_mean, input_std}}) over the batch, sites in network order (docs/TELEMETRY.md)",
    "generate": "tokens int64 [B, T] -> (logits [B, T, V], {site: {zero_fraction, nonzero, "
                "input_mean, input_std}}) over the batch, sites in layer order (docs/TELEMETRY.md)",
}
TELEMETRY_BATCH = {"classify": 500, "generate": 8}


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS + ("all",), default="all")
    parser.add_argument("--variant", default="all")
    parser.add_argument("--runs-dir", type=Path, default=MODELS_DIR / "runs")
    parser.add_argument("--repository", type=Path, default=MODELS_DIR / "repository")
    parser.add_argument("--allow-limited", action="store_true",
                        help="export smoke runs too (their metrics say limited)")
    parser.add_argument("--reexport-from-repository", action="store_true",
                        help="re-export the models of --repository from their own weights "
                             "(no runs needed), adding activation_statistics")
    parser.add_argument("--weights-revision", default=UNFROZEN_WEIGHTS_REVISION,
                        help="git revision holding unfrozen copies of frozen model.pt files")
    parser.add_argument("--before-revision", default=BEFORE_TELEMETRY_REVISION,
                        help="git revision whose model.pt the re-exported program must equal "
                             "('' for the current file)")
    parser.add_argument("--in-process", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def script_and_check(model: torch.nn.Module, path: Path, example: torch.Tensor,
                     frozen: bool = False) -> None:
    """Scripts `model` (frozen for serving when `frozen`), saves it to `path` and checks
    that the saved file reproduces the Python model."""
    scripted = torch.jit.script(model)
    if frozen:
        scripted = serving.freeze_classifier(serving.reloaded(scripted))
    serving.save_checked(scripted, path, model, example)


def activation_entry(metrics: dict) -> dict:
    return {"slug": metrics["variant"], **metrics["activation"]}


def training_entry(metrics: dict) -> dict:
    return {"seed": metrics["seed"], "epochs": len(metrics["epochs"]),
            "train_seconds": round(metrics["train_seconds"], 1), "threads": metrics["threads"],
            "torch": metrics["torch"], "recipe": metrics["recipe"], "command": metrics["command"]}


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")


def training_batches(task: str, tokenizer_dir: Path = None):
    """The fixed training subset of the train_* figures, in batches."""
    if task == "classify":
        images = reference.fashion_images("train", reference.TRAIN_IMAGES)
        return list(images.split(TELEMETRY_BATCH[task]))
    windows = reference.kjv_windows(tokenizer_dir, "train", reference.TRAIN_WINDOWS)
    return reference.token_batches(windows, TELEMETRY_BATCH[task])


def telemetry_fields(path: Path, task: str, batches) -> dict:
    """model.json's activation_sites and activation_statistics_data, measured by the
    saved file's own activation_statistics on the training subset."""
    summary = telemetry.method_summary(torch.jit.load(str(path)), batches)
    return {"activation_sites": telemetry.model_json_sites(summary),
            "activation_statistics_data": reference.TRAIN_DATA_DESCRIPTION[task]}


def export_resnet(metrics: dict, state: dict, out: Path) -> None:
    arch = metrics["architecture"]
    model = resnet.resnet(arch["name"], metrics["variant"], arch["in_channels"], arch["num_classes"])
    model.load_state_dict(state)
    model.eval()
    images, _ = data.fashion_mnist("test")
    example = data.normalize_images(images[:1])
    script_and_check(model, out / "model.pt", example, frozen=True)
    with torch.no_grad():
        logits = model(example)[0]
        first = data.normalize_images(images[:REFERENCE_IMAGES])
        predicted = model(first).argmax(dim=1)
    labels = data.fashion_mnist("test")[1][:REFERENCE_IMAGES]
    write_json(out / "reference.json", {
        "input": {"shape": list(example.shape), "data": example.flatten().tolist(),
                  "description": "the first Fashion-MNIST test image, normalised"},
        "logits": logits.tolist(),
        "first_images": REFERENCE_IMAGES,
        "first_images_accuracy": float((predicted == labels).double().mean())})
    write_json(out / "model.json", {
        "name": metrics["model"], "variant": metrics["variant"], "task": "classify",
        "architecture": arch, "activation": activation_entry(metrics),
        "input": {"shape": [arch["in_channels"], 28, 28], "dtype": "float32",
                  "color": "grayscale", "scale": "pixel values divided by 255 to [0, 1]",
                  "mean": [data.FASHION_MEAN], "std": [data.FASHION_STD]},
        "output": {"name": "logits", "shape": [arch["num_classes"]]},
        "labels": "../labels.txt",
        "test_accuracy": round(metrics["test_accuracy"], 4),
        "evaluated_on": metrics["dataset"],
        "training": training_entry(metrics), "reference": "reference.json",
        "methods": {"activation_statistics": STATISTICS_METHOD["classify"]},
        **telemetry_fields(out / "model.pt", "classify", training_batches("classify"))})


def export_gpt(metrics: dict, state: dict, out: Path, tokenizer: bpe.Tokenizer) -> None:
    arch = metrics["architecture"]
    config = gpt2.GPTConfig(**{k: arch[k] for k in gpt2.GPTConfig.__dataclass_fields__})
    model = gpt2.GPT2(config, metrics["variant"])
    model.load_state_dict(state)
    model.eval()
    prompt = metrics["sample"]["prompt"]
    prompt_tokens = tokenizer.encode(prompt)
    example = torch.tensor([prompt_tokens])
    script_and_check(model, out / "model.pt", example)
    with torch.no_grad():
        last_logits = model(example)[0, -1]
    greedy = gpt2.greedy_generate(model, prompt_tokens, REFERENCE_STEPS)
    write_json(out / "reference.json", {
        "prompt": prompt, "prompt_tokens": prompt_tokens, "last_logits": last_logits.tolist(),
        "greedy_tokens": greedy, "greedy_text": tokenizer.decode(greedy)})
    cache_shape = [config.n_layer, 2, "batch", config.n_head, config.n_positions,
                   config.n_embd // config.n_head]
    write_json(out / "model.json", {
        "name": metrics["model"], "variant": metrics["variant"], "task": "generate",
        "architecture": arch, "activation": activation_entry(metrics),
        "tokenizer": {"type": "gpt2-bpe", "vocab": "../tokenizer/vocab.json",
                      "merges": "../tokenizer/merges.txt"},
        "max_positions": config.n_positions, "vocab_size": config.vocab_size,
        "eos_id": tokenizer.eot_id, "eos_token": bpe.EOT,
        "kv_cache": {"layout": ["layer", "key_value", "batch", "head", "position", "head_dim"],
                     "shape": cache_shape, "dtype": "float32"},
        "methods": {
            "forward": "tokens int64 [B, T] -> logits [B, T, V]",
            "new_cache": "batch_size -> zero kv cache",
            "prefill": "tokens int64 [B, T] -> (logits [B, T, V], kv)",
            "decode": "tokens int64 [B, 1], positions int64 [B], kv -> (logits [B, 1, V], kv)",
            "activation_statistics": STATISTICS_METHOD["generate"]},
        "val_perplexity": round(metrics["val_perplexity"], 3),
        "evaluated_on": f"{metrics['dataset']}, {metrics['val_tokens']} tokens",
        "sample": metrics["sample"],
        "training": training_entry(metrics), "reference": "reference.json",
        **telemetry_fields(out / "model.pt", "generate",
                           training_batches("generate", out.parent / "tokenizer"))})


def write_shared_files(model: str, args) -> None:
    root = args.repository / model
    root.mkdir(parents=True, exist_ok=True)
    if model == "resnet20-fashion":
        (root / "labels.txt").write_text("\n".join(data.FASHION_LABELS) + "\n")
    else:
        shutil.copytree(args.runs_dir / model / "tokenizer", root / "tokenizer", dirs_exist_ok=True)


def export_run(model: str, variant: str, args) -> None:
    run = args.runs_dir / model / variant
    metrics = json.loads((run / "metrics.json").read_text())
    if metrics["limited"] and not args.allow_limited:
        raise SystemExit(f"{run} is a limited smoke run; train fully or pass --allow-limited")
    state = torch.load(run / "checkpoint.pt")
    out = args.repository / model / variant
    if model == "resnet20-fashion":
        export_resnet(metrics, state, out)
        quality = f"test accuracy {metrics['test_accuracy']:.2%}"
    else:
        tokenizer_dir = args.repository / model / "tokenizer"
        tokenizer = bpe.Tokenizer.from_files(tokenizer_dir / "vocab.json", tokenizer_dir / "merges.txt")
        export_gpt(metrics, state, out, tokenizer)
        quality = f"val perplexity {metrics['val_perplexity']:.2f}"
    size = (out / "model.pt").stat().st_size
    print(f"exported {model}/{variant}: {quality}, model.pt {size / 1e6:.2f} MB")


# ---------------------------------------------------------------- re-export

SERVED_METHODS = {"classify": ("forward",),
                  "generate": ("forward", "prefill", "decode", "new_cache")}


def committed_weights(path: Path, revision: str) -> dict:
    """The trained state_dict behind a repository model.pt: the file's own, or for a
    frozen file (no parameters left) the same path's file at `revision` in git."""
    scripted = torch.jit.load(str(path))
    if not serving.is_frozen(scripted):
        return scripted.state_dict()
    unfrozen = torch.jit.load(io.BytesIO(git_file(path, revision)))
    if serving.is_frozen(unfrozen):
        raise SystemExit(f"{path} is frozen at {revision} too; pass --weights-revision")
    return unfrozen.state_dict()


def git_file(path: Path, revision: str) -> bytes:
    relative = path.resolve().relative_to(MODELS_DIR.parent)
    return subprocess.run(["git", "-C", str(MODELS_DIR.parent), "show", f"{revision}:{relative}"],
                          check=True, capture_output=True).stdout


def eager_model(config: dict, state=None) -> torch.nn.Module:
    arch = config["architecture"]
    if config["task"] == "classify":
        model = resnet.resnet(arch["name"], config["variant"], arch["in_channels"], arch["num_classes"])
    else:
        gpt_config = gpt2.GPTConfig(**{k: arch[k] for k in gpt2.GPTConfig.__dataclass_fields__})
        model = gpt2.GPT2(gpt_config, config["variant"])
    if state is not None:
        model.load_state_dict(state)
    return model.eval()


def check_inputs(config: dict, variant_dir: Path, tokenizer_dir: Path):
    """Real inputs for the before/after comparison: the first 1000 test images, or the
    reference prompt and the first 200 tokens of two held-out windows."""
    if config["task"] == "classify":
        return list(reference.fashion_images("test", REFERENCE_IMAGES).split(250))
    prompt = json.loads((variant_dir / "reference.json").read_text())["prompt_tokens"]
    windows = reference.kjv_windows(tokenizer_dir, "validation", 2)
    return [torch.tensor([prompt]), torch.stack(windows)[:, :200]]  # room for a decode step


def method_code(module, prefix: str = "") -> dict:
    """'<submodule path>.<method>' -> printed code, for every method of every submodule."""
    out = {prefix + name: module._c._get_method(name).code for name in module._c._method_names()}
    for child_name, child in module.named_children():
        out.update(method_code(child, f"{prefix}{child_name}."))
    return out


@torch.no_grad()
def same_program(old, new, task: str, inputs) -> None:
    """Raises unless `new` serves the same program as `old`: identical method code,
    identical constants, bit-identical outputs of forward (and prefill and decode)."""
    for name in SERVED_METHODS[task]:
        if getattr(old, name).code != getattr(new, name).code:
            raise RuntimeError(f"{name}: the program text changed")
    old_methods, new_methods = method_code(old), method_code(new)
    changed = [name for name, code in old_methods.items() if new_methods.get(name) != code]
    if changed:
        raise RuntimeError(f"the program text of {changed} changed")
    old_constants = old.code_with_constants[1].const_mapping
    new_constants = new.code_with_constants[1].const_mapping
    if old_constants.keys() != new_constants.keys() or not all(
            torch.equal(old_constants[k], new_constants[k]) for k in old_constants):
        raise RuntimeError("forward's constants changed")
    old_state, new_state = old.state_dict(), new.state_dict()
    if old_state.keys() != new_state.keys() or not all(
            torch.equal(old_state[k], new_state[k]) for k in old_state):
        raise RuntimeError("the weights changed")
    for x in inputs:
        if not torch.equal(old(x), new(x)):
            raise RuntimeError("forward's outputs changed")
        if task == "generate":
            old_logits, old_kv = old.prefill(x)
            new_logits, new_kv = new.prefill(x)
            step = x[:, -1:]
            position = torch.full([x.size(0)], x.size(1), dtype=torch.long)
            if not (torch.equal(old_logits, new_logits) and torch.equal(old_kv, new_kv)
                    and torch.equal(old.decode(step, position, old_kv)[0],
                                    new.decode(step, position, new_kv)[0])):
                raise RuntimeError("prefill / decode outputs changed")


def reexport_variant(variant_dir: Path, args, scripted) -> str:
    """`scripted`: this variant's model, scripted with random weights (see reexport_model)."""
    started = time.monotonic()
    config = json.loads((variant_dir / "model.json").read_text())
    task = config["task"]
    path = variant_dir / "model.pt"
    tokenizer_dir = variant_dir.parent / "tokenizer"
    scripted.load_state_dict(committed_weights(path, args.weights_revision))
    scripted = serving.reloaded(scripted)
    old = torch.jit.load(io.BytesIO(git_file(path, args.before_revision))) \
        if args.before_revision else torch.jit.load(str(path))
    if task == "classify":
        scripted = serving.reloaded(serving.freeze_classifier(scripted))
    inputs = check_inputs(config, variant_dir, tokenizer_dir)
    same_program(old, scripted, task, inputs)
    torch.jit.save(scripted, str(path))
    new = torch.jit.load(str(path))
    same_program(old, new, task, inputs[:1])
    checked = time.monotonic()
    batches = training_batches(task, tokenizer_dir)
    fields = telemetry_fields(path, task, batches)
    methods = dict(config.get("methods", {}))
    methods["activation_statistics"] = STATISTICS_METHOD[task]
    config["methods"] = methods
    config.update(fields)
    write_json(variant_dir / "model.json", config)
    sites = fields["activation_sites"]
    dead = sum(site["train_dead_units"] for site in sites)
    return (f"same forward program, outputs bit-identical ({checked - started:.1f} s); "
            f"{len(sites)} sites, {dead} dead units on the training subset "
            f"({time.monotonic() - checked:.1f} s)")


def reexport_model(model: str, args) -> None:
    """Re-exports the variants of one model, in this process.

    The names TorchScript prints for a method's variables depend on what the process
    compiled before: export.py scripted the variants in STANDARD_VARIANTS order in one
    process, so the first (relu) prints `x8` where the later ones print `x0` in the GPT-2
    blocks. To print the committed text again, every standard variant is scripted here in
    that order, before any model.pt is loaded (loading compiles the file's classes too),
    and only then are the selected ones re-exported."""
    ops.load()  # GEM-family modules and files need gem::gem
    configs = {v: json.loads((args.repository / model / v / "model.json").read_text())
               for v in STANDARD_VARIANTS if (args.repository / model / v / "model.json").exists()}
    scripted = {v: torch.jit.script(eager_model(config)) for v, config in configs.items()}
    for variant in configs:
        if args.variant != "all" and variant != args.variant:
            continue
        print(f"{model}/{variant}: ", end="", flush=True)
        print(reexport_variant(args.repository / model / variant, args, scripted[variant]), flush=True)


def reexport_repository(args) -> None:
    """One fresh process per model (see reexport_model)."""
    for model in (MODELS if args.model == "all" else (args.model,)):
        if args.in_process:
            reexport_model(model, args)
            continue
        subprocess.run([sys.executable, str(Path(__file__).resolve()), "--reexport-from-repository",
                        "--in-process", "--model", model, "--variant", args.variant,
                        "--repository", str(args.repository),
                        "--weights-revision", args.weights_revision,
                        "--before-revision", args.before_revision], check=True)


def repository_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.reexport_from_repository:
        reexport_repository(args)
        if args.in_process:
            return
        total = repository_bytes(args.repository)
        print(f"repository {args.repository}: {total / 1e6:.1f} MB")
        return
    models = MODELS if args.model == "all" else (args.model,)
    variants = STANDARD_VARIANTS if args.variant == "all" else [args.variant]
    for model in models:
        write_shared_files(model, args)
        for variant in variants:
            export_run(model, variant, args)
    total = repository_bytes(args.repository)
    print(f"repository {args.repository}: {total / 1e6:.1f} MB")
    if total > MAX_REPOSITORY_BYTES:
        raise SystemExit(f"the repository is {total / 1e6:.1f} MB, over the 40 MiB limit")


if __name__ == "__main__":
    main()
