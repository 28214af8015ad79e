"""An evaluation run the way papers report one: base and rounds 1..k on the same prompts and seeds, scored by an
independent judge (:mod:`srum_core.eval_judges`), with paired intervals against the base.

For every state (``base``, then each round's adapter), every prompt of the evaluation set (``n_per_category`` per
category, :mod:`srum_core.eval_sets`) and every seed, one image is generated at the seed
:func:`srum_core.evaluation.image_seed` gives — the same in every state, so differences are paired — and gets

- the **evaluation judge**'s score in [0, 1] and pass/fail (with its per-question answers, name and version);
- the **self-judge**'s global score ``g`` (the model judging itself as in a SRUM round; pass when ``g > 0``).

Results per state: per-category mean score (0–100) and pass rate; the paired bootstrap 95% interval of the
change against the base on the same (prompt, seed) items; the worst images per category; and the self-judge's
agreement with the evaluation judge (balanced accuracy, AUROC of ``g``) — a self-judge that grows more lenient
than the independent judge over rounds is the signature of reward hacking.

Folder (``OUT/``)::

    evaluation.json   the plan: backend, states, set, prompts, seeds, judge, generation settings
    items.jsonl       one line per image (appended as each is scored: an interrupted run resumes from here)
    images/<state>/   the images, <prompt index>_s<seed>.png
    results.json      the summary (written at the end)

Resuming (``resume=True``) needs the same plan; items already in ``items.jsonl`` are not generated again.
"""

from __future__ import annotations

import json
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from .config import GenerationConfig, JudgeConfig, check_int
from .eval_judges import EvalJudge, EvalJudgeConfig, build_judge
from .eval_sets import eval_set_prompts
from .evaluation import image_seed
from .protocol import Cancelled, ProgressCallback, ProgressEvent
from .stats import auroc, balanced_accuracy, paired_bootstrap
from .types import PromptItem

logger = logging.getLogger(__name__)

PLAN_FILE = "evaluation.json"
ITEMS_FILE = "items.jsonl"
RESULTS_FILE = "results.json"
IMAGES_DIR = "images"
BASE = "base"


@dataclass(frozen=True)
class EvaluationConfig:
    """What an evaluation measures. ``eval_set``: a set name of :func:`srum_core.eval_sets.eval_set_prompts`
    (None: the backend's own evaluation set). ``seeds``: generation seeds, each prompt drawn at every one."""

    eval_set: str | None = None
    categories: tuple[str, ...] | None = None
    n_per_category: int = 4
    seeds: tuple[int, ...] = (0,)
    prompt_seed: int = 0
    judge: EvalJudgeConfig = field(default_factory=EvalJudgeConfig)
    worst_k: int = 3
    n_resamples: int = 2000

    def __post_init__(self) -> None:
        object.__setattr__(self, "n_per_category", check_int(self.n_per_category, "n_per_category", 1, 10_000))
        seeds = tuple(check_int(s, "seed", 0, 2**31 - 1) for s in self.seeds)
        if not seeds or len(set(seeds)) != len(seeds):
            raise ValueError(f"seeds={self.seeds!r}: give one or more distinct seeds")
        object.__setattr__(self, "seeds", seeds)
        if self.categories is not None:
            object.__setattr__(self, "categories", tuple(str(c) for c in self.categories) or None)
        object.__setattr__(self, "prompt_seed", check_int(self.prompt_seed, "prompt_seed", 0, 2**31 - 1))
        object.__setattr__(self, "worst_k", check_int(self.worst_k, "worst_k", 0, 100))
        object.__setattr__(self, "n_resamples", check_int(self.n_resamples, "n_resamples", 100, 100_000))
        if isinstance(self.judge, dict):
            object.__setattr__(self, "judge", EvalJudgeConfig(**self.judge))

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["seeds"] = list(self.seeds)
        data["categories"] = list(self.categories) if self.categories else None
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> EvaluationConfig:
        data = dict(data)
        if data.get("categories") is not None:
            data["categories"] = tuple(data["categories"])
        if "seeds" in data:
            data["seeds"] = tuple(data["seeds"])
        if isinstance(data.get("judge"), dict):
            data["judge"] = EvalJudgeConfig(**data["judge"])
        return cls(**data)


@dataclass(frozen=True)
class EvalState:
    """A model state to evaluate: ``base`` (run_dir None) or a round's run folder."""

    label: str
    run_dir: str | None = None


def states_for(run_dirs: Sequence[str | os.PathLike[str]]) -> list[EvalState]:
    """``base`` then ``round1``..``roundk`` for the given run folders, in order."""
    return [EvalState(BASE), *(EvalState(f"round{i}", str(d)) for i, d in enumerate(run_dirs, start=1))]


def _image_name(state: str, index: int, seed: int) -> str:
    return f"{IMAGES_DIR}/{state}/{index:04d}_s{seed}.png"


def read_items(out_dir: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The scored images of an evaluation folder (a torn last line from a kill is ignored; the last line of a key
    wins)."""
    path = Path(out_dir) / ITEMS_FILE
    if not path.is_file():
        return []
    by_key: dict[tuple[str, int, int], dict[str, Any]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            item = json.loads(line)
        except json.JSONDecodeError:
            continue
        by_key[(item["state"], int(item["prompt_index"]), int(item["seed"]))] = item
    return list(by_key.values())


def _open_items(path: Path) -> Any:
    """``items.jsonl`` for appending, cut back to its last complete line (a kill can leave half a line)."""
    if path.is_file():
        data = path.read_bytes()
        if data and not data.endswith(b"\n"):
            with path.open("r+b") as handle:
                handle.truncate(data.rfind(b"\n") + 1)
    return path.open("a", encoding="utf-8")


def _write_json(path: Path, payload: dict[str, Any]) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    tmp.replace(path)


def _use_state(backend: Any, state: EvalState) -> None:
    from .adapters import reset_to_base
    from .runs import load_run

    if state.run_dir is None:
        reset_to_base(backend)
    else:
        load_run(state.run_dir, backend)


def run_evaluation(
    backend: Any,
    states: Sequence[EvalState],
    config: EvaluationConfig,
    out_dir: str | os.PathLike[str],
    *,
    generation: GenerationConfig | None = None,
    self_judge: JudgeConfig | None = None,
    judge: EvalJudge | None = None,
    resume: bool = False,
    callback: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> dict[str, Any]:
    """Generate and score every (state, prompt, seed) not yet in ``out_dir``; write and return the summary.

    ``judge``: a ready evaluation judge (default: built from ``config.judge``). Each image is written to
    ``items.jsonl`` as soon as it is scored, so a killed run loses at most the batch in flight.
    """
    if not states or states[0].label != BASE:
        raise ValueError("an evaluation compares against the base: the first state must be 'base'")
    out = Path(out_dir)
    generation = generation or GenerationConfig()
    self_judge = self_judge or JudgeConfig()
    eval_set, prompts = evaluation_prompts(backend, config)
    judge = judge or build_judge(config.judge, backend)
    plan = {
        "backend": backend.name,
        "states": [asdict(s) for s in states],
        "eval_set": eval_set,
        "config": config.to_dict(),
        "judge": judge.name,
        "self_judge": f"self-judge:{backend.name} (global g > 0)",
        "generation": generation.to_dict(),
        "prompts": [{"prompt": p.text, "category": p.category} for p in prompts],
    }
    plan_path = out / PLAN_FILE
    if plan_path.is_file():
        if not resume:
            raise FileExistsError(f"{out} already holds an evaluation; pass --resume to continue it, or a new --out")
        previous = json.loads(plan_path.read_text(encoding="utf-8"))
        changed = [k for k in plan if previous.get(k) != plan[k]]
        if changed:
            raise ValueError(
                f"{out} was started with other settings ({', '.join(changed)}); resume it unchanged "
                "or evaluate into a new --out"
            )
    else:
        out.mkdir(parents=True, exist_ok=True)
        _write_json(plan_path, plan)
    done = {(i["state"], int(i["prompt_index"]), int(i["seed"])) for i in read_items(out)}
    jobs = [(s, i, seed) for s in states for seed in config.seeds for i in range(len(prompts))]
    total, finished = len(jobs), sum(1 for s, i, seed in jobs if (s.label, i, seed) in done)
    if finished:
        logger.info("resuming %s: %d of %d images already scored", out, finished, total)
    with _open_items(out / ITEMS_FILE) as handle:
        for state in states:
            pending = [(i, seed) for s, i, seed in jobs if s is state and (s.label, i, seed) not in done]
            if not pending:
                continue
            _use_state(backend, state)
            (out / IMAGES_DIR / state.label).mkdir(parents=True, exist_ok=True)
            for start in range(0, len(pending), generation.batch_size):
                if cancel is not None and cancel.is_set():
                    raise Cancelled("evaluation cancelled; run it again with resume to continue")
                chunk = pending[start : start + generation.batch_size]
                items = [prompts[i] for i, _ in chunk]
                seeds = [image_seed(seed, i) for i, seed in chunk]
                samples = backend.generate([p.text for p in items], seeds, generation)
                images = [s.image for s in samples]
                verdicts = judge.judge(images, items)
                for (index, seed), item, gen_seed, image, verdict in zip(chunk, items, seeds, images, verdicts):
                    own = backend.judge_global(image, item.text, self_judge)
                    name = _image_name(state.label, index, seed)
                    _as_pil(image).save(out / name)
                    record = _record(state, index, seed, gen_seed, item, name, verdict, own, judge)
                    handle.write(json.dumps(record) + "\n")
                    handle.flush()
                    finished += 1
                    if callback is not None:
                        metrics = {} if verdict.score is None else {"score": float(verdict.score)}
                        callback(
                            ProgressEvent(
                                "evaluate",
                                finished,
                                total,
                                metrics,
                                preview=image,
                                message=f"{state.label}: {item.text}",
                            )
                        )
    results = summarise_evaluation(read_items(out), [s.label for s in states], config)
    results.update(
        backend=backend.name,
        eval_set=eval_set,
        judge=judge.name,
        judge_config=config.judge.to_dict(),
        self_judge=plan["self_judge"],
        states=[asdict(s) for s in states],
        seeds=list(config.seeds),
    )
    _write_json(out / RESULTS_FILE, results)
    return results


def evaluation_prompts(backend: Any, config: EvaluationConfig) -> tuple[str, list[PromptItem]]:
    """The set an evaluation draws from (``config.eval_set`` or the backend's own) and its prompts; raises with
    the known sets or categories when ``config`` names one that does not exist."""
    eval_set = config.eval_set or _default_set(backend)
    return eval_set, eval_set_prompts(backend, eval_set, config.categories, config.n_per_category, config.prompt_seed)


def _default_set(backend: Any) -> str:
    sets = backend.prompt_sets()
    return "eval" if "eval" in sets else sets[0]


def _as_pil(image: Any) -> Any:
    from .vlm_judging import as_pil

    return as_pil(image)


def _record(
    state: EvalState,
    index: int,
    seed: int,
    gen_seed: int,
    item: PromptItem,
    image: str,
    verdict: Any,
    own: Any,
    judge: EvalJudge,
) -> dict[str, Any]:
    self_score = float(own.score) if own.usable else None
    return {
        "state": state.label,
        "prompt_index": index,
        "seed": seed,
        "generation_seed": gen_seed,
        "prompt": item.text,
        "category": item.category,
        "image": image,
        "score": verdict.score,
        "passed": verdict.passed,
        "questions": [q.to_dict() for q in verdict.questions],
        "note": verdict.note,
        "judge": judge.name,
        "judge_version": judge.version,
        "self_score": self_score,
        "self_pass": None if self_score is None else self_score > 0,
    }


# ----------------------------------------------------------------------------------------------------------
# Summary (pure: items in, numbers out)


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _scores(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    scored = [i for i in items if i["score"] is not None]
    return {
        "n": len(items),
        "n_scored": len(scored),
        "score": None if not scored else 100.0 * _mean([float(i["score"]) for i in scored]),
        "pass_rate": None if not scored else 100.0 * _mean([float(bool(i["passed"])) for i in scored]),
    }


def _paired(base: Sequence[dict[str, Any]], other: Sequence[dict[str, Any]], n_resamples: int) -> dict[str, Any] | None:
    first = {(i["prompt_index"], i["seed"]): i["score"] for i in base if i["score"] is not None}
    pairs = [
        (first[(i["prompt_index"], i["seed"])], i["score"])
        for i in other
        if i["score"] is not None and (i["prompt_index"], i["seed"]) in first
    ]
    if not pairs:
        return None
    d = paired_bootstrap([100.0 * a for a, _ in pairs], [100.0 * b for _, b in pairs], n_resamples=n_resamples)
    return {"n": d.n, "delta": d.delta, "ci95": [d.low, d.high]}


def agreement(items: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The self-judge measured against the evaluation judge on the same images: balanced accuracy of
    ``g > 0`` against the judge's pass, AUROC of ``g``, raw agreement and both pass rates (None where undefined)."""
    both = [i for i in items if i["passed"] is not None and i["self_score"] is not None]
    truth = [bool(i["passed"]) for i in both]
    own = [bool(i["self_pass"]) for i in both]
    return {
        "n": len(both),
        "balanced_accuracy": balanced_accuracy(truth, own) if both else None,
        "auroc": auroc(truth, [float(i["self_score"]) for i in both]) if both else None,
        "raw_agreement": _mean([float(a == b) for a, b in zip(truth, own)]),
        "self_pass_rate": _mean([float(x) for x in own]),
        "judge_pass_rate": _mean([float(x) for x in truth]),
    }


def summarise_evaluation(
    items: Sequence[dict[str, Any]], states: Sequence[str], config: EvaluationConfig
) -> dict[str, Any]:
    """Per state: overall and per-category scores, the paired change against the base, the worst images per
    category and the self-judge's agreement with the evaluation judge. Scores are 0–100."""
    by_state = {s: [i for i in items if i["state"] == s] for s in states}
    categories = list(dict.fromkeys(i["category"] for i in items))
    out: dict[str, Any] = {"categories": categories, "per_state": {}}
    base = by_state.get(BASE, [])
    for state in states:
        mine = by_state[state]
        entry: dict[str, Any] = {
            "overall": _scores(mine),
            "per_category": {c: _scores([i for i in mine if i["category"] == c]) for c in categories},
            "agreement": agreement(mine),
            "judge_versions": sorted({i["judge_version"] for i in mine}),
        }
        if state != BASE:
            entry["vs_base"] = {
                "overall": _paired(base, mine, config.n_resamples),
                "per_category": {
                    c: _paired(
                        [i for i in base if i["category"] == c],
                        [i for i in mine if i["category"] == c],
                        config.n_resamples,
                    )
                    for c in categories
                },
            }
        entry["worst"] = {c: _worst([i for i in mine if i["category"] == c], config.worst_k) for c in categories}
        out["per_state"][state] = entry
    return out


def _worst(items: Sequence[dict[str, Any]], k: int) -> list[dict[str, Any]]:
    scored = sorted((i for i in items if i["score"] is not None), key=lambda i: (i["score"], i["prompt_index"]))
    return [
        {
            "image": i["image"],
            "prompt": i["prompt"],
            "seed": i["seed"],
            "score": i["score"],
            "failed_questions": [q["question"] for q in i["questions"] if q["p_yes"] is not None and q["p_yes"] <= 0.5],
        }
        for i in scored[:k]
    ]


def read_results(out_dir: str | os.PathLike[str]) -> dict[str, Any]:
    """The ``results.json`` of a finished evaluation folder."""
    path = Path(out_dir) / RESULTS_FILE
    if not path.is_file():
        raise FileNotFoundError(f"{path} is missing: the evaluation has not finished (resume it to finish)")
    return json.loads(path.read_text(encoding="utf-8"))
