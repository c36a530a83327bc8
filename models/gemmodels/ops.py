"""Loads the fused GEM operator library so that `torch.ops.gem.gem` exists.

The library is built by CMake (`make test` or `cmake --build build --target gem_ops`).
Its path is taken from the environment variable GEMSERVE_OPS_LIB when set, otherwise
from `build/server/ops/libgem_ops.so` under the repository root.
"""
import os
from pathlib import Path

import torch

REPO_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_LIBRARY = REPO_ROOT / "build" / "server" / "ops" / "libgem_ops.so"


def library_path() -> Path:
    return Path(os.environ.get("GEMSERVE_OPS_LIB", DEFAULT_LIBRARY))


def load() -> None:
    """Registers gem::gem with torch; raises FileNotFoundError if it is not built."""
    if hasattr(torch.ops.gem, "gem"):
        return
    path = library_path()
    if not path.exists():
        raise FileNotFoundError(
            f"GEM operator library not found at {path}: build it with "
            "`cmake --build build --target gem_ops` or set GEMSERVE_OPS_LIB")
    torch.ops.load_library(str(path))
