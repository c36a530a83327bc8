"""Recipes, optimisers, batches and evaluation shared by train.py and the tests.

Every variant of a model is trained with the same recipe; the activation is the one knob.
"""
import ctypes
import math
import random
from dataclasses import dataclass, replace
from typing import Iterator, List, Tuple

import numpy as np
import torch
import torch.nn.functional as F


@dataclass(frozen=True)
class ResNetRecipe:
    """ResNet-20 on Fashion-MNIST: SGD + Nesterov momentum with a one-cycle schedule."""
    epochs: int = 3
    batch_size: int = 128
    max_lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    warmup_fraction: float = 0.2   # one-cycle: rising part of the schedule
    horizontal_flip: bool = True   # the only augmentation


@dataclass(frozen=True)
class GPTRecipe:
    """GPT-2 on the KJV: AdamW, linear warm-up then cosine decay to min_lr_ratio * lr."""
    epochs: int = 4                # ~7 min per variant, ~1.5 min of fine-tuning: `make models`
                                   # fits its budget on 2 cores
    batch_size: int = 8            # 8 x 256 tokens: logits stay under 32 MiB (see keep_freed_memory)
    context: int = 256
    lr: float = 2e-3
    min_lr_ratio: float = 0.1
    warmup_steps: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.95
    grad_clip: float = 1.0
    vocab_size: int = 3072
    # Sequence-level unlikelihood fine-tuning (Welleck et al. 2019) after the epochs:
    # likelihood steps alternate with steps that lower the probability of every token
    # of a repeated n-gram in the model's own greedy continuations of training prefixes.
    finetune_steps: int = 400
    finetune_lr: float = 1e-4
    finetune_warmup_steps: int = 20
    ul_prefix: int = 32
    ul_continuation: int = 64
    ul_ngram: int = 4


def keep_freed_memory() -> None:
    """Makes glibc reuse freed buffers of up to 32 MiB instead of returning them to the OS.

    By default glibc serves large tensors with fresh mmap()s; every page of every new
    tensor then faults, and on the build VMs a training step spent more time in page
    faults than in arithmetic (GPT step 0.32 s -> 0.24 s with this). Buffers above
    32 MiB (glibc's cap for M_MMAP_THRESHOLD) are still mmap()ed. No-op without glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
    except OSError:
        return
    m_trim_threshold, m_mmap_threshold = -1, -3
    libc.mallopt(m_trim_threshold, 1 << 30)
    libc.mallopt(m_mmap_threshold, 32 << 20)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


# ---------------------------------------------------------------- classification

def resnet_optimizer(model, recipe: ResNetRecipe, steps_per_epoch: int):
    """(optimizer, per-step scheduler) of the ResNet recipe."""
    optimizer = torch.optim.SGD(model.parameters(), lr=recipe.max_lr, momentum=recipe.momentum,
                                nesterov=True, weight_decay=recipe.weight_decay)
    scheduler = torch.optim.lr_scheduler.OneCycleLR(
        optimizer, max_lr=recipe.max_lr, epochs=recipe.epochs, steps_per_epoch=steps_per_epoch,
        pct_start=recipe.warmup_fraction, anneal_strategy="cos")
    return optimizer, scheduler


def image_batches(images: torch.Tensor, labels: torch.Tensor, batch_size: int,
                  generator: torch.Generator, flip: bool) -> Iterator[Tuple[torch.Tensor, torch.Tensor]]:
    """Shuffled mini-batches; with `flip`, each image is mirrored with probability 1/2."""
    order = torch.randperm(len(images), generator=generator)
    for start in range(0, len(order), batch_size):
        index = order[start:start + batch_size]
        x = images[index]
        if flip:
            mirror = torch.rand(len(index), generator=generator) < 0.5
            x[mirror] = x[mirror].flip(-1)
        yield x, labels[index]


def classification_step(model, optimizer, x: torch.Tensor, y: torch.Tensor) -> Tuple[float, int]:
    """One SGD step; returns (mean loss, number of correct predictions)."""
    logits = model(x)
    loss = F.cross_entropy(logits, y)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss.item(), int((logits.argmax(1) == y).sum())


@torch.no_grad()
def evaluate_classifier(model, images: torch.Tensor, labels: torch.Tensor,
                        batch_size: int = 500) -> Tuple[float, float]:
    """(mean cross-entropy, accuracy) of `model` in eval mode."""
    model.eval()
    total_loss, correct = 0.0, 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size])
        y = labels[start:start + batch_size]
        total_loss += F.cross_entropy(logits, y, reduction="sum").item()
        correct += int((logits.argmax(1) == y).sum())
    model.train()
    return total_loss / len(images), correct / len(images)


# ---------------------------------------------------------------- language model

def token_stream(tokenizer, documents: List[str]) -> torch.Tensor:
    """All documents encoded and concatenated, each followed by <|endoftext|>."""
    ids: List[int] = []
    for document in documents:
        ids.extend(tokenizer.encode(document))
        ids.append(tokenizer.eot_id)
    return torch.tensor(ids, dtype=torch.long)


def training_windows(stream: torch.Tensor, context: int, generator: torch.Generator) -> torch.Tensor:
    """One epoch: the stream from a random offset cut into [N, context + 1] windows, shuffled."""
    offset = int(torch.randint(context, (1,), generator=generator))
    count = (len(stream) - offset - 1) // context
    starts = offset + context * torch.randperm(count, generator=generator)
    return torch.stack([stream[s:s + context + 1] for s in starts.tolist()])


def gpt_optimizer(model, recipe: GPTRecipe, total_steps: int):
    """(AdamW with decay on matrices only, warm-up + cosine scheduler)."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    no_decay = [p for p in model.parameters() if p.dim() < 2]
    optimizer = torch.optim.AdamW(
        [{"params": decay, "weight_decay": recipe.weight_decay},
         {"params": no_decay, "weight_decay": 0.0}], lr=recipe.lr, betas=(0.9, recipe.beta2))

    def factor(step: int) -> float:
        if step < recipe.warmup_steps:
            return (step + 1) / recipe.warmup_steps
        progress = min(1.0, (step - recipe.warmup_steps) / max(1, total_steps - recipe.warmup_steps))
        return recipe.min_lr_ratio + (1 - recipe.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def finetune_optimizer(model, recipe: GPTRecipe):
    """A fresh AdamW + schedule for the fine-tuning steps: finetune_lr, its own warm-up."""
    return gpt_optimizer(model, replace(recipe, lr=recipe.finetune_lr,
                                        warmup_steps=recipe.finetune_warmup_steps),
                         recipe.finetune_steps)


def lm_loss(model, windows: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy of [B, T + 1] windows."""
    logits = model(windows[:, :-1])
    return F.cross_entropy(logits.reshape(-1, logits.size(-1)), windows[:, 1:].reshape(-1))


def optimizer_step(model, optimizer, loss: torch.Tensor, grad_clip: float) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), grad_clip)
    optimizer.step()
    return loss.item()


def lm_step(model, optimizer, windows: torch.Tensor, grad_clip: float) -> float:
    return optimizer_step(model, optimizer, lm_loss(model, windows), grad_clip)


# ------------------------------------------------- sequence-level unlikelihood

@torch.no_grad()
def greedy_continuations(model, prefixes: torch.Tensor, length: int) -> torch.Tensor:
    """[B, P] prefixes -> [B, P + length]: each row continued greedily (argmax) for
    `length` tokens with prefill + decode; <|endoftext|> is not special here."""
    was_training = model.training
    model.eval()
    logits, cache = model.prefill(prefixes)
    first_position = torch.full((prefixes.size(0),), prefixes.size(1), dtype=torch.long,
                                device=prefixes.device)
    tokens = []
    for step in range(length):
        tokens.append(logits[:, -1].argmax(-1, keepdim=True))
        if step + 1 < length:
            logits, cache = model.decode(tokens[-1], first_position + step, cache)
    model.train(was_training)
    return torch.cat([prefixes] + tokens, dim=1)


def repeated_ngram_mask(sequences: torch.Tensor, start: int, n: int) -> torch.Tensor:
    """Bool [B, L]: True at positions >= `start` inside an n-gram that occurs earlier
    (starting at a smaller index, overlaps allowed) in the same row."""
    mask = torch.zeros(sequences.shape, dtype=torch.bool)
    for row, tokens in enumerate(sequences.tolist()):
        seen = set()
        for first in range(len(tokens) - n + 1):
            ngram = tuple(tokens[first:first + n])
            if ngram in seen:
                mask[row, max(first, start):first + n] = True
            seen.add(ngram)
    return mask.to(sequences.device)


def unlikelihood_loss(model, sequences: torch.Tensor, penalized: torch.Tensor,
                      scored_tokens: int) -> torch.Tensor:
    """-sum log(1 - p(x_t | x_<t)) over the `penalized` positions t >= 1 of
    `sequences`, divided by `scored_tokens`."""
    logits = model(sequences[:, :-1])
    probability = torch.softmax(logits, dim=-1).gather(-1, sequences[:, 1:].unsqueeze(-1))
    penalty = -torch.log((1 - probability.squeeze(-1)).clamp_min(1e-5))
    return (penalty * penalized[:, 1:]).sum() / scored_tokens


def unlikelihood_step(model, optimizer, prefixes: torch.Tensor,
                      recipe: GPTRecipe) -> Tuple[float, float]:
    """One step against the repeated n-grams of the model's greedy continuations of
    `prefixes`; returns (loss, fraction of continuation tokens that were penalized)."""
    sequences = greedy_continuations(model, prefixes, recipe.ul_continuation)
    penalized = repeated_ngram_mask(sequences, prefixes.size(1), recipe.ul_ngram)
    scored = prefixes.size(0) * recipe.ul_continuation
    loss = unlikelihood_loss(model, sequences, penalized, scored)
    return optimizer_step(model, optimizer, loss, recipe.grad_clip), penalized.sum().item() / scored


@torch.no_grad()
def evaluate_lm(model, stream: torch.Tensor, context: int, limit_windows: int = 0,
                batch_size: int = 8) -> Tuple[float, int]:
    """(mean cross-entropy per token, tokens scored) over `stream`.

    The stream is cut into consecutive windows of `context` predicted tokens (the last
    one shorter); every token after the first is predicted exactly once, with the
    preceding tokens of its window (0..context-1 of them) as context.
    """
    model.eval()
    windows = [stream[start:start + context + 1] for start in range(0, len(stream) - 1, context)]
    if limit_windows:
        windows = windows[:limit_windows]
    full = [w for w in windows if len(w) == context + 1]
    batches = [torch.stack(full[i:i + batch_size]) for i in range(0, len(full), batch_size)]
    batches += [w.unsqueeze(0) for w in windows if len(w) != context + 1]
    total, count = 0.0, 0
    for batch in batches:
        logits = model(batch[:, :-1])
        total += F.cross_entropy(logits.flatten(0, 1), batch[:, 1:].flatten(), reduction="sum").item()
        count += batch.size(0) * (batch.size(1) - 1)
    model.train()
    return total / count, count
