"""A plain-Python reference of the activation statistics: forward hooks on the eager model.

Independent of the TorchScript method (gemmodels/telemetry.py): a forward hook on every
activation module sees the module's input and output and computes, in float64 and with
other formulas, the same figures (docs/TELEMETRY.md):

    zero_count / elements   outputs exactly 0.0 (the exported "zero_fraction")
    nonzero                 per unit: count_nonzero over every other dim > 0
    input_mean, input_std   sum / n and sqrt(sum(x^2) / n - mean^2)

`eager_from_repository` rebuilds the eager model that computes exactly what a repository
model.pt computes: GPT-2 from the file's state_dict; a frozen ResNet (its BatchNorms were
folded into the convolutions by torch.jit.freeze) from the folded weights and biases of
the file's graph, with the BatchNorms replaced by identities. The logits of both are
bit-identical to the file's forward (tests/python/test_activation_statistics.py checks).
"""
import json
from collections import OrderedDict
from pathlib import Path
from typing import Dict, List

import torch
from torch import nn

from gemmodels import gpt2, resnet


def site_names(model: nn.Module) -> "OrderedDict[str, nn.Module]":
    """Site name -> activation module, in network order (the names of docs/TELEMETRY.md)."""
    sites: "OrderedDict[str, nn.Module]" = OrderedDict()
    if isinstance(model, resnet.ResNet):
        per_stage = len(model.blocks) // len(resnet.WIDTHS)
        sites["stem.act"] = model.act
        for index, block in enumerate(model.blocks):
            prefix = f"stage{index // per_stage + 1}.block{index % per_stage}"
            sites[prefix + ".act1"] = block.act1
            sites[prefix + ".act2"] = block.act2
    elif isinstance(model, gpt2.GPT2):
        for index, block in enumerate(model.h):
            sites[f"h.{index}.mlp.act"] = block.mlp.act
    else:
        raise TypeError(f"no activation sites known for {type(model).__name__}")
    return sites


def _unit_dim(model: nn.Module) -> int:
    return 1 if isinstance(model, resnet.ResNet) else -1


@torch.no_grad()
def hook_statistics(model: nn.Module, x: torch.Tensor, extra: bool = False):
    """(output, {site: {zero_count, elements, nonzero, input_mean, input_std}}) of one
    batch through the eager `model`, recorded by forward hooks. With `extra`, also the
    counts `nonpositive_inputs` (x <= 0) and `zero_at_positive` (f(x) == 0 for x > 0),
    `zero_at_negative` (f(x) == 0 for x < 0) for models/activation_results.py."""
    unit_dim = _unit_dim(model)
    recorded: Dict[str, dict] = OrderedDict()

    def hook_for(site: str):
        def hook(module, inputs, output):
            x64 = inputs[0].double()
            n = x64.numel()
            mean = x64.sum() / n
            std = torch.sqrt(torch.clamp((x64 * x64).sum() / n - mean * mean, min=0.0))
            units = output.size(unit_dim)
            per_unit = output.movedim(unit_dim, 0).reshape(units, -1)
            recorded[site] = {
                "zero_count": int(output.numel() - torch.count_nonzero(output)),
                "elements": int(output.numel()),
                "nonzero": torch.count_nonzero(per_unit, dim=1) > 0,
                "input_mean": float(mean), "input_std": float(std)}
            if extra:
                x_in, zero = inputs[0], output == 0
                recorded[site].update({
                    "nonpositive_inputs": int((x_in <= 0).sum()),
                    "zero_at_positive": int((zero & (x_in > 0)).sum()),
                    "zero_at_negative": int((zero & (x_in < 0)).sum())})
        return hook

    handles = [module.register_forward_hook(hook_for(site))
               for site, module in site_names(model).items()]
    try:
        output = model(x)
    finally:
        for handle in handles:
            handle.remove()
    return output, recorded


class HookAccumulator:
    """Pools hook_statistics over batches: exact counts, pooled float64 mean and std."""

    def __init__(self):
        self.rows: Dict[str, dict] = OrderedDict()

    def add(self, recorded: Dict[str, dict]) -> None:
        for site, r in recorded.items():
            row = self.rows.setdefault(site, {"zero_count": 0, "elements": 0, "nonzero": None,
                                              "sum": 0.0, "sumsq": 0.0})
            n = r["elements"]
            row["zero_count"] += r["zero_count"]
            row["elements"] += n
            row["nonzero"] = r["nonzero"].clone() if row["nonzero"] is None else row["nonzero"] | r["nonzero"]
            row["sum"] += r["input_mean"] * n
            row["sumsq"] += (r["input_std"] ** 2 + r["input_mean"] ** 2) * n
            for key in ("nonpositive_inputs", "zero_at_positive", "zero_at_negative"):
                if key in r:
                    row[key] = row.get(key, 0) + r[key]

    def summary(self) -> List[dict]:
        out = []
        for site, row in self.rows.items():
            n = row["elements"]
            mean = row["sum"] / n
            out.append({"name": site, "units": int(row["nonzero"].numel()),
                        "zero_count": row["zero_count"], "elements": n,
                        "zero_fraction": row["zero_count"] / n,
                        "dead_units": int((~row["nonzero"]).sum()), "nonzero": row["nonzero"],
                        "input_mean": mean,
                        "input_std": max(row["sumsq"] / n - mean * mean, 0.0) ** 0.5,
                        **{key: row[key] for key in ("nonpositive_inputs", "zero_at_positive",
                                                     "zero_at_negative") if key in row}})
        return out


def _constant(value: torch._C.Value) -> torch.Tensor:
    node = value.node()
    if node.kind() != "prim::Constant":
        raise ValueError(f"expected a constant weight, got {node.kind()}")
    return node.t("value")


def folded_resnet(scripted: torch.jit.ScriptModule, config: dict) -> resnet.ResNet:
    """The eager ResNet of a frozen model.pt: each convolution gets the folded weight and
    bias of the file's graph (in network order), each BatchNorm becomes an identity."""
    arch = config["architecture"]
    model = resnet.resnet(arch["name"], config["variant"], arch["in_channels"], arch["num_classes"])
    convs = [model.conv] + [c for block in model.blocks for c in (block.conv1, block.conv2)]
    graph = scripted.forward.graph
    conv_nodes = graph.findAllNodes("aten::conv2d")
    linear_nodes = graph.findAllNodes("aten::linear")
    if len(conv_nodes) != len(convs) or len(linear_nodes) != 1:
        raise ValueError("the frozen graph does not have the ResNet's convolutions")
    for conv, node in zip(convs, conv_nodes):
        inputs = list(node.inputs())
        weight, bias = _constant(inputs[1]), _constant(inputs[2])
        if weight.shape != conv.weight.shape:
            raise ValueError("a frozen convolution's weight has the wrong shape")
        conv.weight = nn.Parameter(weight.clone())
        conv.bias = nn.Parameter(bias.clone())
    model.bn = nn.Identity()
    for block in model.blocks:
        block.bn1 = nn.Identity()
        block.bn2 = nn.Identity()
    inputs = list(linear_nodes[0].inputs())
    model.fc.weight = nn.Parameter(_constant(inputs[1]).clone())
    model.fc.bias = nn.Parameter(_constant(inputs[2]).clone())
    return model.eval()


def eager_from_repository(variant_dir: Path) -> nn.Module:
    """The eager model that computes what <variant_dir>/model.pt computes (see above)."""
    config = json.loads((Path(variant_dir) / "model.json").read_text())
    scripted = torch.jit.load(str(Path(variant_dir) / "model.pt"))
    arch = config["architecture"]
    if config["task"] == "classify":
        if any(True for _ in scripted.parameters()):
            model = resnet.resnet(arch["name"], config["variant"], arch["in_channels"],
                                  arch["num_classes"])
            model.load_state_dict(scripted.state_dict())
            return model.eval()
        return folded_resnet(scripted, config)
    gpt_config = gpt2.GPTConfig(**{k: arch[k] for k in gpt2.GPTConfig.__dataclass_fields__})
    model = gpt2.GPT2(gpt_config, config["variant"])
    model.load_state_dict(scripted.state_dict())
    return model.eval()


# ---------------------------------------------------------------- fixed data sets

TRAIN_IMAGES = 2000  # model.json's train_* figures: the first 2000 Fashion-MNIST training images
TRAIN_WINDOWS = 32   # ... and the first 32 256-token windows of the KJV training chapters
WINDOW = 256


def fashion_images(split: str, count: int = 0) -> torch.Tensor:
    """The first `count` (0: all) images of a Fashion-MNIST split, normalised as served."""
    from gemmodels import data
    images, _ = data.fashion_mnist(split)
    return data.normalize_images(images[:count] if count else images)


def kjv_windows(tokenizer_dir: Path, split: str, count: int = 0) -> List[torch.Tensor]:
    """Consecutive, non-overlapping 256-token windows of a KJV split's token stream (the
    chapters in canonical order, each followed by <|endoftext|>, as train.py encodes
    them): the first `count` full windows, or with count 0 every window of the split,
    the last one shorter."""
    from gemmodels import bpe, data
    tokenizer = bpe.Tokenizer.from_files(Path(tokenizer_dir) / "vocab.json",
                                         Path(tokenizer_dir) / "merges.txt")
    train_docs, val_docs = data.kjv_split()
    documents = {"train": train_docs, "validation": val_docs}[split]
    ids: List[int] = []
    for document in documents:
        ids.extend(tokenizer.encode(document))
        ids.append(tokenizer.eot_id)
        if count and len(ids) >= count * WINDOW:
            break
    stream = torch.tensor(ids, dtype=torch.long)
    windows = [stream[start:start + WINDOW] for start in range(0, len(stream), WINDOW)]
    if count:
        windows = [w for w in windows if len(w) == WINDOW][:count]
        if len(windows) < count:
            raise ValueError(f"the {split} chapters have fewer than {count} full windows")
    return windows


def token_batches(windows: List[torch.Tensor], batch_size: int) -> List[torch.Tensor]:
    """Full windows stacked `batch_size` at a time; a shorter window in a batch of its own."""
    full = [w for w in windows if len(w) == WINDOW]
    batches = [torch.stack(full[i:i + batch_size]) for i in range(0, len(full), batch_size)]
    return batches + [w.unsqueeze(0) for w in windows if len(w) != WINDOW]


TRAIN_DATA_DESCRIPTION = {
    "classify": f"fashion-mnist train, the first {TRAIN_IMAGES} images (normalised as served)",
    "generate": (f"kjv training chapters (every chapter but index % 20 == 19), the first "
                 f"{TRAIN_WINDOWS} consecutive {WINDOW}-token windows of their token stream "
                 f"from Genesis 1 ({TRAIN_WINDOWS * WINDOW} tokens)"),
}
