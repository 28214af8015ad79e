"""The engine facade the Workbench's Inspect and Compare tabs call: one prompt through one SRUM scoring pass.

``inspect_prompt`` = generate (seeded) → :func:`srum_core.scoring.score_image` (regions from a named box source
or typed boxes, global and per-region judgements, the reward map in every map mode, pixel and token views) with
every intermediate kept for display. ``score_sample`` re-scores an existing image (e.g. after editing a judge
template) without regenerating. Compare adds score deltas and the backend's referee, where it has one.

Nothing here imports gradio: errors are raised as ``ValueError`` with a message that says how to fix the
input, and the UI turns them into ``gr.Error``.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .config import GenerationConfig, JudgeConfig, check_int
from .limits import MAX_PROMPT_CHARS, MAX_SEED
from .protocol import ProgressCallback, ProgressEvent, UnifiedModel
from .scoring import score_image
from .types import (
    GlobalJudgement,
    PromptItem,
    RefereeVerdict,
    Region,
    RegionJudgement,
    RewardMap,
    RewardReport,
    Sample,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class InspectResult:
    """Everything one scoring pass produced.

    ``maps``: map mode → :class:`RewardMap` (pixel ``(H, W)`` and token ``(H/t, W/t)`` views) for every mode
    that could be built; ``map_errors``: mode → why it could not (e.g. the global score was unreadable).
    ``seed``: the seed actually used (drawn when the caller passed ``None``).
    """

    prompt: str
    seed: int
    sample: Sample
    box_source: str
    regions: tuple[Region, ...]
    report: RewardReport
    maps: dict[str, RewardMap]
    map_errors: dict[str, str] = field(default_factory=dict)
    generation: GenerationConfig | None = None
    judge: JudgeConfig | None = None
    grid: str = "bilinear"

    @property
    def image(self) -> Any:
        return self.sample.image

    @property
    def global_judgement(self) -> GlobalJudgement:
        return self.report.global_judgement

    @property
    def region_judgements(self) -> tuple[RegionJudgement, ...]:
        return self.report.regions

    @property
    def notices(self) -> tuple[str, ...]:
        return self.report.notices


def check_seed(seed: Any) -> int:
    """``seed`` as an int in ``[0, MAX_SEED]``; the one seed check of the UI, the API and the CLI."""
    return check_int(seed, "seed", 0, MAX_SEED, "or leave it empty for a random one")


def draw_seed(seed: int | None) -> int:
    """``seed`` checked, or a fresh one when ``None`` (the caller reports the seed used)."""
    if seed is None:
        return random.SystemRandom().randint(0, MAX_SEED)
    return check_seed(seed)


def check_prompt(prompt: str | None) -> str:
    """The prompt with surrounding whitespace removed; refuses an empty or overlong prompt."""
    if prompt is not None and not isinstance(prompt, str):
        raise ValueError(f"the prompt must be text, not {type(prompt).__name__}")
    if prompt is None or not prompt.strip():
        raise ValueError("the prompt is empty: type what the image should show, e.g. 'a red circle'")
    if len(prompt) > 4 * MAX_PROMPT_CHARS:  # refuse a huge paste before any work on it
        raise ValueError(f"the prompt is {len(prompt)} characters long; shorten it to at most {MAX_PROMPT_CHARS} characters")
    text = " ".join(prompt.split())
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"the prompt is {len(text)} characters long; shorten it to at most {MAX_PROMPT_CHARS} characters"
        )
    return text


def score_sample(
    backend: UnifiedModel,
    sample: Sample,
    judge: JudgeConfig,
    box_source: str | None = None,
    user_boxes: str | Sequence[Region] | None = None,
    grid: str = "bilinear",
    generation: GenerationConfig | None = None,
    callback: ProgressCallback | None = None,
) -> InspectResult:
    """Score ``sample.image`` through the round's own scoring path and keep everything for display."""
    if callback is not None:
        callback(ProgressEvent("judge", 0, 1, message="proposing regions and judging"))
    scored = score_image(backend, sample.image, sample.prompt, judge, box_source, user_boxes, grid)
    if callback is not None:
        callback(ProgressEvent("judge", 1, 1, metrics=_summary_metrics(scored.report)))
    logger.info(
        "scored %r seed=%s: g=%s, %d regions",
        sample.prompt,
        sample.seed,
        scored.report.global_judgement.score,
        len(scored.regions),
    )
    return InspectResult(
        prompt=sample.prompt,
        seed=sample.seed,
        sample=sample,
        box_source=scored.box_source,
        regions=scored.regions,
        report=scored.report,
        maps=scored.maps,
        map_errors=scored.map_errors,
        generation=generation,
        judge=judge,
        grid=grid,
    )


def generate_one(
    backend: UnifiedModel,
    prompt: str,
    seed: int | None,
    generation: GenerationConfig,
    callback: ProgressCallback | None = None,
) -> Sample:
    """One image for ``prompt``; ``seed=None`` draws a seed, recorded in ``Sample.seed``."""
    text = check_prompt(prompt)
    used = draw_seed(seed)
    samples = backend.generate([text], [used], generation, callback)
    if len(samples) != 1:
        raise RuntimeError(f"backend {backend.name!r} returned {len(samples)} samples for one prompt")
    return samples[0]


def inspect_prompt(
    backend: UnifiedModel,
    prompt: str,
    seed: int | None,
    generation: GenerationConfig,
    judge: JudgeConfig,
    box_source: str | None,
    user_boxes: str | Sequence[Region] | None = None,
    grid: str = "bilinear",
    callback: ProgressCallback | None = None,
) -> InspectResult:
    """Generate one image for ``prompt`` at ``seed`` and score it (see the module docstring)."""
    from .adapters import zero_adapter_bypassed

    with zero_adapter_bypassed(backend):  # after an undo to the base model, its all-zero LoRA adds nothing
        sample = generate_one(backend, prompt, seed, generation, callback)
        return score_sample(backend, sample, judge, box_source, user_boxes, grid, generation, callback)


def _summary_metrics(report: RewardReport) -> dict[str, float]:
    metrics: dict[str, float] = {"regions": float(len(report.regions))}
    if report.global_judgement.usable and report.global_judgement.score is not None:
        metrics["global_score"] = float(report.global_judgement.score)
    scores = [float(r.score) for r in report.usable_regions if r.score is not None]
    if scores:
        metrics["region_score_mean"] = sum(scores) / len(scores)
    return metrics


def region_crop(image: Any, region: Region, scale: int = 4) -> Any:
    """The pixels of ``region`` on ``image`` (clamped), enlarged ``scale`` times with nearest-neighbour."""
    from PIL import Image

    width, height = image.size
    x1, y1, x2, y2 = region.clamped(width, height).box
    if x2 <= x1 or y2 <= y1:
        raise ValueError(f"region {list(region.box)} lies outside the {width}x{height} image")
    crop = image.crop((x1, y1, x2, y2))
    return crop.resize(((x2 - x1) * scale, (y2 - y1) * scale), Image.NEAREST)


@dataclass(frozen=True)
class ScoreDelta:
    """One row of a before/after comparison: ``after - before`` where both were read."""

    what: str
    before: float | None
    after: float | None

    @property
    def delta(self) -> float | None:
        if self.before is None or self.after is None:
            return None
        return self.after - self.before


def compare_results(before: InspectResult, after: InspectResult) -> list[ScoreDelta]:
    """Global and per-object score changes between two scorings of the same prompt and seed.

    Objects are matched by the name the judge gave them, in order of appearance (the regions of two different
    images need not line up); an object seen on one side only gets ``None`` on the other.
    """
    rows = [ScoreDelta("global", before.global_judgement.score, after.global_judgement.score)]
    remaining = list(after.region_judgements)
    for judgement in before.region_judgements:
        match = next((j for j in remaining if j.object_name == judgement.object_name), None)
        if match is not None:
            remaining.remove(match)
        rows.append(ScoreDelta(judgement.object_name, judgement.score, None if match is None else match.score))
    rows.extend(ScoreDelta(j.object_name, None, j.score) for j in remaining)
    return rows


def referee_verdict(backend: UnifiedModel, image: Any, prompt: str) -> dict[str, Any] | None:
    """The backend's independent referee on ``image`` for ``prompt``: ``{"passed", "checks", "notes"}``, or None
    for a backend without a referee. ``passed`` is None for a prompt the referee cannot judge. The referee never
    feeds a reward."""
    referee = backend.referee()
    if referee is None:
        return None
    verdict = referee(image, PromptItem(text=prompt))
    if verdict is None or isinstance(verdict, bool):
        verdict = RefereeVerdict(passed=verdict, notes="" if verdict is not None else "the referee cannot judge it")
    return {"passed": verdict.passed, "checks": dict(verdict.checks), "notes": verdict.notes}
