"""Trains the demo models of the repository, one activation variant at a time.

    PYTHONPATH=models /usr/bin/python3 models/train.py --model all --variant all
    PYTHONPATH=models /usr/bin/python3 models/train.py --model resnet20-fashion --variant gem-n1

Models: `resnet20-fashion` (ResNet-20 on Fashion-MNIST, 60k train / 10k test) and
`gpt2-kjv` (the small GPT-2 preset on the King James Bible, every 20th chapter held
out; the BPE tokenizer is trained once on the training chapters). Every variant of a
model uses the same recipe (gemmodels.training) and seed; the activation is the one knob.
A GPT run ends with sequence-level unlikelihood fine-tuning against greedy loops and
counts the looping greedy continuations of validation prompts before and after it.

Each run writes to <runs-dir>/<model>/<variant>/: `metrics.json` (per-step loss and
learning rate, per-epoch loss / accuracy or perplexity / throughput, final quality,
wall-clock time, the command) and `checkpoint.pt` (the state dict that export.py reads).
The tokenizer goes to <runs-dir>/gpt2-kjv/tokenizer/{vocab.json,merges.txt}.
`--limit-steps` / `--limit-eval` make short smoke runs; their metrics say "limited".
"""
import argparse
import json
import math
import sys
import time
from dataclasses import asdict, replace
from functools import lru_cache
from pathlib import Path
from typing import List

import torch
from tqdm import tqdm

from gemmodels import bpe, data, gpt2, repetition, resnet, training
from gemmodels.activations import STANDARD_VARIANTS, activation_params

MODELS = ("resnet20-fashion", "gpt2-kjv")
RESNET_PRESET = "resnet20"
GPT_PRESET = "gpt2-kjv-small"
PROMPT = "And God said"
LOOP_PROMPT_CHAPTERS, LOOP_PROMPT_WORDS = 60, 3
DEFAULT_RUNS = Path(__file__).resolve().parent / "runs"
LOG_EVERY = 10


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", choices=MODELS + ("all",), default="all")
    parser.add_argument("--variant", default="all",
                        help="an activation slug, or 'all' for the standard variants")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs-dir", type=Path, default=DEFAULT_RUNS)
    parser.add_argument("--limit-steps", type=int, default=0,
                        help="smoke runs: at most this many steps per epoch and of fine-tuning")
    parser.add_argument("--limit-eval", type=int, default=0,
                        help="smoke runs: at most this many test images / validation windows")
    parser.add_argument("--epochs", type=int, default=0, help="override the recipe's epochs")
    parser.add_argument("--finetune-steps", type=int, default=-1,
                        help="override the GPT recipe's unlikelihood fine-tuning steps")
    return parser.parse_args(argv)


def command_line(args, model: str, variant: str) -> str:
    """The command that reproduces one run."""
    parts = ["PYTHONPATH=models /usr/bin/python3 models/train.py",
             f"--model {model} --variant {variant} --seed {args.seed}"]
    for flag in ("epochs", "limit_steps", "limit_eval"):
        if getattr(args, flag):
            parts.append(f"--{flag.replace('_', '-')} {getattr(args, flag)}")
    if model == "gpt2-kjv" and args.finetune_steps >= 0:
        parts.append(f"--finetune-steps {args.finetune_steps}")
    return " ".join(parts)


def base_metrics(args, model: str, variant: str, recipe, architecture: dict) -> dict:
    return {"model": model, "variant": variant, "activation": activation_params(variant),
            "architecture": architecture, "recipe": asdict(recipe), "seed": args.seed,
            "threads": args.threads, "torch": torch.__version__,
            "limited": bool(args.limit_steps or args.limit_eval),
            "command": command_line(args, model, variant), "steps": [], "epochs": []}


def save_run(run_dir: Path, model: torch.nn.Module, metrics: dict) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.save(model.state_dict(), run_dir / "checkpoint.pt")
    (run_dir / "metrics.json").write_text(json.dumps(metrics, indent=1) + "\n")


class RunLog:
    """A run's progress: a bar per phase (an epoch, the fine-tuning), the loss every
    LOG_EVERY steps, a line at the end of each phase."""

    def __init__(self, metrics: dict):
        self.metrics = metrics
        self.steps = 0
        self.bar = None

    def start_phase(self, total: int, description: str) -> None:
        self.bar = tqdm(total=total, desc=description, unit="step", mininterval=1.0,
                        dynamic_ncols=True, file=sys.stderr)

    def step(self, loss: float, lr: float, records: str = "steps", **extra: float) -> None:
        """Counts a step; every LOG_EVERY steps appends its numbers to metrics[records]."""
        self.steps += 1
        if self.steps % LOG_EVERY == 0:
            self.metrics[records].append({"step": self.steps, "loss": loss, "lr": lr, **extra})
        self.bar.set_postfix(loss=f"{loss:.3f}", **{k: f"{v:.3f}" for k, v in extra.items()},
                             refresh=False)
        self.bar.update()

    def end_epoch(self, record: dict, line: str) -> None:
        self.metrics["epochs"].append(record)
        self.end_phase(line)

    def end_phase(self, line: str) -> None:
        self.bar.close()
        tqdm.write(line)


# ---------------------------------------------------------------- ResNet-20 / Fashion-MNIST

@lru_cache(maxsize=None)
def fashion_tensors():
    """Normalised (train images, train labels, test images, test labels)."""
    train_x, train_y = data.fashion_mnist("train")
    test_x, test_y = data.fashion_mnist("test")
    return data.normalize_images(train_x), train_y, data.normalize_images(test_x), test_y


def train_resnet(args, variant: str) -> dict:
    recipe = training.ResNetRecipe(**({"epochs": args.epochs} if args.epochs else {}))
    train_x, train_y, test_x, test_y = fashion_tensors()
    if args.limit_eval:
        test_x, test_y = test_x[:args.limit_eval], test_y[:args.limit_eval]
    training.seed_everything(args.seed)
    model = resnet.resnet(RESNET_PRESET, variant, in_channels=1, num_classes=10)
    steps_per_epoch = min(-(-len(train_x) // recipe.batch_size), args.limit_steps or len(train_x))
    optimizer, scheduler = training.resnet_optimizer(model, recipe, steps_per_epoch)
    generator = torch.Generator().manual_seed(args.seed)
    metrics = base_metrics(args, "resnet20-fashion", variant, recipe,
                           resnet.architecture(RESNET_PRESET, 1, 10))
    log = RunLog(metrics)
    started = time.time()
    for epoch in range(1, recipe.epochs + 1):
        epoch_start, seen, loss_sum, correct = time.time(), 0, 0.0, 0
        name = f"resnet20-fashion {variant} epoch {epoch}/{recipe.epochs}"
        log.start_phase(steps_per_epoch, name)
        batches = training.image_batches(train_x, train_y, recipe.batch_size, generator,
                                         recipe.horizontal_flip)
        for _, (x, y) in zip(range(steps_per_epoch), batches):
            loss, right = training.classification_step(model, optimizer, x, y)
            scheduler.step()
            log.step(loss, scheduler.get_last_lr()[0])
            seen, loss_sum, correct = seen + len(y), loss_sum + loss * len(y), correct + right
        train_seconds = time.time() - epoch_start
        test_loss, test_accuracy = training.evaluate_classifier(model, test_x, test_y)
        record = {"epoch": epoch, "train_loss": loss_sum / seen, "train_accuracy": correct / seen,
                  "test_loss": test_loss, "test_accuracy": test_accuracy,
                  "images_per_s": seen / train_seconds, "seconds": time.time() - epoch_start}
        log.end_epoch(record, f"{name}: train loss {record['train_loss']:.4f} "
                              f"acc {record['train_accuracy']:.2%} | test loss {test_loss:.4f} "
                              f"acc {test_accuracy:.2%} | {record['images_per_s']:.0f} images/s | "
                              f"{record['seconds']:.0f} s")
    metrics.update(test_accuracy=metrics["epochs"][-1]["test_accuracy"],
                   dataset=f"fashion-mnist test ({len(test_y) // 1000}k)",
                   train_seconds=time.time() - started)
    save_run(args.runs_dir / "resnet20-fashion" / variant, model, metrics)
    return metrics


# ---------------------------------------------------------------- GPT-2 / KJV

def kjv_tokenizer(args, recipe: training.GPTRecipe) -> bpe.Tokenizer:
    """The shared tokenizer, trained on the training chapters the first time it is needed."""
    directory = args.runs_dir / "gpt2-kjv" / "tokenizer"
    if not (directory / "vocab.json").exists():
        train_docs, _ = data.kjv_split()
        tokenizer = bpe.train(train_docs, recipe.vocab_size)
        tokenizer.save(directory)
        tqdm.write(f"tokenizer: {tokenizer.vocab_size} ids, {len(tokenizer.merges)} merges "
                   f"-> {directory}")
    return bpe.Tokenizer.from_files(directory / "vocab.json", directory / "merges.txt")


@lru_cache(maxsize=None)
def kjv_streams(tokenizer_dir: Path):
    """(train stream, validation stream) of token ids."""
    tokenizer = bpe.Tokenizer.from_files(tokenizer_dir / "vocab.json", tokenizer_dir / "merges.txt")
    train_docs, val_docs = data.kjv_split()
    return (training.token_stream(tokenizer, train_docs),
            training.token_stream(tokenizer, val_docs))


def train_gpt(args, variant: str) -> dict:
    overrides = {"epochs": args.epochs} if args.epochs else {}
    if args.finetune_steps >= 0:
        overrides["finetune_steps"] = args.finetune_steps
    recipe = training.GPTRecipe(**overrides)
    if args.limit_steps:
        recipe = replace(recipe, finetune_steps=min(recipe.finetune_steps, args.limit_steps))
    tokenizer = kjv_tokenizer(args, recipe)
    train_stream, val_stream = kjv_streams(args.runs_dir / "gpt2-kjv" / "tokenizer")
    config = gpt2.PRESETS[GPT_PRESET]
    if config.vocab_size != tokenizer.vocab_size:
        raise SystemExit(f"the tokenizer in {args.runs_dir / 'gpt2-kjv' / 'tokenizer'} has "
                         f"{tokenizer.vocab_size} ids, {GPT_PRESET} expects {config.vocab_size}: "
                         "delete it to retrain")
    training.seed_everything(args.seed)
    model = gpt2.GPT2(config, variant)
    steps_per_epoch = (len(train_stream) - recipe.context) // (recipe.context * recipe.batch_size)
    steps_per_epoch = min(steps_per_epoch, args.limit_steps or steps_per_epoch)
    optimizer, scheduler = training.gpt_optimizer(model, recipe, steps_per_epoch * recipe.epochs)
    generator = torch.Generator().manual_seed(args.seed)
    metrics = base_metrics(args, "gpt2-kjv", variant, recipe, gpt2.architecture(GPT_PRESET, config))
    metrics.update(parameters=sum(p.numel() for p in model.parameters()),
                   train_tokens=len(train_stream), val_tokens=len(val_stream))
    log = RunLog(metrics)
    started = time.time()
    for epoch in range(1, recipe.epochs + 1):
        epoch_start, loss_sum = time.time(), 0.0
        name = f"gpt2-kjv {variant} epoch {epoch}/{recipe.epochs}"
        log.start_phase(steps_per_epoch, name)
        windows = training.training_windows(train_stream, recipe.context, generator)
        for i in range(steps_per_epoch):
            batch = windows[i * recipe.batch_size:(i + 1) * recipe.batch_size]
            loss = training.lm_step(model, optimizer, batch, recipe.grad_clip)
            scheduler.step()
            log.step(loss, scheduler.get_last_lr()[0])
            loss_sum += loss
        train_seconds = time.time() - epoch_start
        val_loss, _ = training.evaluate_lm(model, val_stream, recipe.context, args.limit_eval)
        record = {"epoch": epoch, "train_loss": loss_sum / steps_per_epoch,
                  "val_loss": val_loss, "val_perplexity": math.exp(val_loss),
                  "tokens_per_s": steps_per_epoch * recipe.batch_size * recipe.context / train_seconds,
                  "seconds": time.time() - epoch_start}
        log.end_epoch(record, f"{name}: train loss {record['train_loss']:.4f} | val loss "
                              f"{val_loss:.4f} perplexity {record['val_perplexity']:.2f} | "
                              f"{record['tokens_per_s']:.0f} tokens/s | {record['seconds']:.0f} s")
    prompts = loop_prompts()
    if recipe.finetune_steps:
        metrics["pretrained"] = {
            "val_perplexity": metrics["epochs"][-1]["val_perplexity"],
            "sample": greedy_sample(model, tokenizer),
            "looping_prompts": repetition.looping_prompts(model, tokenizer, prompts)}
        finetune_gpt(model, recipe, train_stream, val_stream, generator, log, args, variant)
    metrics.update(val_perplexity=last_perplexity(metrics),
                   dataset="kjv held-out chapters (every 20th chapter, index % 20 == 19)",
                   sample=greedy_sample(model, tokenizer), loop_prompts=prompts,
                   looping_prompts=repetition.looping_prompts(model, tokenizer, prompts),
                   train_seconds=time.time() - started)
    tqdm.write(f"gpt2-kjv {variant}: {len(metrics['looping_prompts'])} of {len(prompts)} "
               "greedy continuations of validation prompts loop")
    tqdm.write(f"gpt2-kjv {variant} greedy: {PROMPT + metrics['sample']['greedy']!r}")
    save_run(args.runs_dir / "gpt2-kjv" / variant, model, metrics)
    return metrics


def finetune_gpt(model, recipe: training.GPTRecipe, train_stream: torch.Tensor,
                 val_stream: torch.Tensor, generator: torch.Generator, log: RunLog,
                 args, variant: str) -> None:
    """Sequence-level unlikelihood fine-tuning (recipe.finetune_*): even steps are
    likelihood steps on training windows, odd steps unlikelihood steps on the greedy
    continuations of other windows' first ul_prefix tokens. Records metrics["finetune"]
    (summary) and metrics["finetune_steps"] (every LOG_EVERY steps)."""
    optimizer, scheduler = training.finetune_optimizer(model, recipe)
    windows = training.training_windows(train_stream, recipe.context, generator)
    batches = len(windows) // recipe.batch_size
    log.metrics["finetune_steps"] = []
    name = f"gpt2-kjv {variant} unlikelihood fine-tune"
    log.start_phase(recipe.finetune_steps, name)
    started, repeated = time.time(), []
    for step in range(recipe.finetune_steps):
        at = (step % batches) * recipe.batch_size
        batch = windows[at:at + recipe.batch_size]
        if step % 2 == 0:
            loss = training.lm_step(model, optimizer, batch, recipe.grad_clip)
            log.step(loss, scheduler.get_last_lr()[0], "finetune_steps")
        else:
            loss, fraction = training.unlikelihood_step(model, optimizer,
                                                        batch[:, :recipe.ul_prefix], recipe)
            repeated.append(fraction)
            log.step(loss, scheduler.get_last_lr()[0], "finetune_steps", repeated=fraction)
        scheduler.step()
    val_loss, _ = training.evaluate_lm(model, val_stream, recipe.context, args.limit_eval)
    window = max(1, len(repeated) // 10)
    record = log.metrics["finetune"] = {
        "steps": recipe.finetune_steps, "val_loss": val_loss, "val_perplexity": math.exp(val_loss),
        "seconds": time.time() - started, "repeated_first": sum(repeated[:window]) / window,
        "repeated_last": sum(repeated[-window:]) / window}
    log.end_phase(f"{name}: repeated n-gram tokens in greedy continuations "
                      f"{record['repeated_first']:.1%} -> {record['repeated_last']:.1%} | "
                      f"val perplexity {record['val_perplexity']:.2f} | "
                      f"{record['seconds']:.0f} s")


@lru_cache(maxsize=None)
def loop_prompts() -> List[str]:
    """PROMPT, then the distinct first LOOP_PROMPT_WORDS words of the first
    LOOP_PROMPT_CHAPTERS validation chapters: the prompts of the loop count."""
    _, val_docs = data.kjv_split()
    prompts = [PROMPT]
    for chapter in val_docs[:LOOP_PROMPT_CHAPTERS]:
        opening = " ".join(chapter.split()[:LOOP_PROMPT_WORDS])
        if opening not in prompts:
            prompts.append(opening)
    return prompts


def greedy_sample(model, tokenizer: bpe.Tokenizer) -> dict:
    return {"prompt": PROMPT, "greedy": repetition.continuation(model, tokenizer, PROMPT)}


def last_perplexity(metrics: dict) -> float:
    """Validation perplexity of the final model: after fine-tuning if there was one."""
    finetune = metrics.get("finetune")
    return finetune["val_perplexity"] if finetune else metrics["epochs"][-1]["val_perplexity"]


TRAINERS = {"resnet20-fashion": train_resnet, "gpt2-kjv": train_gpt}


def main(argv=None) -> None:
    args = parse_args(argv)
    training.keep_freed_memory()
    torch.set_num_threads(args.threads)
    models = MODELS if args.model == "all" else (args.model,)
    variants = STANDARD_VARIANTS if args.variant == "all" else [args.variant]
    for variant in variants:
        activation_params(variant)  # fail early on a bad slug
    started = time.time()
    for model in models:
        for variant in variants:
            metrics = TRAINERS[model](args, variant)
            quality = metrics.get("test_accuracy", metrics.get("val_perplexity"))
            tqdm.write(f"done {model} {variant}: {quality:.4f} in {metrics['train_seconds']:.0f} s "
                       f"(total {time.time() - started:.0f} s)")


if __name__ == "__main__":
    main()
