"""TorchScript as gem-server serves it.

Classify models are frozen: torch.jit.freeze folds each BatchNorm into the convolution
before it and turns weights into constants. Measured on the committed resnet20-fashion
(batch 16, 1 thread): 12 % more images/s, logits within 6e-6 of the unfrozen model, the
gem::gem calls kept. GPT-2 models stay unfrozen: they have no BatchNorm and a frozen
decode step measured the same (1.99 ms vs 1.99 ms at batch 8). optimize_for_inference
was no faster than freezing (it wraps every gem::gem in MKL-DNN layout conversions).
"""
from pathlib import Path

import torch

# The saved file must reproduce the model it was made from within this (the repository
# test, tests/engine/repository_test.cc, checks reference outputs at the same tolerance).
TOLERANCE = 1e-5


def freeze_classifier(scripted: torch.jit.ScriptModule) -> torch.jit.ScriptModule:
    return torch.jit.freeze(scripted.eval())


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
