"""One source for each parameter of a round that the CLI and the Workbench expose.

A :class:`Param` names a field of a config dataclass (``RoundConfig`` or one of its parts) together with its CLI
flag and its UI label; its default and help come from the dataclass itself, and its validation is the
dataclass's own (``__post_init__``, through :func:`srum_core.config.check_int` and friends). The CLI
(``round``) adds its flags from :data:`ROUND_PARAMS` and the Train tab builds its inputs from the same entries;
both then call :func:`round_config` with the values given, so a bad value gets the same one-line message
everywhere.

Precedence: a value given (flag or input) > the chosen preset (:data:`srum_core.config.PRESETS`) > the
dataclass default.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .config import PRESETS, GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig, help_of

#: Help for ``RoundConfig``'s own fields (its dataclass lives in :mod:`srum_core.rounds`).
ROUND_HELP: dict[str, str] = {
    "prompts": "prompt source: a prompt set of the backend (sandbox: train, val), t2i-compbench, or a JSON/JSONL FILE",
    "n_prompts": "prompts drawn this round",
    "seed": "seed of the round: prompt draw, image seeds, LoRA initialisation and training noise "
    "(default: drawn and reported)",
    "images_per_prompt": "images generated (at different seeds) and judged per drawn prompt",
    "gate": "train only on images whose global self-score exceeds G (0 = judged 'yes'); reward-gated rounds, an "
    "option outside SRUM (default: every image with a readable global score trains)",
    "eval_n_prompts": "evaluation prompts per category, before and after the round",
}

SECTIONS: dict[str, type] = {
    "generation": GenerationConfig,
    "judge": JudgeConfig,
    "reward": RewardConfig,
    "training": TrainingConfig,
}


@dataclass(frozen=True)
class Param:
    """One parameter: ``section`` (``"round"`` or a key of :data:`SECTIONS`), its field ``name``, CLI ``flag``
    and UI ``label``."""

    section: str
    name: str
    flag: str
    label: str

    @property
    def key(self) -> str:
        return self.name if self.section == "round" else f"{self.section}.{self.name}"

    @property
    def config(self) -> type:
        if self.section == "round":
            from .rounds import RoundConfig

            return RoundConfig
        return SECTIONS[self.section]

    @property
    def default(self) -> Any:
        for item in dataclasses.fields(self.config):
            if item.name == self.name:
                if item.default is not dataclasses.MISSING:
                    return item.default
                return item.default_factory()  # type: ignore[misc]
        raise KeyError(f"{self.config.__name__} has no field {self.name!r}")

    @property
    def help(self) -> str:
        if self.section == "round":
            return ROUND_HELP.get(self.name, "")
        return help_of(self.config, self.name)


def _p(section: str, name: str, flag: str, label: str) -> Param:
    return Param(section, name, flag, label)


#: The round parameters both the CLI and the Train tab expose, keyed by :attr:`Param.key`.
ROUND_PARAMS: dict[str, Param] = {
    p.key: p
    for p in (
        _p("round", "n_prompts", "--n-prompts", "Prompts"),
        _p("round", "images_per_prompt", "--images-per-prompt", "Images per prompt (each at its own seed)"),
        _p("round", "seed", "--seed", "Seed (empty = random)"),
        _p("round", "gate", "--gate", "Gate: train only on images whose global score exceeds this, in [-1, 1)"),
        _p("round", "eval_n_prompts", "--eval-n-prompts", "Evaluation prompts per category before/after (0 = none)"),
        _p("training", "steps", "--steps", "Training steps"),
        _p("training", "lr", "--lr", "Learning rate"),
        _p("training", "lam", "--lam", "λ (constraint weight)"),
        _p("training", "lora_rank", "--lora-rank", "LoRA rank"),
        _p("training", "batch_size", "--train-batch-size", "Images per optimiser step"),
        _p("training", "warmup_steps", "--warmup-steps", "Warm-up steps"),
        _p("training", "timestep_shift", "--timestep-shift", "Timestep shift"),
        _p("reward", "mode", "--map", "Map mode"),
        _p("reward", "grid", "--grid", "Token grid projection"),
        _p("judge", "box_source", "--box-source", "Box source"),
        _p("judge", "region_view", "--region-view", "How the judge sees a region"),
        _p("judge", "max_regions", "--max-regions", "Max regions"),
        _p("generation", "steps", "--gen-steps", "Sampling steps"),
        _p("generation", "guidance", "--guidance", "CFG guidance"),
        _p("generation", "batch_size", "--batch-size", "Images per generation batch"),
        _p("generation", "mode", "--gen-mode", "Generation mode of the round's images"),
        _p("training", "train_part", "--train-part", "Trained part"),
    )
}


def preset_values(name: str | None) -> dict[str, Any]:
    """The values preset ``name`` sets, keyed like :data:`ROUND_PARAMS` (``None`` or ``""``: no preset)."""
    if not name:
        return {}
    if name not in PRESETS:
        raise ValueError(f"preset {name!r} is unknown; choose one of {', '.join(PRESETS)}")
    values: dict[str, Any] = {}
    for section, config in PRESETS[name].items():
        if section == "round":  # fields of the round itself, keyed by their own names
            values.update(config)
            continue
        for item in dataclasses.fields(config):
            values[f"{section}.{item.name}"] = getattr(config, item.name)
    return values


def round_config(values: Mapping[str, Any], preset: str | None = None, **round_fields: Any) -> Any:
    """A validated ``RoundConfig`` from ``values`` keyed like :data:`ROUND_PARAMS` (``None`` = not given).

    ``preset``: a name in :data:`srum_core.config.PRESETS` whose values replace the defaults; ``round_fields``:
    further ``RoundConfig`` fields (prompts, categories, eval_split, ...). Raises ``ValueError`` with the
    dataclass's one-line message for a bad value.
    """
    from .rounds import RoundConfig

    merged = {**preset_values(preset), **{k: v for k, v in values.items() if v is not None}}
    unknown = [k for k in merged if "." not in k and k not in {f.name for f in dataclasses.fields(RoundConfig)}]
    if unknown:
        raise KeyError(f"unknown round parameters: {', '.join(unknown)}")
    parts: dict[str, Any] = {}
    for section, config in SECTIONS.items():
        given = {k.split(".", 1)[1]: v for k, v in merged.items() if k.startswith(section + ".")}
        parts[section] = config(**given)
    fields = {k: v for k, v in merged.items() if "." not in k}
    fields.update(round_fields)
    return RoundConfig(**fields, **parts)
