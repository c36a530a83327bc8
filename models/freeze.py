"""Freezes the classify models of a model repository in place for serving.

    PYTHONPATH=models /usr/bin/python3 models/freeze.py [--repository models/repository]

export.py freezes every classify model it writes; this converts a repository exported
before it did, without the training runs. Each model.pt is frozen (gemmodels.serving),
checked against its reference.json and rewritten; already frozen files are left alone.
"""
import argparse
import json
from pathlib import Path

import torch

from gemmodels import ops, serving

MODELS_DIR = Path(__file__).resolve().parent


def freeze_variant(variant_dir: Path) -> str:
    path = variant_dir / "model.pt"
    scripted = torch.jit.load(str(path)).eval()
    if serving.is_frozen(scripted):
        return "already frozen"
    reference = json.loads((variant_dir / "reference.json").read_text())
    example = torch.tensor(reference["input"]["data"]).view(reference["input"]["shape"])
    frozen = serving.freeze_classifier(scripted)
    serving.save_checked(frozen, path, scripted, example)
    return "frozen"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repository", type=Path, default=MODELS_DIR / "repository")
    args = parser.parse_args()
    ops.load()
    for config in sorted(args.repository.glob("*/*/model.json")):
        if json.loads(config.read_text())["task"] != "classify":
            continue
        print(f"{config.parent.relative_to(args.repository)}: {freeze_variant(config.parent)}")


if __name__ == "__main__":
    main()
