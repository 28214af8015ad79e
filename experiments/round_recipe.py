"""Find a round recipe that learns, by measurement: perfect data and SFT on the model's own images, per recipe.

    python -m experiments.round_recipe [--weights DIR] [--seeds 0] [--variants default ema cosine-ema ...]
        [--arms renders sft] [--per-category 50] [--out docs/results/sandbox_round_recipe.json]
        [--cache runs/round_recipe]

Each variant is the ``sandbox-srum`` round with some training (or round) fields changed (:data:`VARIANTS`). For
each round seed it generates the round's own images once per prompt count, then trains every (variant, arm) from
the same base weights and measures plain-mode referee accuracy on the same in-distribution evaluation items, so
every change against ``base`` is paired (bootstrap 95% interval over items, clustered by seed). Arms: ``renders``
(the world's perfect drawings of the round's prompts: what the optimiser can absorb at best) and ``sft`` (the
model's own think-mode images, uniform weights). Resumable: every measurement is cached under ``--cache``.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

#: name → (training overrides, round overrides). The first is the committed ``sandbox-srum`` preset.
VARIANTS: dict[str, tuple[dict, dict]] = {
    "default": ({}, {}),
    "ema": ({"ema_decay": 0.99, "eps": 1e-8}, {}),
    "cosine-ema": ({"ema_decay": 0.99, "eps": 1e-8, "lr": 3e-4, "lr_schedule": "cosine", "lr_min_ratio": 0.05}, {}),
    "cosine-ema-1200": ({"ema_decay": 0.995, "eps": 1e-8, "lr": 3e-4, "lr_schedule": "cosine", "lr_min_ratio": 0.05,
                         "steps": 1200}, {}),
    "cosine-ema-512p": ({"ema_decay": 0.99, "eps": 1e-8, "lr": 3e-4, "lr_schedule": "cosine", "lr_min_ratio": 0.05},
                        {"n_prompts": 512, "images_per_prompt": 1}),
    "cosine-ema-shift2": ({"ema_decay": 0.99, "eps": 1e-8, "lr": 3e-4, "lr_schedule": "cosine",
                           "lr_min_ratio": 0.05, "timestep_shift": 2.0}, {}),
    "cosine-ema-1e-3": ({"ema_decay": 0.99, "eps": 1e-8, "lr": 1e-3, "lr_schedule": "cosine", "lr_min_ratio": 0.05},
                        {}),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m experiments.round_recipe", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="base model (default: the shipped assets/tiny-umm)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=sorted(VARIANTS))
    parser.add_argument("--arms", nargs="+", default=["renders", "sft"], choices=["renders", "sft", "srum"])
    parser.add_argument("--per-category", type=int, default=50, help="evaluation images per category")
    parser.add_argument("--bootstrap", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("docs/results/sandbox_round_recipe.json"))
    parser.add_argument("--cache", type=Path, default=Path("runs/round_recipe"))
    args = parser.parse_args(argv)

    import torch

    from srum_core.adapters import adapter_state, attach_adapter, init_adapter, load_adapter_state
    from srum_core.backends.sandbox import load_sandbox
    from srum_core.params import round_config
    from srum_core.training import train_on_samples

    from .sandbox_model import set_items
    from .srum_table import (
        Cache,
        arm_spec,
        arm_training_set,
        delta_table,
        evaluate_items,
        render_samples,
        run_round_data,
    )

    torch.set_num_threads(args.threads)
    started = time.monotonic()
    base_config = round_config({}, preset="sandbox-srum", eval_split=None)
    backend = load_sandbox(args.weights, device="cpu")
    gen = base_config.generation
    cache = Cache(args.cache)
    weights_name = str(args.weights or "assets/tiny-umm")
    if cache.get("weights") not in (None, weights_name):
        raise SystemExit(f"error: {args.cache} holds results of other weights; use a new --cache folder")
    cache.put("weights", weights_name)
    items = set_items(backend, "eval", args.per_category)
    attach_adapter(backend, base_config.training)
    init_adapter(backend, 0)
    base_state = adapter_state(backend)

    def measure(key: str) -> list[bool]:
        hit = cache.get(key)
        if hit is None:
            hit = evaluate_items(backend, items, gen.steps, gen.guidance)
            cache.put(key, hit)
        return hit

    base = measure("base")
    print(f"base: {np.mean(base):.1%} on {len(base)} images")
    results: dict[str, dict[str, dict[int, list[bool]]]] = {}
    for seed in args.seeds:
        rounds: dict[tuple, dict] = {}
        for name in args.variants:
            t_over, r_over = VARIANTS[name]
            config = replace(base_config, training=replace(base_config.training, **t_over), seed=seed, **r_over)
            shape = (config.n_prompts, config.images_per_prompt)
            for arm_name in args.arms:
                key = f"{name}_{arm_name}_s{seed}"
                if cache.get(key) is None:
                    if shape not in rounds:
                        load_adapter_state(backend, base_state)
                        data = run_round_data(backend, config, seed, print)
                        data["renders"] = render_samples(backend, data["items"], data["seeds"])
                        rounds[shape] = data
                    data = rounds[shape]
                    arm = arm_spec(arm_name, config.reward.mode, config.reward.grid, config.training.lam)
                    samples, w = arm_training_set(arm, data["samples"], data["reports"], backend.token_size,
                                                  data["oracle"], data["renders"])
                    load_adapter_state(backend, base_state)
                    t0 = time.monotonic()
                    train_on_samples(backend, samples, w, replace(config.training, seed=seed))
                    train_s = time.monotonic() - t0
                    passes = measure(key)
                    cache.put(f"{key}_train_s", train_s)
                    print(f"  {key}: {np.mean(passes):.1%} (train {train_s:.0f}s)")
                results.setdefault(name, {}).setdefault(arm_name, {})[seed] = cache.get(key)
    load_adapter_state(backend, base_state)

    cats = [it.category for it, _ in items]
    summary: dict = {"weights": weights_name, "seeds": args.seeds, "n_items": len(items),
                     "base_accuracy": float(np.mean(base)) * 100, "variants": {}}
    for name, arms in results.items():
        entry = {"training": VARIANTS[name][0], "round": VARIANTS[name][1]}
        for arm_name, by_seed in arms.items():
            seeds = sorted(by_seed)
            arm_pass = [p for s in seeds for p in by_seed[s]]
            ref = [p for _ in seeds for p in base]
            clusters = [s for s in seeds for _ in items]
            d = delta_table(arm_pass, ref, cats * len(seeds), clusters, args.bootstrap)
            train_s = [cache.get(f"{name}_{arm_name}_s{s}_train_s") for s in seeds]
            entry[arm_name] = {"accuracy": float(np.mean(arm_pass)) * 100, "delta_vs_base": d["delta"],
                               "ci95": d["ci95"], "n_images": len(arm_pass),
                               "train_s": float(np.mean([t for t in train_s if t is not None] or [0.0]))}
        summary["variants"][name] = entry
    summary["wall_seconds_this_run"] = round(time.monotonic() - started, 1)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(summary, indent=1))
    lines = [f"Base {summary['base_accuracy']:.1f}% (plain mode, {len(items)} in-distribution evaluation images, "
             f"seeds {args.seeds}; Δ in points with paired bootstrap 95% CI).", "",
             "| variant | training changes | round changes | " + " | ".join(f"{a} Δ vs base" for a in args.arms)
             + " | train s |", "|---|---|---|" + "---|" * (len(args.arms) + 1)]
    for name, entry in summary["variants"].items():
        cells = []
        for a in args.arms:
            e = entry.get(a)
            cells.append("–" if e is None else f"{e['delta_vs_base']:+.1f} [{e['ci95'][0]:+.1f}, {e['ci95'][1]:+.1f}]")
        train_s = max((entry[a]["train_s"] for a in args.arms if a in entry), default=0.0)
        lines.append(f"| {name} | {json.dumps(entry['training'])} | {json.dumps(entry['round'])} | "
                     + " | ".join(cells) + f" | {train_s:.0f} |")
    text = "\n".join(lines)
    args.out.with_suffix(".md").write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
