"""GPT-2's byte-level BPE tokenizer and a trainer that writes GPT-2's file format.

Encoding follows OpenAI's `encoder.py` step by step, so that with GPT-2's own
`encoder.json`/`vocab.bpe` it yields GPT-2's ids:

1. Pre-tokenization with GPT-2's pattern
   `'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+`.
   Python's `re` has no `\\p{..}`; the classes are built from `unicodedata`
   (L = Lu Ll Lt Lm Lo, N = Nd Nl No) and `\\s` is Unicode's White_Space property,
   as in the `regex` module GPT-2 used (Python's own `\\s` also matches U+001C..U+001F).
2. Each piece's UTF-8 bytes are mapped to printable characters (`bytes_to_unicode`).
3. Merges are applied lowest rank first until none applies; the pieces are looked up in
   the vocabulary.

Files (as GPT-2's): `vocab.json` maps token string -> id; `merges.txt` starts with the
line `#version: 0.2`, then one merge "a b" per line, highest priority first, and ends
with a newline. The trainer gives ids 0..255 to the byte characters (in
`bytes_to_unicode` order, as GPT-2 does), then one id per new merged token in merge
order, and `<|endoftext|>` the last id. `encode` treats its text as plain text (like
GPT-2's encoder.py it does not parse `<|endoftext|>`); callers append `eot_id` themselves.
"""
import heapq
import json
import re
import unicodedata
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import Dict, Iterable, List, Sequence, Tuple

EOT = "<|endoftext|>"
MERGES_HEADER = "#version: 0.2"

# Unicode's White_Space property (what `\s` means in the `regex` module).
WHITE_SPACE = [(0x09, 0x0D), (0x20, 0x20), (0x85, 0x85), (0xA0, 0xA0), (0x1680, 0x1680),
               (0x2000, 0x200A), (0x2028, 0x2029), (0x202F, 0x202F), (0x205F, 0x205F),
               (0x3000, 0x3000)]

Pair = Tuple[str, str]


@lru_cache(maxsize=None)
def bytes_to_unicode() -> Dict[int, str]:
    """GPT-2's reversible byte -> printable character table (insertion order = id order)."""
    printable = (list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
                 + list(range(ord("®"), ord("ÿ") + 1)))
    table = {b: chr(b) for b in printable}
    extra = 0
    for b in range(256):
        if b not in table:
            table[b] = chr(256 + extra)
            extra += 1
    return table


def _category_ranges(prefix: str) -> List[Tuple[int, int]]:
    """Code point ranges whose general category starts with `prefix` ("L" or "N")."""
    ranges: List[Tuple[int, int]] = []
    for cp in range(0x110000):
        if unicodedata.category(chr(cp)).startswith(prefix):
            if ranges and ranges[-1][1] == cp - 1:
                ranges[-1] = (ranges[-1][0], cp)
            else:
                ranges.append((cp, cp))
    return ranges


def _class_body(ranges: Sequence[Tuple[int, int]]) -> str:
    """The inside of a regex character class, every code point escaped."""
    return "".join(f"\\U{lo:08x}" if lo == hi else f"\\U{lo:08x}-\\U{hi:08x}"
                   for lo, hi in ranges)


@lru_cache(maxsize=None)
def pretokenize_pattern() -> "re.Pattern[str]":
    """GPT-2's pre-tokenization regex, compiled for Python's `re` (built once, ~0.5 s)."""
    letters = _class_body(_category_ranges("L"))
    numbers = _class_body(_category_ranges("N"))
    space = _class_body(WHITE_SPACE)
    return re.compile(
        r"'s|'t|'re|'ve|'m|'ll|'d"
        rf"| ?[{letters}]+| ?[{numbers}]+| ?[^{space}{letters}{numbers}]+"
        rf"|[{space}]+(?![^{space}])|[{space}]+")


def pretokenize(text: str) -> List[str]:
    """Splits text into GPT-2's pre-tokens (the pieces BPE works on separately)."""
    return pretokenize_pattern().findall(text)


def _piece_symbols(piece: str) -> str:
    """A pre-token as byte characters; lone surrogates stand for raw bytes (see encode_bytes)."""
    table = bytes_to_unicode()
    return "".join(table[b] for b in piece.encode("utf-8", "surrogateescape"))


def _merge_pair(symbols: Sequence[str], first: str, second: str) -> List[str]:
    """Replaces every non-overlapping (first, second), left to right, by first+second."""
    merged: List[str] = []
    i = 0
    while i < len(symbols):
        if i + 1 < len(symbols) and symbols[i] == first and symbols[i + 1] == second:
            merged.append(first + second)
            i += 2
        else:
            merged.append(symbols[i])
            i += 1
    return merged


class Tokenizer:
    """Encoder/decoder over a GPT-2-format vocabulary and merge list."""

    def __init__(self, encoder: Dict[str, int], merges: Sequence[Pair]):
        self.encoder = dict(encoder)
        self.decoder = {i: s for s, i in self.encoder.items()}
        self.merges = list(merges)
        self.ranks = {pair: rank for rank, pair in enumerate(self.merges)}
        self.byte_decoder = {c: b for b, c in bytes_to_unicode().items()}
        self._cache: Dict[str, Tuple[str, ...]] = {}

    @classmethod
    def from_files(cls, vocab_path, merges_path) -> "Tokenizer":
        """Reads GPT-2's `vocab.json` (or `encoder.json`) and `merges.txt` (or `vocab.bpe`)."""
        encoder = json.loads(Path(vocab_path).read_text(encoding="utf-8"))
        lines = Path(merges_path).read_text(encoding="utf-8").split("\n")
        merges = [tuple(line.split(" ")) for line in lines
                  if line and not line.startswith("#version")]
        return cls(encoder, merges)

    def save(self, directory) -> None:
        """Writes `vocab.json` and `merges.txt` into `directory` (created if missing)."""
        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        (directory / "vocab.json").write_text(json.dumps(self.encoder), encoding="utf-8")
        lines = [MERGES_HEADER] + [f"{a} {b}" for a, b in self.merges]
        (directory / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")

    @property
    def vocab_size(self) -> int:
        return len(self.encoder)

    @property
    def eot_id(self) -> int:
        return self.encoder[EOT]

    def bpe(self, symbols: str) -> Tuple[str, ...]:
        """Applies the merges to one pre-token given as byte characters."""
        cached = self._cache.get(symbols)
        if cached is not None:
            return cached
        word = list(symbols)
        while len(word) > 1:
            pairs = set(zip(word, word[1:]))
            best = min(pairs, key=lambda p: self.ranks.get(p, float("inf")))
            if best not in self.ranks:
                break
            word = _merge_pair(word, *best)
        result = tuple(word)
        self._cache[symbols] = result
        return result

    def encode(self, text: str) -> List[int]:
        """Token ids of `text` (plain text: special tokens are not recognised)."""
        return [self.encoder[token]
                for piece in pretokenize(text)
                for token in self.bpe(_piece_symbols(piece))]

    def encode_bytes(self, data: bytes) -> List[int]:
        """Token ids of arbitrary bytes; invalid UTF-8 is carried through byte by byte."""
        return self.encode(data.decode("utf-8", "surrogateescape"))

    def decode_bytes(self, ids: Iterable[int]) -> bytes:
        """The exact bytes behind `ids` (the special token decodes to its text)."""
        return bytes(self.byte_decoder[c] if c in self.byte_decoder else ord(c)
                     for c in "".join(self.decoder[i] for i in ids))

    def decode(self, ids: Iterable[int]) -> str:
        """Text of `ids`; incomplete UTF-8 sequences become U+FFFD, as in GPT-2."""
        return self.decode_bytes(ids).decode("utf-8", errors="replace")


class _PairStats:
    """Pair frequencies over a word list, updated incrementally as merges are applied."""

    def __init__(self, words: List[List[str]], freqs: List[int]):
        self.words = words
        self.freqs = freqs
        self.counts: Counter = Counter()
        self.where: Dict[Pair, set] = {}
        for index, word in enumerate(words):
            self._add(index, word, +1)
        self.heap = [(-count, pair) for pair, count in self.counts.items()]
        heapq.heapify(self.heap)

    def _add(self, index: int, word: Sequence[str], sign: int) -> List[Pair]:
        pairs = list(zip(word, word[1:]))
        for pair in pairs:
            self.counts[pair] += sign * self.freqs[index]
            if sign > 0:
                self.where.setdefault(pair, set()).add(index)
        return pairs

    def best(self):
        """The most frequent pair (ties: the smallest pair), or None when none is left."""
        while self.heap:
            negative, pair = self.heap[0]
            if self.counts.get(pair, 0) == -negative and -negative > 0:
                return pair
            heapq.heappop(self.heap)
        return None

    def merge(self, pair: Pair) -> None:
        """Merges `pair` in every word that holds it and refreshes the counts."""
        changed = set()
        for index in sorted(self.where.pop(pair, ())):
            old = self.words[index]
            changed.update(self._add(index, old, -1))
            new = _merge_pair(old, *pair)
            changed.update(self._add(index, new, +1))
            self.words[index] = new
        for changed_pair in changed:
            count = self.counts[changed_pair]
            if count > 0:
                heapq.heappush(self.heap, (-count, changed_pair))
            else:
                del self.counts[changed_pair]
                self.where.pop(changed_pair, None)


def train(texts: Iterable[str], vocab_size: int) -> Tokenizer:
    """Learns merges from `texts` until the vocabulary holds `vocab_size` ids.

    The vocabulary is the 256 byte characters, one token per merge (a merge whose result
    is already a token adds no id but is kept: encoding needs it) and `<|endoftext|>`.
    Ties between equally frequent pairs go to the lexicographically smallest pair, so
    training is deterministic.
    """
    if vocab_size < 257:
        raise ValueError("vocab_size must be at least 257 (256 bytes + <|endoftext|>)")
    pieces: Counter = Counter()
    for text in texts:
        pieces.update(pretokenize(text))
    symbol_counts = Counter()
    for piece, count in pieces.items():
        symbol_counts[_piece_symbols(piece)] += count
    stats = _PairStats([list(s) for s in symbol_counts], list(symbol_counts.values()))

    encoder = {c: i for i, c in enumerate(bytes_to_unicode().values())}
    merges: List[Pair] = []
    while len(encoder) < vocab_size - 1:
        pair = stats.best()
        if pair is None:
            break
        stats.merge(pair)
        merges.append(pair)
        encoder.setdefault(pair[0] + pair[1], len(encoder))
    encoder[EOT] = len(encoder)
    return Tokenizer(encoder, merges)
