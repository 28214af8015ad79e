"""``round``, ``eval`` and ``push``: run a SRUM round, evaluate a state, share a round on the Hub.

    python -m srum_core round --backend sandbox --prompts train --n-prompts 32 --steps 20 --lr 3e-4 --lam 0.5 \\
        --map released --grid bilinear --lora-rank 8 --seed 0 --out runs/r1
    python -m srum_core round ... --resume runs/r1 --out runs/r2     # round 2 starts from round 1's adapter
    python -m srum_core round ... --out runs/r2 --resume             # continue an interrupted round 2
    python -m srum_core eval --backend sandbox --run runs/r2 --split val --seed 0 --out results.json
    python -m srum_core push runs/r2 --repo-id me/srum-round-2 [--dry-run preview/]

``round`` and ``eval`` also run under ``accelerate launch --num_processes K`` unchanged: the work is split across
processes and only the main process writes and prints.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..backends import BACKENDS, PAIR_OPTIONS
from ..config import DEVICES, GENERATION_MODES, GRID_MODES, MAP_MODES, REGION_VIEWS, TRAIN_PARTS
from ..device import DTYPES
from ..params import ROUND_HELP
from . import CliError


def load_backend(
    name: str, device: str = "auto", model: str | None = None, dtype: str | None = None, **options: Any
) -> Any:
    """The named backend, weights loaded (``model``: a local folder or hub id overriding the default weights;
    ``options``: the pair backend's generator, judge, ...)."""
    from ..backends import load_backend as load

    try:
        return load(name, device=device, model=model, dtype=dtype, **options)
    except ValueError as err:
        raise CliError(str(err)) from err


def add_model_flags(parser: argparse.ArgumentParser) -> None:
    """``--dtype`` and the pair backend's flags (``--generator``, ``--judge``, ...), shared by every command that
    loads a backend."""
    parser.add_argument(
        "--dtype", default="auto", choices=("auto", *DTYPES), help="precision of a real model (auto: bf16 on CUDA)"
    )
    pair = parser.add_argument_group("pair backend (a diffusers generator judged by a vision-language model)")
    pair.add_argument("--generator", default=None, help="diffusers pipeline: hub id, folder or alias (sd35-medium)")
    pair.add_argument("--judge", default=None, help="vision-language judge: hub id, folder or alias (qwen25vl-7b)")
    pair.add_argument(
        "--judge-mode", default=None, choices=("rubric", "likelihood"), help="SRUM's text rubric (default) or P(Yes)"
    )
    pair.add_argument(
        "--offload", default=None, choices=("none", "swap"), help="swap: generator and judge take turns on the GPU"
    )
    pair.add_argument("--image-size", type=int, default=None, help="image side (default: the generator's own)")


def backend_from_args(args: argparse.Namespace, device: str | None = None) -> Any:
    """The backend the parsed flags ask for (``--backend``, ``--model``, ``--device``, ``--dtype``, pair flags);
    ``device`` overrides ``--device`` (a round's device may come from its ``--preset``)."""
    options = {k: getattr(args, k) for k in PAIR_OPTIONS if getattr(args, k, None) is not None}
    if getattr(args, "dtype", "auto") != "auto":
        options["dtype"] = args.dtype
    device = device or getattr(args, "device", None) or "auto"
    return load_backend(args.backend, device, args.model, **options)  # only what was asked for


class TqdmProgress:
    """Turns engine ProgressEvents into one tqdm bar per stage (training shows the loss)."""

    def __init__(self) -> None:
        self.stage: str | None = None
        self.bar: Any = None

    def __call__(self, event: Any) -> None:
        from tqdm import tqdm

        if event.stage != self.stage or self.bar is None or self.bar.total != event.total:
            self.close()
            self.stage = event.stage
            self.bar = tqdm(total=event.total, desc=event.stage, leave=False, dynamic_ncols=True)
        self.bar.n = event.step
        if "loss" in event.metrics:
            self.bar.set_postfix(loss=f"{event.metrics['loss']:.4f}", lr=f"{event.metrics['lr']:.2e}")
        self.bar.refresh()

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def number(text: str) -> int | float:
    """A flag's number as typed: ``3`` → 3, ``2.5`` → 2.5 (the config then says whether it fits; never rounded)."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text[:40]!r} is not a number") from None


def _flag_help(param: Any) -> str:
    default = param.default
    return param.help if default is None else f"{param.help} (default {default})"


def add_param_flags(parser: argparse.ArgumentParser, keys: Any) -> None:
    """Add the flags of :data:`srum_core.params.ROUND_PARAMS` ``keys``: name, default and help from the configs.

    Every flag defaults to None ("not given"), so a ``--preset`` or the config's own default applies.
    """
    from ..params import ROUND_PARAMS

    metavars = {"images_per_prompt": "K", "gate": "G"}
    for key in keys:
        param = ROUND_PARAMS[key]
        options: dict[str, Any] = {"default": None, "help": _flag_help(param), "dest": key.replace(".", "__")}
        if key == "reward.mode":
            options["choices"] = MAP_MODES
        elif key == "reward.grid":
            options["choices"] = GRID_MODES
        elif key == "judge.region_view":
            options["choices"] = REGION_VIEWS
        elif key == "generation.mode":
            options["choices"] = GENERATION_MODES
        elif key == "training.train_part":
            options["choices"] = TRAIN_PARTS
        elif key != "judge.box_source":
            options["type"] = number
        if "choices" not in options:
            options["metavar"] = metavars.get(param.name, param.name.upper())
        parser.add_argument(param.flag, **options)


def param_values(args: argparse.Namespace) -> dict[str, Any]:
    """The values of the ROUND_PARAMS flags present in ``args``, keyed like ROUND_PARAMS (None = not given)."""
    from ..params import ROUND_PARAMS

    return {key: getattr(args, key.replace(".", "__")) for key in ROUND_PARAMS if hasattr(args, key.replace(".", "__"))}


GENERATION_KEYS = ("generation.steps", "generation.guidance", "generation.batch_size")
#: ``--resume`` given alone: continue the interrupted round of ``--out``.
INTERRUPTED = "<interrupted round of --out>"


def _add_backend_flags(parser: argparse.ArgumentParser, required: bool = True) -> None:
    parser.add_argument("--backend", required=required, help=f"unified model to use: {', '.join(BACKENDS)}")
    parser.add_argument("--model", default=None, help="weights folder or hub id for the backend (default: its own)")
    parser.add_argument("--device", default=None, choices=DEVICES, help="auto, cpu, cuda or mps (default auto)")
    add_param_flags(parser, GENERATION_KEYS)
    add_model_flags(parser)


def _generation(args: argparse.Namespace, backend: Any = None) -> Any:
    """The generation settings: flags given > the ``--preset`` > the backend's own defaults where it has them
    (``generation_defaults``, e.g. BAGEL's 50 steps and CFG 4 as SRUM) > GenerationConfig's."""
    from ..config import GenerationConfig
    from ..params import preset_values

    own = getattr(backend, "generation_defaults", None) or {}
    merged = {k: own[k] for k in ("steps", "guidance") if k in own}
    preset = preset_values(getattr(args, "preset", None))
    merged.update({k.split(".", 1)[1]: v for k, v in preset.items() if k.startswith("generation.")})
    values = param_values(args)
    merged.update(
        {key.split(".", 1)[1]: v for key, v in values.items() if key.startswith("generation.") and v is not None}
    )
    if args.device is not None:
        merged["device"] = args.device
    return GenerationConfig(**merged)


def register(subparsers: Any) -> None:
    from ..config import PRESETS

    p = subparsers.add_parser(
        "round",
        help="run one SRUM round: generate, self-judge, build reward maps, train, evaluate; write a run folder",
        description="Run one SRUM round and write its run folder (config, log, metrics, records, images, adapter). "
        "Defaults come from the config dataclasses; --preset replaces them, and flags you give win over both.",
    )
    _add_backend_flags(p, required=False)
    p.add_argument(
        "--recipe",
        default=None,
        metavar="FILE",
        help="a YAML/JSON recipe with every setting of the round (docs/evaluation.md); other round flags are refused",
    )
    p.add_argument("--dry-run", action="store_true", help="validate the round's settings, print the plan and its cost")
    p.add_argument("--track", action="store_true", help="log the round to a trackio project (pip install trackio)")
    p.add_argument(
        "--preset",
        default=None,
        choices=tuple(PRESETS),
        help="named generation + training settings (srum_core.config.PRESETS, also in the Train tab)",
    )
    p.add_argument("--prompts", default="train", help=ROUND_HELP["prompts"])
    p.add_argument(
        "--category",
        action="append",
        default=None,
        help="keep only this prompt category (repeat for several; default: all)",
    )
    add_param_flags(
        p,
        [
            "n_prompts",
            "images_per_prompt",
            "training.steps",
            "training.lr",
            "training.lam",
            "reward.mode",
            "reward.grid",
            "training.lora_rank",
            "training.batch_size",
            "training.warmup_steps",
            "training.timestep_shift",
            "training.train_part",
            "generation.mode",
            "judge.box_source",
            "judge.region_view",
            "judge.max_regions",
            "eval_n_prompts",
            "gate",
            "seed",
        ],
    )
    p.add_argument("--full-finetune", action="store_true", help="train every parameter instead of LoRA")
    p.add_argument(
        "--eval-split",
        default=None,
        help="the backend's prompt set to evaluate before/after, or 'none' (default: its in-distribution 'eval' set "
        "where it has one, as the sandbox, else 'val')",
    )
    p.add_argument("--eval-seeds", type=number, default=1, help="evaluation seeds 0..K-1 (default 1)")
    p.add_argument(
        "--resume",
        nargs="?",
        const=INTERRUPTED,
        default=None,
        metavar="RUN_DIR",
        help="alone: continue the interrupted round of --out from its last complete stage (same settings); "
        "with RUN_DIR: start this round from that finished round's adapter",
    )
    p.add_argument("--out", default=None, metavar="RUN_DIR", help="new run folder to write (must not exist)")
    p.set_defaults(handler=run_round_command)

    e = subparsers.add_parser(
        "eval",
        help="evaluate a state (base or a run's adapter): referee and self-judge accuracy per category",
        description="Generate prompts of one of the backend's prompt sets and score the images by the backend's "
        "referee (if it has one) and by the model's own judge.",
    )
    _add_backend_flags(e)
    e.add_argument("--run", default=None, metavar="RUN_DIR", help="load this run's adapter (default: base model)")
    e.add_argument("--split", default="val", help="the backend's prompt set to evaluate on (default val)")
    e.add_argument("--category", action="append", default=None, help="evaluate only this category (repeatable)")
    e.add_argument("--n-prompts", type=number, default=8, help="prompts per category (default 8)")
    e.add_argument("--seed", type=number, default=0, help="first generation seed (default 0)")
    e.add_argument("--n-seeds", type=number, default=1, help="seeds S..S+K-1 per prompt (default 1)")
    e.add_argument("--out", required=True, metavar="RESULTS.json", help="where to write the results (JSON)")
    e.add_argument("--force", action="store_true", help="overwrite --out if it exists")
    e.set_defaults(handler=run_eval_command)

    h = subparsers.add_parser(
        "push",
        help="upload a run folder and a generated model card to the Hugging Face Hub",
        description="Upload a completed run folder with a model card (config, prompts, judge, map, before/after).",
    )
    h.add_argument("run_dir", metavar="RUN_DIR", help="completed run folder")
    h.add_argument("--repo-id", required=True, help="target model repo, 'user-or-org/name'")
    h.add_argument("--private", action="store_true", help="create the repo as private")
    h.add_argument("--token", default=None, help="Hub token (default: the one from `hf auth login` / HF_TOKEN)")
    h.add_argument(
        "--dry-run",
        default=None,
        metavar="DIR",
        help="write the folder that would be uploaded to DIR and upload nothing",
    )
    h.set_defaults(handler=run_push_command)


def _round_config(args: argparse.Namespace) -> Any:
    from ..config import check_int
    from ..params import round_config

    given = "val" if args.eval_split is None else args.eval_split  # the backend's own default is set once it loads
    eval_split = None if str(given).lower() == "none" else given
    values = param_values(args)
    if args.device is not None:
        values["generation.device"] = args.device
    if args.full_finetune:
        values["training.full_finetune"] = True
    eval_seeds = check_int(args.eval_seeds, "eval_seeds", 1, 1000, "the number of evaluation seeds")
    return round_config(
        values,
        preset=args.preset,
        prompts=args.prompts,
        categories=tuple(args.category) if args.category else None,
        eval_split=eval_split,
        eval_seeds=tuple(range(eval_seeds)),
    )


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "  –  " if value is None else f"{100 * value:5.1f}%"


def run_round_command(args: argparse.Namespace) -> int:
    from ..checkpoints import checkpoint_dir
    from ..distributed import process_info
    from ..rounds import run_round
    from ..runs import clean_stale_staging
    from .recipe_support import recipe_for

    recipe = recipe_for(args, _round_config)  # --recipe FILE, or the flags as a recipe (for --dry-run)
    if args.dry_run:
        from .recipe_support import print_plan

        return print_plan(recipe)
    if args.out is None:
        raise CliError("round needs --out RUN_DIR")
    if Path(args.out).exists():
        raise CliError(f"--out {args.out} already exists; choose a new run folder")
    start_from = _interrupted_round(args)
    config = recipe.config
    if args.track:
        from ..tracking import check_trackio

        check_trackio()  # before any work
    info = process_info()  # first: under several GPU processes this selects each process's own GPU
    if info.is_main:
        # Half-written folders of killed rounds beside --out (their process is gone) are removed.
        clean_stale_staging(Path(args.out).parent, depth=1)
    backend = backend_from_args(args, config.generation.device)
    if args.recipe is None:  # a recipe spells out its generation settings and evaluation split
        config = replace(config, generation=_generation(args, backend))
    if args.recipe is None and args.eval_split is None:
        from ..rounds import default_eval_split

        config = replace(config, eval_split=default_eval_split(backend))
    if recipe.eval_judge is not None:
        _check_evaluation(backend, recipe)  # before any work: a wrong set or category fails now, not after training
    progress = TqdmProgress() if info.is_main else None
    try:
        result = run_round(
            backend,
            config,
            args.out,
            resume=start_from,
            callback=progress,
            checkpoint=checkpoint_dir(args.out) if info.world_size == 1 else None,
        )
    except (Exception, KeyboardInterrupt):
        if info.is_main and checkpoint_dir(args.out).is_dir():
            print(
                f"round interrupted; its completed stages are kept in {checkpoint_dir(args.out)}: "
                "run the same command with --resume to continue"
            )
        raise
    finally:
        if progress is not None:
            progress.close()
    if not info.is_main:
        return 0
    from ..recipes import RECIPE_FILE, write_recipe

    write_recipe(replace(recipe, config=config), Path(result.run_dir) / RECIPE_FILE)
    s = result.summary
    print(f"round {result.round_index} written to {result.run_dir} (seed {result.seed})")
    print(
        f"  images {result.n_samples}, trained on {result.n_trained}, left out {result.n_excluded} "
        f"(global judgement unreadable)"
        + (f", gated out {s.get('n_gated_out')} (g ≤ {result.config.gate})" if result.config.gate is not None else "")
        + f"; mean g {_num(s.get('global_reward_mean'))}, mean region score {_num(s.get('region_reward_mean'))}"
    )
    if result.train.metrics:
        print(f"  loss {result.train.metrics[0]['loss']:.5f} → {result.train.metrics[-1]['loss']:.5f}")
    if result.eval_after is not None:
        before = result.eval_before
        print(f"  {'category':<10} referee before → after    judge–referee agreement before → after")
        for cat in ["overall", *sorted(result.eval_after.per_category)]:
            a = result.eval_after.overall if cat == "overall" else result.eval_after.per_category[cat]
            b = None
            if before is not None:
                b = before.overall if cat == "overall" else before.per_category.get(cat)
            print(
                f"  {cat:<10} {_pct(b.referee_accuracy if b else None)} → {_pct(a.referee_accuracy)}"
                f"           {_pct(b.agreement if b else None)} → {_pct(a.agreement)}"
            )
    print("  time: " + ", ".join(f"{k} {v:.1f}s" for k, v in result.timings.items()))
    if recipe.eval_judge is not None:
        _independent_evaluation(backend, recipe, config, start_from, Path(result.run_dir))
    if args.track:
        from ..tracking import log_round_folder

        print(f"  tracked in trackio as {log_round_folder(result.run_dir)}")
    return 0


def _check_evaluation(backend: Any, recipe: Any) -> None:
    from ..eval_runs import evaluation_prompts

    try:
        evaluation_prompts(backend, recipe.evaluation_config())
    except (OSError, ValueError) as err:
        raise CliError(f"recipe evaluation: {err}") from err


def _independent_evaluation(backend: Any, recipe: Any, config: Any, start_from: str | None, run_dir: Path) -> None:
    """The recipe's ``evaluation.judge``: the round's starting state and the round scored by a judge that is not
    the trained model, into ``RUN/evaluation/``."""
    from ..eval_runs import run_evaluation, states_for
    from .evaluate_cmd import print_results

    chain = [*([start_from] if start_from is not None else []), str(run_dir)]
    out = run_dir / "evaluation"
    progress = TqdmProgress()
    try:
        results = run_evaluation(
            backend, states_for(chain), recipe.evaluation_config(), out, generation=config.generation,
            self_judge=config.judge, callback=progress,
        )
    finally:
        progress.close()
    print_results(results)
    print(f"  independent evaluation written to {out / 'results.json'}")


def _interrupted_round(args: argparse.Namespace) -> str | None:
    """The adapter a round starts from (``--resume RUN_DIR``, or the interrupted round's own starting run), after
    checking that ``--resume`` and the interrupted round of ``--out`` (if any) agree."""
    from ..checkpoints import checkpoint_dir, stored_key

    stages = checkpoint_dir(args.out)
    key = stored_key(stages)
    if args.resume == INTERRUPTED:
        if key is None:
            raise CliError(f"nothing to continue: no interrupted round of --out {args.out} (no {stages})")
        return key.get("resume")
    if key is not None and args.resume is not None and str(args.resume) == key.get("resume"):
        return args.resume  # the interrupted round started from this run: continue it
    if key is not None:
        raise CliError(
            f"--out {args.out} has an interrupted round (completed stages in {stages}); add --resume to continue "
            "it, or delete that folder to start again"
        )
    if args.resume is not None and not Path(args.resume).is_dir():
        raise CliError(f"--resume {args.resume} is not a run folder")
    return args.resume


def run_eval_command(args: argparse.Namespace) -> int:
    from ..config import check_int
    from ..distributed import barrier, process_info
    from ..evaluation import evaluate
    from ..facade import check_seed
    from ..runs import load_run

    out = Path(args.out)
    if out.exists() and not args.force:
        raise CliError(f"--out {out} exists; pass --force to overwrite it")
    n_seeds = check_int(args.n_seeds, "n_seeds", 1, 1000, "--n-seeds: seeds per prompt")
    n_prompts = check_int(args.n_prompts, "n_prompts", 1, 10_000, "--n-prompts: prompts per category")
    first_seed = check_seed(args.seed)
    check_seed(first_seed + n_seeds - 1)
    generation = _generation(args)  # checks the flags before the backend loads
    info = process_info()  # first: under several GPU processes this selects each process's own GPU
    backend = backend_from_args(args, generation.device)
    state = "base"
    if args.run is not None:
        load_run(args.run, backend)
        state = str(args.run)
    progress = TqdmProgress() if info.is_main else None
    try:
        result = evaluate(
            backend,
            args.split,
            args.category,
            seeds=list(range(first_seed, first_seed + n_seeds)),
            n_prompts=n_prompts,
            generation=_generation(args, backend),
            callback=progress,
            info=info,
        )
    finally:
        if progress is not None:
            progress.close()
    if info.is_main:
        out.parent.mkdir(parents=True, exist_ok=True)
        payload = {"backend": backend.name, "state": state, **result.to_dict()}
        tmp = out.with_name(f".{out.name}.tmp")
        tmp.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
        tmp.replace(out)
        print(f"evaluated {result.overall.n} images of {args.split} ({state}); judge: {result.judge}")
        print(f"  {'category':<10} referee  judge-pass  agreement  judge-failed")
        for cat in ["overall", *sorted(result.per_category)]:
            r = result.overall if cat == "overall" else result.per_category[cat]
            print(
                f"  {cat:<10} {_pct(r.referee_accuracy)}  {_pct(r.judge_pass_rate)}     {_pct(r.agreement)}"
                f"     {r.judge_failed}"
            )
        print(f"results written to {out}")
    barrier(info)
    return 0


def run_push_command(args: argparse.Namespace) -> int:
    from ..hub import push_run

    if not Path(args.run_dir).is_dir():
        raise CliError(f"{args.run_dir} is not a run folder")
    result = push_run(args.run_dir, args.repo_id, token=args.token, private=args.private, dry_run_dir=args.dry_run)
    if result.url is None:
        print(f"dry run: {len(result.files)} files for {result.repo_id} written to {result.folder} (nothing uploaded)")
    else:
        print(f"pushed {len(result.files)} files to {result.url}")
    return 0
