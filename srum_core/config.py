"""Typed, frozen configuration per concern, with defaults that run on a laptop CPU.

Change a value with ``dataclasses.replace(cfg, field=value)``; every config validates itself and says how
to fix a bad value. Each field carries its help text (``field(metadata={"help": ...})``): the CLI's flags and
the Workbench's inputs are built from these fields, so a parameter has one name, one default, one help text
and one validation (:func:`check_int`, :func:`check_float`). Named presets live in :data:`PRESETS`, read by
both the CLI (``round --preset``) and the UI (the Train tab's preset menu).
"""

from __future__ import annotations

import math
import numbers
from dataclasses import asdict, dataclass, field
from typing import Any

from .limits import MAX_SEED
from .templates import GLOBAL_FIELDS, REGION_FIELDS, check_template

MAP_MODES: tuple[str, ...] = ("released", "signed", "binary", "global-only", "local-only", "sft")
GRID_MODES: tuple[str, ...] = ("bilinear", "area")
REGION_VIEWS: tuple[str, ...] = ("crop", "coords", "boxes")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


def _int_span(lo: int | None, hi: int | None) -> str:
    if lo is not None and hi is not None:
        return f"from {lo} to {hi}"
    if lo is not None:
        return f"of {lo} or more"
    return f"of {hi} or less" if hi is not None else ""


def _float_span(lo: float | None, hi: float | None, lo_open: bool, hi_open: bool) -> str:
    parts = []
    if lo is not None:
        parts.append(f"{'above' if lo_open else 'at least'} {lo:g}")
    if hi is not None:
        parts.append(f"{'below' if hi_open else 'at most'} {hi:g}")
    return " and ".join(parts)


def check_int(value: Any, name: str, lo: int | None = None, hi: int | None = None, hint: str = "") -> int:
    """``value`` as an ``int`` when it is a whole number in ``[lo, hi]``; otherwise a one-line ``ValueError``.

    A float is accepted only when it is exactly whole (``2.0`` → ``2``): ``2.5``, NaN, infinities and booleans
    are refused, never rounded. ``hint`` is added to the message in parentheses (how to fix it).
    """
    suffix = f" ({hint})" if hint else ""
    wanted = f"give a whole number {_int_span(lo, hi)}".rstrip()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={_shown(value)}: {wanted}{suffix}")
    if isinstance(value, numbers.Integral):
        number = int(value)
    else:
        as_float = float(value)
        if not math.isfinite(as_float):
            raise ValueError(f"{name}={as_float}: {wanted}{suffix}")
        if not as_float.is_integer():
            raise ValueError(f"{name}={as_float}: {wanted}, not a fraction{suffix}")
        number = int(as_float)
    if (lo is not None and number < lo) or (hi is not None and number > hi):
        raise ValueError(f"{name}={_shown(value)}: {wanted}{suffix}")
    return number


def check_float(
    value: Any,
    name: str,
    lo: float | None = None,
    hi: float | None = None,
    hint: str = "",
    lo_open: bool = False,
    hi_open: bool = False,
) -> float:
    """``value`` as a finite ``float`` in ``[lo, hi]`` (``lo_open``/``hi_open``: exclusive ends); else a ``ValueError``.

    NaN, infinities, booleans and non-numbers are refused with a one-line message; ``hint`` says how to fix it.
    """
    suffix = f" ({hint})" if hint else ""
    wanted = f"give a finite number {_float_span(lo, hi, lo_open, hi_open)}".rstrip()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name}={_shown(value)}: {wanted}{suffix}")
    number = float(value)
    too_low = lo is not None and (number <= lo if lo_open else number < lo)
    too_high = hi is not None and (number >= hi if hi_open else number > hi)
    if not math.isfinite(number) or too_low or too_high:
        raise ValueError(f"{name}={number!r}: {wanted}{suffix}")
    return number


def _shown(value: Any) -> str:
    """A value as messages show it: short, on one line."""
    text = repr(value)
    return text if len(text) <= 40 else text[:40] + "…"


def _set(config: Any, name: str, value: Any) -> None:
    """Store a validated (normalised) value on a frozen dataclass."""
    object.__setattr__(config, name, value)


def check_choice(value: Any, name: str, choices: tuple[str, ...]) -> str:
    """``value`` when it is one of ``choices``; otherwise a one-line ``ValueError`` listing them."""
    if not isinstance(value, str) or value not in choices:
        raise ValueError(f"{name}={_shown(value)}: choose one of {', '.join(choices)}")
    return value


def help_of(config: type, name: str) -> str:
    """The help text of field ``name`` of config class ``config`` (what the CLI and the UI show)."""
    for item in config.__dataclass_fields__.values():
        if item.name == name:
            return str(item.metadata.get("help", ""))
    raise KeyError(f"{config.__name__} has no field {name!r}")


def default_of(config: type, name: str) -> Any:
    """The default value of field ``name`` of config class ``config`` (the CLI's and the UI's default)."""
    return getattr(config(), name)


def _help(text: str) -> dict[str, str]:
    return {"help": text}


GENERATION_MODES: tuple[str, ...] = ("plain", "think")
TRAIN_PARTS: tuple[str, ...] = ("gen", "all")


@dataclass(frozen=True)
class GenerationConfig:
    """How images are sampled. ``guidance`` is the classifier-free guidance scale (1.0 = off).

    ``mode``: ``plain`` (the prompt alone), ``think`` (the model first writes a plan of the scene with its
    understanding, then draws from prompt + plan; backends that have a think mode list it in
    ``generation_modes``) or None (the backend's own default; a SRUM round resolves None to ``think`` where the
    backend has it, as SRUM's released pipeline generates its training images in think mode).
    """

    steps: int = field(default=20, metadata=_help("sampling steps per image"))
    guidance: float = field(default=3.0, metadata=_help("classifier-free guidance scale (1.0 = off)"))
    batch_size: int = field(default=16, metadata=_help("images generated per batch"))
    device: str = field(default="auto", metadata=_help("auto, cpu, cuda or mps"))
    mode: str | None = field(
        default=None,
        metadata=_help("plain (the prompt alone), think (plan first, then draw) or none: the backend's default"),
    )

    def __post_init__(self) -> None:
        _set(self, "steps", check_int(self.steps, "steps", 1, 1000, "20 is a good CPU default"))
        _set(self, "guidance", check_float(self.guidance, "guidance", 0.0, 30.0, "1.0 disables guidance"))
        _set(self, "batch_size", check_int(self.batch_size, "batch_size", 1, 1024, "images per batch"))
        check_choice(self.device, "device", DEVICES)
        if self.mode is not None:
            check_choice(self.mode, "mode", GENERATION_MODES)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


DEFAULT_GLOBAL_TEMPLATE = (
    "Does the arrangement of the elements in this image match the content and spatial layout asked for by "
    'the prompt: "{prompt}"? Answer Yes or No.'
)
DEFAULT_REGION_TEMPLATE = (
    'The prompt is "{prompt}". Is the object in {region} ({object}) exactly what the prompt asks for and '
    "well drawn? Answer Yes or No."
)


@dataclass(frozen=True)
class JudgeConfig:
    """How the model judges its own images.

    ``region_view``: how a region is shown to the judge — ``crop`` (the region cut out), ``coords``
    (normalised coordinates in the text) or ``boxes`` (numbered boxes drawn on the image).
    ``global_template`` / ``region_template``: question templates (:mod:`srum_core.templates`); the global one
    may use ``{prompt}``, the region one ``{prompt}``, ``{region}`` and ``{object}``; both must use ``{prompt}``.
    """

    region_view: str = field(default="crop", metadata=_help("how the judge sees a region: crop, coords or boxes"))
    max_regions: int = field(default=10, metadata=_help("regions judged per image (SRUM keeps 10)"))
    box_source: str | None = field(
        default=None, metadata=_help("region proposer by name (default: the backend's first)")
    )
    global_template: str = field(default=DEFAULT_GLOBAL_TEMPLATE, metadata=_help("global question; uses {prompt}"))
    region_template: str = field(
        default=DEFAULT_REGION_TEMPLATE, metadata=_help("region question; uses {prompt}, {region}, {object}")
    )

    def __post_init__(self) -> None:
        check_choice(self.region_view, "region_view", REGION_VIEWS)
        _set(self, "max_regions", check_int(self.max_regions, "max_regions", 1, 64, "SRUM keeps the top 10"))
        _check(
            self.box_source is None or isinstance(self.box_source, str),
            f"box_source={_shown(self.box_source)}: give a box source's name, or None for the backend's first",
        )
        check_template(self.global_template, GLOBAL_FIELDS, ("prompt",), "global_template")
        check_template(self.region_template, REGION_FIELDS, ("prompt",), "region_template")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RewardConfig:
    """How judgements become a dense reward map (SRUM_SPEC §1.5–1.6).

    ``mode``: ``released`` (authors' code: 0.5 floor, max over boxes, × (g+1)/2), ``signed`` (paper form),
    ``binary`` (region scores → ±1 first), ``global-only``, ``local-only`` (α = 1), ``sft`` (uniform).
    ``grid``: ``bilinear`` (align_corners=False, as released) or ``area`` (area average per token).
    """

    mode: str = field(
        default="released",
        metadata=_help("reward map mode: released, signed, binary, global-only, local-only, or sft (the SFT baseline)"),
    )
    grid: str = field(default="bilinear", metadata=_help("map → token grid projection: bilinear or area"))

    def __post_init__(self) -> None:
        check_choice(self.mode, "mode", MAP_MODES)
        check_choice(self.grid, "grid", GRID_MODES)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Learning-rate schedules of a round (:func:`srum_core.training.lr_at`).
LR_SCHEDULES: tuple[str, ...] = ("constant", "cosine")


@dataclass(frozen=True)
class TrainingConfig:
    """A short SRUM training round: ``L = mean(w·e) + λ·mean(e)`` with AdamW at SRUM's defaults.

    ``timestep_shift``: logit-normal timestep shift for flow backends; None keeps the shift the backend was
    pre-trained with (SRUM's released scripts use 1.0 for BAGEL). ``seed`` draws the adapter's initial weights,
    the batch order and the training noise; inside a round it is the round's seed (``RoundConfig.seed``).
    """

    steps: int = field(default=20, metadata=_help("optimiser steps"))
    lr: float = field(default=1e-4, metadata=_help("peak learning rate"))
    lam: float = field(default=0.5, metadata=_help("λ, the weight of the constraint term (0 = ablation)"))
    batch_size: int = field(default=8, metadata=_help("images per optimiser step"))
    lora_rank: int = field(default=8, metadata=_help("LoRA rank"))
    lora_alpha: float | None = field(default=None, metadata=_help("LoRA alpha (default: 2 × rank)"))
    full_finetune: bool = field(default=False, metadata=_help("train every parameter instead of LoRA"))
    warmup_steps: int = field(default=2, metadata=_help("linear warm-up steps"))
    grad_clip: float = field(default=1.0, metadata=_help("max gradient norm"))
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-15
    weight_decay: float = 0.0
    timestep_shift: float | None = field(
        default=None,
        metadata=_help(
            "logit-normal timestep shift (default: the backend's own pre-training shift; SRUM's scripts use 1.0)"
        ),
    )
    cond_dropout: float = 0.1
    seed: int = field(default=0, metadata=_help("seed of the adapter's initial weights, batch order and noise"))
    #: Which part of the model trains: ``gen`` (the generation expert only, so the judge stays frozen; backends
    #: with a single trunk train their generation path) or ``all`` (the paper's full fine-tune).
    train_part: str = field(default="gen", metadata=_help("gen: the generation expert only (the judge stays frozen); all: every part"))
    #: ``constant`` (flat after warm-up, SRUM's released scripts) or ``cosine`` (from ``lr`` down to
    #: ``lr_min_ratio · lr`` at the last step).
    lr_schedule: str = field(default="constant", metadata=_help("constant: flat after warm-up; cosine: decays to lr_min_ratio·lr"))
    lr_min_ratio: float = field(default=0.0, metadata=_help("cosine schedule's final lr as a share of lr"))
    #: EMA of the trained weights, swapped in at the end of the round (0 = off: the last step's weights).
    ema_decay: float = field(default=0.0, metadata=_help("EMA decay of the trained weights, used at the end (0 = off)"))

    def __post_init__(self) -> None:
        check_choice(self.train_part, "train_part", TRAIN_PARTS)
        check_choice(self.lr_schedule, "lr_schedule", LR_SCHEDULES)
        _set(self, "lr_min_ratio", check_float(self.lr_min_ratio, "lr_min_ratio", 0.0, 1.0, "a share of lr"))
        _set(self, "ema_decay", check_float(self.ema_decay, "ema_decay", 0.0, 1.0, "0 = off; 0.99 averages ~100 steps",
                                            hi_open=True))
        _set(self, "steps", check_int(self.steps, "steps", 0, 100_000, "optimiser steps"))
        _set(self, "lr", check_float(self.lr, "lr", 0.0, 1.0, "1e-4 suits LoRA", lo_open=True))
        _set(self, "lam", check_float(self.lam, "lam", 0.0, 10.0, "λ is the constraint weight; SRUM uses 0.5"))
        _set(self, "batch_size", check_int(self.batch_size, "batch_size", 1, 1024, "images per optimiser step"))
        _set(self, "lora_rank", check_int(self.lora_rank, "lora_rank", 1, 512, "a LoRA rank"))
        if self.lora_alpha is not None:
            _set(
                self,
                "lora_alpha",
                check_float(self.lora_alpha, "lora_alpha", 0.0, None, "None = 2 × rank", lo_open=True),
            )
        _check(isinstance(self.full_finetune, bool), f"full_finetune={_shown(self.full_finetune)}: give true or false")
        _set(self, "warmup_steps", check_int(self.warmup_steps, "warmup_steps", 0, 100_000))
        _set(self, "grad_clip", check_float(self.grad_clip, "grad_clip", 0.0, None, "SRUM uses 1.0", lo_open=True))
        _set(self, "beta1", check_float(self.beta1, "beta1", 0.0, 1.0, "AdamW's β1; SRUM uses 0.9", hi_open=True))
        _set(self, "beta2", check_float(self.beta2, "beta2", 0.0, 1.0, "AdamW's β2; SRUM uses 0.95", hi_open=True))
        _set(self, "eps", check_float(self.eps, "eps", 0.0, None, "SRUM uses 1e-15", lo_open=True))
        _set(self, "weight_decay", check_float(self.weight_decay, "weight_decay", 0.0, None, "SRUM uses 0"))
        if self.timestep_shift is not None:
            _set(
                self,
                "timestep_shift",
                check_float(
                    self.timestep_shift,
                    "timestep_shift",
                    0.0,
                    None,
                    "1.0 = no shift; None = the backend's",
                    lo_open=True,
                ),
            )
        _set(
            self,
            "cond_dropout",
            check_float(self.cond_dropout, "cond_dropout", 0.0, 1.0, "SRUM keeps 0.1 for CFG", hi_open=True),
        )
        _set(self, "seed", check_int(self.seed, "seed", 0, MAX_SEED))

    @property
    def effective_lora_alpha(self) -> float:
        return float(self.lora_alpha) if self.lora_alpha is not None else 2.0 * self.lora_rank

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Named presets shared by the CLI (``round --preset NAME``) and the UI (the Train tab's preset menu): each
#: replaces the default generation and training configs (and, under ``"round"``, fields of the round itself);
#: flags and inputs the user sets still win. A backend may name its own default preset (``default_preset``):
#: the sandbox's is ``sandbox-srum``, the recipe of the measured SRUM result (docs/results.md).
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-quick": {
        "generation": GenerationConfig(steps=12, guidance=3.0, batch_size=16),
        "training": TrainingConfig(steps=10, lr=3e-4, batch_size=8, lora_rank=8),
    },
    "cpu-default": {
        "generation": GenerationConfig(),
        "training": TrainingConfig(),
    },
    "sandbox-srum": {
        # The embedded model's round recipe: full fine-tuning of the generation expert on 512 think-mode images,
        # at about the learning rate pre-training ended near, with timesteps shifted towards the noisy end where
        # the layout is decided (SANDBOX recipe search: docs/results.md).
        "generation": GenerationConfig(),
        "training": TrainingConfig(
            steps=600, lr=1e-4, batch_size=32, full_finetune=True, warmup_steps=20, timestep_shift=4.0
        ),
        "round": {"n_prompts": 128, "images_per_prompt": 4},
    },
    "srum-released": {
        "generation": GenerationConfig(steps=50, guidance=4.0, batch_size=16, device="cuda"),
        "training": TrainingConfig(steps=309, lr=2e-5, lam=0.5, batch_size=16, warmup_steps=100),
    },
}
