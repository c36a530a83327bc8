"""Activation statistics computed inside the models (docs/TELEMETRY.md, issue 15).

Every exported model has a TorchScript method `activation_statistics(x)` that returns
its normal output and, for each activation site in network order, a dict

    "zero_fraction": float64 0-d   fraction of the activation's output elements == 0.0
    "nonzero":       bool [units]  per unit (conv channel / MLP hidden unit): some output
                                   element of that unit was != 0.0 anywhere in the batch
    "input_mean":    float64 0-d   mean of the activation's input elements
    "input_std":     float64 0-d   population standard deviation of the input elements

The functions here are TorchScript-compiled into that method (resnet.py, gpt2.py call
them from a second code path through the blocks; `forward` and the activation modules
are untouched). `Accumulator` pools per-batch results over a data set (plain Python).
"""
from typing import Dict, List

import torch

Statistics = Dict[str, Dict[str, torch.Tensor]]


def input_statistics(inputs: torch.Tensor) -> Dict[str, torch.Tensor]:
    """Mean and population std of the activation's input, in float64.

    Taken before the activation runs, so that an in-place activation could not change it.
    """
    std, mean = torch.std_mean(inputs.detach().to(torch.float64), unbiased=False)
    return {"input_mean": mean, "input_std": std}


def site_statistics(inputs: Dict[str, torch.Tensor], outputs: torch.Tensor,
                    unit_dim: int) -> Dict[str, torch.Tensor]:
    """The contract's four tensors for one site; `unit_dim` is the channel / hidden dim."""
    zero = outputs.detach() == 0.0
    zero_fraction = zero.sum().to(torch.float64) / float(outputs.numel())
    units = outputs.size(unit_dim)
    nonzero = torch.logical_not(zero).transpose(0, unit_dim).reshape(units, -1).any(dim=1)
    return {"zero_fraction": zero_fraction, "nonzero": nonzero,
            "input_mean": inputs["input_mean"], "input_std": inputs["input_std"]}


def site_elements(site: str, units: int, x_shape: List[int]) -> int:
    """Elements at a site for a batch of input shape `x_shape`: ResNet sites are
    [B, units, H / 2^(stage - 1), W / 2^(stage - 1)] (stride-2 3x3 convolutions with
    padding 1 halve a size rounding up), GPT-2 sites [B, T, units]."""
    if site.startswith("h."):
        return x_shape[0] * x_shape[1] * units
    stage = 1 if site.startswith("stem.") else int(site.split(".")[0][len("stage"):])
    height, width = x_shape[2], x_shape[3]
    for _ in range(stage - 1):
        height, width = (height + 1) // 2, (width + 1) // 2
    return x_shape[0] * units * height * width


class Accumulator:
    """Pools the per-batch statistics of one model over many batches (Python only).

    Counts are kept exactly (zero outputs, elements, a per-unit OR of `nonzero`);
    input mean and std are pooled from each batch's mean, std and element count.
    """

    def __init__(self):
        self.sites: List[str] = []
        self._zeros: Dict[str, int] = {}
        self._elements: Dict[str, int] = {}
        self._nonzero: Dict[str, torch.Tensor] = {}
        self._sum: Dict[str, float] = {}
        self._sumsq: Dict[str, float] = {}
        self._inputs: Dict[str, int] = {}

    def add(self, stats: Statistics, elements: Dict[str, int]) -> None:
        """One batch: `stats` from activation_statistics, and each site's element count
        (input and output counts are equal: the activations are element-wise; see
        `site_elements`)."""
        if not self.sites:
            self.sites = list(stats)
        elif list(stats) != self.sites:
            raise ValueError("the sites changed between batches")
        for site, s in stats.items():
            n_out = n_in = elements[site]
            zeros = round(float(s["zero_fraction"]) * n_out)
            mean, std = float(s["input_mean"]), float(s["input_std"])
            self._zeros[site] = self._zeros.get(site, 0) + zeros
            self._elements[site] = self._elements.get(site, 0) + n_out
            previous = self._nonzero.get(site)
            self._nonzero[site] = s["nonzero"].clone() if previous is None else previous | s["nonzero"]
            self._sum[site] = self._sum.get(site, 0.0) + mean * n_in
            self._sumsq[site] = self._sumsq.get(site, 0.0) + (std * std + mean * mean) * n_in
            self._inputs[site] = self._inputs.get(site, 0) + n_in

    def summary(self) -> List[dict]:
        """Per site, in network order: name, units, zero_count, elements, zero_fraction,
        dead_units (never non-zero), nonzero mask, input_mean, input_std."""
        rows = []
        for site in self.sites:
            n = self._inputs[site]
            mean = self._sum[site] / n
            variance = max(self._sumsq[site] / n - mean * mean, 0.0)
            nonzero = self._nonzero[site]
            rows.append({"name": site, "units": int(nonzero.numel()),
                         "zero_count": self._zeros[site], "elements": self._elements[site],
                         "zero_fraction": self._zeros[site] / self._elements[site],
                         "dead_units": int((~nonzero).sum()), "nonzero": nonzero,
                         "input_mean": mean, "input_std": variance ** 0.5})
        return rows


@torch.no_grad()
def method_summary(scripted, batches: List[torch.Tensor]) -> List[dict]:
    """Runs `scripted.activation_statistics` over `batches` and pools the results
    (Accumulator.summary); also checks that its logits are bit-identical to `forward`'s."""
    accumulator = Accumulator()
    for batch in batches:
        logits, stats = scripted.activation_statistics(batch)
        if not torch.equal(logits, scripted(batch)):
            raise RuntimeError("activation_statistics' output differs from forward's")
        shape = list(batch.shape)
        accumulator.add(stats, {site: site_elements(site, s["nonzero"].numel(), shape)
                                for site, s in stats.items()})
    return accumulator.summary()


def model_json_sites(summary: List[dict]) -> List[dict]:
    """model.json's "activation_sites" entries (docs/TELEMETRY.md) from a pooled summary."""
    return [{"name": row["name"], "units": row["units"],
             "train_input_mean": row["input_mean"], "train_input_std": row["input_std"],
             "train_zero_fraction": row["zero_fraction"], "train_dead_units": row["dead_units"]}
            for row in summary]
