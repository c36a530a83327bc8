"""Checks on greedy text: does a continuation loop, and how often do a model's loops happen.

A continuation "loops" when some phrase of LOOP_MIN_WORDS or more words is said
LOOP_MIN_TIMES or more times back to back (words split on whitespace), e.g. "and I have
done unto thee, and I have done unto thee, and I have done unto thee".
"""
from typing import List, Optional, Tuple

from gemmodels import gpt2

LOOP_MIN_WORDS, LOOP_MIN_TIMES = 3, 3
CONTINUATION_TOKENS = 60


def phrase_loop(text: str) -> Optional[Tuple[str, int]]:
    """The phrase of >= LOOP_MIN_WORDS words that `text` repeats most often back to back,
    with that count, if it is >= LOOP_MIN_TIMES; else None."""
    words = text.split()
    best = None
    for length in range(LOOP_MIN_WORDS, len(words) // LOOP_MIN_TIMES + 1):
        for start in range(len(words) - length):
            phrase, times = words[start:start + length], 1
            while words[start + times * length:start + (times + 1) * length] == phrase:
                times += 1
            if times >= LOOP_MIN_TIMES and (best is None or times > best[1]):
                best = (" ".join(phrase), times)
    return best


def continuation(model, tokenizer, prompt: str) -> str:
    """The greedy continuation of `prompt` by `model`: CONTINUATION_TOKENS tokens, or fewer
    if it ends with <|endoftext|>."""
    ids = gpt2.greedy_generate(model, tokenizer.encode(prompt), CONTINUATION_TOKENS,
                               tokenizer.eot_id)
    return tokenizer.decode(ids)


def looping_prompts(model, tokenizer, prompts: List[str]) -> List[str]:
    """The prompts whose greedy continuation by `model` loops."""
    return [p for p in prompts if phrase_loop(continuation(model, tokenizer, p)) is not None]
