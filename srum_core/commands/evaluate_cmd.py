"""``evaluate``: base and rounds 1..k scored by an independent judge, the way papers report a round.

    python -m srum_core evaluate --backend sandbox --run runs/r1 --run runs/r2 --set eval --n-per-category 8 \\
        --seeds 0,1,2 --out runs/eval1
    python -m srum_core evaluate --backend pair:sd35-medium+qwen25vl-7b --run runs/p1 --set reasonbench-style \\
        --eval-judge vlm --eval-judge-model Qwen/Qwen2.5-VL-7B-Instruct --decompose --out runs/eval2
    python -m srum_core evaluate ... --eval-judge openai --eval-judge-model qwen2.5-vl-72b \\
        --eval-judge-url http://localhost:8000/v1 --eval-judge-key-env MY_KEY ...

An interrupted evaluation continues with ``--resume`` (same flags). ``--track`` logs the tables to trackio.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from . import CliError
from .round_cmd import GENERATION_KEYS, TqdmProgress, add_model_flags, add_param_flags, backend_from_args


def _seeds(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(s) for s in text.split(",") if s.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r}: give seeds as 0,1,2") from None


def register(subparsers: Any) -> None:
    from ..backends import BACKENDS
    from ..config import DEVICES
    from ..eval_judges import JUDGE_KINDS
    from ..eval_sets import named_sets

    p = subparsers.add_parser(
        "evaluate",
        help="score base and rounds 1..k with an independent judge: per-category scores, paired 95%% intervals "
        "against base, worst images, self-judge agreement; a resumable results folder",
        description="Generate every prompt of an evaluation set at every seed with the base model and with each "
        "round's adapter, score the images with an evaluation judge that is not the trained model, and write "
        "per-category scores with paired bootstrap intervals against the base (docs/evaluation.md).",
    )
    p.add_argument("--backend", default=None, help=f"unified model to use: {', '.join(BACKENDS)} (or a --recipe)")
    p.add_argument(
        "--recipe",
        default=None,
        metavar="FILE",
        help="a round recipe: backend, model, generation and its evaluation section (judge, set, n, seeds) "
        "come from it",
    )
    p.add_argument("--model", default=None, help="weights folder or hub id for the backend (default: its own)")
    p.add_argument("--device", default=None, choices=DEVICES, help="auto, cpu, cuda or mps (default auto)")
    add_param_flags(p, [*GENERATION_KEYS, "generation.mode"])
    add_model_flags(p)
    p.add_argument(
        "--run",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="a round's run folder; repeat in order for rounds 1..k (the base is always evaluated)",
    )
    p.add_argument(
        "--set",
        default=None,
        dest="eval_set",
        help="evaluation set: one of the backend's prompt sets, "
        + ", ".join(named_sets())
        + ", or a JSON/JSONL prompt file (default: the backend's 'eval' set)",
    )
    p.add_argument("--category", action="append", default=None, help="only this category (repeatable)")
    p.add_argument("--n-per-category", type=int, default=None, help="prompts per category (default 4)")
    p.add_argument("--seeds", type=_seeds, default=None, help="generation seeds, e.g. 0,1,2 (default 0)")
    p.add_argument("--prompt-seed", type=int, default=0, help="seed of the prompt draw (default 0)")
    p.add_argument(
        "--eval-judge",
        default=None,
        choices=JUDGE_KINDS,
        help="the independent judge: the backend's referee (default), a local VLM, or an OpenAI-compatible endpoint",
    )
    p.add_argument(
        "--eval-judge-model", default=None, help="VLM folder / hub id, or the model name the endpoint serves"
    )
    p.add_argument("--eval-judge-url", default=None, help="OpenAI-compatible base URL, e.g. http://localhost:8000/v1")
    p.add_argument(
        "--eval-judge-key-env",
        default="OPENAI_API_KEY",
        help="NAME of the environment variable holding the endpoint's API key (never stored)",
    )
    p.add_argument(
        "--decompose",
        action="store_true",
        help="TIFA/DSG-style: ask one yes/no question per object, count, attribute and relation",
    )
    p.add_argument("--out", required=True, metavar="EVAL_DIR", help="the evaluation folder to write")
    p.add_argument("--resume", action="store_true", help="continue an interrupted evaluation in --out")
    p.add_argument("--track", action="store_true", help="log the results to a trackio project (pip install trackio)")
    p.add_argument("--track-project", default="srum-workbench", help="trackio project name (default srum-workbench)")
    p.set_defaults(handler=run_evaluate_command)


def evaluation_config(args: argparse.Namespace) -> Any:
    from ..eval_judges import EvalJudgeConfig
    from ..eval_runs import EvaluationConfig

    judge = EvalJudgeConfig(
        kind=args.eval_judge or "referee",
        model=args.eval_judge_model,
        base_url=args.eval_judge_url,
        api_key_env=args.eval_judge_key_env,
        decompose=args.decompose,
        device=args.device or "auto",
    )
    return EvaluationConfig(
        eval_set=args.eval_set,
        categories=tuple(args.category) if args.category else None,
        n_per_category=4 if args.n_per_category is None else args.n_per_category,
        seeds=(0,) if args.seeds is None else args.seeds,
        prompt_seed=args.prompt_seed,
        judge=judge,
    )


#: Flags a recipe's evaluation section replaces (given beside --recipe they are refused).
_RECIPE_FLAGS = ("eval_judge", "eval_judge_model", "eval_judge_url", "eval_set", "n_per_category", "seeds",
                 "category")


def _from_recipe(args: argparse.Namespace) -> tuple[Any, Any]:
    """The recipe and the evaluation it asks for; flags that would contradict it are refused."""
    from ..recipes import load_recipe

    given = [f"--{k.replace('_', '-')}" for k in _RECIPE_FLAGS if getattr(args, k, None) not in (None, False)]
    if args.decompose:
        given.append("--decompose")
    from ..params import ROUND_PARAMS
    from .round_cmd import param_values

    given += [ROUND_PARAMS[k].flag for k, v in param_values(args).items() if v is not None]
    if given:
        raise CliError(f"--recipe holds the evaluation's settings; drop {', '.join(given)} or edit the recipe")
    try:
        recipe = load_recipe(args.recipe)
    except (OSError, ValueError) as err:
        raise CliError(str(err)) from err
    for flag, value in (("backend", recipe.backend), ("model", recipe.model)):
        if getattr(args, flag) not in (None, value):
            raise CliError(f"--{flag} {getattr(args, flag)} differs from the recipe's {flag}: {value}")
    args.backend, args.model = recipe.backend, recipe.model
    config = recipe.evaluation_config()
    if config is None:
        raise CliError(f"recipe {args.recipe} names no evaluation.judge (e.g. judge: {{kind: referee}})")
    return recipe, config


def _fmt(value: float | None, pct: bool = False) -> str:
    if value is None:
        return "–"
    return f"{value:5.1f}" if not pct else f"{100 * value:5.1f}%"


def print_results(results: dict[str, Any]) -> None:
    print(f"evaluated {', '.join(results['per_state'])} on {results['eval_set']}; judge {results['judge']}")
    for state, entry in results["per_state"].items():
        delta = (entry.get("vs_base") or {}).get("overall")
        against = (
            ""
            if not delta
            else (f"  Δ vs base {delta['delta']:+.1f} [95% {delta['ci95'][0]:+.1f}, {delta['ci95'][1]:+.1f}]")
        )
        ag = entry["agreement"]
        print(
            f"  {state:<8} score {_fmt(entry['overall']['score'])}{against}   self-judge vs judge: "
            f"balanced acc {_fmt(ag['balanced_accuracy'], True)}, AUROC {_fmt(ag['auroc'])}"
        )
        for category, row in entry["per_category"].items():
            d = ((entry.get("vs_base") or {}).get("per_category") or {}).get(category)
            extra = "" if not d else f"  Δ {d['delta']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
            print(f"    {category:<22} {_fmt(row['score'])} (pass {_fmt(row['pass_rate'])}){extra}")


def run_evaluate_command(args: argparse.Namespace) -> int:
    from ..eval_runs import PLAN_FILE, run_evaluation, states_for
    from .round_cmd import _generation

    out = Path(args.out)
    if (out / PLAN_FILE).is_file() and not args.resume:
        raise CliError(f"--out {out} already holds an evaluation; pass --resume to continue it")
    for run in args.run:
        if not Path(run).is_dir():
            raise CliError(f"--run {run} is not a run folder")
    recipe = None
    if args.recipe is not None:
        recipe, config = _from_recipe(args)
    elif args.backend is None:
        raise CliError("evaluate needs --backend (or a --recipe)")
    else:
        config = evaluation_config(args)
    if args.track:
        from ..tracking import check_trackio

        check_trackio()
    backend = backend_from_args(args, args.device)
    generation = _generation(args, backend) if recipe is None else recipe.config.generation
    self_judge = None if recipe is None else recipe.config.judge
    progress = TqdmProgress()
    try:
        results = run_evaluation(
            backend, states_for(args.run), config, out, generation=generation, self_judge=self_judge,
            resume=args.resume, callback=progress,
        )
    finally:
        progress.close()
    print_results(results)
    print(f"results written to {out / 'results.json'}")
    if args.track:
        from ..tracking import log_evaluation

        log_evaluation(results, out, project=args.track_project)
    return 0
