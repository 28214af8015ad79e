"""``round --recipe FILE`` and ``round --dry-run``: a round's settings from a recipe file, and its plan and cost.

Not a command module of its own: :mod:`srum_core.commands.round_cmd` calls these.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any

from . import CliError

#: Round flags a recipe replaces: giving one beside --recipe is refused (the recipe is the one source).
_RECIPE_REPLACES = ("preset", "category", "eval_split")


def recipe_for(args: argparse.Namespace, round_config: Callable[[argparse.Namespace], Any]) -> Any:
    """The round's recipe: ``--recipe FILE`` (validated; the backend and model flags then come from it), or the
    flags given, as a recipe."""
    from ..recipes import Recipe, load_recipe

    if args.recipe is None:
        if args.backend is None:
            raise CliError("round needs --backend (or a --recipe)")
        return Recipe(backend=args.backend, model=args.model, config=round_config(args))
    from .round_cmd import param_values

    given = [k for k, v in param_values(args).items() if v is not None]
    given += [f"--{k.replace('_', '-')}" for k in _RECIPE_REPLACES if getattr(args, k, None) is not None]
    if args.full_finetune:
        given.append("--full-finetune")
    if given:
        raise CliError(f"--recipe holds every round setting; drop {', '.join(sorted(given))} or edit the recipe")
    recipe = load_recipe(args.recipe)
    for flag, value in (("backend", recipe.backend), ("model", recipe.model)):
        if getattr(args, flag) not in (None, value):
            raise CliError(f"--{flag} {getattr(args, flag)} differs from the recipe's {flag}: {value}")
    args.backend, args.model = recipe.backend, recipe.model
    return recipe


def print_plan(recipe: Any) -> int:
    """Print the validated recipe and its plan (nothing is loaded or run)."""
    from ..recipes import plan

    steps = plan(recipe)
    print(f"recipe valid: backend {recipe.backend}" + (f", model {recipe.model}" if recipe.model else ""))
    for stage in steps["stages"]:
        details = ", ".join(f"{k} {v}" for k, v in stage.items() if k != "stage")
        print(f"  {stage['stage']:<9} {details}")
    seconds = steps["seconds_generating"]
    per_category = " (evaluation counted for one category: × the backend's categories)"
    print(
        f"  cost: {steps['images_generated']} images generated{per_category}; "
        + (f"about {seconds:.0f} s generating" if seconds is not None else "no measured speed for this backend")
    )
    print(json.dumps(recipe.to_dict(), indent=2))
    return 0
