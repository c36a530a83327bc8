"""examples/: scripts/make_examples.py regenerates every file byte for byte, each image is
a 28x28 grey PNG or JPEG, examples/README.md lists each with its test-set index and
label, and the demo model (resnet20-fashion/gem-n1, through `gem-client classify`
against a real gem-server) classifies each as its true label."""

import importlib.util
import re
import subprocess
import sys

import pytest

import gemserve_testing as gt

EXAMPLES = gt.REPO / "examples"
SCRIPT = gt.REPO / "scripts" / "make_examples.py"


def make_examples():
    spec = importlib.util.spec_from_file_location("make_examples", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


ME = make_examples()
IMAGES = [(name, index, label) for name, index, label in ME.IMAGES]


def test_the_script_regenerates_every_file_byte_for_byte(tmp_path):
    if not gt.fashion_mnist_installed():
        pytest.skip(f"Fashion-MNIST test set not installed at {gt.FASHION_MNIST}")
    result = subprocess.run([sys.executable, str(SCRIPT), "--out", str(tmp_path)],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == sorted([name for name, _, _ in IMAGES] + ["prompts.txt"])
    for name in written:
        # JPEG too: PIL's encoder (libjpeg-turbo) is deterministic for fixed settings.
        assert (tmp_path / name).read_bytes() == (EXAMPLES / name).read_bytes(), (
            f"examples/{name} differs from what scripts/make_examples.py writes")
        assert str(tmp_path / name) in result.stdout


def test_examples_holds_exactly_the_generated_files_and_the_readme():
    present = sorted(p.name for p in EXAMPLES.iterdir())
    assert present == sorted([name for name, _, _ in IMAGES] + ["prompts.txt", "README.md"])


def test_the_pixels_are_the_test_set_images():
    from PIL import Image
    for name, index, label in IMAGES:
        (pixels, true_label), = gt.fashion_mnist_test(1, start=index)
        assert true_label == label, name
        with Image.open(EXAMPLES / name) as image:
            assert image.format == ("PNG" if name.endswith(".png") else "JPEG"), name
            assert (image.mode, image.size) == ("L", (28, 28)), name
            decoded = image.tobytes()
        if name.endswith(".png"):
            assert decoded == pixels, name
        else:  # lossy: close, not equal
            error = max(abs(a - b) for a, b in zip(decoded, pixels))
            assert error < 64, f"{name}: largest pixel error {error}"


def test_the_readme_lists_each_image_with_its_index_and_label():
    readme = (EXAMPLES / "README.md").read_text()
    for name, index, label in IMAGES:
        row = re.search(r"^\|\s*`" + re.escape(name) + r"`\s*\|(.*)$", readme, re.M)
        assert row, f"examples/README.md has no table row for {name}"
        cells = [c.strip() for c in row.group(1).split("|")]
        assert cells[0] == str(index) and cells[1] == ME.LABELS[label], (name, cells)
    assert "prompts.txt" in readme


def test_the_script_labels_are_the_models_labels():
    labels = (gt.REPO / "models" / "repository" / "resnet20-fashion" / "labels.txt").read_text()
    assert labels.splitlines() == ME.LABELS


def test_prompts_are_short_lines():
    prompts = (EXAMPLES / "prompts.txt").read_text().splitlines()
    assert len(prompts) >= 3
    assert all(p and p == p.strip() and len(p.split()) <= 8 for p in prompts)


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    work = tmp_path_factory.mktemp("examples")
    config = work / "gemserve.yaml"
    config.write_text("models:\n  resnet20-fashion: {default_variant: gem-n1}\n")
    repository = gt.demo_subset(work, ["resnet20-fashion/labels.txt", "resnet20-fashion/gem-n1"])
    process = gt.Server(config, work / "gem-server.log", model_repository=repository)
    yield process
    process.stop()


@pytest.mark.parametrize("name,index,label", IMAGES, ids=[name for name, _, _ in IMAGES])
def test_the_demo_model_classifies_each_image_as_its_label(server, name, index, label):
    result = server.client("classify", "--model", "resnet20-fashion", "--variant", "gem-n1",
                           "--top-k", "1", EXAMPLES / name)
    assert result.returncode == 0, result.stderr
    header, top = result.stdout.splitlines()[:2]
    assert header.startswith("resnet20-fashion/gem-n1 ")
    match = re.match(r"\s*([0-9.]+)\s+(\d+)\s+(.+)$", top)
    assert match, result.stdout
    assert (int(match.group(2)), match.group(3)) == (label, ME.LABELS[label]), (
        f"{name} (test image {index}) classified as {match.group(3)}")
