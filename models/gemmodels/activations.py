"""Activation modules selected by variant slug (see shared/ACTIVATIONS.md).

Slugs: `relu`, `gelu`, and the GEM family `gem-n{N}`, `egem-n{N}-e{EPS}`,
`segem-n{N}-e{EPS}[-a{SLOPE}]` (SE-GEM's negative slope defaults to 0.01).
GEM-family modules call the fused operator `torch.ops.gem.gem` and are scriptable.
"""
import re

import torch
from torch import nn

from gemmodels import ops

STANDARD_VARIANTS = ["relu", "gelu", "gem-n1", "gem-n2", "egem-n1-e1e-4", "segem-n1-e1e-4"]

SEGEM_DEFAULT_SLOPE = 0.01

_GEM_SLUG = re.compile(
    r"^(?P<kind>gem|egem|segem)-n(?P<n>[1-9][0-9]*)"
    r"(?:-e(?P<eps>[0-9.]+(?:e-?[0-9]+)?))?"
    r"(?:-a(?P<slope>[0-9.]+(?:e-?[0-9]+)?))?$")


def activation_params(slug: str) -> dict:
    """Returns {kind, n, eps, neg_slope} for a slug; raises ValueError for a bad one."""
    if slug in ("relu", "gelu"):
        return {"kind": slug, "n": 0, "eps": 0.0, "neg_slope": 0.0}
    match = _GEM_SLUG.match(slug)
    if match is None:
        raise ValueError(f"unknown activation slug {slug!r}: expected relu, gelu, "
                         "gem-n<N>, egem-n<N>-e<EPS> or segem-n<N>-e<EPS>[-a<SLOPE>]")
    kind = match["kind"]
    if kind == "gem" and (match["eps"] or match["slope"]):
        raise ValueError(f"{slug!r}: plain GEM has eps = 1 and no negative slope")
    if kind == "egem" and match["slope"]:
        raise ValueError(f"{slug!r}: E-GEM has no negative slope; use segem")
    if kind != "gem" and not match["eps"]:
        raise ValueError(f"{slug!r}: {kind} needs an eps, e.g. {kind}-n1-e1e-4")
    eps = float(match["eps"]) if match["eps"] else 1.0
    if kind == "segem":
        slope = float(match["slope"]) if match["slope"] else SEGEM_DEFAULT_SLOPE
    else:
        slope = 0.0
    if eps <= 0:
        raise ValueError(f"{slug!r}: eps must be > 0")
    return {"kind": kind, "n": int(match["n"]), "eps": eps, "neg_slope": slope}


class GEM(nn.Module):
    """f(x) = x * g(x) for x >= 0 and neg_slope * x * g(x) below, g = x^2n / (eps + x^2n).

    `inplace=True` overwrites the input when no gradient is needed (inference);
    under autograd it falls back to the out-of-place op.
    """

    def __init__(self, n: int = 1, eps: float = 1.0, neg_slope: float = 0.0,
                 inplace: bool = False):
        super().__init__()
        ops.load()
        self.n = n
        self.eps = eps
        self.neg_slope = neg_slope
        self.inplace = inplace

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.inplace and not (torch.is_grad_enabled() and x.requires_grad):
            return torch.ops.gem.gem_(x, self.n, self.eps, self.neg_slope)
        return torch.ops.gem.gem(x, self.n, self.eps, self.neg_slope)

    def extra_repr(self) -> str:
        return f"n={self.n}, eps={self.eps}, neg_slope={self.neg_slope}"


def make_activation(slug: str, inplace: bool = False) -> nn.Module:
    """The activation module for a variant slug."""
    params = activation_params(slug)
    if params["kind"] == "relu":
        return nn.ReLU(inplace=inplace)
    if params["kind"] == "gelu":
        return nn.GELU()
    return GEM(params["n"], params["eps"], params["neg_slope"], inplace=inplace)
