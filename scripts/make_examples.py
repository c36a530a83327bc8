#!/usr/bin/python3
"""Regenerates examples/: Fashion-MNIST test images as PNG and JPEG, and prompts.txt.

    /usr/bin/python3 scripts/make_examples.py [--out DIR] [--data DIR]

Every image is one fixed test-set index, written as 28x28 8-bit grey (PIL): PNGs with
PIL's default settings, JPEGs at quality 90, baseline, no optimisation. The output is
deterministic: the same data set and the same PIL/libjpeg give the same bytes (the test
tests/python/test_examples.py checks it). Prints one line per file written.
Needs the Fashion-MNIST test set (Debian: /usr/share/datasets/fashion-mnist, idx .gz).
"""
import argparse
import gzip
import io
import struct
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path("/usr/share/datasets/fashion-mnist")
JPEG_QUALITY = 90

LABELS = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
          "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]

# (file name, test-set index, true label). The first three are the README's images.
# Each index is the first test image of its class, except where the demo model
# (resnet20-fashion/gem-n1) gets the first one wrong; examples/README.md says which.
IMAGES = [
    ("ankle-boot.png", 0, 9),
    ("pullover.png", 1, 2),
    ("trouser.png", 2, 1),
    ("shirt.png", 4, 6),
    ("coat.png", 6, 4),
    ("dress.png", 13, 3),
    ("t-shirt.png", 19, 0),
    ("sandal.jpg", 8, 5),
    ("sneaker.jpg", 9, 7),
    ("bag.jpg", 18, 8),
]

# Short openings in the King James style for gpt2-kjv, one per line.
PROMPTS = [
    "And God said",
    "In the beginning",
    "And it came to pass",
    "Blessed are the meek",
    "The LORD is my shepherd",
    "Thus saith the LORD",
]


def read_test_set(data: Path):
    """(pixels bytes of all test images, labels bytes)."""
    with gzip.open(data / "t10k-images-idx3-ubyte.gz") as f:
        magic, count, height, width = struct.unpack(">IIII", f.read(16))
        if magic != 2051 or (height, width) != (28, 28):
            sys.exit(f"{data}: not a 28x28 idx3 image file")
        pixels = f.read(count * 784)
    with gzip.open(data / "t10k-labels-idx1-ubyte.gz") as f:
        magic, label_count = struct.unpack(">II", f.read(8))
        if magic != 2049 or label_count != count:
            sys.exit(f"{data}: labels do not match the images")
        labels = f.read(label_count)
    return pixels, labels


def encode(pixels: bytes, name: str) -> bytes:
    from PIL import Image
    image = Image.frombytes("L", (28, 28), pixels)
    buffer = io.BytesIO()
    if name.endswith(".png"):
        image.save(buffer, format="PNG")
    else:
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY, optimize=False,
                   progressive=False)
    return buffer.getvalue()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", type=Path, default=REPO / "examples")
    parser.add_argument("--data", type=Path, default=DATA)
    args = parser.parse_args(argv)

    pixels, labels = read_test_set(args.data)
    args.out.mkdir(parents=True, exist_ok=True)
    for name, index, label in IMAGES:
        if labels[index] != label:
            sys.exit(f"test image {index} is labelled {labels[index]}, expected {label}")
        data = encode(pixels[index * 784:(index + 1) * 784], name)
        (args.out / name).write_bytes(data)
        print(f"{args.out / name}: test image {index}, label {label} ({LABELS[label]}), "
              f"{len(data)} bytes")
    prompts = args.out / "prompts.txt"
    prompts.write_text("".join(p + "\n" for p in PROMPTS))
    print(f"{prompts}: {len(PROMPTS)} prompts")
    return 0


if __name__ == "__main__":
    sys.exit(main())
