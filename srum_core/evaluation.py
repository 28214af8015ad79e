"""Evaluation: how often the model draws what it is asked, by an independent referee and by its own judge.

For each category, ``n_prompts`` prompts of one of the backend's prompt sets are drawn (``backend.prompts``,
fixed ``prompt_seed`` so every round sees the same set), each is generated at every seed in ``seeds``, and each
image gets

- the **referee**'s verdict (``backend.referee()``, e.g. the sandbox world's non-learned checker) — the measure;
  never used for training or judging; none for a backend without a referee;
- the **self-judge**'s verdict: the backend's own global judgement, passed when ``g > 0`` (i.e. P(yes) > 0.5
  for a likelihood judge); an unreadable judgement counts as "judge failed", not as a pass or a fail.

Reported per category and overall: referee accuracy, judge pass rate, judge–referee agreement. The result names
the judge and the referee it used.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from .adapters import zero_adapter_bypassed
from .config import GenerationConfig, JudgeConfig
from .distributed import ProcessInfo, gather_objects, process_info, shard
from .protocol import Cancelled, ProgressCallback, ProgressEvent, Referee
from .types import PromptItem

logger = logging.getLogger(__name__)

#: ``evaluate(referee=...)`` default: the backend's own referee (``backend.referee()``), if it has one.
BACKEND_REFEREE = "backend"


def eval_prompts(
    backend: Any, set_name: str, categories: Sequence[str] | None, n_prompts: int, seed: int
) -> list[PromptItem]:
    """``n_prompts`` prompts of the backend's prompt set ``set_name`` per category (None = every category of the
    backend), deterministic in ``seed``."""
    if set_name not in backend.prompt_sets():
        offered = ", ".join(backend.prompt_sets()) or "none"
        raise ValueError(
            f"backend {backend.name!r} has no prompt set {set_name!r} to evaluate on (it offers: {offered}); "
            "choose one of those, or turn evaluation off (--eval-split none)"
        )
    return [
        item
        for category in (categories or backend.categories())
        for item in backend.prompts(set_name, [category], n_prompts, seed)
    ]


def referee_passed(referee: Referee, image: Any, item: PromptItem) -> bool | None:
    """The referee's pass/fail on ``image`` (None: it cannot judge this prompt)."""
    verdict = referee(image, item)
    if verdict is None or isinstance(verdict, bool):
        return verdict
    return None if verdict.passed is None else bool(verdict.passed)


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
    referee: Referee | str | None = BACKEND_REFEREE,
    callback: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    info: ProcessInfo | None = None,
) -> EvalResult:
    """Generate ``n_prompts`` prompts per category × every seed, and score each image by referee and self-judge.

    ``referee``: :data:`BACKEND_REFEREE` (the backend's own, if any), a callable, or None (no referee).

    Under several processes the images are split across processes and the verdicts gathered on all of them.
    """
    if n_prompts < 1:
        raise ValueError(f"n_prompts={n_prompts}: evaluate at least one prompt per category")
    if not seeds:
        raise ValueError("give at least one seed to evaluate with")
    generation = generation or GenerationConfig()
    judge = judge or JudgeConfig()
    info = info or process_info()
    if referee == BACKEND_REFEREE:
        referee = backend.referee()
    prompts = eval_prompts(backend, split, categories, n_prompts, prompt_seed)
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
                ref = referee_passed(referee, sample.image, item) if referee is not None else None
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
        referee=_referee_name(referee),
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


def _referee_name(referee: Referee | None) -> str | None:
    if referee is None:
        return None
    return getattr(referee, "name", None) or getattr(referee, "__name__", None) or type(referee).__name__


def paired_referee_change(before: EvalResult, after: EvalResult, n_resamples: int = 2000) -> dict[str, Any] | None:
    """The referee's accuracy change from ``before`` to ``after`` on the images both measured at the same
    (prompt, seed): ``{"n", "before", "after", "delta", "ci95"}`` in percentage points, the interval from a paired
    bootstrap (:func:`srum_core.stats.paired_bootstrap`); None when no item was judged by the referee in both."""
    from .stats import paired_bootstrap

    first = {(i.prompt, i.seed): i.referee_pass for i in before.items if i.referee_pass is not None}
    pairs = [(first[(i.prompt, i.seed)], i.referee_pass) for i in after.items
             if i.referee_pass is not None and (i.prompt, i.seed) in first]
    if not pairs:
        return None
    a = [100.0 * float(x) for x, _ in pairs]
    b = [100.0 * float(y) for _, y in pairs]
    d = paired_bootstrap(a, b, n_resamples=n_resamples, seed=0)
    return {"n": len(pairs), "before": sum(a) / len(a), "after": sum(b) / len(b), "delta": d.delta,
            "ci95": [d.low, d.high]}

