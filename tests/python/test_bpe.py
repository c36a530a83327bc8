"""GPT-2 byte-level BPE: pre-tokenization, GPT-2's own ids, round trips and the trainer.

`data/gpt2_subset/` holds the entries of GPT-2's encoder.json / vocab.bpe that encoding
its `expected.json` text consults (GPT-2's ids and merge order), and the ids that
js-tiktoken's "gpt2" encoding gives for that text.
"""
import json
import random
from pathlib import Path

import pytest

from gemmodels import bpe

DATA = Path(__file__).parent / "data"
CORPUS = """In the beginning God created the heaven and the earth.
And the earth was without form, and void; and darkness was upon the face of the deep.
And God said, Let there be light: and there was light. It's 1611; they'll've read it.
Ünïcödé also: ñandú, 東京, ½ and 😀 — “quoted”.
""" * 3


@pytest.fixture(scope="module")
def trained() -> bpe.Tokenizer:
    return bpe.train([CORPUS], vocab_size=320)


def test_byte_table_is_gpt2s():
    table = bpe.bytes_to_unicode()
    assert len(set(table.values())) == 256
    assert table[ord("!")] == "!" and table[ord(" ")] == "\u0120" and table[ord("\n")] == "\u010a"
    assert all(ch.isprintable() and not ch.isspace() for ch in table.values())
    assert list(table.values())[:3] == ["!", '"', "#"]  # GPT-2's id order


@pytest.mark.parametrize("text, pieces", [
    ("I'm can't we'll they've she'd it's you're",
     ["I", "'m", " can", "'t", " we", "'ll", " they", "'ve", " she", "'d", " it", "'s", " you", "'re"]),
    ("IT'S 'S", ["IT", "'", "S", " '", "S"]),  # the contractions are lower-case only
    ("abc123 4567 x2", ["abc", "123", " 4567", " x", "2"]),
    ("½² ٣", ["½²", " ٣"]),  # \p{N} is every number, not only digits
    ("a   b\n\n c  ", ["a", "  ", " b", "\n\n", " c", "  "]),  # runs keep one space for the word
    ("x\t \ny", ["x", "\t ", "\n", "y"]),  # \s+(?!\S) leaves the last one to the next piece
    ("ñandú 東京タワー!!", ["ñandú", " 東京タワー", "!!"]),
    ("hi...?! ok", ["hi", "...?!", " ok"]),
    ("a\x1cb\u2028c", ["a", "\x1c", "b", "\u2028", "c"]),  # \s is Unicode White_Space
])
def test_pretokenization_matches_gpt2(text, pieces):
    assert bpe.pretokenize(text) == pieces


def test_gpt2_files_give_gpt2_ids():
    expected = json.loads((DATA / "gpt2_subset" / "expected.json").read_text(encoding="utf-8"))
    tokenizer = bpe.Tokenizer.from_files(DATA / "gpt2_subset" / "vocab.json",
                                         DATA / "gpt2_subset" / "merges.txt")
    assert tokenizer.encode(expected["text"]) == expected["ids"]
    assert tokenizer.decode(expected["ids"]) == expected["text"]


def test_arbitrary_bytes_round_trip(trained):
    rng = random.Random(0)
    samples = [bytes(rng.randrange(256) for _ in range(rng.randrange(1, 200))) for _ in range(200)]
    samples += [b"\xff\xfe", b"\xe6\x9d", b"\x00\x00 \x80", "é😀".encode()[:-1]]
    for data in samples:
        assert trained.decode_bytes(trained.encode_bytes(data)) == data


def test_arbitrary_unicode_round_trips(trained):
    rng = random.Random(1)
    code_points = [c for c in range(0x110000) if not 0xD800 <= c <= 0xDFFF]
    for _ in range(200):
        text = "".join(chr(rng.choice(code_points)) if rng.random() < 0.3 else rng.choice(CORPUS)
                       for _ in range(rng.randrange(1, 120)))
        ids = trained.encode(text)
        assert all(0 <= i < trained.vocab_size for i in ids)
        assert trained.decode(ids) == text


def test_trainer_writes_gpt2_format_files(trained, tmp_path):
    trained.save(tmp_path)
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert sorted(vocab.values()) == list(range(320))
    assert vocab[bpe.EOT] == 319
    assert all(vocab[ch] == i for i, ch in enumerate(bpe.bytes_to_unicode().values()))

    text = (tmp_path / "merges.txt").read_text(encoding="utf-8")
    lines = text.split("\n")
    assert lines[0] == "#version: 0.2" and text.endswith("\n")
    merges = [tuple(line.split(" ")) for line in lines[1:-1]]
    assert all(len(m) == 2 and m[0] + m[1] in vocab for m in merges)
    assert len(merges) == len(set(merges)) >= 320 - 257

    reloaded = bpe.Tokenizer.from_files(tmp_path / "vocab.json", tmp_path / "merges.txt")
    assert reloaded.encode(CORPUS) == trained.encode(CORPUS)


def test_trainer_compresses_and_is_deterministic(trained):
    again = bpe.train([CORPUS], vocab_size=320)
    assert again.merges == trained.merges and again.encoder == trained.encoder
    assert len(trained.encode(CORPUS)) < 0.6 * len(CORPUS.encode())
    assert trained.decoder[trained.encode(" the")[0]] == "\u0120the"


def test_trainer_rejects_a_vocabulary_without_room():
    with pytest.raises(ValueError):
        bpe.train(["abc"], vocab_size=100)
