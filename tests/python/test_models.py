"""Fast checks of the model code: shapes, TorchScript round trips, KV-cache decoding,
training steps and the data readers. Run from the repository root:

    PYTHONPATH=models /usr/bin/python3 -m pytest tests/python

GEM-family variants need the gem_ops library (`cmake --build build --target gem_ops`);
without it those cases are skipped with the reason.
"""
import io
import json
import shutil
from pathlib import Path

import pytest
import torch

from gemmodels import data, gpt2, ops, repetition, resnet, training
from gemmodels.activations import STANDARD_VARIANTS

TINY_GPT = gpt2.GPTConfig(n_layer=2, n_embd=32, n_head=4, n_positions=24, vocab_size=61)


def gem_library_missing() -> str:
    """Why the GEM operator cannot be loaded, or "" when it can."""
    try:
        ops.load()
    except (FileNotFoundError, OSError, RuntimeError) as error:
        return str(error)
    return ""


@pytest.fixture(params=STANDARD_VARIANTS)
def variant(request) -> str:
    if request.param not in ("relu", "gelu"):
        reason = gem_library_missing()
        if reason:
            pytest.skip(f"{request.param} needs the GEM operator: {reason}")
    return request.param


@pytest.fixture(autouse=True)
def deterministic():
    torch.manual_seed(0)
    torch.set_num_threads(2)


def round_trip(module: torch.nn.Module) -> torch.jit.ScriptModule:
    """Scripts, saves and reloads a module."""
    buffer = io.BytesIO()
    torch.jit.save(torch.jit.script(module), buffer)
    buffer.seek(0)
    return torch.jit.load(buffer)


# ---------------------------------------------------------------- ResNet

def test_resnet20_shapes_and_export(variant):
    model = resnet.resnet("resnet20", variant, in_channels=1, num_classes=10).eval()
    x = torch.randn(3, 1, 28, 28)
    with torch.no_grad():
        expected = model(x)
        actual = round_trip(model)(x)
    assert expected.shape == (3, 10)
    assert torch.allclose(expected, actual, rtol=0, atol=1e-6)


def test_resnet_presets_have_the_papers_depth_and_size():
    r20 = resnet.resnet("resnet20", "relu", in_channels=3, num_classes=10)
    r56 = resnet.resnet("resnet56", "relu", in_channels=3, num_classes=100)
    convs = lambda m: sum(isinstance(x, torch.nn.Conv2d) for x in m.modules())
    assert convs(r20) + 1 == 20 and convs(r56) + 1 == 56  # + the classifier
    assert sum(p.numel() for p in r20.parameters()) == 269_722  # the paper's 0.27 M
    assert r56.eval()(torch.randn(2, 3, 32, 32)).shape == (2, 100)


def test_option_a_shortcut_subsamples_and_zero_pads():
    block = resnet.BasicBlock(16, 32, stride=2, activation="relu")
    x = torch.randn(2, 16, 8, 8)
    shortcut = block.shortcut(x)
    assert shortcut.shape == (2, 32, 4, 4)
    assert torch.equal(shortcut[:, 8:24], x[:, :, ::2, ::2])
    assert not shortcut[:, :8].any() and not shortcut[:, 24:].any()


def test_resnet_rejects_bad_arguments():
    with pytest.raises(ValueError):
        resnet.resnet("resnet18", "relu")
    with pytest.raises(ValueError):
        resnet.resnet("resnet20", "relu", in_channels=2)


# ---------------------------------------------------------------- GPT-2

def test_gpt2_shapes_and_export(variant):
    model = gpt2.GPT2(TINY_GPT, variant).eval()
    tokens = torch.randint(0, TINY_GPT.vocab_size, (2, 9))
    scripted = round_trip(model)
    with torch.no_grad():
        expected = model(tokens)
        assert expected.shape == (2, 9, TINY_GPT.vocab_size)
        assert torch.allclose(expected, scripted(tokens), rtol=0, atol=1e-6)
        logits, cache = scripted.prefill(tokens)
    assert cache.shape == (2, 2, 2, 4, 24, 8)  # [layers, k/v, batch, heads, positions, dim]
    assert torch.allclose(logits, expected, rtol=0, atol=1e-6)


def test_prefill_then_decode_equals_full_forward(variant):
    """Rows of different prompt lengths share a batch: right-padded prefill, then decode."""
    model = round_trip(gpt2.GPT2(TINY_GPT, variant).eval())
    tokens = torch.randint(0, TINY_GPT.vocab_size, (3, 20))
    lengths = torch.tensor([4, 9, 1])
    padded = tokens[:, :int(lengths.max())].clone()
    for row, length in enumerate(lengths.tolist()):
        padded[row, length:] = 0
    with torch.no_grad():
        full = model(tokens)
        logits, cache = model.prefill(padded)
        rows = torch.arange(3)
        for row, length in enumerate(lengths.tolist()):
            assert torch.allclose(logits[row, :length], full[row, :length], rtol=0, atol=1e-5)
        positions = lengths.clone()
        for _ in range(10):
            step_logits, cache = model.decode(tokens[rows, positions].view(3, 1), positions, cache)
            assert torch.allclose(step_logits[:, 0], full[rows, positions], rtol=0, atol=1e-5)
            positions += 1


def test_decode_fills_the_last_position_and_refuses_beyond_it():
    model = gpt2.GPT2(TINY_GPT, "relu").eval()
    tokens = torch.randint(0, TINY_GPT.vocab_size, (1, TINY_GPT.n_positions))
    with torch.no_grad():
        full = model(tokens)
        _, cache = model.prefill(tokens[:, :-1])
        last = torch.tensor([TINY_GPT.n_positions - 1])
        logits, _ = model.decode(tokens[:, -1:], last, cache)
        assert torch.allclose(logits[0, 0], full[0, -1], rtol=0, atol=1e-5)
        with pytest.raises(RuntimeError, match="beyond"):
            model.decode(tokens[:, -1:], last + 1, cache)
        with pytest.raises(RuntimeError, match="beyond"):
            model(torch.zeros(1, TINY_GPT.n_positions + 1, dtype=torch.long))


def test_greedy_generation_uses_the_cache_like_the_full_forward():
    model = gpt2.GPT2(TINY_GPT, "gelu").eval()
    prompt = [5, 17, 3]
    generated = gpt2.greedy_generate(round_trip(model), prompt, 8)
    tokens = list(prompt)
    with torch.no_grad():
        for _ in range(8):
            tokens.append(int(model(torch.tensor([tokens]))[0, -1].argmax()))
    assert generated == tokens[len(prompt):]


def test_gpt2_124m_preset_matches_gpt2_small():
    config = gpt2.PRESETS["gpt2-124m"]
    assert (config.n_layer, config.n_embd, config.n_head, config.n_positions,
            config.vocab_size) == (12, 768, 12, 1024, 50257)
    model = gpt2.gpt2("gpt2-124m", "relu")
    assert sum(p.numel() for p in model.parameters()) == 124_439_808  # tied embeddings


# ---------------------------------------------------------------- training

def test_resnet_training_steps_lower_the_loss(variant):
    model = resnet.resnet("resnet20", variant, in_channels=1, num_classes=10)
    templates = torch.randn(10, 1, 28, 28)
    y = torch.arange(32) % 10
    x = templates[y] + 0.5 * torch.randn(32, 1, 28, 28)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    first, _ = training.classification_step(model, optimizer, x, y)
    for _ in range(7):
        last, _ = training.classification_step(model, optimizer, x, y)
    assert last < 0.7 * first


def test_gpt_training_steps_lower_the_loss(variant):
    model = gpt2.GPT2(TINY_GPT, variant)
    recipe = training.GPTRecipe(lr=1e-2, warmup_steps=1)
    optimizer, scheduler = training.gpt_optimizer(model, recipe, total_steps=20)
    windows = torch.randint(0, TINY_GPT.vocab_size, (4, 17))
    losses = []
    for _ in range(20):
        losses.append(training.lm_step(model, optimizer, windows, recipe.grad_clip))
        scheduler.step()
    assert losses[-1] < 0.8 * losses[0]


def test_repeated_ngram_mask_marks_every_token_of_a_repeat_after_start():
    sequences = torch.tensor([[1, 2, 3, 4, 9, 1, 2, 3, 4, 7],
                              [5, 5, 5, 5, 5, 6, 7, 8, 9, 1]])
    mask = training.repeated_ngram_mask(sequences, start=0, n=4)
    assert mask[0].tolist() == [False] * 5 + [True] * 4 + [False]
    assert mask[1].tolist() == [False] + [True] * 4 + [False] * 5  # overlapping repeats
    late = training.repeated_ngram_mask(sequences, start=7, n=4)
    assert late[0].tolist() == [False] * 7 + [True] * 2 + [False]
    assert not late[1].any()


def test_greedy_continuations_match_greedy_generation():
    model = gpt2.GPT2(TINY_GPT, "gelu")
    prefixes = torch.randint(0, TINY_GPT.vocab_size, (3, 5))
    sequences = training.greedy_continuations(model, prefixes, 7)
    assert sequences.shape == (3, 12)
    assert torch.equal(sequences[:, :5], prefixes)
    for row, prefix in enumerate(prefixes.tolist()):
        assert sequences[row, 5:].tolist() == gpt2.greedy_generate(model, prefix, 7)
    assert model.training  # restored


def test_unlikelihood_steps_unlearn_a_repetition(variant):
    model = gpt2.GPT2(TINY_GPT, variant)
    loop = torch.tensor([[3, 14, 15, 9, 26] * 4])
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(30):
        training.lm_step(model, optimizer, loop, grad_clip=1.0)
    penalized = training.repeated_ngram_mask(loop, start=5, n=4)
    first = training.unlikelihood_loss(model, loop, penalized, scored_tokens=15).item()
    for _ in range(30):
        last = training.optimizer_step(
            model, optimizer, training.unlikelihood_loss(model, loop, penalized, 15), 1.0)
    assert first > 1.0  # the learnt loop is likely...
    assert last < 0.2 * first  # ...and unlikely after the unlikelihood steps


def test_unlikelihood_step_reports_the_penalized_fraction():
    model = gpt2.GPT2(TINY_GPT, "relu")
    recipe = training.GPTRecipe(ul_continuation=8, ul_ngram=2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    prefixes = torch.randint(0, TINY_GPT.vocab_size, (2, 4))
    sequences = training.greedy_continuations(model, prefixes, 8)
    expected = training.repeated_ngram_mask(sequences, 4, 2).sum().item() / 16
    loss, fraction = training.unlikelihood_step(model, optimizer, prefixes, recipe)
    assert fraction == pytest.approx(expected)
    assert loss >= 0


def test_training_windows_cover_the_stream_without_overlap():
    stream = torch.arange(1000)
    windows = training.training_windows(stream, 16, torch.Generator().manual_seed(1))
    assert windows.shape[1] == 17
    assert torch.equal(windows[:, 1:], windows[:, :-1] + 1)  # contiguous slices
    starts = sorted(windows[:, 0].tolist())
    assert all(b - a == 16 for a, b in zip(starts, starts[1:]))


def test_lm_evaluation_scores_every_token_once():
    model = gpt2.GPT2(TINY_GPT, "relu")
    stream = torch.randint(0, TINY_GPT.vocab_size, (101,))
    loss, count = training.evaluate_lm(model, stream, context=16)
    assert count == 100 and 0 < loss < 10


# ---------------------------------------------------------------- data

BIBLE_SAMPLE = """
Genesis 1

  1 In the beginning God created the heaven and the earth.
  2 And the earth was without form, and void; and darkness was upon the face of
the deep.

1 Samuel 2

  1 And Hannah prayed, and said, My heart rejoiceth in the LORD, mine horn is
exalted in the LORD 2
"""


def test_bible_parser_strips_headings_and_verse_numbers():
    chapters = data.parse_bible(BIBLE_SAMPLE)
    assert [(c.book, c.number) for c in chapters] == [("Genesis", 1), ("1 Samuel", 2)]
    assert chapters[0].text() == ("In the beginning God created the heaven and the earth.\n"
                                  "And the earth was without form, and void; and darkness "
                                  "was upon the face of the deep.")
    assert chapters[1].verses[0].endswith("exalted in the LORD 2")


def test_validation_split_is_every_twentieth_chapter():
    held_out = [i for i in range(data.KJV_CHAPTERS) if data.is_validation_chapter(i)]
    assert held_out[:3] == [19, 39, 59] and len(held_out) == 59


@pytest.mark.skipif(shutil.which("bible") is None, reason="the bible-kjv package is not installed")
def test_kjv_text_has_every_chapter_and_verse():
    chapters = data.kjv_chapters()
    assert sum(len(c.verses) for c in chapters) == 31102
    assert chapters[-1].verses[-1] == "The grace of our Lord Jesus Christ be with you all. Amen."


@pytest.mark.skipif(not data.FASHION_MNIST_DIR.exists(),
                    reason="the dataset-fashion-mnist package is not installed")
def test_fashion_mnist_reader():
    images, labels = data.fashion_mnist("test")
    assert images.shape == (10000, 28, 28) and images.dtype == torch.uint8
    assert labels.bincount().tolist() == [1000] * 10
    normalised = data.normalize_images(images[:100])
    assert normalised.shape == (100, 1, 28, 28)


def test_phrase_loop_finds_a_repeated_phrase_and_nothing_else():
    assert repetition.phrase_loop("and I have done unto thee, and I have done unto thee, "
                                  "and I have done unto thee, and to thy servant") == \
        ("and I have done unto thee,", 3)
    assert repetition.phrase_loop("that ye may do, and do, and do, and do not the law") is None
    assert repetition.phrase_loop("In the beginning God created the heaven and the earth.") is None


def test_gpt_run_fine_tunes_and_counts_loops_before_and_after(tmp_path):
    import train
    tokenizer = Path(__file__).resolve().parents[2] / "models/repository/gpt2-kjv/tokenizer"
    shutil.copytree(tokenizer, tmp_path / "gpt2-kjv" / "tokenizer")
    train.main(["--model", "gpt2-kjv", "--variant", "relu", "--runs-dir", str(tmp_path),
                "--epochs", "1", "--limit-steps", "2", "--limit-eval", "4"])
    metrics = json.loads((tmp_path / "gpt2-kjv/relu/metrics.json").read_text())
    assert metrics["finetune"]["steps"] == 2  # --limit-steps caps the fine-tuning too
    assert metrics["val_perplexity"] == metrics["finetune"]["val_perplexity"]
    assert metrics["pretrained"]["val_perplexity"] == metrics["epochs"][-1]["val_perplexity"]
    prompts = metrics["loop_prompts"]
    assert prompts[0] == train.PROMPT and len(set(prompts)) == len(prompts) > 40
    for looping in (metrics["looping_prompts"], metrics["pretrained"]["looping_prompts"]):
        assert set(looping) <= set(prompts)
    assert (tmp_path / "gpt2-kjv/relu/checkpoint.pt").exists()
