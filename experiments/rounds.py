"""SRUM rounds on the embedded sandbox model: does self-rewarding beat the base model and SFT, by the referee?

For each seed: the base model is evaluated on validation prompts (every category, held-out attribute pairs);
then, each starting from the base, SRUM runs up to ``--rounds`` rounds, SFT on the same kind of self-generated
images runs as many, and each ablation runs one round; every state is evaluated on the same validation prompts at
the same seed. Reported: referee accuracy mean ± std over seeds (and the paired change against base), the
self-judge's pass rate and judge–referee agreement, per category for base / SRUM / SFT; the cost of one training
step against one forward pass on the same batch; and a round's wall time split by stage.

    python -m experiments.rounds [--model assets/tiny-umm] [--seeds 0 1 2] [--rounds 3] [--n-prompts 32]
        [--steps 20] [--variants srum sft binary global-only local-only signed lam0 area] [--quick]

Beyond SRUM and its ablations, ``--variants`` takes ``gated`` / ``gated-sft`` (reward-gated rounds) and the
``renders`` diagnostic (the same training on the world renderer's drawings); ``--round-prompts`` chooses what the
rounds generate from (``train``, ``val-heldout``, ``eval-prompts``).

Results go to ``experiments/out/rounds.json`` (and the table to stdout).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import torch

from bench.common import ratio_line, timeit
from experiments.common import (
    OUT_DIR,
    fmt_mean_std,
    load_cpu_sandbox,
    mean_std,
    print_table,
    render_round,
    write_results,
)
from srum_core.adapters import attach_adapter, reset_to_base, trainable_parameters
from srum_core.config import GenerationConfig, RewardConfig, TrainingConfig
from srum_core.evaluation import EvalResult, eval_prompts, evaluate
from srum_core.rewards import srum_loss
from srum_core.rounds import RoundConfig, run_round
from srum_core.training import make_optimizer

#: name → (reward map mode, grid, λ override or None, whether it runs as many rounds as SRUM, gate or None).
#: ``gated`` / ``gated-sft``: reward-gated rounds (only images the self-judge accepts, g > 0, train), with SRUM's
#: map or uniform weights — options outside SRUM, not run by default.
VARIANTS: dict[str, tuple[str, str, float | None, bool, float | None]] = {
    "srum": ("released", "bilinear", None, True, None),
    "sft": ("sft", "bilinear", None, True, None),
    "binary": ("binary", "bilinear", None, False, None),
    "global-only": ("global-only", "bilinear", None, False, None),
    "local-only": ("local-only", "bilinear", None, False, None),
    "signed": ("signed", "bilinear", None, False, None),
    "lam0": ("released", "bilinear", 0.0, False, None),
    "area": ("released", "area", None, False, None),
    "gated": ("released", "bilinear", None, True, 0.0),
    "gated-sft": ("sft", "bilinear", None, True, 0.0),
    "renders": ("sft", "bilinear", None, True, None),
}
#: ``renders`` is a diagnostic, not a self-reward method: the same rounds' training (same prompts, steps, lr,
#: LoRA) on the world renderer's clean drawings of the round's prompts instead of the model's own images, with
#: uniform weights. It bounds what any reward could get out of perfect self-generated data in this recipe.
DEFAULT_VARIANTS = ["srum", "sft", "binary", "global-only", "local-only", "signed", "lam0", "area"]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="sandbox weights folder (default: the shipped assets/tiny-umm)")
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="bench seeds (≥ 3 for mean ± std)")
    p.add_argument("--rounds", type=int, default=3, help="SRUM and SFT rounds (≤ 3)")
    p.add_argument("--n-prompts", type=int, default=32, help="training images per round")
    p.add_argument("--steps", type=int, default=20, help="optimiser steps per round")
    p.add_argument("--lr", type=float, default=3e-4, help="learning rate")
    p.add_argument("--lam", type=float, default=0.5, help="λ for every variant but lam0")
    p.add_argument("--lora-rank", type=int, default=8, help="LoRA rank")
    p.add_argument("--batch-size", type=int, default=8, help="images per optimiser step")
    p.add_argument("--gen-steps", type=int, default=None, help="sampling steps (default: GenerationConfig's)")
    p.add_argument("--eval-n-prompts", type=int, default=4, help="validation prompts per category")
    p.add_argument("--variants", nargs="+", default=DEFAULT_VARIANTS, choices=list(VARIANTS), help="what to run")
    p.add_argument("--all-rounds", action="store_true", help="run every variant (not only srum and sft) for --rounds")
    p.add_argument(
        "--round-prompts",
        default="train",
        choices=("train", "val-heldout", "eval-prompts"),
        help="prompts the rounds generate from: the training split; validation-split prompts (text only, "
        "never an image or label) with every evaluation prompt removed, so evaluation stays on unseen prompts; "
        "or the evaluation prompts themselves (text only; other image seeds) — a seen-prompt diagnostic",
    )
    p.add_argument("--quick", action="store_true", help="tiny settings to check the bench runs")
    p.add_argument("--out", default=str(OUT_DIR / "rounds.json"), help="where to write the JSON results")
    return p.parse_args(argv)


def referee_of(result: EvalResult, category: str = "overall") -> float | None:
    cat = result.overall if category == "overall" else result.per_category.get(category)
    return None if cat is None else cat.referee_accuracy


def measure_cost(backend: Any, samples: list, lr: float, lam: float, rank: int) -> dict[str, Any]:
    """Median time of one training step (forward + backward + AdamW) vs one loss forward on the same batch."""
    config = TrainingConfig(lr=lr, lam=lam, lora_rank=rank)
    attach_adapter(backend, config)
    params = trainable_parameters(backend)
    optimizer = make_optimizer(params, config)
    weights = torch.ones(len(samples), backend.token_grid(*backend.image_size)[0] ** 2)

    def forward() -> None:
        with torch.no_grad():
            backend.token_losses(samples, torch.Generator().manual_seed(0))

    def train_step() -> None:
        optimizer.zero_grad()
        errors = backend.token_losses(samples, torch.Generator().manual_seed(0))
        srum_loss(errors, weights, lam).total.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()

    t_forward = timeit(forward, repeats=10)
    t_step = timeit(train_step, repeats=10)
    reset_to_base(backend)
    return {
        "batch": len(samples),
        "forward_s": float(np.median(t_forward)),
        "train_step_s": float(np.median(t_step)),
        "ratio": float(np.median(t_step) / np.median(t_forward)),
        "line": ratio_line("train step", t_step, "forward", t_forward),
    }


def heldout_val_prompt_file(folder: Path, n_prompts: int, seed: int, exclude: set[str]) -> Path:
    """A JSONL prompt file of ``n_prompts`` validation-split prompts, none of them in ``exclude``."""
    from srum_core.world.prompts import make_prompts

    pool = [s for s in make_prompts("val", None, 8 * n_prompts, seed) if s.text not in exclude][:n_prompts]
    if len(pool) < n_prompts:
        raise SystemExit(f"only {len(pool)} validation prompts outside the evaluation set; lower --n-prompts")
    path = folder / f"val-heldout-{seed}.jsonl"
    rows = ({"prompt": s.text, "category": s.category, "spec": s.to_dict()} for s in pool)
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    return path


def eval_prompt_file(backend: Any, folder: Path, n_prompts: int, eval_n_prompts: int) -> Path:
    """A JSONL prompt file holding the evaluation prompts, each repeated until there are ``n_prompts`` lines."""
    items = eval_prompts(backend, "val", None, eval_n_prompts, 0)
    rows = [{"prompt": i.text, "category": i.category, "spec": i.spec} for i in items]
    path = folder / "eval-prompts.jsonl"
    path.write_text("".join(json.dumps(rows[k % len(rows)]) + "\n" for k in range(n_prompts)))
    return path


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.rounds > 3:
        raise SystemExit("--rounds: the bench runs at most 3 rounds")
    if args.quick:
        args.seeds, args.rounds, args.n_prompts, args.steps, args.eval_n_prompts = args.seeds[:2], 1, 8, 3, 1
    t_load = time.perf_counter()
    backend = load_cpu_sandbox(args.model)
    print(f"loaded sandbox from {backend.source} in {time.perf_counter() - t_load:.1f}s", flush=True)
    generation = (
        GenerationConfig(device="cpu")
        if args.gen_steps is None
        else GenerationConfig(steps=args.gen_steps, device="cpu")
    )

    def evaluate_state(seed: int) -> tuple[EvalResult, float]:
        start = time.perf_counter()
        result = evaluate(backend, "val", None, seeds=(seed,), n_prompts=args.eval_n_prompts, generation=generation)
        return result, time.perf_counter() - start

    # evaluate() draws its prompts with prompt_seed 0 whatever the image seed: one fixed validation set.
    eval_texts = {item.text for item in eval_prompts(backend, "val", None, args.eval_n_prompts, 0)}
    results: dict[str, Any] = {"settings": vars(args), "generation": generation.to_dict(), "seeds": {}}
    round_timings: list[dict[str, float]] = []
    bench_start = time.perf_counter()
    srum_seconds = 0.0
    with tempfile.TemporaryDirectory() as tmp:
        for seed in args.seeds:
            reset_to_base(backend)
            base, t_eval = evaluate_state(seed)
            per_seed: dict[str, Any] = {"base": base.to_dict()}
            print(f"[seed {seed}] base referee {referee_of(base):.3f} ({t_eval:.0f}s to evaluate)", flush=True)
            for name in args.variants:
                mode, grid, lam, multi, gate = VARIANTS[name]
                rounds = args.rounds if multi or args.all_rounds else 1
                previous = None
                per_seed[name] = []
                variant_start = time.perf_counter()
                for k in range(1, rounds + 1):
                    round_seed = seed * 100 + k
                    prompts = "train"
                    if args.round_prompts == "val-heldout":
                        prompts = str(heldout_val_prompt_file(Path(tmp), args.n_prompts, round_seed, eval_texts))
                    elif args.round_prompts == "eval-prompts":
                        prompts = str(eval_prompt_file(backend, Path(tmp), args.n_prompts, args.eval_n_prompts))
                    config = RoundConfig(
                        prompts=prompts,
                        n_prompts=args.n_prompts,
                        seed=round_seed,
                        generation=generation,
                        reward=RewardConfig(mode=mode, grid=grid),
                        training=TrainingConfig(
                            steps=args.steps,
                            lr=args.lr,
                            lam=args.lam if lam is None else lam,
                            batch_size=args.batch_size,
                            lora_rank=args.lora_rank,
                        ),
                        eval_split=None,
                        n_fixed_samples=0,
                        gate=gate,
                    )
                    out = Path(tmp) / f"{seed}-{name}-{k}"
                    if name == "renders":
                        if k == 1:
                            reset_to_base(backend)
                        result = SimpleNamespace(summary={}, n_excluded=0, n_samples=args.n_prompts,
                                                 **render_round(backend, config, fresh=k == 1))  # fmt: skip
                    else:
                        result = run_round(backend, config, out, resume=previous)
                    previous = out
                    after, t_eval = evaluate_state(seed)
                    timings = {**result.timings, "evaluate": t_eval}
                    if name == "srum":
                        round_timings.append(timings)
                    per_seed[name].append(
                        {
                            "round": k,
                            "eval": after.to_dict(),
                            "summary": result.summary,
                            "timings": timings,
                            "loss_first": result.train.metrics[0]["loss"] if result.train.metrics else None,
                            "loss_last": result.train.metrics[-1]["loss"] if result.train.metrics else None,
                        }
                    )
                    trained_ok = result.summary.get("trained_referee_accuracy")
                    print(
                        f"[seed {seed}] {name} round {k}: referee {referee_of(after):.3f}, agreement "
                        f"{after.overall.agreement}, excluded {result.n_excluded}/{result.n_samples}, trained "
                        f"{result.n_trained} ({'n/a' if trained_ok is None else f'{trained_ok:.2f}'} right), "
                        + ", ".join(f"{s} {v:.1f}s" for s, v in timings.items()),
                        flush=True,
                    )
                if name == "srum":
                    srum_seconds += time.perf_counter() - variant_start
            results["seeds"][str(seed)] = per_seed

        # Cost: one training step vs one forward pass on the same batch of the model's own samples.
        reset_to_base(backend)
        samples = backend.generate(
            ["a red circle to the left of a blue square"] * args.batch_size, list(range(args.batch_size)), generation
        )
        results["cost"] = measure_cost(backend, samples, args.lr, args.lam, args.lora_rank)
    results["wall_s"] = time.perf_counter() - bench_start
    results["srum_wall_s"] = srum_seconds

    # ------------------------------------------------------------------------------------------------ tables
    seeds = [str(s) for s in args.seeds]

    def final(name: str, seed: str) -> dict[str, Any]:
        return results["seeds"][seed][name][-1]["eval"]

    def rate(eval_dict: dict[str, Any], key: str, category: str = "overall") -> float | None:
        block = eval_dict["overall"] if category == "overall" else eval_dict["per_category"].get(category, {})
        return block.get(key)

    rows = []
    base_acc = [rate(results["seeds"][s]["base"], "referee_accuracy") for s in seeds]
    rows.append(
        [
            "base",
            0,
            fmt_mean_std(base_acc, True),
            "",
            fmt_mean_std([rate(results["seeds"][s]["base"], "judge_pass_rate") for s in seeds], True),
            fmt_mean_std([rate(results["seeds"][s]["base"], "agreement") for s in seeds], True),
        ]
    )
    for name in args.variants:
        n_rounds = len(results["seeds"][seeds[0]][name])
        for k in range(n_rounds):
            evals = [results["seeds"][s][name][k]["eval"] for s in seeds]
            acc = [rate(e, "referee_accuracy") for e in evals]
            delta = [a - b for a, b in zip(acc, base_acc) if a is not None and b is not None]
            rows.append([
                name, k + 1, fmt_mean_std(acc, True), fmt_mean_std(delta, True),
                fmt_mean_std([rate(e, "judge_pass_rate") for e in evals], True),
                fmt_mean_std([rate(e, "agreement") for e in evals], True),
            ])  # fmt: skip
    print()
    print(f"Referee accuracy on validation prompts, mean ± std over seeds {args.seeds}")
    print(print_table(["variant", "round", "referee acc", "Δ vs base (paired)", "judge pass", "judge–referee agree"],
                      rows))  # fmt: skip

    categories = sorted(results["seeds"][seeds[0]]["base"]["per_category"])
    multi_round = [n for n in args.variants if VARIANTS[n][3] or args.all_rounds]
    cat_rows = []
    for cat in categories:
        row = [cat, fmt_mean_std([rate(results["seeds"][s]["base"], "referee_accuracy", cat) for s in seeds], True)]
        for name in multi_round:
            row.append(fmt_mean_std([rate(final(name, s), "referee_accuracy", cat) for s in seeds], True))
        cat_rows.append(row)
    heads = ["category", "base"] + [f"{n} (last round)" for n in multi_round]
    print()
    print("Per category, referee accuracy")
    print(print_table(heads, cat_rows))

    if round_timings:
        print()
        split = {k: mean_std([t[k] for t in round_timings]) for k in round_timings[0]}
        total = sum(m for m, _ in split.values())
        print(
            "SRUM round wall time by stage (mean over rounds and seeds): "
            + ", ".join(f"{k} {m:.1f}s ({100 * m / total:.0f}%)" for k, (m, _) in split.items())
            + f"; total {total:.1f}s"
        )
        results["round_time_split"] = {k: m for k, (m, _) in split.items()}
    print("Cost on a batch of", results["cost"]["batch"], "own samples:", results["cost"]["line"])
    print(f"SRUM variant wall time {results['srum_wall_s']:.0f}s; whole bench {results['wall_s']:.0f}s")

    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
