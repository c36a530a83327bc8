"""The fused GEM operator seen from Python: autograd, reference agreement, slugs, and a
TorchScript round trip into a C++ process."""
import os
import subprocess
from pathlib import Path

import pytest
import torch

from gemmodels import ops
from gemmodels.activations import GEM, STANDARD_VARIANTS, activation_params, make_activation
from gemmodels.reference import gem_grad_reference, gem_reference

ops.load()

BUILD_DIR = Path(os.environ.get("GEMSERVE_BUILD_DIR", ops.REPO_ROOT / "build"))
FAMILY = [(1, 1.0, 0.0), (2, 1.0, 0.0), (3, 1.0, 0.0), (1, 1e-4, 0.0), (2, 10.0, 0.0),
          (1, 1e-4, 0.01), (2, 1.0, 0.1)]


@pytest.mark.parametrize("n,eps,neg_slope", FAMILY)
def test_gradcheck_float64(n, eps, neg_slope):
    torch.manual_seed(n)
    scale = eps ** (1 / (2 * n))  # exercise the gate's transition region
    x = (torch.randn(64, dtype=torch.float64) * 3 * scale).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: torch.ops.gem.gem(t, n, eps, neg_slope), (x,))


@pytest.mark.parametrize("n,eps,neg_slope", FAMILY)
@pytest.mark.parametrize("dtype,rtol,atol", [(torch.float64, 1e-12, 1e-300),
                                             (torch.float32, 1e-6, 1e-30),
                                             (torch.bfloat16, 8e-3, 1e-30),
                                             (torch.float16, 1e-3, 6e-8)])
def test_op_matches_reference(n, eps, neg_slope, dtype, rtol, atol):
    torch.manual_seed(0)
    x = (torch.randn(10_000, dtype=torch.float64) * 4).to(dtype)
    y = torch.ops.gem.gem(x, n, eps, neg_slope)
    assert y.dtype == dtype
    torch.testing.assert_close(y, gem_reference(x, n, eps, neg_slope), rtol=rtol, atol=atol)
    grad = torch.ops.gem.gem_backward(torch.ones_like(x), x, n, eps, neg_slope)
    torch.testing.assert_close(grad, gem_grad_reference(x, n, eps, neg_slope),
                               rtol=rtol, atol=atol)


def test_training_step_through_the_op_lowers_the_loss():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 32), make_activation("gem-n1"),
                                torch.nn.Linear(32, 1))
    x = torch.randn(256, 8)
    target = x[:, :1] ** 2
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    losses = []
    for _ in range(50):
        loss = torch.nn.functional.mse_loss(model(x), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]


def test_inplace_module_overwrites_only_without_grad():
    module = GEM(2, 1.0, 0.1, inplace=True)
    x = torch.randn(100)
    expected = torch.ops.gem.gem(x, 2, 1.0, 0.1)
    with torch.no_grad():
        out = module(x)
    assert out.data_ptr() == x.data_ptr()
    torch.testing.assert_close(x, expected)
    leaf = torch.randn(100, requires_grad=True)
    assert module(leaf).data_ptr() != leaf.data_ptr()


@pytest.mark.parametrize("bad,message", [((0, 1.0, 0.0), "n must be >= 1"),
                                         ((1, 0.0, 0.0), "eps must be"),
                                         ((1, 1.0, -1.0), "neg_slope must be")])
def test_bad_arguments_raise(bad, message):
    with pytest.raises(RuntimeError, match=message):
        torch.ops.gem.gem(torch.randn(3), *bad)
    with pytest.raises(RuntimeError, match="floating-point"):
        torch.ops.gem.gem(torch.arange(3), 1, 1.0, 0.0)


def test_slugs():
    assert activation_params("gem-n2") == {"kind": "gem", "n": 2, "eps": 1.0, "neg_slope": 0.0}
    assert activation_params("egem-n1-e1e-4")["eps"] == 1e-4
    assert activation_params("segem-n1-e1e-4")["neg_slope"] == 0.01
    assert activation_params("segem-n2-e1-a0.1") == {"kind": "segem", "n": 2, "eps": 1.0,
                                                     "neg_slope": 0.1}
    assert activation_params("egem-n2-e10")["eps"] == 10.0
    for bad in ["gem", "gem-n0", "egem-n1", "gem-n1-e2", "swish", "segem-n1-e0"]:
        with pytest.raises(ValueError):
            activation_params(bad)
    for slug in STANDARD_VARIANTS:
        assert isinstance(make_activation(slug), torch.nn.Module)


class _Block(torch.nn.Module):
    def __init__(self, slug: str):
        super().__init__()
        self.linear = torch.nn.Linear(16, 16)
        self.act = make_activation(slug)

    def forward(self, x):
        return self.act(self.linear(x))


@pytest.mark.parametrize("slug", ["gem-n1", "gem-n2", "egem-n1-e1e-4", "segem-n1-e1e-4"])
def test_torchscript_round_trip_into_cpp(slug, tmp_path):
    runner = BUILD_DIR / "tests" / "ops" / "gem_torchscript_run"
    assert runner.exists(), f"{runner} is not built"
    torch.manual_seed(0)
    module = torch.jit.script(_Block(slug).eval())
    assert "gem::gem(" in str(module.act.graph)
    module.save(str(tmp_path / "model.pt"))
    x = torch.randn(32, 16) * 3
    torch.save(x, tmp_path / "input.pt")
    subprocess.run([str(runner), str(tmp_path / "model.pt"), str(tmp_path / "input.pt"),
                    str(tmp_path / "output.pt")], check=True, capture_output=True, text=True)
    from_cpp = torch.load(tmp_path / "output.pt")
    with torch.no_grad():
        torch.testing.assert_close(from_cpp, module(x), rtol=0, atol=0)
