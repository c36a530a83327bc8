"""The two real data sets, read from Debian packages.

Fashion-MNIST (`dataset-fashion-mnist`): the gzip idx files in
/usr/share/datasets/fashion-mnist; 60k training and 10k test images, 28x28 grey.

King James Bible (`bible-kjv`): `bible "Gen1:1-Rev22:21"` prints the whole text as
chapter headings ("Genesis 1") followed by numbered verses wrapped at 80 columns.
A chapter becomes one document: its verses without their numbers, one verse per line.
Split: chapters are numbered 0..1188 in canonical order and every 20th one (index
19, 39, ..., i.e. index % 20 == 19; 59 chapters, about 5 % of the text) is held out
for validation; the other 1130 chapters are the training set.
"""
import gzip
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import List, Tuple

import numpy as np
import torch

FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
FASHION_LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                  "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]
# Per-pixel mean and standard deviation of the 60k training images scaled to [0, 1].
FASHION_MEAN = 0.2860
FASHION_STD = 0.3530

KJV_RANGE = "Gen1:1-Rev22:21"
KJV_CHAPTERS = 1189
VALIDATION_EVERY = 20

_IDX_DTYPES = {0x08: np.uint8}


def read_idx(path) -> np.ndarray:
    """Reads a (gzip) idx file: magic 0 0 dtype ndim, big-endian int32 dims, then data."""
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "rb") as f:
        raw = f.read()
    zero, dtype_code, ndim = raw[0:2], raw[2], raw[3]
    if zero != b"\0\0" or dtype_code not in _IDX_DTYPES:
        raise ValueError(f"{path}: not an unsigned-byte idx file")
    dims = np.frombuffer(raw, dtype=">i4", count=ndim, offset=4)
    data = np.frombuffer(raw, dtype=_IDX_DTYPES[dtype_code], offset=4 + 4 * ndim)
    return data.reshape(tuple(int(d) for d in dims))


def fashion_mnist(split: str, root=FASHION_MNIST_DIR) -> Tuple[torch.Tensor, torch.Tensor]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of split "train" (60k) or "test" (10k)."""
    prefix = {"train": "train", "test": "t10k"}[split]
    images = read_idx(Path(root) / f"{prefix}-images-idx3-ubyte.gz")
    labels = read_idx(Path(root) / f"{prefix}-labels-idx1-ubyte.gz")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def normalize_images(images: torch.Tensor) -> torch.Tensor:
    """uint8 [N, 28, 28] -> float32 [N, 1, 28, 28], scaled to [0, 1] then standardised."""
    return ((images.float() / 255.0 - FASHION_MEAN) / FASHION_STD).unsqueeze(1)


@dataclass
class Chapter:
    book: str
    number: int
    verses: List[str]

    def text(self) -> str:
        """The chapter as one document: one verse per line, no numbers or heading."""
        return "\n".join(self.verses)


_HEADING = re.compile(r"^(?P<book>[1-3A-Z][A-Za-z ]*) (?P<number>\d+)$")
_VERSE = re.compile(r"^\s+\d+ (?P<text>.*)$")


def parse_bible(output: str) -> List[Chapter]:
    """Parses the `bible` command's output into chapters (headings and numbers dropped).

    A heading stands alone after a blank line; a verse line is indented and numbered;
    any other line continues the verse above it (the text is wrapped at 80 columns).
    """
    chapters: List[Chapter] = []
    after_blank = True
    for line in output.splitlines():
        verse = _VERSE.match(line)
        if not line.strip():
            after_blank = True
            continue
        if after_blank and not verse and _HEADING.match(line):
            match = _HEADING.match(line)
            chapters.append(Chapter(match["book"], int(match["number"]), []))
        elif verse:
            chapters[-1].verses.append(verse["text"].strip())
        else:
            chapters[-1].verses[-1] += " " + line.strip()
        after_blank = False
    return chapters


def kjv_chapters() -> List[Chapter]:
    """All 1189 chapters of the King James Bible, read with the `bible` command."""
    output = subprocess.run(["bible", KJV_RANGE], check=True, capture_output=True,
                            text=True).stdout
    chapters = parse_bible(output)
    if len(chapters) != KJV_CHAPTERS:
        raise RuntimeError(f"expected {KJV_CHAPTERS} chapters from `bible`, got {len(chapters)}")
    return chapters


def is_validation_chapter(index: int) -> bool:
    """The documented split: every 20th chapter (index % 20 == 19) is held out."""
    return index % VALIDATION_EVERY == VALIDATION_EVERY - 1


def kjv_split() -> Tuple[List[str], List[str]]:
    """(training documents, validation documents), one document per chapter."""
    train, val = [], []
    for index, chapter in enumerate(kjv_chapters()):
        (val if is_validation_chapter(index) else train).append(chapter.text())
    return train, val
