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
"""
import argparse
import json
import shutil
from pathlib import Path

import torch

from gemmodels import bpe, data, gpt2, resnet, serving
from gemmodels.activations import STANDARD_VARIANTS

MODELS_DIR = Path(__file__).resolve().parent
MODELS = ("resnet20-fashion", "gpt2-kjv")
MAX_REPOSITORY_BYTES = 40 * 1024 * 1024
REFERENCE_STEPS = 20
REFERENCE_IMAGES = 1000  # the server's integration test classifies these too


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS + ("all",), default="all")
    parser.add_argument("--variant", default="all")
    parser.add_argument("--runs-dir", type=Path, default=MODELS_DIR / "runs")
    parser.add_argument("--repository", type=Path, default=MODELS_DIR / "repository")
    parser.add_argument("--allow-limited", action="store_true",
                        help="export smoke runs too (their metrics say limited)")
    return parser.parse_args(argv)


def script_and_check(model: torch.nn.Module, path: Path, example: torch.Tensor,
                     frozen: bool = False) -> None:
    """Scripts `model` (frozen for serving when `frozen`), saves it to `path` and checks
    that the saved file reproduces the Python model."""
    scripted = torch.jit.script(model)
    if frozen:
        scripted = serving.freeze_classifier(scripted)
    serving.save_checked(scripted, path, model, example)


def activation_entry(metrics: dict) -> dict:
    return {"slug": metrics["variant"], **metrics["activation"]}


def training_entry(metrics: dict) -> dict:
    return {"seed": metrics["seed"], "epochs": len(metrics["epochs"]),
            "train_seconds": round(metrics["train_seconds"], 1), "threads": metrics["threads"],
            "torch": metrics["torch"], "recipe": metrics["recipe"], "command": metrics["command"]}


def write_json(path: Path, value: dict) -> None:
    path.write_text(json.dumps(value, indent=1) + "\n")


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
        "training": training_entry(metrics), "reference": "reference.json"})


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
            "decode": "tokens int64 [B, 1], positions int64 [B], kv -> (logits [B, 1, V], kv)"},
        "val_perplexity": round(metrics["val_perplexity"], 3),
        "evaluated_on": f"{metrics['dataset']}, {metrics['val_tokens']} tokens",
        "sample": metrics["sample"],
        "training": training_entry(metrics), "reference": "reference.json"})


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


def repository_bytes(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def main(argv=None) -> None:
    args = parse_args(argv)
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
