"""Typed, frozen configuration per concern, with defaults that run on a laptop CPU.

Change a value with ``dataclasses.replace(cfg, field=value)``; every config validates itself and says how
to fix a bad value. Named presets live in :data:`PRESETS`, read by both the CLI and the UI.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

MAP_MODES: tuple[str, ...] = ("released", "signed", "binary", "global-only", "local-only", "sft")
GRID_MODES: tuple[str, ...] = ("bilinear", "area")
REGION_VIEWS: tuple[str, ...] = ("crop", "coords", "boxes")
DEVICES: tuple[str, ...] = ("auto", "cpu", "cuda", "mps")


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True)
class GenerationConfig:
    """How images are sampled. ``guidance`` is the classifier-free guidance scale (1.0 = off)."""

    steps: int = 20
    guidance: float = 3.0
    batch_size: int = 16
    device: str = "auto"

    def __post_init__(self) -> None:
        _check(
            1 <= self.steps <= 1000,
            f"steps={self.steps}: use between 1 and 1000 sampling steps (20 is a good CPU default)",
        )
        _check(
            0.0 <= self.guidance <= 30.0,
            f"guidance={self.guidance}: use a CFG scale between 0 and 30 (1.0 disables guidance)",
        )
        _check(1 <= self.batch_size <= 1024, f"batch_size={self.batch_size}: use between 1 and 1024 images per batch")
        _check(self.device in DEVICES, f"device={self.device!r}: choose one of {', '.join(DEVICES)}")

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
    ``global_template`` / ``region_template``: question templates; ``{prompt}``, ``{region}`` and
    ``{object}`` are filled in.
    """

    region_view: str = "crop"
    max_regions: int = 10
    box_source: str | None = None
    global_template: str = DEFAULT_GLOBAL_TEMPLATE
    region_template: str = DEFAULT_REGION_TEMPLATE

    def __post_init__(self) -> None:
        _check(
            self.region_view in REGION_VIEWS,
            f"region_view={self.region_view!r}: choose one of {', '.join(REGION_VIEWS)}",
        )
        _check(
            1 <= self.max_regions <= 64, f"max_regions={self.max_regions}: use between 1 and 64 (SRUM keeps the top 10)"
        )
        _check("{prompt}" in self.global_template, "global_template must contain {prompt} so the judge sees the prompt")
        _check("{prompt}" in self.region_template, "region_template must contain {prompt} so the judge sees the prompt")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RewardConfig:
    """How judgements become a dense reward map (SRUM_SPEC §1.5–1.6).

    ``mode``: ``released`` (authors' code: 0.5 floor, max over boxes, × (g+1)/2), ``signed`` (paper form),
    ``binary`` (region scores → ±1 first), ``global-only``, ``local-only`` (α = 1), ``sft`` (uniform).
    ``grid``: ``bilinear`` (align_corners=False, as released) or ``area`` (area average per token).
    """

    mode: str = "released"
    grid: str = "bilinear"

    def __post_init__(self) -> None:
        _check(self.mode in MAP_MODES, f"mode={self.mode!r}: choose one of {', '.join(MAP_MODES)}")
        _check(self.grid in GRID_MODES, f"grid={self.grid!r}: choose one of {', '.join(GRID_MODES)}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class TrainingConfig:
    """A short SRUM training round: ``L = mean(w·e) + λ·mean(e)`` with AdamW at SRUM's defaults.

    ``timestep_shift``: logit-normal timestep shift for flow backends; None keeps the shift the backend was
    pre-trained with (SRUM's released scripts use 1.0 for BAGEL).
    """

    steps: int = 20
    lr: float = 1e-4
    lam: float = 0.5
    batch_size: int = 8
    lora_rank: int = 8
    lora_alpha: float | None = None
    full_finetune: bool = False
    warmup_steps: int = 2
    grad_clip: float = 1.0
    beta1: float = 0.9
    beta2: float = 0.95
    eps: float = 1e-15
    weight_decay: float = 0.0
    timestep_shift: float | None = None
    cond_dropout: float = 0.1
    seed: int = 0

    def __post_init__(self) -> None:
        _check(0 <= self.steps <= 100_000, f"steps={self.steps}: use between 0 and 100000 optimiser steps")
        _check(0.0 < self.lr <= 1.0, f"lr={self.lr}: use a positive learning rate no larger than 1 (1e-4 for LoRA)")
        _check(0.0 <= self.lam <= 10.0, f"lam={self.lam}: λ is the constraint weight; use 0..10 (SRUM uses 0.5)")
        _check(1 <= self.batch_size <= 1024, f"batch_size={self.batch_size}: use between 1 and 1024")
        _check(1 <= self.lora_rank <= 512, f"lora_rank={self.lora_rank}: use a LoRA rank between 1 and 512")
        _check(self.lora_alpha is None or self.lora_alpha > 0, "lora_alpha must be positive (or None for 2 × rank)")
        _check(0 <= self.warmup_steps <= 100_000, f"warmup_steps={self.warmup_steps}: use 0 or more")
        _check(self.grad_clip > 0, f"grad_clip={self.grad_clip}: use a positive max gradient norm (SRUM uses 1.0)")
        _check(0 <= self.beta1 < 1 and 0 <= self.beta2 < 1, "AdamW betas must lie in [0, 1)")
        _check(self.eps > 0, "eps must be positive (SRUM uses 1e-15)")
        _check(self.weight_decay >= 0, "weight_decay must be ≥ 0 (SRUM uses 0)")
        _check(
            self.timestep_shift is None or self.timestep_shift > 0,
            "timestep_shift must be positive (1.0 = no shift) or None for the backend's own pre-training shift",
        )
        _check(0.0 <= self.cond_dropout < 1.0, "cond_dropout must lie in [0, 1) (SRUM keeps 0.1 for CFG)")

    @property
    def effective_lora_alpha(self) -> float:
        return float(self.lora_alpha) if self.lora_alpha is not None else 2.0 * self.lora_rank

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


#: Named presets shared by the CLI and the UI.
PRESETS: dict[str, dict[str, Any]] = {
    "cpu-quick": {
        "generation": GenerationConfig(steps=12, guidance=3.0, batch_size=16),
        "training": TrainingConfig(steps=10, lr=3e-4, batch_size=8, lora_rank=8),
    },
    "cpu-default": {
        "generation": GenerationConfig(),
        "training": TrainingConfig(),
    },
    "srum-released": {
        "generation": GenerationConfig(steps=50, guidance=4.0, batch_size=16, device="cuda"),
        "training": TrainingConfig(steps=309, lr=2e-5, lam=0.5, batch_size=16, warmup_steps=100),
    },
}
