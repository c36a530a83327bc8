"""Plain-torch reference of the GEM family, for tests only (slow: several kernels)."""
import torch


def gem_reference(x: torch.Tensor, n: int, eps: float, neg_slope: float) -> torch.Tensor:
    """f(x) of shared/ACTIVATIONS.md, computed in float64 and cast back."""
    x64 = x.double()
    t = x64.pow(2 * n)
    gate = 1.0 / (1.0 + eps / t)
    slope = torch.where(x64 >= 0, torch.ones_like(x64), torch.full_like(x64, neg_slope))
    y = torch.where((x64 < 0) & (neg_slope == 0), torch.zeros_like(x64), slope * x64 * gate)
    return y.to(x.dtype)


def gem_grad_reference(x: torch.Tensor, n: int, eps: float, neg_slope: float) -> torch.Tensor:
    """f'(x) of shared/ACTIVATIONS.md, computed in float64 and cast back."""
    x64 = x.double()
    t = x64.pow(2 * n)
    gate = 1.0 / (1.0 + eps / t)
    slope = torch.where(x64 > 0, torch.ones_like(x64), torch.full_like(x64, neg_slope))
    dy = slope * gate * (1 + 2 * n * (1 - gate))
    return torch.where(x64 == 0, torch.zeros_like(x64), dy).to(x.dtype)
