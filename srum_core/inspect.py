"""The Inspect facade: one prompt through one SRUM scoring pass, every intermediate kept for display.

``inspect_prompt`` = generate (seeded) → propose regions (a named box source, or boxes a user typed) →
judge globally and per region → build the reward map in every map mode (pixel and token views). The
Workbench's Inspect and Compare tabs call only this module; the CLI and tests can call it too.
``score_sample`` re-scores an existing image (e.g. after editing a judge template) without regenerating.

Nothing here imports gradio: errors are raised as ``ValueError`` with a message that says how to fix the
input, and the UI turns them into ``gr.Error``.
"""

from __future__ import annotations

import logging
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from .boxes.user import USER_BOX_SOURCE, parse_user_boxes
from .config import MAP_MODES, GenerationConfig, JudgeConfig, RewardConfig
from .protocol import ProgressCallback, ProgressEvent, UnifiedModel
from .rewards import build_reward_map
from .types import GlobalJudgement, Region, RegionJudgement, RewardMap, RewardReport, Sample

logger = logging.getLogger(__name__)

#: Longest prompt the facade accepts. Far above any real T2I prompt; a 10k-character paste is refused.
MAX_PROMPT_CHARS = 2000
#: Seeds are drawn from and checked against ``[0, MAX_SEED]`` (fits every generator's 32-bit seed).
MAX_SEED = 2**31 - 1

NOTICE_NO_OBJECTS = "no recognisable objects: global-only reward"
NOTICE_NO_GLOBAL = "the global judgement could not be read: this image would be left out of training"


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


def draw_seed(seed: int | None) -> int:
    """``seed`` checked, or a fresh one when ``None`` (the caller reports the seed used)."""
    if seed is None:
        return random.SystemRandom().randint(0, MAX_SEED)
    if isinstance(seed, float):
        if not seed.is_integer():
            raise ValueError(f"seed={seed}: give a whole number between 0 and {MAX_SEED}")
        seed = int(seed)
    if not 0 <= int(seed) <= MAX_SEED:
        raise ValueError(f"seed={seed}: give a whole number between 0 and {MAX_SEED} (or leave it empty for a random one)")
    return int(seed)


def check_prompt(prompt: str | None) -> str:
    """The prompt with surrounding whitespace removed; refuses an empty or overlong prompt."""
    if prompt is None or not str(prompt).strip():
        raise ValueError("the prompt is empty: type what the image should show, e.g. 'a red circle'")
    text = " ".join(str(prompt).split())
    if len(text) > MAX_PROMPT_CHARS:
        raise ValueError(
            f"the prompt is {len(text)} characters long; shorten it to at most {MAX_PROMPT_CHARS} characters"
        )
    return text


def recognisable_objects(backend: UnifiedModel, prompt: str) -> bool | None:
    """Whether ``prompt`` names any object the backend's world knows; ``None`` when the backend cannot tell.

    A backend may answer itself through an optional ``prompt_objects(prompt) -> list`` method. The sandbox's
    world knows its shapes (singular or plural). Region rewards measure relevance to the prompt's objects, so
    for a prompt that names none the reward falls back to the global score alone.
    """
    asks = getattr(backend, "prompt_objects", None)
    if callable(asks):
        return bool(asks(prompt))
    if getattr(backend, "name", "") != "sandbox":
        return None
    from .world.spec import SHAPES

    words = set(re.findall(r"[a-z]+", prompt.lower()))
    return any(shape in words or f"{shape}s" in words for shape in SHAPES)


def propose_regions(
    backend: UnifiedModel,
    image: Any,
    prompt: str,
    judge: JudgeConfig,
    box_source: str | None,
    user_boxes: str | Sequence[Region] | None = None,
) -> tuple[str, list[Region]]:
    """``(source name used, regions)`` from the named box source (``None`` = the backend's default).

    ``box_source="user"`` takes ``user_boxes`` (text as :func:`parse_user_boxes` reads it, or regions).
    """
    width, height = image.size
    if box_source == USER_BOX_SOURCE:
        if user_boxes is None or isinstance(user_boxes, str):
            regions = parse_user_boxes(user_boxes, width, height)
        else:
            regions = list(user_boxes)
        return USER_BOX_SOURCE, regions[: judge.max_regions]
    sources = backend.box_sources()
    if not sources:
        raise ValueError(f"backend {backend.name!r} offers no box source; choose box source 'user' and type boxes")
    name = box_source or judge.box_source or next(iter(sources))
    if name not in sources:
        choices = ", ".join([*sources, USER_BOX_SOURCE])
        raise ValueError(f"box source {name!r} is unknown for backend {backend.name!r}; choose one of {choices}")
    regions = sources[name].propose(image, prompt, max_regions=judge.max_regions)
    return name, list(regions)[: judge.max_regions]


def build_all_maps(
    report: RewardReport, token_size: int, grid: str = "bilinear", modes: Sequence[str] = MAP_MODES
) -> tuple[dict[str, RewardMap], dict[str, str]]:
    """The reward map of ``report`` in every mode that can be built, and why the others could not."""
    maps: dict[str, RewardMap] = {}
    errors: dict[str, str] = {}
    for mode in modes:
        try:
            maps[mode] = build_reward_map(report, RewardConfig(mode=mode, grid=grid), token_size)
        except ValueError as err:  # MissingGlobalScore is a ValueError
            errors[mode] = str(err)
    return maps, errors


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
    """Propose regions on ``sample.image``, judge them and the whole image, and build every reward map."""
    image = sample.image
    width, height = image.size
    if callback is not None:
        callback(ProgressEvent("propose", 0, 1, message="proposing regions"))
    source_name, regions = propose_regions(backend, image, sample.prompt, judge, box_source, user_boxes)
    notices: list[str] = []
    if source_name != USER_BOX_SOURCE and regions and recognisable_objects(backend, sample.prompt) is False:
        # Nothing the prompt asks for can be in a region: judge the whole image only (SRUM_SPEC §1.5, no regions).
        logger.info("prompt %r names no object the backend knows; dropping %d regions", sample.prompt, len(regions))
        regions = []
    if callback is not None:
        callback(ProgressEvent("judge", 0, 2, message=f"judging the image and {len(regions)} regions"))
    global_judgement = backend.judge_global(image, sample.prompt, judge)
    region_judgements = backend.judge_regions(image, sample.prompt, regions, judge) if regions else []
    if len(region_judgements) != len(regions):
        raise RuntimeError(
            f"backend {backend.name!r} returned {len(region_judgements)} region judgements for {len(regions)} regions; "
            "judge_regions must answer every region in order"
        )
    if not any(j.usable for j in region_judgements):
        notices.append(NOTICE_NO_OBJECTS)
    if not global_judgement.usable:
        notices.append(NOTICE_NO_GLOBAL)
    report = RewardReport(
        prompt=sample.prompt,
        width=width,
        height=height,
        global_judgement=global_judgement,
        regions=tuple(region_judgements),
        notices=tuple(notices),
    )
    maps, map_errors = build_all_maps(report, backend.token_size, grid)
    if callback is not None:
        callback(ProgressEvent("judge", 2, 2, metrics=_summary_metrics(report)))
    logger.info("scored %r seed=%s: g=%s, %d regions", sample.prompt, sample.seed, global_judgement.score, len(regions))
    return InspectResult(
        prompt=sample.prompt,
        seed=sample.seed,
        sample=sample,
        box_source=source_name,
        regions=tuple(regions),
        report=report,
        maps=maps,
        map_errors=map_errors,
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
    """The independent referee's verdict on ``image`` for ``prompt``, where the backend's world has one.

    Only the sandbox world has a programmatic referee; returns ``None`` for other backends, and a verdict with
    ``passed=None`` for a prompt outside the sandbox grammar. The referee never feeds a reward.
    """
    if getattr(backend, "name", "") != "sandbox":
        return None
    from .world.prompts import parse_prompt
    from .world.referee import verify

    spec = parse_prompt(prompt)
    if spec is None:
        return {"passed": None, "checks": {}, "notes": "the prompt is outside the sandbox grammar; the referee cannot judge it"}
    verdict = verify(image, spec)
    return {"passed": bool(verdict.passed), "checks": dict(verdict.checks), "notes": verdict.notes}


#: Example prompts for backends without a prompt grammar: (category, prompt).
GENERIC_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("single", "a red apple"),
    ("color", "a blue cup and a yellow book"),
    ("shape", "a round clock and a square frame"),
    ("texture", "a striped sock next to a wooden spoon"),
    ("spatial", "a cat to the left of a dog"),
    ("numeracy", "three green balloons"),
    ("complex", "two red cubes on top of a blue table"),
)


def example_prompts(backend: UnifiedModel, seed: int = 0) -> list[tuple[str, str]]:
    """One example ``(category, prompt)`` per prompt category the backend knows.

    The sandbox draws them from its world's grammar (training split, so they are prompts it was built for);
    other backends get T2I-CompBench-style prompts.
    """
    if getattr(backend, "name", "") != "sandbox":
        return list(GENERIC_EXAMPLES)
    from .world.prompts import make_prompts
    from .world.spec import CATEGORIES

    examples: list[tuple[str, str]] = []
    for category in CATEGORIES:
        specs = make_prompts("train", category, 1, seed)
        if specs:
            examples.append((category, specs[0].text))
    return examples
