"""Focused self-training on the embedded model: can one prompt's own images, judged by the model, teach it that prompt?

A diagnostic beside ``experiments.rounds``. There, rounds train on many different prompts and are measured on unseen
ones; even the world renderer's perfect drawings do not move that measure within a round's budget. Here each
round trains on ``--images`` of the model's own images of ONE prompt (text only) and is measured on new image
seeds of that same prompt, so the question is only whether the reward carries information:

- ``srum``: SRUM's released map, λ 0.5;  ``sft``: uniform weights on the same images;
- ``gated``: SRUM's map on the images the self-judge accepts (g > 0) only — an option outside SRUM;
- ``renders``: uniform weights on the world renderer's drawings of the prompt — the perfect-data bound.

The referee (never used for training) measures pass rates on ``--eval-images`` new seeds per prompt.

    python -m experiments.focused [--prompts N] [--seeds 0 1] [--images 64] [--steps 300] [--lr 1e-3]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from experiments.common import OUT_DIR, fmt_mean_std, load_cpu_sandbox, print_table, render_round, write_results
from srum_core.adapters import reset_to_base
from srum_core.config import GenerationConfig, RewardConfig, TrainingConfig
from srum_core.evaluation import referee_passed
from srum_core.rounds import RoundConfig, run_round
from srum_core.types import PromptItem

VARIANTS = ("srum", "sft", "gated", "renders")
EVAL_SEED_BASE = 1_000_000  # evaluation image seeds, far from the rounds' own


def referee_rate(backend: Any, item: PromptItem, n: int, generation: GenerationConfig) -> float:
    """The share of ``n`` new-seed images of ``item`` that the backend's referee passes."""
    referee = backend.referee()
    samples = backend.generate([item.text] * n, [EVAL_SEED_BASE + i for i in range(n)], generation)
    return float(np.mean([bool(referee_passed(referee, s.image, item)) for s in samples]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default=None, help="sandbox weights folder (default: the shipped assets/tiny-umm)")
    p.add_argument("--prompts", type=int, default=4, help="validation prompts, taken in turn from --categories")
    p.add_argument(
        "--categories", nargs="+", default=["color", "spatial", "numeracy", "complex"], help="prompt categories"
    )
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="round seeds per prompt")
    p.add_argument("--images", type=int, default=64, help="own images of the prompt per round")
    p.add_argument("--steps", type=int, default=300, help="optimiser steps")
    p.add_argument("--lr", type=float, default=1e-3, help="learning rate")
    p.add_argument("--eval-images", type=int, default=32, help="new-seed images per prompt for the referee")
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=VARIANTS)
    p.add_argument("--out", default=str(OUT_DIR / "focused.json"), help="where to write the JSON results")
    args = p.parse_args(argv)

    backend = load_cpu_sandbox(args.model)
    generation = GenerationConfig(device="cpu")
    categories = list(args.categories)
    items = [backend.prompts("val", [c], 8, 0)[k // len(categories)] for k, c in
             zip(range(args.prompts), categories * args.prompts)]  # fmt: skip
    results: dict[str, Any] = {"settings": vars(args), "prompts": []}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        for n, item in enumerate(items):
            reset_to_base(backend)
            base = referee_rate(backend, item, args.eval_images, generation)
            row: dict[str, Any] = {"prompt": item.text, "category": item.category, "base": base}
            print(f"[{item.text}] base {base:.2f}", flush=True)
            prompt_file = Path(tmp) / f"p{n}.jsonl"
            line = json.dumps({"prompt": item.text, "category": item.category, "spec": item.spec})
            prompt_file.write_text((line + "\n") * args.images)
            for name in args.variants:
                row[name] = []
                for seed in args.seeds:
                    reset_to_base(backend)
                    training = TrainingConfig(steps=args.steps, lr=args.lr, lam=0.5, batch_size=8, lora_rank=8)
                    trained, right = args.images, None
                    config = RoundConfig(
                        prompts=str(prompt_file), n_prompts=args.images, seed=seed, generation=generation,
                        reward=RewardConfig(mode="released" if name in ("srum", "gated") else "sft"),
                        training=training, eval_split=None, n_fixed_samples=0, gate=0.0 if name == "gated" else None,
                    )  # fmt: skip
                    if name == "renders":
                        render_round(backend, config, fresh=True)
                    else:
                        result = run_round(backend, config, None)
                        trained = result.n_trained
                        right = result.summary.get("trained_referee_accuracy")
                    after = referee_rate(backend, item, args.eval_images, generation)
                    row[name].append({"seed": seed, "after": after, "n_trained": trained, "trained_right": right})
                    print(f"[{item.text}] {name} seed {seed}: {base:.2f} → {after:.2f} (trained on {trained}"
                          + ("" if right is None else f", {right:.2f} of them right") + ")", flush=True)  # fmt: skip
            results["prompts"].append(row)
    reset_to_base(backend)
    results["wall_s"] = time.perf_counter() - start

    table = []
    for row in results["prompts"]:
        table.append([row["prompt"], f"{100 * row['base']:.0f}%"]
                     + [fmt_mean_std([r["after"] for r in row[v]], True) for v in args.variants])  # fmt: skip
    mean_base = [row["base"] for row in results["prompts"]]
    table.append(["mean", f"{100 * np.mean(mean_base):.0f}%"]
                 + [fmt_mean_std([np.mean([r["after"] for r in row[v]]) for row in results["prompts"]], True)
                    for v in args.variants])  # fmt: skip
    print()
    print(f"Referee pass rate on {args.eval_images} new seeds of the trained prompt (mean ± std over round seeds "
          f"{args.seeds}; last row: mean ± std over prompts)")  # fmt: skip
    print(print_table(["prompt", "base"] + list(args.variants), table))
    print(f"whole bench {results['wall_s']:.0f}s")
    write_results(args.out, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
