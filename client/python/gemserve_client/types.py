"""The results of gemserve calls as plain, typed, immutable values."""
from dataclasses import dataclass
from typing import Optional, Tuple


@dataclass(frozen=True)
class Timing:
    """Where the time of one request went, in microseconds."""
    queue_us: int = 0
    inference_us: int = 0
    total_us: int = 0

    @classmethod
    def _from_proto(cls, timing) -> "Timing":
        return cls(timing.queue_us, timing.inference_us, timing.total_us)


@dataclass(frozen=True)
class Prediction:
    index: int          # class index
    label: str          # class name (the model's labels.txt)
    probability: float

    @classmethod
    def _from_proto(cls, p) -> "Prediction":
        return cls(p.index, p.label, p.probability)


@dataclass(frozen=True)
class ClassifyResult:
    model: str
    variant: str                       # the variant that served the request
    predictions: Tuple[Prediction, ...]  # most probable first
    request_id: str                    # the key of Client.feedback
    experiment_version: int            # the split version that routed it; 0: not routed
    timing: Timing

    @property
    def top(self) -> Prediction:
        """The most probable class."""
        return self.predictions[0]


@dataclass(frozen=True)
class GenerateSummary:
    """What the last message of a Generate stream said, plus the whole text."""
    model: str
    variant: str
    text: str                  # every piece, concatenated (the prompt not included)
    token_ids: Tuple[int, ...]  # the new tokens
    finish_reason: str         # LENGTH, STOP, EOS or CANCELLED
    prompt_tokens: int
    completion_tokens: int
    request_id: str
    experiment_version: int
    timing: Timing


@dataclass(frozen=True)
class VariantResult:
    """One variant's answer in a Compare."""
    variant: str
    predictions: Tuple[Prediction, ...]  # classify models
    text: str                          # generate models: the greedy continuation
    token_ids: Tuple[int, ...]
    timing: Timing                     # inference_us: this variant's forward(s)


@dataclass(frozen=True)
class PairAgreement:
    a: str
    b: str
    agree: bool           # same top-1 class / identical continuation
    common_prefix: int    # generate: leading tokens the continuations share


@dataclass(frozen=True)
class CompareResult:
    model: str
    results: Tuple[VariantResult, ...]
    agreement: float      # fraction of variant pairs that agree
    pairs: Tuple[PairAgreement, ...]

    def result(self, variant: str) -> VariantResult:
        """The result of one variant; KeyError when it is not among the results."""
        for r in self.results:
            if r.variant == variant:
                return r
        raise KeyError(variant)


@dataclass(frozen=True)
class FeedbackResult:
    model: str
    variant: str    # the variant credited
    correct: bool   # label feedback: the served top-1 was the label


@dataclass(frozen=True)
class VariantInfo:
    name: str
    state: str        # READY, FAILED
    error: str        # why it failed to load
    activation: str   # relu, gelu, gem, egem, segem
    n: int
    eps: float
    neg_slope: float
    quality: str      # e.g. "test_accuracy=0.92 (fashion-mnist test (10k))"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    task: str              # classify or generate
    default_variant: str   # "" when none
    variants: Tuple[VariantInfo, ...]

    def variant(self, name: str) -> Optional[VariantInfo]:
        return next((v for v in self.variants if v.name == name), None)


def _predictions(repeated) -> Tuple[Prediction, ...]:
    return tuple(Prediction._from_proto(p) for p in repeated)
