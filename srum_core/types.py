"""Typed results that flow through a SRUM round.

Everything here is plain data (frozen dataclasses plus numpy arrays) so reward functions stay pure and
testable with hand-written values. Pixel boxes are ``(x1, y1, x2, y2)`` integers with exclusive ends
(numpy slicing ``[y1:y2, x1:x2]``), in the coordinates of the generated image.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Literal

import numpy as np

BoxSourceKind = Literal["grounding", "automatic", "user", "global", "record"]
ParseStatus = Literal["ok", "clamped", "failed", "missing"]

#: Parse statuses whose score may be used for a reward. ``clamped`` scores were out of [-1, 1] and were
#: clamped; they are kept but flagged so a user can see the judge misbehaved.
USABLE_STATUSES: frozenset[str] = frozenset({"ok", "clamped"})


@dataclass(frozen=True)
class PromptItem:
    """A prompt to generate: its text, its category, and (for prompts of a backend's own prompt set) its parsed
    meaning as a JSON-safe dict that the backend's referee can read back."""

    text: str
    category: str = "unknown"
    spec: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RefereeVerdict:
    """An independent referee's verdict on one image (never a reward: a measure of the model).

    ``passed`` is None when the referee cannot judge the prompt (``notes`` says why); ``category`` is the prompt's
    category as the referee reads it; ``details`` holds referee-specific JSON-safe findings (e.g. detections).
    """

    passed: bool | None
    category: str | None = None
    checks: dict[str, bool] = field(default_factory=dict)
    notes: str = ""
    details: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Region:
    """A pixel box ``(x1, y1, x2, y2)`` on the generated image and where it came from.

    ``source`` is the box source's name (e.g. ``"self-grounding"``, ``"segmenter"``, ``"user"``);
    ``label`` is the object the source believes is there, if it names one (grounding does, SAM does not);
    ``confidence`` is the source's own confidence, if any.
    """

    box: tuple[int, int, int, int]
    source: str
    label: str | None = None
    confidence: float | None = None

    def __post_init__(self) -> None:
        if len(self.box) != 4:
            raise ValueError(f"Region.box needs 4 integers [x1, y1, x2, y2], got {self.box!r}")
        object.__setattr__(self, "box", tuple(int(round(float(v))) for v in self.box))

    @property
    def area(self) -> int:
        x1, y1, x2, y2 = self.box
        return max(0, x2 - x1) * max(0, y2 - y1)

    def clamped(self, width: int, height: int) -> Region:
        """The same region with its box clamped to an image of ``width`` x ``height`` pixels."""
        x1, y1, x2, y2 = self.box
        box = (
            min(max(x1, 0), width),
            min(max(y1, 0), height),
            min(max(x2, 0), width),
            min(max(y2, 0), height),
        )
        return Region(box=box, source=self.source, label=self.label, confidence=self.confidence)


@dataclass(frozen=True)
class RegionJudgement:
    """The model's verdict on one region: which object it sees and how well it serves the prompt.

    ``score`` is in [-1, 1] when ``parse_status`` is ``ok`` or ``clamped`` and ``None`` when the judge's
    answer could not be read (``failed``) or the region was not answered at all (``missing``); a failure is
    never turned into a neutral 0. ``raw_score`` keeps the number as the judge wrote it.
    """

    region: Region
    object_name: str
    score: float | None
    reason: str = ""
    raw_text: str = ""
    parse_status: ParseStatus = "ok"
    raw_score: float | None = None
    question: str = ""

    @property
    def usable(self) -> bool:
        return self.score is not None and self.parse_status in USABLE_STATUSES


@dataclass(frozen=True)
class GlobalJudgement:
    """The model's global (layout) verdict ``g`` in [-1, 1] for the whole image, same conventions as above."""

    score: float | None
    reason: str = ""
    raw_text: str = ""
    parse_status: ParseStatus = "ok"
    raw_score: float | None = None
    question: str = ""

    @property
    def usable(self) -> bool:
        return self.score is not None and self.parse_status in USABLE_STATUSES


@dataclass(frozen=True)
class RewardReport:
    """Everything the judge said about one image: the inputs of a reward map."""

    prompt: str
    width: int
    height: int
    global_judgement: GlobalJudgement
    regions: tuple[RegionJudgement, ...] = ()
    image_file: str | None = None
    notices: tuple[str, ...] = ()

    @property
    def trainable(self) -> bool:
        """SRUM trains only on images whose global score was read (SRUM_SPEC §1.4)."""
        return self.global_judgement.usable

    @property
    def usable_regions(self) -> tuple[RegionJudgement, ...]:
        return tuple(r for r in self.regions if r.usable)


@dataclass(frozen=True)
class RewardMap:
    """A dense reward map in two views.

    ``pixel``: ``(H, W)`` float32, one value per image pixel.
    ``token``: ``(H / token_size, W / token_size)`` float32, the same map on the generator's token grid,
    row-major, as the loss consumes it.
    """

    pixel: np.ndarray
    token: np.ndarray
    mode: str
    grid: str
    token_size: int
    global_score: float | None = None

    @property
    def token_weights(self) -> np.ndarray:
        """``(N,)`` row-major flattening of the token view."""
        return self.token.reshape(-1)


@dataclass
class Sample:
    """One generated image plus what its backend needs to train on it.

    ``image``: a PIL RGB image. ``payload``: backend-specific training data (e.g. the clean latent/patch tensor
    of a flow model, or the sampled VQ codes of an autoregressive one). ``settings``: the generation settings
    used, recorded for reproducibility.
    """

    prompt: str
    seed: int
    image: Any
    payload: Any = None
    settings: dict[str, Any] = field(default_factory=dict)
