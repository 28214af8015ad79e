"""``round``, ``eval`` and ``push``: run a SRUM round, evaluate a state, share a round on the Hub.

    python -m srum_core round --backend sandbox --prompts train --n-prompts 32 --steps 20 --lr 3e-4 --lam 0.5 \\
        --map released --grid bilinear --lora-rank 8 --seed 0 --out runs/r1
    python -m srum_core round ... --resume runs/r1 --out runs/r2
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
from ..config import MAP_MODES
from ..device import DTYPES
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


def backend_from_args(args: argparse.Namespace) -> Any:
    """The backend the parsed flags ask for (``--backend``, ``--model``, ``--device``, ``--dtype``, pair flags)."""
    options = {k: getattr(args, k) for k in PAIR_OPTIONS if getattr(args, k, None) is not None}
    if getattr(args, "dtype", "auto") != "auto":
        options["dtype"] = args.dtype
    return load_backend(args.backend, args.device, args.model, **options)  # only what was asked for


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


def _add_backend_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--backend", required=True, help=f"unified model to use: {', '.join(BACKENDS)}")
    parser.add_argument("--model", default=None, help="weights folder or hub id for the backend (default: its own)")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or mps (default: auto)")
    parser.add_argument("--gen-steps", type=int, default=None, help="sampling steps per image (default: backend's)")
    parser.add_argument("--guidance", type=float, default=None, help="classifier-free guidance scale")
    parser.add_argument("--batch-size", type=int, default=16, help="images generated per batch (default 16)")
    add_model_flags(parser)


def _generation(args: argparse.Namespace, backend: Any = None) -> Any:
    """The generation settings the flags ask for; flags left unset take the backend's own defaults where it has
    them (``generation_defaults``, e.g. BAGEL's 50 steps and CFG 4 as SRUM), else GenerationConfig's."""
    from ..config import GenerationConfig

    base = GenerationConfig(device=args.device, batch_size=args.batch_size)
    own = getattr(backend, "generation_defaults", None) or {}
    changes = {k: own[k] for k in ("steps", "guidance") if k in own}
    if args.gen_steps is not None:
        changes["steps"] = args.gen_steps
    if args.guidance is not None:
        changes["guidance"] = args.guidance
    return GenerationConfig(**{**base.to_dict(), **changes})


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "round",
        help="run one SRUM round: generate, self-judge, build reward maps, train, evaluate; write a run folder",
        description="Run one SRUM round and write its run folder (config, log, metrics, records, images, adapter).",
    )
    _add_backend_flags(p)
    p.add_argument(
        "--prompts",
        default="train",
        help="prompt source: a prompt set of the backend (sandbox: train, val), t2i-compbench, or a JSON/JSONL FILE",
    )
    p.add_argument(
        "--category",
        action="append",
        default=None,
        help="keep only this prompt category (repeat for several; default: all)",
    )
    p.add_argument("--n-prompts", type=int, default=16, help="images generated and judged this round (default 16)")
    p.add_argument("--steps", type=int, default=20, help="optimiser steps (default 20)")
    p.add_argument("--lr", type=float, default=1e-4, help="peak learning rate (default 1e-4)")
    p.add_argument("--lam", type=float, default=0.5, help="λ, the weight of the constraint term (0 = ablation)")
    p.add_argument(
        "--map",
        default="released",
        choices=MAP_MODES,
        help="reward map mode: released, signed, binary, global-only, local-only, or sft (the SFT baseline)",
    )
    p.add_argument("--grid", default="bilinear", choices=("bilinear", "area"), help="map → token grid projection")
    p.add_argument("--lora-rank", type=int, default=8, help="LoRA rank (default 8)")
    p.add_argument("--full-finetune", action="store_true", help="train every parameter instead of LoRA")
    p.add_argument("--train-batch-size", type=int, default=8, help="images per optimiser step (default 8)")
    p.add_argument("--warmup-steps", type=int, default=2, help="linear warm-up steps (default 2)")
    p.add_argument(
        "--timestep-shift",
        type=float,
        default=None,
        help="logit-normal timestep shift (default: the backend's own pre-training shift; SRUM's scripts use 1.0)",
    )
    p.add_argument("--box-source", default=None, help="region proposer by name (default: the backend's first)")
    p.add_argument("--region-view", default="crop", help="how the judge sees a region: crop, coords or boxes")
    p.add_argument("--max-regions", type=int, default=10, help="regions judged per image (default 10)")
    p.add_argument(
        "--eval-split", default="val", help="the backend's prompt set to evaluate before/after (sandbox: val), or 'none'"
    )
    p.add_argument("--eval-n-prompts", type=int, default=4, help="evaluation prompts per category (default 4)")
    p.add_argument("--eval-seeds", type=int, default=1, help="evaluation seeds 0..K-1 (default 1)")
    p.add_argument(
        "--images-per-prompt",
        type=int,
        default=1,
        metavar="K",
        help="images generated (at different seeds) and judged per drawn prompt (default 1)",
    )
    p.add_argument(
        "--gate",
        type=float,
        default=None,
        metavar="G",
        help="train only on images whose global self-score exceeds G (0 = judged 'yes'); reward-gated rounds, "
        "an option outside SRUM (default: every image with a readable global score trains)",
    )
    p.add_argument("--seed", type=int, default=None, help="seed of the round (default: drawn and printed)")
    p.add_argument("--resume", default=None, metavar="RUN_DIR", help="continue from this round's adapter")
    p.add_argument("--out", required=True, metavar="RUN_DIR", help="new run folder to write (must not exist)")
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
    e.add_argument("--n-prompts", type=int, default=8, help="prompts per category (default 8)")
    e.add_argument("--seed", type=int, default=0, help="first generation seed (default 0)")
    e.add_argument("--n-seeds", type=int, default=1, help="seeds S..S+K-1 per prompt (default 1)")
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
    from ..config import JudgeConfig, RewardConfig, TrainingConfig
    from ..rounds import RoundConfig

    eval_split = None if str(args.eval_split).lower() == "none" else args.eval_split
    return RoundConfig(
        prompts=args.prompts,
        categories=tuple(args.category) if args.category else None,
        n_prompts=args.n_prompts,
        seed=args.seed,
        generation=_generation(args),
        judge=JudgeConfig(region_view=args.region_view, max_regions=args.max_regions, box_source=args.box_source),
        reward=RewardConfig(mode=args.map, grid=args.grid),
        training=TrainingConfig(
            steps=args.steps,
            lr=args.lr,
            lam=args.lam,
            batch_size=args.train_batch_size,
            lora_rank=args.lora_rank,
            full_finetune=args.full_finetune,
            warmup_steps=args.warmup_steps,
            timestep_shift=args.timestep_shift,
        ),
        eval_split=eval_split,
        eval_n_prompts=args.eval_n_prompts,
        eval_seeds=tuple(range(args.eval_seeds)),
        gate=args.gate,
        images_per_prompt=args.images_per_prompt,
    )


def _num(value: float | None) -> str:
    return "–" if value is None else f"{value:.3f}"


def _pct(value: float | None) -> str:
    return "  –  " if value is None else f"{100 * value:5.1f}%"


def run_round_command(args: argparse.Namespace) -> int:
    from ..distributed import process_info
    from ..rounds import run_round

    if Path(args.out).exists():
        raise CliError(f"--out {args.out} already exists; choose a new run folder")
    if args.resume is not None and not Path(args.resume).is_dir():
        raise CliError(f"--resume {args.resume} is not a run folder")
    config = _round_config(args)
    info = process_info()  # first: under several GPU processes this selects each process's own GPU
    backend = backend_from_args(args)
    config = replace(config, generation=_generation(args, backend))
    progress = TqdmProgress() if info.is_main else None
    try:
        result = run_round(backend, config, args.out, resume=args.resume, callback=progress)
    finally:
        if progress is not None:
            progress.close()
    if not info.is_main:
        return 0
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
    return 0


def run_eval_command(args: argparse.Namespace) -> int:
    from ..distributed import barrier, process_info
    from ..evaluation import evaluate
    from ..runs import load_run

    out = Path(args.out)
    if out.exists() and not args.force:
        raise CliError(f"--out {out} exists; pass --force to overwrite it")
    if args.n_seeds < 1:
        raise CliError("--n-seeds must be at least 1")
    info = process_info()  # first: under several GPU processes this selects each process's own GPU
    backend = backend_from_args(args)
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
            seeds=list(range(args.seed, args.seed + args.n_seeds)),
            n_prompts=args.n_prompts,
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
