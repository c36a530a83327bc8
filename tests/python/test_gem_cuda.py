"""The CUDA kernels of gem::gem against the CPU kernels (run by scripts/gpu-check.sh on
a machine with a CUDA PyTorch; skipped elsewhere)."""
import json
from pathlib import Path

import pytest
import torch

from gemmodels import ops

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")

GOLDEN = Path(__file__).resolve().parents[1] / "ops" / "gem_golden.json"
FAMILY = [(1, 1.0, 0.0), (2, 1.0, 0.0), (3, 1.0, 0.0), (1, 1e-4, 0.0), (2, 10.0, 0.0),
          (1, 1e-4, 0.01), (2, 1.0, 0.1)]
DTYPES = [torch.float64, torch.float32, torch.float16, torch.bfloat16]


@pytest.fixture(scope="module", autouse=True)
def _load_ops():
    ops.load()


def _golden_cases():
    return json.loads(GOLDEN.read_text())["cases"]


def _ulps(dtype):
    return {torch.float64: 0, torch.float32: 0, torch.float16: 1, torch.bfloat16: 1}[dtype]


def _assert_matches_cpu(got_cuda, want_cpu, dtype):
    got = got_cuda.cpu().double()
    want = want_cpu.double()
    if dtype in (torch.float64, torch.float32):
        rtol = 1e-12 if dtype == torch.float64 else 1e-6
        torch.testing.assert_close(got, want, rtol=rtol, atol=1e-30, equal_nan=True)
    else:
        # Both round once from float32: at most one unit in the last place apart.
        spacing = torch.abs(torch.nextafter(want_cpu, torch.full_like(want_cpu, float("inf")))
                            .double() - want)
        diff = torch.abs(got - want)
        both_nan = torch.isnan(got) & torch.isnan(want)
        assert bool(((diff <= spacing) | (got == want) | both_nan).all())


@pytest.mark.parametrize("dtype", DTYPES)
def test_golden_points_match_cpu(dtype):
    for case in _golden_cases():
        args = (case["n"], case["eps"], case["neg_slope"])
        x = torch.tensor([p["x"] for p in case["points"]], dtype=torch.float64).to(dtype)
        _assert_matches_cpu(torch.ops.gem.gem(x.cuda(), *args), torch.ops.gem.gem(x, *args),
                            dtype)
        ones = torch.ones_like(x)
        _assert_matches_cpu(torch.ops.gem.gem_backward(ones.cuda(), x.cuda(), *args),
                            torch.ops.gem.gem_backward(ones, x, *args), dtype)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("n,eps,neg_slope", FAMILY)
def test_random_and_special_values_match_cpu(dtype, n, eps, neg_slope):
    torch.manual_seed(0)
    special = torch.tensor([0.0, float("inf"), float("-inf"), float("nan"), 1e30, -1e30,
                            65504.0, -65504.0, 1e-40])
    x = torch.cat([torch.randn(1_000_003) * 4, special]).to(dtype)
    _assert_matches_cpu(torch.ops.gem.gem(x.cuda(), n, eps, neg_slope),
                        torch.ops.gem.gem(x, n, eps, neg_slope), dtype)
    grad = torch.randn_like(x, dtype=torch.float32).to(dtype)
    _assert_matches_cpu(torch.ops.gem.gem_backward(grad.cuda(), x.cuda(), n, eps, neg_slope),
                        torch.ops.gem.gem_backward(grad, x, n, eps, neg_slope), dtype)


def test_unaligned_non_contiguous_and_inplace():
    x = torch.randn(4097, dtype=torch.float32) * 3
    offset = x[1:]  # not 16-byte aligned
    _assert_matches_cpu(torch.ops.gem.gem(offset.cuda(), 1, 1.0, 0.0),
                        torch.ops.gem.gem(offset, 1, 1.0, 0.0), torch.float32)
    matrix = torch.randn(64, 48) * 3
    _assert_matches_cpu(torch.ops.gem.gem(matrix.cuda().t(), 2, 1.0, 0.1),
                        torch.ops.gem.gem(matrix.t(), 2, 1.0, 0.1), torch.float32)
    on_gpu = matrix.cuda()
    torch.ops.gem.gem_(on_gpu, 1, 1e-4, 0.01)
    _assert_matches_cpu(on_gpu, torch.ops.gem.gem(matrix, 1, 1e-4, 0.01), torch.float32)
    empty = torch.empty(0, 3, device="cuda")
    assert torch.ops.gem.gem(empty, 1, 1.0, 0.0).shape == (0, 3)


def test_gradcheck_on_cuda():
    x = (torch.randn(64, dtype=torch.float64, device="cuda") * 2).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: torch.ops.gem.gem(t, 2, 1.0, 0.1), (x,))
