"""Recipes: one YAML or JSON file that says everything a SRUM round does, validated by the typed configs.

A recipe has these sections (every one optional except ``backend``; a missing value takes the config's
default, a key no config knows is refused with the list of known keys)::

    backend: sandbox                  # a backend name, as --backend
    model: null                       # weights folder or hub id (as --model)
    prompts: {source: train, categories: null, n_prompts: 16, images_per_prompt: 1}
    generation: {steps: 20, guidance: 3.0, batch_size: 16, device: auto, mode: null}    # GenerationConfig
    judge: {region_view: crop, max_regions: 10, box_source: null}                       # JudgeConfig (self-judge)
    map: {mode: released, grid: bilinear}                                               # RewardConfig
    training: {steps: 20, lr: 1.0e-4, lam: 0.5, lora_rank: 8, ...}                      # TrainingConfig
    round: {seed: 0, gate: null, n_fixed_samples: 4}
    evaluation: {split: val, n_prompts: 4, seeds: [0], categories: null,               # before/after the round
                 judge: null, set: null}       # judge: an independent judge (EvalJudgeConfig), e.g.
                                               #   {kind: vlm, model: Qwen/Qwen2.5-VL-7B-Instruct, decompose: true}

With ``evaluation.judge`` given, ``round --recipe`` also scores the round with that judge, which is not the trained
model (:mod:`srum_core.eval_runs`: the starting state and the round, ``n_prompts`` per category of ``set`` — any
set ``evaluate --set`` takes, default the backend's own evaluation set — at ``seeds``) into ``RUN/evaluation/``;
``evaluate --recipe FILE`` runs the same evaluation for any run folders.

:func:`load_recipe` turns it into a :class:`Recipe` (backend, model and a validated ``RoundConfig``);
:meth:`Recipe.to_dict` gives the normalised recipe (every value spelled out), which a round writes into its run
folder as ``recipe.yaml`` — loading that file gives the same recipe back. :func:`plan` lists what a round will
do and what it costs (counts of images, judge calls, optimiser steps; seconds where a figure is measured).
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .config import GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig

RECIPE_FILE = "recipe.yaml"
SECTIONS = ("backend", "model", "prompts", "generation", "judge", "map", "training", "round", "evaluation")
_PROMPT_KEYS = {"source": "prompts", "categories": "categories", "n_prompts": "n_prompts",
                "images_per_prompt": "images_per_prompt"}  # fmt: skip
_ROUND_KEYS = ("seed", "gate", "n_fixed_samples")
_EVAL_KEYS = {"split": "eval_split", "n_prompts": "eval_n_prompts", "seeds": "eval_seeds",
              "categories": "eval_categories"}  # fmt: skip
_CONFIGS = {"generation": GenerationConfig, "judge": JudgeConfig, "map": RewardConfig, "training": TrainingConfig}
#: Measured seconds per generated image (docs/benchmarks.md), for the cost estimate: (backend, device) → s.
SECONDS_PER_IMAGE = {("bagel", "cuda"): 2.9}


@dataclass(frozen=True)
class Recipe:
    backend: str
    model: str | None
    config: Any  # srum_core.rounds.RoundConfig
    #: The independent evaluation judge (srum_core.eval_judges.EvalJudgeConfig); None: no independent evaluation.
    eval_judge: Any = None
    #: The set the independent evaluation draws from (None: the backend's own evaluation set).
    eval_set: str | None = None

    def evaluation_config(self) -> Any:
        """The independent evaluation this recipe asks for (:class:`srum_core.eval_runs.EvaluationConfig`), on the
        round's evaluation prompts-per-category, seeds and categories; None without ``evaluation.judge``."""
        if self.eval_judge is None:
            return None
        from .eval_runs import EvaluationConfig

        c = self.config
        return EvaluationConfig(eval_set=self.eval_set, categories=c.eval_categories,
                                n_per_category=max(1, c.eval_n_prompts), seeds=c.eval_seeds, judge=self.eval_judge)

    def to_dict(self) -> dict[str, Any]:
        """The normalised recipe: every section, every value (what ``recipe.yaml`` in a run folder holds)."""
        c = self.config
        return {
            "backend": self.backend,
            "model": self.model,
            "prompts": {k: _plain(getattr(c, f)) for k, f in _PROMPT_KEYS.items()},
            "generation": c.generation.to_dict(),
            "judge": c.judge.to_dict(),
            "map": c.reward.to_dict(),
            "training": {k: v for k, v in c.training.to_dict().items() if k != "seed"},
            "round": {k: getattr(c, k) for k in _ROUND_KEYS},
            "evaluation": {
                **{k: _plain(getattr(c, f)) for k, f in _EVAL_KEYS.items()},
                "judge": None if self.eval_judge is None else self.eval_judge.to_dict(),
                "set": self.eval_set,
            },
        }


def _plain(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def _section(data: dict[str, Any], name: str) -> dict[str, Any]:
    value = data.get(name) or {}
    if not isinstance(value, dict):
        raise ValueError(f"recipe section {name!r} must be a mapping of keys to values, not {type(value).__name__}")
    return dict(value)


def _refuse_unknown(given: dict[str, Any], known: Any, where: str) -> None:
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise ValueError(f"recipe {where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")


def recipe_from_dict(data: dict[str, Any]) -> Recipe:
    """A validated recipe from its parsed contents (see the module docstring); one-line errors say what to fix."""
    from .rounds import RoundConfig

    if not isinstance(data, dict):
        raise ValueError("a recipe is a mapping with sections backend, prompts, generation, judge, map, training ...")
    _refuse_unknown(data, SECTIONS, "top level")
    backend = data.get("backend")
    if not isinstance(backend, str) or not backend:
        raise ValueError("recipe: name the backend (backend: sandbox, janus-pro-1b, bagel, pair:PRESET ...)")
    model = data.get("model")
    parts: dict[str, Any] = {}
    for name, kind in _CONFIGS.items():
        given = _section(data, name)
        _refuse_unknown(given, [f.name for f in dataclasses.fields(kind)], f"section {name!r}")
        if name == "training" and "seed" in given:
            raise ValueError("recipe section 'training': the seed is the round's (round: {seed: N})")
        parts["reward" if name == "map" else name] = kind(**given)
    fields: dict[str, Any] = {}
    evaluation = _section(data, "evaluation")
    eval_judge, eval_set = _eval_judge(evaluation.pop("judge", None)), evaluation.pop("set", None)
    if eval_set is not None and (not isinstance(eval_set, str) or not eval_set):
        raise ValueError("recipe section 'evaluation': set names an evaluation set (evaluate --set), or null")
    for section, keys in (("prompts", _PROMPT_KEYS), ("evaluation", _EVAL_KEYS)):
        given = evaluation if section == "evaluation" else _section(data, section)
        _refuse_unknown(given, [*keys, *(("judge", "set") if section == "evaluation" else ())], f"section {section!r}")
        fields.update({keys[k]: v for k, v in given.items()})
    given = _section(data, "round")
    _refuse_unknown(given, _ROUND_KEYS, "section 'round'")
    fields.update(given)
    for key in ("categories", "eval_categories", "eval_seeds"):
        if fields.get(key) is not None:
            fields[key] = tuple(fields[key])
    return Recipe(backend=backend, model=None if model is None else str(model), config=RoundConfig(**fields, **parts),
                  eval_judge=eval_judge, eval_set=eval_set)


def _eval_judge(given: Any) -> Any:
    """``evaluation.judge`` as an :class:`~srum_core.eval_judges.EvalJudgeConfig` (None: not given)."""
    if given is None:
        return None
    from .eval_judges import EvalJudgeConfig

    if not isinstance(given, dict):
        raise ValueError("recipe section 'evaluation': judge is a mapping, e.g. {kind: vlm, model: FOLDER}, or null")
    known = [f.name for f in dataclasses.fields(EvalJudgeConfig)]
    _refuse_unknown(given, known, "evaluation.judge")
    return EvalJudgeConfig(**given)


def read_recipe_file(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The parsed contents of a ``.yaml``/``.yml`` or ``.json`` recipe."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"recipe {path} does not exist")
    text = path.read_text(encoding="utf-8")
    if path.suffix in (".yaml", ".yml"):
        import yaml

        return yaml.safe_load(text) or {}
    if path.suffix == ".json":
        return json.loads(text)
    raise ValueError(f"recipe {path}: give a .yaml, .yml or .json file")


def load_recipe(path: str | os.PathLike[str]) -> Recipe:
    return recipe_from_dict(read_recipe_file(path))


def write_recipe(recipe: Recipe, path: str | os.PathLike[str]) -> Path:
    """Write the normalised recipe as YAML (``.yaml``) or JSON (any other suffix)."""
    path = Path(path)
    data = recipe.to_dict()
    if path.suffix in (".yaml", ".yml"):
        import yaml

        text = yaml.safe_dump(data, sort_keys=False)
    else:
        text = json.dumps(data, indent=2) + "\n"
    path.write_text(text, encoding="utf-8")
    return path


def plan(recipe: Recipe, categories: int | None = None) -> dict[str, Any]:
    """What a round of ``recipe`` does and costs: stages with counts; ``seconds`` where a figure is measured
    (:data:`SECONDS_PER_IMAGE`), else None. ``categories``: how many categories evaluation covers, if known."""
    c = recipe.config
    images = c.n_prompts * c.images_per_prompt
    judge_calls = images * (1 + c.judge.max_regions)  # one global question + at most max_regions regions each
    eval_images = 0
    if c.eval_split is not None:
        per_state = c.eval_n_prompts * len(c.eval_seeds) * (categories or 1)
        eval_images = 2 * per_state  # before and after
    device = c.generation.device if c.generation.device != "auto" else None
    rate = SECONDS_PER_IMAGE.get((recipe.backend.split(":")[0], device or ""))
    generated = images + eval_images + 2 * c.n_fixed_samples
    return {
        "backend": recipe.backend,
        "stages": [
            {"stage": "generate", "images": images, "steps_each": c.generation.steps},
            {"stage": "judge", "calls_at_most": judge_calls},
            {"stage": "train", "optimiser_steps": c.training.steps, "batch": c.training.batch_size},
            {"stage": "evaluate", "images": eval_images, "split": c.eval_split},
            {"stage": "samples", "images": 2 * c.n_fixed_samples},
        ],
        "images_generated": generated,
        "seconds_generating": None if rate is None else round(rate * generated, 1),
        "note": "seconds only where docs/benchmarks.md measures the backend on this device",
    }
