"""TorchScript as gem-server serves it.

Classify models are frozen: torch.jit.freeze folds each BatchNorm into the convolution
before it and turns weights into constants. Measured on the committed resnet20-fashion
(batch 16, 1 thread): 12 % more images/s, logits within 6e-6 of the unfrozen model, the
gem::gem calls kept. GPT-2 models stay unfrozen: they have no BatchNorm and a frozen
decode step measured the same (1.99 ms vs 1.99 ms at batch 8). optimize_for_inference
was no faster than freezing (it wraps every gem::gem in MKL-DNN layout conversions).
"""
import io
from pathlib import Path

import torch

# Methods besides forward that a frozen classify model keeps (frozen the same way).
PRESERVED_METHODS = ("activation_statistics",)

# The saved file must reproduce the model it was made from within this (the repository
# test, tests/engine/repository_test.cc, checks reference outputs at the same tolerance).
TOLERANCE = 1e-5


def reloaded(scripted: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """`scripted` saved and loaded again: the module as a model.pt file holds it."""
    buffer = io.BytesIO()
    torch.jit.save(scripted, buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


def freeze_classifier(scripted: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    """torch.jit.freeze, keeping (and freezing) the PRESERVED_METHODS the module has.

    Freeze a reloaded module (`reloaded`): the committed files were frozen from loaded
    ones (freeze.py), and the printed program (variable names, some folding) of a frozen
    freshly scripted module differs from theirs; frozen from a reloaded one it is the same
    text, so re-exporting keeps `forward` byte-for-byte (tests/python/test_activation_statistics.py).
    """
    preserved = [name for name in PRESERVED_METHODS if scripted._c._has_method(name)]
    return torch.jit.freeze(scripted.eval(), preserved_attrs=preserved)


def is_frozen(scripted: torch.jit.ScriptModule) -> bool:
    """A frozen module keeps no parameters or buffers: they became constants."""
    return not any(True for _ in scripted.parameters()) and not any(True for _ in scripted.buffers())


def save_checked(module: torch.jit.ScriptModule, path: Path, original, example: torch.Tensor) -> None:
    """Saves `module` to `path` after checking that the saved file reproduces `original`."""
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.jit.save(module, str(path))
    with torch.no_grad():
        expected = original(example)
        actual = torch.jit.load(str(path))(example)
    if not torch.allclose(expected, actual, rtol=0.0, atol=TOLERANCE):
        raise RuntimeError(f"{path}: the saved TorchScript model differs from the one it was made from")
