"""One SRUM round, top to bottom (SRUM_SPEC §1): the model rewards itself and trains on its own images.

    sample_prompts      → list[PromptItem]               a prompt set of the backend, T2I-CompBench, or a file
                                                         (srum_core.prompt_sets)
    generate_samples    → list[Sample]                   one image per prompt, seed recorded (image_seed)
    propose_regions     → list[list[Region]]             the backend's default box source or the named one
    judge_samples       → list[RewardReport]             global judgement + one judgement per region
    training_maps       → list[RewardMap | None]         any map mode; None = global judgement unusable
    select_training_set → TrainingSet                    images without a usable global score are left out
                                                         and counted, never dropped silently (and, with the
                                                         optional ``gate``, images judged at or below it)
    train_on_samples    → TrainResult                    L = mean((w + λ)·e) on the model's own samples
    evaluate            → EvalResult                     referee + self-judge, before and after

Regions, judgements and maps come from :mod:`srum_core.scoring`, the same path the Inspect tab shows.
:func:`run_round` chains the stages, hands its :class:`RoundResult` to :func:`srum_core.runs.write_round` and
leaves the backend in the trained state. A cancelled or failed round restores the weights it started from,
writes nothing, and never touches the run it resumed from. Under ``accelerate launch`` generation, proposals,
judging and evaluation are split across processes, gradients are averaged, and only the main process writes.
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from .adapters import (
    adapter_state,
    attach_adapter,
    check_train_part,
    init_adapter,
    load_adapter_state,
    read_adapter_config,
    restore_adapter,
    snapshot_adapter,
    zero_adapter_bypassed,
)
from .boxes.user import USER_BOX_SOURCE
from .checkpoints import StageCheckpoint, stored_key
from .config import GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig, _set, check_float, check_int
from .distributed import ProcessInfo, barrier, gather_objects, process_info, shard
from .evaluation import EvalResult, eval_prompts, evaluate, image_seed, paired_referee_change, referee_passed
from .limits import MAX_SEED
from .prompt_sets import sample_prompts
from .protocol import Cancelled, ProgressCallback, ProgressEvent, check_generation_mode, generation_modes
from .runs import load_run, read_run, write_round
from .scoring import judge_image, propose_image_regions, resolve_box_source, training_maps
from .training import TrainResult, train_on_samples
from .types import PromptItem, Region, RewardMap, RewardReport, Sample

logger = logging.getLogger(__name__)

__all__ = ["Cancelled", "RoundConfig", "RoundResult", "run_round"]


@dataclass(frozen=True)
class RoundConfig:
    """Everything one round needs. ``seed`` (None = draw one; the result reports it) drives the prompt draw,
    the image seeds, the LoRA initialisation and the training noise — it replaces ``training.seed``.

    ``prompts``: one of the backend's prompt sets (``backend.prompt_sets()``, e.g. the sandbox's ``"train"`` /
    ``"val"``), ``"t2i-compbench"`` (the shipped T2I-CompBench training prompts) or a path to a JSON/JSONL prompt
    file (strings, or objects with ``prompt``/``Question`` and optional ``category``/``Category``).
    ``categories``: keep only these categories (None = all). ``n_prompts``: prompts drawn this round, each
    generated ``images_per_prompt`` times at different seeds (default 1: one image per prompt).
    ``eval_split``: the backend's prompt set evaluated before and after (None = no evaluation); ``eval_n_prompts``
    prompts per category at each of ``eval_seeds``. ``n_fixed_samples``: before/after sample images at fixed prompts/seeds.
    ``gate``: None (SRUM: every image with a usable global score trains) or a threshold in [−1, 1): only images
    whose global self-score ``g`` exceeds it train — reward-gated rounds, an option outside SRUM for a base that
    fails most prompts (the gated-out images are counted in the summary).
    """

    prompts: str = "train"
    categories: tuple[str, ...] | None = None
    n_prompts: int = 16
    seed: int | None = None
    generation: GenerationConfig = field(default_factory=GenerationConfig)
    judge: JudgeConfig = field(default_factory=JudgeConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    eval_split: str | None = "val"
    eval_n_prompts: int = 4
    eval_seeds: tuple[int, ...] = (0,)
    eval_categories: tuple[str, ...] | None = None
    n_fixed_samples: int = 4
    gate: float | None = None
    images_per_prompt: int = 1

    def __post_init__(self) -> None:
        if not isinstance(self.prompts, str) or not self.prompts:
            raise ValueError("prompts must name a prompt set of the backend, 't2i-compbench', or a JSON/JSONL file")
        _set(self, "n_prompts", check_int(self.n_prompts, "n_prompts", 1, 100_000, "images drawn per round"))
        if self.seed is not None:
            _set(self, "seed", check_int(self.seed, "seed", 0, MAX_SEED, "or None for a random one"))
        # One seed per round: run_round makes it the training seed too (LoRA initialisation, batch order, noise).
        # training.seed is left at 0 (not set), or equals the round's seed in a config a round resolved.
        if self.training.seed not in (0, self.seed):
            raise ValueError(
                f"training.seed={self.training.seed} differs from the round's seed={self.seed}: a round has one "
                "seed; set RoundConfig.seed and leave training.seed at 0"
            )
        if self.categories is not None:
            _set(self, "categories", tuple(self.categories))
        if self.eval_categories is not None:
            _set(self, "eval_categories", tuple(self.eval_categories))
        _set(self, "eval_seeds", tuple(check_int(s, "eval seed", 0, MAX_SEED) for s in self.eval_seeds))
        _set(self, "eval_n_prompts", check_int(self.eval_n_prompts, "eval_n_prompts", 0, 100_000))
        if self.eval_split is not None and (self.eval_n_prompts < 1 or not self.eval_seeds):
            raise ValueError("evaluation needs eval_n_prompts ≥ 1 and at least one eval seed (or eval_split=None)")
        _set(self, "n_fixed_samples", check_int(self.n_fixed_samples, "n_fixed_samples", 0, 64))
        _set(
            self,
            "images_per_prompt",
            check_int(self.images_per_prompt, "images_per_prompt", 1, 1024, "images generated per drawn prompt"),
        )
        if self.n_prompts * self.images_per_prompt > 100_000:
            raise ValueError(
                f"{self.n_prompts} prompts × {self.images_per_prompt} images is more than 100000 images per round"
            )
        if self.gate is not None:
            _set(self, "gate", check_float(self.gate, "gate", -1.0, 1.0, "0 = judged 'yes'", hi_open=True))

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RoundConfig:
        data = dict(data)
        for key, kind in (
            ("generation", GenerationConfig),
            ("judge", JudgeConfig),
            ("reward", RewardConfig),
            ("training", TrainingConfig),
        ):
            if key in data:
                data[key] = kind(**data[key])
        for key in ("categories", "eval_categories", "eval_seeds"):
            if data.get(key) is not None:
                data[key] = tuple(data[key])
        return cls(**data)


@dataclass(frozen=True)
class TrainingSet:
    """The images that train, their ``(B, N)`` token weights, and which images were left out and why."""

    samples: tuple[Sample, ...]
    weights: np.ndarray
    kept: tuple[int, ...]
    excluded: tuple[int, ...]
    gated_out: tuple[int, ...] = ()


@dataclass(frozen=True)
class RoundImage:
    """One image of the round: its prompt and seed, the sample, the model's own reward report, the referee's
    verdict (None: no referee, or a prompt it cannot judge) and whether it trained."""

    item: PromptItem
    seed: int
    sample: Sample
    report: RewardReport
    referee_pass: bool | None
    trained: bool


@dataclass(frozen=True)
class FixedSample:
    """A before/after pair at one of the round's fixed prompts and seeds (PIL images)."""

    item: PromptItem
    seed: int
    before: Any
    after: Any


@dataclass(frozen=True)
class RoundResult:
    """What a completed round produced — everything :func:`srum_core.runs.write_round` writes.

    ``run_dir`` is None for a round run without an output folder; ``fixed`` is empty then.
    """

    run_dir: Path | None
    round_index: int
    seed: int
    config: RoundConfig
    n_samples: int
    n_trained: int
    n_excluded: int
    train: TrainResult
    summary: dict[str, Any]
    timings: dict[str, float]
    eval_before: EvalResult | None
    eval_after: EvalResult | None
    resumed_from: Path | None = None
    box_source: str = ""
    images: tuple[RoundImage, ...] = field(default=(), repr=False)
    fixed: tuple[FixedSample, ...] = field(default=(), repr=False)
    log: tuple[str, ...] = field(default=(), repr=False)


# ---------------------------------------------------------------------------------------------------------------
# Stages 2–4: generate, propose regions, judge (each split across processes)


def generate_samples(
    backend: Any,
    items: Sequence[PromptItem],
    seeds: Sequence[int],
    config: GenerationConfig,
    info: ProcessInfo,
    callback: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> list[Sample]:
    """One image per prompt at its seed, in batches of ``config.batch_size``; returns samples in prompt order."""
    mine = shard(list(zip(items, seeds)), info)
    done: list[tuple[int, Sample]] = []
    for start in range(0, len(mine), config.batch_size):
        _check_cancel(cancel, "generation")
        chunk = mine[start : start + config.batch_size]
        samples = backend.generate([item.text for _, (item, _) in chunk], [seed for _, (_, seed) in chunk], config)
        done += [(index, sample) for (index, _), sample in zip(chunk, samples)]
        if callback is not None:
            callback(ProgressEvent("generate", len(done), len(mine), preview=samples[-1].image))
    return gather_objects(done, info)


def propose_regions(
    backend: Any,
    samples: Sequence[Sample],
    config: JudgeConfig,
    info: ProcessInfo,
    cancel: threading.Event | None = None,
) -> list[list[Region]]:
    """Up to ``config.max_regions`` regions per image from the configured box source (the scoring path's)."""
    if config.box_source == USER_BOX_SOURCE:
        raise ValueError("a round proposes its own regions: choose one of the backend's box sources, not 'user'")
    done = []
    for index, sample in shard(samples, info):
        _check_cancel(cancel, "region proposal")
        _, regions = propose_image_regions(backend, sample.image, sample.prompt, config)
        done.append((index, regions))
    return gather_objects(done, info)


def judge_samples(
    backend: Any,
    samples: Sequence[Sample],
    regions: Sequence[Sequence[Region]],
    config: JudgeConfig,
    info: ProcessInfo,
    callback: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
) -> list[RewardReport]:
    """The model's own global and per-region judgements of each image, as reward reports."""
    mine = shard(list(zip(samples, regions)), info)
    done = []
    for count, (index, (sample, boxes)) in enumerate(mine, start=1):
        _check_cancel(cancel, "judging")
        report = judge_image(backend, sample.image, sample.prompt, boxes, config)
        done.append((index, report))
        if callback is not None:
            callback(ProgressEvent("judge", count, len(mine)))
    return gather_objects(done, info)


# ---------------------------------------------------------------------------------------------------------------
# Stages 5–6: reward maps and the training set


def select_training_set(
    samples: Sequence[Sample],
    maps: Sequence[RewardMap | None],
    reports: Sequence[RewardReport] | None = None,
    gate: float | None = None,
) -> TrainingSet:
    """The samples with a reward map and their ``(B, N)`` row-major token weights.

    ``excluded``: images without a map (global judgement unusable). With ``gate`` (needs ``reports``), images
    whose usable global score is ≤ ``gate`` are left out too and listed in ``gated_out``.
    """
    if gate is not None and reports is None:
        raise ValueError("a gate needs the reports, to read each image's global score")
    excluded = tuple(i for i, m in enumerate(maps) if m is None)
    gated_out: tuple[int, ...] = ()
    if gate is not None:
        gated_out = tuple(
            i for i, m in enumerate(maps) if m is not None and not reports[i].global_judgement.score > gate
        )
    left_out = set(gated_out)
    kept = tuple(i for i, m in enumerate(maps) if m is not None and i not in left_out)
    if kept:
        weights = np.stack([maps[i].token_weights for i in kept]).astype(np.float32)
    else:
        weights = np.zeros((0, 0), dtype=np.float32)
    return TrainingSet(
        samples=tuple(samples[i] for i in kept), weights=weights, kept=kept, excluded=excluded, gated_out=gated_out
    )


# ---------------------------------------------------------------------------------------------------------------
# Helpers for the run folder and summaries


def _check_cancel(cancel: threading.Event | None, what: str) -> None:
    if cancel is not None and cancel.is_set():
        raise Cancelled(f"round cancelled during {what}")


def _mean(values: Sequence[float]) -> float | None:
    return float(np.mean(values)) if len(values) else None


def reward_summary(reports: Sequence[RewardReport], maps: Sequence[RewardMap | None]) -> dict[str, Any]:
    """Each reward component's mean, and counts of what could not be read (logged separately, SRUM_SPEC §1.4)."""
    usable_global = [r.global_judgement.score for r in reports if r.trainable]
    regions = [j for r in reports for j in r.regions]
    usable_regions = [j.score for j in regions if j.usable]
    token_means = [float(m.token.mean()) for m in maps if m is not None]
    return {
        "n_samples": len(reports),
        "n_trainable": len(usable_global),
        "n_excluded_global_unusable": len(reports) - len(usable_global),
        "global_reward_mean": _mean(usable_global),
        "n_regions": len(regions),
        "n_regions_unusable": len(regions) - len(usable_regions),
        "region_reward_mean": _mean(usable_regions),
        "token_weight_mean": _mean(token_means),
    }


def referee_summary(
    backend: Any, samples: Sequence[Sample], items: Sequence[PromptItem], reports: Sequence[RewardReport]
) -> dict:
    """Referee accuracy and judge–referee agreement on the round's own images (prompts of the backend's own prompt
    sets only, which carry their parsed meaning; none without a referee)."""
    referee = backend.referee()
    verdicts = [
        referee_passed(referee, s.image, item) if referee is not None and item.spec is not None else None
        for s, item in zip(samples, items)
    ]
    judged = [(v, r.global_judgement.score > 0) for v, r in zip(verdicts, reports) if v is not None and r.trainable]
    known = [v for v in verdicts if v is not None]
    return {
        "train_referee_accuracy": _mean([float(v) for v in known]),
        "train_judge_referee_agreement": _mean([float(v == j) for v, j in judged]),
        "referee_verdicts": verdicts,
    }


def _fixed_sample_items(backend: Any, config: RoundConfig, items: Sequence[PromptItem]) -> list[PromptItem]:
    if config.n_fixed_samples == 0:
        return []
    if config.eval_split is not None:
        pool = eval_prompts(backend, config.eval_split, config.eval_categories or config.categories, 1, 0)
    else:
        pool = list(items)
    return pool[: config.n_fixed_samples]


def _fixed_seed(config: RoundConfig, index: int) -> int:
    return image_seed(config.eval_seeds[0] if config.eval_seeds else 0, index)


class _RoundLog:
    """Lines for ``round.log`` (main process), mirrored to this module's logger."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def __call__(self, message: str, *args: Any) -> None:
        text = message % args if args else message
        logger.info(text)
        self.lines.append(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {text}")


def _draw_seed(info: ProcessInfo) -> int:
    """A fresh seed, the same on every process (the main process's draw)."""
    return int(gather_objects([(info.rank, secrets.randbelow(2**31))], info)[0])


def _same_eval_settings(backend: Any, previous: dict[str, Any], config: RoundConfig) -> bool:
    """Whether a resumed run's "after" evaluation is exactly the evaluation this round would run "before"."""
    after = previous.get("after") or {}
    wanted = config.eval_categories or config.categories or backend.categories()
    return (
        after.get("split") == config.eval_split
        and after.get("n_prompts") == config.eval_n_prompts
        and tuple(after.get("seeds", ())) == config.eval_seeds
        and after.get("prompt_seed") == 0
        and previous.get("generation") == config.generation.to_dict()
        and previous.get("judge") == config.judge.to_dict()
        and sorted(after.get("per_category", {})) == sorted(wanted)
    )


# ---------------------------------------------------------------------------------------------------------------
# The round


def run_round(
    backend: Any,
    config: RoundConfig,
    out_dir: str | os.PathLike[str] | None,
    *,
    resume: str | os.PathLike[str] | None = None,
    callback: ProgressCallback | None = None,
    cancel: threading.Event | None = None,
    checkpoint: str | os.PathLike[str] | None = None,
) -> RoundResult:
    """Run one SRUM round on ``backend`` and write its folder ``out_dir`` (must not exist; None = write nothing).

    Starts from ``resume``'s adapter (a previous round's folder) or from the base model. On success the backend
    keeps the trained weights; on cancellation (:class:`Cancelled`) or error it is restored to the starting
    weights and no folder appears.

    ``checkpoint``: a folder for the round's completed stages (:mod:`srum_core.checkpoints`; one process only).
    Each stage saves its result there as it completes; a round run again with the same folder and settings loads
    the completed stages instead of redoing them (a seed drawn by the interrupted round is reused), and continues
    from the first stage that did not complete. The folder is removed once the run folder is written.
    """
    info = process_info()
    if checkpoint is not None and info.world_size > 1:
        raise ValueError("stage checkpoints are for a round in one process; run without a checkpoint folder")
    seed = config.seed if config.seed is not None else _stored_seed(checkpoint)
    seed = seed if seed is not None else _draw_seed(info)
    config = replace(config, seed=seed, training=replace(config.training, seed=seed),
                     generation=resolve_generation_mode(backend, config.generation))
    out_dir = Path(out_dir) if out_dir is not None else None
    _check_round_inputs(backend, config, out_dir, resume)
    writes = out_dir is not None and info.is_main
    log = _RoundLog()
    timings: dict[str, float] = {}

    def emit(event: ProgressEvent) -> None:
        if callback is not None and info.is_main:
            callback(event)

    stages = None
    if checkpoint is not None:
        key = {"config": config.to_dict(), "resume": None if resume is None else str(resume), "backend": backend.name}
        stages = StageCheckpoint(checkpoint, key)  # refuses a folder of another round before any work
    entry = snapshot_adapter(backend)  # restored exactly (rank included) if the round does not complete
    try:
        round_index, previous_eval = _start_from(backend, config.training, resume, log)
        if stages is not None and stages.stages():
            log("continuing an interrupted round: stages %s completed, loaded from %s", ", ".join(stages.stages()),
                stages.folder)
        log("round %d on backend %s, seed %d, %d process(es)", round_index, backend.name, seed, info.world_size)
        prompts = sample_prompts(backend, config.prompts, config.categories, config.n_prompts, seed)
        fixed = _fixed_sample_items(backend, config, prompts) if writes else []
        # Each prompt images_per_prompt times in a row; every image gets its own seed.
        items = [item for item in prompts for _ in range(config.images_per_prompt)]
        seeds = [image_seed(seed, i) for i in range(len(items))]

        # Until training, a round from the base model runs without its all-zero LoRA layers (bit-identical).
        with zero_adapter_bypassed(backend) as bypassed:
            if bypassed:
                log("the adapter adds nothing yet: generating and judging without its layers")
            def generate() -> tuple[list[Any], list[Sample]]:
                before = _fixed_images(backend, fixed, config)
                with _timed(timings, "generate"):
                    return before, generate_samples(backend, items, seeds, config.generation, info, emit, cancel)

            before_images, samples = _stage(stages, "generate", timings, generate)
            log("generated %d images of %d prompts from %s", len(samples), len(prompts), config.prompts)
            def judge() -> tuple[list[list[Region]], list[RewardReport]]:
                with _timed(timings, "propose"):
                    found = propose_regions(backend, samples, config.judge, info, cancel)
                with _timed(timings, "judge"):
                    return found, judge_samples(backend, samples, found, config.judge, info, emit, cancel)

            regions, reports = _stage(stages, "judge", timings, judge)
            maps = training_maps(reports, config.reward, backend.token_size)
            train_set = select_training_set(samples, maps, reports, config.gate)
            rewards = _log_rewards(reward_summary(reports, maps), train_set, config.gate, log)
            known = {k: v for k, v in rewards.items() if v is not None}
            emit(ProgressEvent("judge", len(reports), len(reports), metrics=known))
            referee = referee_summary(backend, samples, items, reports)
            def evaluate_before() -> EvalResult | None:
                with _timed(timings, "evaluate"):
                    return _evaluate_before(backend, config, previous_eval, emit, cancel, info, log)

            eval_before = _stage(stages, "evaluate_before", timings, evaluate_before)

        def train() -> tuple[TrainResult, dict[str, Any] | None]:
            with _timed(timings, "train"):
                done = train_on_samples(
                    backend, train_set.samples, train_set.weights, config.training, callback=emit, cancel=cancel,
                    info=info,
                )
            return done, (adapter_state(backend) if stages is not None else None)  # weights copied only to keep

        trained_before = stages is not None and stages.has("train")
        trained, state = _stage(stages, "train", timings, train)
        if trained_before:
            load_adapter_state(backend, state)
        _log_training(trained, len(train_set.samples), config.training, log)
        with _timed(timings, "evaluate"):
            eval_after = _evaluate(backend, config, emit, cancel, info) if config.eval_split is not None else None
        _check_cancel(cancel, "the end of the round")

        summary = _round_summary(round_index, seed, rewards, referee, train_set, trained, eval_before, eval_after, timings)
        log("round %d done in %.1f s", round_index, sum(timings.values()))
        after_images = _fixed_images(backend, fixed, config)
        verdicts, kept = referee["referee_verdicts"], set(train_set.kept)
        result = RoundResult(
            run_dir=out_dir,
            round_index=round_index,
            seed=seed,
            config=config,
            n_samples=len(samples),
            n_trained=len(train_set.samples),
            n_excluded=len(train_set.excluded),
            train=trained,
            summary=summary,
            timings=timings,
            eval_before=eval_before,
            eval_after=eval_after,
            resumed_from=Path(resume) if resume is not None else None,
            box_source=resolve_box_source(backend, config.judge.box_source)[0],
            images=tuple(
                RoundImage(item, item_seed, sample, report, verdicts[i], i in kept)
                for i, (item, item_seed, sample, report) in enumerate(zip(items, seeds, samples, reports))
            ),
            fixed=tuple(
                FixedSample(item, _fixed_seed(config, i), before, after)
                for i, (item, before, after) in enumerate(zip(fixed, before_images, after_images))
            ),
            log=tuple(log.lines),
        )
        if writes:
            write_round(out_dir, result, backend)
        barrier(info)
    except BaseException:
        restore_adapter(backend, entry)  # undo everything this round did to the backend; no folder was written
        if stages is not None and stages.stages():
            log("round interrupted: completed stages %s kept in %s", ", ".join(stages.stages()), stages.folder)
        raise
    if stages is not None:
        stages.remove()
    return result


def _stored_seed(checkpoint: str | os.PathLike[str] | None) -> int | None:
    """The seed an interrupted round drew, from its checkpoint folder (None: no such round)."""
    if checkpoint is None:
        return None
    key = stored_key(checkpoint)
    return None if key is None else key.get("config", {}).get("seed")


def _stage(stages: StageCheckpoint | None, name: str, timings: dict[str, float], run: Any) -> Any:
    """Stage ``name``'s result: loaded (with the timings so far) where an interrupted round completed it, else
    ``run()``, then saved with the timings so far when the round keeps checkpoints."""
    if stages is not None and stages.has(name):
        value, done = stages.load(name)
        timings.update(done)
        return value
    value = run()
    if stages is not None:
        stages.save(name, (value, dict(timings)))
    return value


def default_eval_split(backend: Any) -> str:
    """The prompt set a round evaluates by default: the backend's in-distribution ``eval`` set where it has one
    (prompts of the rounds' own kind that no round trains on), else ``val``."""
    return "eval" if "eval" in backend.prompt_sets() else "val"


def resolve_generation_mode(backend: Any, generation: GenerationConfig) -> GenerationConfig:
    """A round's generation mode: as given, or (None) think where the backend has a think mode — SRUM's released
    pipeline generates its training images in think mode — else plain."""
    if generation.mode is not None:
        return generation
    return replace(generation, mode="think" if "think" in generation_modes(backend) else "plain")


def _check_round_inputs(
    backend: Any, config: RoundConfig, out_dir: Path | None, resume: str | os.PathLike[str] | None
) -> None:
    """Refuse, before any work, what would make the round fail later."""
    if out_dir is not None and out_dir.exists():
        raise FileExistsError(f"run folder {out_dir} already exists; choose a new --out folder")
    check_generation_mode(backend, config.generation.mode)
    check_train_part(backend, config.training.train_part)
    if config.eval_split is not None and config.eval_split not in backend.prompt_sets():
        eval_prompts(backend, config.eval_split, None, 1, 0)  # raises, naming the sets the backend offers
    if resume is not None:
        _check_resumable(resume, config.training)


def _start_from(
    backend: Any, training: TrainingConfig, resume: str | os.PathLike[str] | None, log: _RoundLog
) -> tuple[int, dict[str, Any] | None]:
    """Put the starting adapter on the backend: the resumed round's, or a fresh one drawn from the round's seed
    alone (a round from the base is reproducible). Returns the round index and the resumed run's evaluation."""
    round_index, previous_eval = 1, None
    if resume is not None:
        resumed = load_run(resume, backend)
        round_index, previous_eval = resumed.round_index + 1, resumed.eval
        log("resumed from %s (round %d)", resume, resumed.round_index)
    attach_adapter(backend, training)
    if resume is None:
        init_adapter(backend, training.seed)
    return round_index, previous_eval


def _evaluate_before(
    backend: Any,
    config: RoundConfig,
    previous_eval: dict[str, Any] | None,
    emit: ProgressCallback,
    cancel: threading.Event | None,
    info: ProcessInfo,
    log: _RoundLog,
) -> EvalResult | None:
    """The evaluation before training: the resumed round's "after" when it was made with the same settings."""
    if config.eval_split is None:
        return None
    if previous_eval is not None and _same_eval_settings(backend, previous_eval, config):
        log("evaluation before = the resumed round's evaluation after (same settings)")
        return EvalResult.from_dict(previous_eval["after"])
    return _evaluate(backend, config, emit, cancel, info)


def _log_rewards(rewards: dict[str, Any], train_set: TrainingSet, gate: float | None, log: _RoundLog) -> dict[str, Any]:
    """Log what the judge found (and the gate kept); returns ``rewards`` with the gate's count added."""
    if gate is not None:
        rewards = {**rewards, "n_gated_out": len(train_set.gated_out)}
        log("gate g > %g: %d of %d judged images train", gate, len(train_set.kept), rewards["n_trainable"])
    log(
        "judged %d images: %d train, %d left out (global judgement unusable), %d/%d regions unusable; "
        "mean g %s, mean region score %s, mean token weight %s",
        rewards["n_samples"],
        rewards["n_trainable"],
        rewards["n_excluded_global_unusable"],
        rewards["n_regions_unusable"],
        rewards["n_regions"],
        rewards["global_reward_mean"],
        rewards["region_reward_mean"],
        rewards["token_weight_mean"],
    )
    return rewards


def _log_training(trained: TrainResult, n_images: int, training: TrainingConfig, log: _RoundLog) -> None:
    if trained.metrics:
        first, last = trained.metrics[0]["loss"], trained.metrics[-1]["loss"]
        log("trained %d steps on %d images: loss %.5f → %.5f", trained.steps, n_images, first, last)
    else:
        log("no training step (steps=%d, %d trainable images)", training.steps, n_images)


def _round_summary(
    round_index: int,
    seed: int,
    rewards: dict[str, Any],
    referee: dict[str, Any],
    train_set: TrainingSet,
    trained: TrainResult,
    eval_before: EvalResult | None,
    eval_after: EvalResult | None,
    timings: dict[str, float],
) -> dict[str, Any]:
    """The round's line of ``metrics.jsonl``: each reward component, referee, evaluation and timing figure."""
    summary: dict[str, Any] = {"kind": "round", "round": round_index, "seed": seed, "steps": trained.steps}
    summary.update(rewards)
    summary.update({k: v for k, v in referee.items() if k != "referee_verdicts"})
    summary["n_trained"] = len(train_set.kept)
    trained_verdicts = [referee["referee_verdicts"][i] for i in train_set.kept]
    summary["trained_referee_accuracy"] = _mean([float(v) for v in trained_verdicts if v is not None])
    if eval_before is not None:
        summary.update(eval_before.flat_metrics("eval_before"))
    if eval_after is not None:
        summary.update(eval_after.flat_metrics("eval_after"))
    if eval_before is not None and eval_after is not None:
        change = paired_referee_change(eval_before, eval_after)
        if change is not None:
            summary.update({f"referee_change/{k}": v for k, v in change.items() if k != "ci95"})
            summary["referee_change/ci95_low"], summary["referee_change/ci95_high"] = change["ci95"]
    summary.update({f"time/{k}": v for k, v in timings.items()})
    for key in ("loss", "reward_term", "constraint_term"):
        if trained.metrics:
            summary[f"final_{key}"] = trained.metrics[-1][key]
    return summary


@contextmanager
def _timed(timings: dict[str, float], stage: str) -> Iterator[None]:
    """Add the wall time of the ``with`` block to ``timings[stage]``."""
    start = time.perf_counter()
    try:
        yield
    finally:
        timings[stage] = timings.get(stage, 0.0) + time.perf_counter() - start


def _check_resumable(resume: str | os.PathLike[str], training: TrainingConfig) -> None:
    """Refuse to continue a run's adapter with another adapter shape (it cannot keep training as another rank)."""
    saved = TrainingConfig(**read_adapter_config(read_run(resume).adapter_dir)["training"])
    if saved.full_finetune != training.full_finetune:
        kinds = {True: "full fine-tuning", False: "LoRA"}
        raise ValueError(
            f"run {resume} trained with {kinds[saved.full_finetune]}; a {kinds[training.full_finetune]} round cannot "
            "continue it (match full_finetune, or start from the base model)"
        )
    if saved.train_part != training.train_part:
        raise ValueError(
            f"run {resume} trained the {saved.train_part!r} part; a round on {training.train_part!r} cannot continue "
            f"it (--train-part {saved.train_part}, or start from the base model)"
        )
    if not training.full_finetune and (
        saved.lora_rank != training.lora_rank or saved.effective_lora_alpha != training.effective_lora_alpha
    ):
        raise ValueError(
            f"run {resume} has a LoRA adapter of rank {saved.lora_rank} (alpha {saved.effective_lora_alpha}) but "
            f"the round asks for rank {training.lora_rank} (alpha {training.effective_lora_alpha}); resume with the "
            "same rank or start from the base model"
        )


def eval_generation(backend: Any, generation: GenerationConfig) -> GenerationConfig:
    """How a round's evaluation draws: in plain mode where the backend has one (the prompt alone, what a round
    trains), whatever mode the round's own images used."""
    if "plain" in generation_modes(backend) and generation.mode not in (None, "plain"):
        return replace(generation, mode="plain")
    return generation


def _evaluate(
    backend: Any, config: RoundConfig, emit: ProgressCallback, cancel: threading.Event | None, info: ProcessInfo
) -> EvalResult:
    return evaluate(
        backend,
        config.eval_split,
        config.eval_categories or config.categories,
        config.eval_seeds,
        config.eval_n_prompts,
        generation=eval_generation(backend, config.generation),
        judge=config.judge,
        callback=emit,
        cancel=cancel,
        info=info,
    )


def _fixed_images(backend: Any, items: Sequence[PromptItem], config: RoundConfig) -> list[Any]:
    """The images of the fixed prompts at their fixed seeds, in the backend's current state."""
    if not items:
        return []
    seeds = [_fixed_seed(config, i) for i in range(len(items))]
    return [s.image for s in backend.generate([i.text for i in items], seeds, config.generation)]


def read_round_config(run_dir: str | os.PathLike[str]) -> RoundConfig:
    """The RoundConfig a run folder was made with (seed resolved)."""
    return RoundConfig.from_dict(read_run(run_dir).config)
