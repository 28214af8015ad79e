"""Evaluation: how often the model draws what it is asked, by an independent referee and by its own judge.

For each category, ``n_prompts`` prompts of a split are drawn from the world grammar
(:func:`srum_core.world.prompts.make_prompts`, fixed ``prompt_seed`` so every round sees the same set), each is
generated at every seed in ``seeds``, and each image gets

- the **referee**'s verdict (the sandbox world's non-learned checker, :func:`srum_core.world.referee.verify`) —
  the measure; never used for training or judging;
- the **self-judge**'s verdict: the backend's own global judgement, passed when ``g > 0`` (i.e. P(yes) > 0.5
  for a likelihood judge); an unreadable judgement counts as "judge failed", not as a pass or a fail.

Reported per category and overall: referee accuracy, judge pass rate, judge–referee agreement. The result names
the judge and the referee it used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .adapters import zero_adapter_bypassed
from .config import GenerationConfig, JudgeConfig
from .distributed import ProcessInfo, gather_objects, process_info, shard
from .protocol import Cancelled, ProgressCallback, ProgressEvent

logger = logging.getLogger(__name__)

WORLD_REFEREE = "srum_core.world.referee.verify"


@dataclass(frozen=True)
class PromptItem:
    """A prompt to generate: its text, its category, and (for world prompts) its parsed meaning as a dict."""

    text: str
    category: str = "unknown"
    spec: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def world_prompts(split: str, categories: Sequence[str] | None, n_prompts: int, seed: int) -> list[PromptItem]:
    """``n_prompts`` world prompts of ``split`` per category (``None`` = every category), deterministic in ``seed``."""
    from .world.prompts import make_prompts
    from .world.spec import CATEGORIES

    if split not in ("train", "val"):
        raise ValueError(f"split={split!r}: the sandbox world has the splits 'train' and 'val'")
    cats = list(categories) if categories else list(CATEGORIES)
    unknown = [c for c in cats if c not in CATEGORIES]
    if unknown:
        raise ValueError(f"unknown categories {unknown}; the world's categories are {', '.join(CATEGORIES)}")
    items = []
    for category in cats:
        for spec in make_prompts(split, category, n_prompts, seed):
            items.append(PromptItem(text=spec.text, category=spec.category, spec=spec.to_dict()))
    return items


def world_referee(image: Any, item: PromptItem) -> bool | None:
    """The world referee's verdict, or None when the prompt is outside the world grammar."""
    from .world.spec import PromptSpec

    if item.spec is not None:
        spec = PromptSpec.from_dict(item.spec)
    else:
        from .world.prompts import parse_prompt

        spec = parse_prompt(item.text)
        if spec is None:
            return None
    from .world.referee import verify

    return bool(verify(image, spec).passed)


Referee = Callable[[Any, PromptItem], "bool | None"]


@dataclass(frozen=True)
class EvalItem:
    """One generated image's verdicts."""

    prompt: str
    category: str
    seed: int
    referee_pass: bool | None
    judge_score: float | None
    judge_pass: bool | None


@dataclass(frozen=True)
class CategoryResult:
    """Rates over ``n`` images; ``None`` when nothing could be counted (e.g. no referee)."""

    n: int
    referee_accuracy: float | None
    judge_pass_rate: float | None
    agreement: float | None
    judge_failed: int


def _rate(values: Sequence[bool]) -> float | None:
    return sum(values) / len(values) if values else None


def summarise(items: Sequence[EvalItem]) -> CategoryResult:
    """Referee accuracy, judge pass rate and agreement over ``items`` (unknown verdicts are left out, counted)."""
    referee = [i.referee_pass for i in items if i.referee_pass is not None]
    judge = [i.judge_pass for i in items if i.judge_pass is not None]
    both = [i.referee_pass == i.judge_pass for i in items if i.referee_pass is not None and i.judge_pass is not None]
    return CategoryResult(
        n=len(items),
        referee_accuracy=_rate(referee),
        judge_pass_rate=_rate(judge),
        agreement=_rate(both),
        judge_failed=sum(1 for i in items if i.judge_pass is None),
    )


@dataclass(frozen=True)
class EvalResult:
    """Per-category and overall rates; ``judge`` and ``referee`` say who gave the verdicts."""

    split: str
    judge: str
    referee: str | None
    seeds: tuple[int, ...]
    n_prompts: int
    prompt_seed: int
    per_category: dict[str, CategoryResult]
    overall: CategoryResult
    items: tuple[EvalItem, ...] = field(default=(), repr=False)

    def to_dict(self) -> dict[str, Any]:
        return {
            "split": self.split,
            "judge": self.judge,
            "referee": self.referee,
            "seeds": list(self.seeds),
            "n_prompts": self.n_prompts,
            "prompt_seed": self.prompt_seed,
            "per_category": {k: asdict(v) for k, v in self.per_category.items()},
            "overall": asdict(self.overall),
            "items": [asdict(i) for i in self.items],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvalResult:
        return cls(
            split=data["split"],
            judge=data["judge"],
            referee=data.get("referee"),
            seeds=tuple(data["seeds"]),
            n_prompts=int(data["n_prompts"]),
            prompt_seed=int(data["prompt_seed"]),
            per_category={k: CategoryResult(**v) for k, v in data["per_category"].items()},
            overall=CategoryResult(**data["overall"]),
            items=tuple(EvalItem(**i) for i in data.get("items", [])),
        )

    def flat_metrics(self, prefix: str) -> dict[str, float]:
        """``{prefix}/{category}/{rate}`` numbers for a metrics line (unknown rates left out)."""
        out = {}
        for name, result in [("overall", self.overall), *self.per_category.items()]:
            for key in ("referee_accuracy", "judge_pass_rate", "agreement"):
                value = getattr(result, key)
                if value is not None:
                    out[f"{prefix}/{name}/{key}"] = float(value)
        return out


def image_seed(seed: int, index: int) -> int:
    """The generation seed of prompt ``index`` under run seed ``seed`` (distinct for up to 100k prompts)."""
    return int(seed) * 100_000 + int(index)


def evaluate(
    backend: Any,
    split: str,
    categories: Sequence[str] | None,
    seeds: Sequence[int],
    n_prompts: int,
    *,
    generation: GenerationConfig | None = None,
    judge: JudgeConfig | None = None,
    prompt_seed: int = 0,
    referee: Referee | None = world_referee,
    callback: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    info: ProcessInfo | None = None,
) -> EvalResult:
    """Generate ``n_prompts`` prompts per category × every seed, and score each image by referee and self-judge.

    Under several processes the images are split across processes and the verdicts gathered on all of them.
    """
    if n_prompts < 1:
        raise ValueError(f"n_prompts={n_prompts}: evaluate at least one prompt per category")
    if not seeds:
        raise ValueError("give at least one seed to evaluate with")
    generation = generation or GenerationConfig()
    judge = judge or JudgeConfig()
    info = info or process_info()
    prompts = world_prompts(split, categories, n_prompts, prompt_seed)
    jobs = [(item, image_seed(seed, i)) for seed in seeds for i, item in enumerate(prompts)]
    mine = shard(jobs, info)
    results: list[tuple[int, EvalItem]] = []
    with zero_adapter_bypassed(backend):  # an all-zero LoRA adds nothing: skip its work
        for start in range(0, len(mine), generation.batch_size):
            if cancel is not None and cancel.is_set():
                raise Cancelled("evaluation cancelled")
            chunk = mine[start : start + generation.batch_size]
            samples = backend.generate([job[0].text for _, job in chunk], [job[1] for _, job in chunk], generation)
            for (index, (item, seed)), sample in zip(chunk, samples):
                verdict = backend.judge_global(sample.image, item.text, judge)
                judge_pass = None if not verdict.usable else bool(verdict.score > 0)
                ref = referee(sample.image, item) if referee is not None else None
                results.append(
                    (
                        index,
                        EvalItem(
                            prompt=item.text,
                            category=item.category,
                            seed=seed,
                            referee_pass=ref,
                            judge_score=verdict.score,
                            judge_pass=judge_pass,
                        ),
                    )
                )
            if callback is not None:
                callback(ProgressEvent("evaluate", min(start + len(chunk), len(mine)), len(mine)))
    items = gather_objects(results, info)
    by_category: dict[str, list[EvalItem]] = {}
    for item in items:
        by_category.setdefault(item.category, []).append(item)
    result = EvalResult(
        split=split,
        judge=f"self-judge:{backend.name} (global P(yes) > 0.5)",
        referee=WORLD_REFEREE
        if referee is world_referee
        else (getattr(referee, "__name__", "custom") if referee else None),
        seeds=tuple(int(s) for s in seeds),
        n_prompts=n_prompts,
        prompt_seed=prompt_seed,
        per_category={k: summarise(v) for k, v in by_category.items()},
        overall=summarise(items),
        items=tuple(items),
    )
    logger.info(
        "evaluated %d images on %s: referee %s, judge pass %s, agreement %s",
        len(items),
        split,
        result.overall.referee_accuracy,
        result.overall.judge_pass_rate,
        result.overall.agreement,
    )
    return result
