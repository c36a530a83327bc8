"""GPT-2 (Radford et al. 2019) with the MLP activation chosen by slug.

Architecture, as in OpenAI's GPT-2: token + learned position embeddings; `n_layer`
pre-LayerNorm blocks `x = x + attn(ln_1(x)); x = x + mlp(ln_2(x))` with causal
multi-head self-attention and an MLP of width 4 * n_embd (the activation goes where
GPT-2 has GELU); a final LayerNorm; output logits through the tied token embedding.
LayerNorm eps 1e-5, weights N(0, 0.02), residual projections N(0, 0.02 / sqrt(2 n_layer)).
No dropout (the demo models train for a few epochs only).

TorchScript interface (what the C++ server calls)
-------------------------------------------------
    forward(tokens: int64 [B, T]) -> logits float [B, T, V]
        The full causal forward, T <= max_positions.
    new_cache(batch_size: int) -> kv float [L, 2, B, H, P, D]   (zeros)
    prefill(tokens: int64 [B, T]) -> (logits [B, T, V], kv [L, 2, B, H, P, D])
        The forward of a prompt; kv holds the keys and values of positions 0..T-1.
    decode(tokens: int64 [B, 1], positions: int64 [B], kv) -> (logits [B, 1, V], kv)
        One step: row b's token sits at position positions[b]; its key and value are
        written into kv at that position and it attends to positions 0..positions[b].
    activation_statistics(tokens: int64 [B, T]) -> (logits [B, T, V], stats)
        `forward` through a second code path (the blocks' submodules called in the same
        order) that also records, per MLP activation ("h.0.mlp.act" ... ), the statistics of
        gemmodels/telemetry.py over the batch (docs/TELEMETRY.md).
    Attributes: max_positions, vocab_size, n_layer, n_head, head_dim (ints).

KV cache layout: one tensor `kv[layer, 0 = key | 1 = value, row, head, position, dim]`
of shape [n_layer, 2, B, n_head, max_positions, n_embd / n_head], float32, contiguous,
preallocated for max_positions. A row is one sequence (one server slot). Rows are
independent and may be at different lengths: decode masks, per row, every key beyond
that row's position, so stale or zero entries there are never read. Consequences:
- Batching prompts of different lengths: prefill them right-padded to a common T (any
  pad id); each row's logits at its last real position (length - 1) are exact, and its
  first decode step uses position = length, overwriting the padding's keys.
  Alternatively prefill each prompt alone (B = 1) and copy its kv[:, :, 0] into a slot
  row of a batch cache, e.g. `batch_kv.select(2, slot).copy_(kv.select(2, 0))`. A row
  attends to all of positions 0..positions[b], so a reused slot must first receive its
  new sequence's prefill keys.
- decode updates kv in place and returns the same tensor. Rows not in use can be given
  any position (their outputs are ignored); to skip their compute, keep a cache that
  holds only the active rows (`index_select` on dim 2 makes such a copy).
- A decode step computes the projections and MLP for one token per row and attends
  over max(positions) + 1 keys: the prefix is never recomputed, so a token at
  position 200 costs about what a token at position 10 costs.
- Positions must stay below max_positions; prefill and decode raise otherwise.
"""
import math
from dataclasses import asdict, dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from gemmodels.activations import make_activation
from gemmodels.telemetry import Statistics, input_statistics, site_statistics


@dataclass(frozen=True)
class GPTConfig:
    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int
    vocab_size: int


PRESETS = {
    "gpt2-124m": GPTConfig(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257),
    # ~1.2 M parameters: sized so that six variants fit the 40 MB demo repository
    # in float32 and train in the `make models` budget on two cores.
    "gpt2-kjv-small": GPTConfig(n_layer=4, n_embd=128, n_head=4, n_positions=256, vocab_size=3072),
}


def attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor,
              allowed: torch.Tensor) -> torch.Tensor:
    """Softmax(q k^T / sqrt(D)) v over the keys where `allowed` (broadcast bool) is True."""
    scores = torch.matmul(q, k.transpose(-2, -1)) * (1.0 / math.sqrt(q.size(-1)))
    scores = scores.masked_fill(torch.logical_not(allowed), float("-inf"))
    return torch.matmul(torch.softmax(scores, dim=-1), v)


class CausalSelfAttention(nn.Module):
    def __init__(self, n_embd: int, n_head: int):
        super().__init__()
        self.c_attn = nn.Linear(n_embd, 3 * n_embd)
        self.c_proj = nn.Linear(n_embd, n_embd)
        self.n_head = n_head
        self.head_dim = n_embd // n_head

    def _heads(self, x: torch.Tensor) -> torch.Tensor:
        """[B, T, C] -> [B, H, T, D]."""
        return x.view(x.size(0), x.size(1), self.n_head, self.head_dim).transpose(1, 2)

    def _project(self, y: torch.Tensor) -> torch.Tensor:
        """[B, H, T, D] -> [B, T, C] through the output projection."""
        y = y.transpose(1, 2).contiguous()
        return self.c_proj(y.view(y.size(0), y.size(1), -1))

    def qkv(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        q, k, v = self.c_attn(x).split(x.size(-1), dim=2)
        return self._heads(q), self._heads(k), self._heads(v)

    def forward(self, x: torch.Tensor,
                allowed: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Attention over the sequence itself; also returns its keys and values."""
        q, k, v = self.qkv(x)
        return self._project(attention(q, k, v, allowed)), k, v

    def decode(self, x: torch.Tensor, cache: torch.Tensor, positions: torch.Tensor,
               allowed: torch.Tensor) -> torch.Tensor:
        """One token per row: store its key/value in `cache` [2, B, H, P, D], attend."""
        q, k, v = self.qkv(x)
        index = positions.view(-1, 1, 1, 1).expand(k.size(0), k.size(1), 1, k.size(3))
        cache[0].scatter_(2, index, k)
        cache[1].scatter_(2, index, v)
        length = allowed.size(-1)
        keys = cache[0, :, :, :length]
        values = cache[1, :, :, :length]
        return self._project(attention(q, keys, values, allowed))


class MLP(nn.Module):
    def __init__(self, n_embd: int, activation: str):
        super().__init__()
        self.c_fc = nn.Linear(n_embd, 4 * n_embd)
        self.act = make_activation(activation)
        self.c_proj = nn.Linear(4 * n_embd, n_embd)
        self.site = "mlp.act"  # "h.<i>.mlp.act", set by GPT2: the activation's site name

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.c_proj(self.act(self.c_fc(x)))


class Block(nn.Module):
    def __init__(self, n_embd: int, n_head: int, activation: str):
        super().__init__()
        self.ln_1 = nn.LayerNorm(n_embd, eps=1e-5)
        self.attn = CausalSelfAttention(n_embd, n_head)
        self.ln_2 = nn.LayerNorm(n_embd, eps=1e-5)
        self.mlp = MLP(n_embd, activation)

    def forward(self, x: torch.Tensor,
                allowed: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        a, k, v = self.attn(self.ln_1(x), allowed)
        x = x + a
        return x + self.mlp(self.ln_2(x)), k, v

    def decode(self, x: torch.Tensor, cache: torch.Tensor, positions: torch.Tensor,
               allowed: torch.Tensor) -> torch.Tensor:
        x = x + self.attn.decode(self.ln_1(x), cache, positions, allowed)
        return x + self.mlp(self.ln_2(x))


class GPT2(nn.Module):
    """GPT-2 language model; see the module docstring for the TorchScript interface."""

    def __init__(self, config: GPTConfig, activation: str):
        super().__init__()
        if config.n_embd % config.n_head:
            raise ValueError("n_embd must be a multiple of n_head")
        self.wte = nn.Embedding(config.vocab_size, config.n_embd)
        self.wpe = nn.Embedding(config.n_positions, config.n_embd)
        self.h = nn.ModuleList([Block(config.n_embd, config.n_head, activation)
                                for _ in range(config.n_layer)])
        for i, block in enumerate(self.h):
            block.mlp.site = f"h.{i}.mlp.act"
        self.ln_f = nn.LayerNorm(config.n_embd, eps=1e-5)
        self.n_layer = config.n_layer
        self.n_head = config.n_head
        self.head_dim = config.n_embd // config.n_head
        self.max_positions = config.n_positions
        self.vocab_size = config.vocab_size
        self._init_weights()

    def _init_weights(self) -> None:
        for name, param in self.named_parameters():
            if name.endswith("bias"):
                nn.init.zeros_(param)
            elif ".ln_" in name or name.startswith("ln_f"):
                nn.init.ones_(param)
            elif name.endswith("c_proj.weight"):
                nn.init.normal_(param, std=0.02 / math.sqrt(2 * self.n_layer))
            else:
                nn.init.normal_(param, std=0.02)

    def _check_length(self, last_position: int) -> None:
        if last_position >= self.max_positions:
            raise RuntimeError("position " + str(last_position) + " is beyond the model's "
                               + str(self.max_positions) + " positions")

    def _logits(self, x: torch.Tensor) -> torch.Tensor:
        return F.linear(self.ln_f(x), self.wte.weight)

    def _run(self, tokens: torch.Tensor, cache: Optional[torch.Tensor]) -> torch.Tensor:
        """Full causal forward of [B, T] tokens, filling cache[:, :, :, :, :T] if given."""
        if tokens.dim() != 2:
            raise RuntimeError("tokens must be int64 [batch, length]")
        length = tokens.size(1)
        self._check_length(length - 1)
        positions = torch.arange(length, device=tokens.device)
        x = self.wte(tokens) + self.wpe(positions)
        allowed = torch.ones(length, length, dtype=torch.bool, device=tokens.device).tril()
        for i, block in enumerate(self.h):
            x, k, v = block(x, allowed)
            if cache is not None:
                cache[i, 0, :, :, :length] = k
                cache[i, 1, :, :, :length] = v
        return self._logits(x)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """tokens int64 [B, T] -> logits [B, T, V]."""
        return self._run(tokens, None)

    @torch.jit.export
    def new_cache(self, batch_size: int) -> torch.Tensor:
        """A zero KV cache [n_layer, 2, batch_size, n_head, max_positions, head_dim]."""
        weight = self.wte.weight
        return torch.zeros([self.n_layer, 2, batch_size, self.n_head, self.max_positions,
                            self.head_dim], dtype=weight.dtype, device=weight.device)

    @torch.jit.export
    def prefill(self, tokens: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, T] -> (logits [B, T, V], a new KV cache holding positions 0..T-1)."""
        cache = self.new_cache(tokens.size(0))
        return self._run(tokens, cache), cache

    @torch.jit.export
    def decode(self, tokens: torch.Tensor, positions: torch.Tensor,
               cache: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor]:
        """tokens [B, 1] at positions [B] -> (logits [B, 1, V], cache updated in place)."""
        batch = tokens.size(0)
        if tokens.dim() != 2 or tokens.size(1) != 1:
            raise RuntimeError("decode takes one token per row: tokens must be [batch, 1]")
        if positions.dim() != 1 or positions.size(0) != batch or cache.size(2) != batch:
            raise RuntimeError("positions must be [batch] and the cache must have batch rows")
        length = int(positions.max()) + 1
        self._check_length(length - 1)
        keys = torch.arange(length, device=tokens.device).view(1, 1, 1, length)
        allowed = keys <= positions.view(-1, 1, 1, 1)
        x = self.wte(tokens) + self.wpe(positions).unsqueeze(1)
        for i, block in enumerate(self.h):
            x = block.decode(x, cache[i], positions, allowed)
        return self._logits(x), cache

    @torch.jit.export
    def activation_statistics(self, token_ids: torch.Tensor) -> Tuple[torch.Tensor, Statistics]:
        """tokens [B, T] -> (logits [B, T, V] as `forward`, the statistics of every MLP
        activation over all rows and positions, in layer order; docs/TELEMETRY.md).

        The blocks' computation is spelled out here, through the same submodules, rather
        than in new Block / MLP methods, and with variable names no other method uses:
        TorchScript prints all methods of a class with one name table, so a new method
        there would rename variables in the printed forward / decode of the blocks
        (tests/python/test_activation_statistics.py checks they are unchanged)."""
        if token_ids.dim() != 2:
            raise RuntimeError("tokens must be int64 [batch, length]")
        n_tokens = token_ids.size(1)
        self._check_length(n_tokens - 1)
        token_positions = torch.arange(n_tokens, device=token_ids.device)
        hidden = self.wte(token_ids) + self.wpe(token_positions)
        causal = torch.ones(n_tokens, n_tokens, dtype=torch.bool, device=token_ids.device).tril()
        record: Statistics = {}
        for layer in self.h:
            hidden = hidden + layer.attn(layer.ln_1(hidden), causal)[0]
            pre_act = layer.mlp.c_fc(layer.ln_2(hidden))
            site_input = input_statistics(pre_act)
            post_act = layer.mlp.act(pre_act)
            record[layer.mlp.site] = site_statistics(site_input, post_act, -1)
            hidden = hidden + layer.mlp.c_proj(post_act)
        return self._logits(hidden), record


def gpt2(preset: str, activation: str) -> GPT2:
    """A preset ("gpt2-124m" or "gpt2-kjv-small") with the MLP activation `activation`."""
    if preset not in PRESETS:
        raise ValueError(f"unknown GPT-2 preset {preset!r}; choose one of {sorted(PRESETS)}")
    return GPT2(PRESETS[preset], activation)


def architecture(preset: str, config: GPTConfig) -> dict:
    """The hyperparameters that model.json records for a GPT-2."""
    return {"name": preset, "family": "gpt2", **asdict(config), "mlp_ratio": 4,
            "tied_embeddings": True, "layer_norm": "pre", "layer_norm_eps": 1e-5}


@torch.no_grad()
def greedy_generate(model, prompt: List[int], max_new_tokens: int,
                    eos_id: Optional[int] = None) -> List[int]:
    """Greedy continuation of `prompt` with prefill + decode (works on scripted models)."""
    tokens = torch.tensor([prompt], dtype=torch.long)
    logits, cache = model.prefill(tokens)
    generated: List[int] = []
    position = len(prompt)
    while len(generated) < max_new_tokens and position < model.max_positions:
        token = int(logits[0, -1].argmax())
        if token == eos_id:
            break
        generated.append(token)
        logits, cache = model.decode(torch.tensor([[token]]), torch.tensor([position]), cache)
        position += 1
    return generated
