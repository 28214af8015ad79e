"""The model card (README.md) of a TinyUMM weights folder: architecture, data, caption noise, training, results.

    python -m srum_core.tinyumm.card --weights assets/tiny-umm [--measured results.md]

rewrites the card of a trained folder from its ``training_config.json`` and ``train_summary.json``, adding a
measured-results section (the markdown ``python -m experiments.sandbox_model --markdown`` writes).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

NOISE_TEXT = {
    "swap_colors": "two objects of different colours: each gets the other's colour",
    "swap_textures": "two objects of different textures: swapped",
    "swap_sizes": "two objects of different sizes: swapped",
    "flip_relation": "left ↔ right, above ↔ below",
    "drop_relation": "the relation left out (\"A and B\")",
    "miscount": "a count written one too high or too low",
    "drop_texture": "an object's texture word left out (per object)",
    "drop_size": "an object's size word left out (per object)",
}


def _get(config: Any, key: str, default: Any = None) -> Any:
    return config.get(key, default) if isinstance(config, dict) else getattr(config, key, default)


def card_text(config: Any, summary: dict, measured: str | None = None) -> str:
    """The card as markdown; ``config`` is a ``TrainRunConfig`` or its dict (``training_config.json``)."""
    data = _get(config, "data")
    data = data if isinstance(data, dict) else data.__dict__
    noise = data["caption_noise"] if isinstance(data["caption_noise"], dict) else data["caption_noise"].to_dict()
    fm = summary.get("final_metrics", {})
    params = summary.get("parameters", 0)
    v3 = float(data.get("plan_error_p", 0.0)) > 0
    lines = [
        f"# tiny-umm {'v3' if v3 else 'v2'}: the SRUM Workbench embedded model",
        "",
        "A tiny unified multimodal model built as a miniature of BAGEL-7B-MoT: one packed sequence, two experts with",
        "shared attention, a think mode, and an understanding that is better than its generation *by construction*",
        "(it reads exact labels; generation reads noisy captions). It draws and judges 64×64 images of the",
        "synthetic slot world in `srum_core/world` (a 4×4 grid of 16-pixel slots; red, yellow, green, blue;",
        "circle, square, triangle; small or large; solid or striped; up to four objects). Trained from scratch on a",
        "CPU by `python -m srum_core.tinyumm.train`; loaded by the `sandbox` backend (`srum_core/backends/sandbox.py`).",
        "",
        "## Architecture",
        f"- {params / 1e6:.2f} M parameters: understanding expert {summary.get('parameters_understanding_expert', 0) / 1e6:.2f} M,"
        f" generation expert {summary.get('parameters_generation_expert', 0) / 1e6:.2f} M (EMA weights shipped).",
        f"- {_get(config, 'n_layers')} layers per expert, width {_get(config, 'd_model')}, {_get(config, 'n_heads')} heads,"
        " MLP ×4. Each token runs through its own expert's QKV/out projections, norms and MLP; attention is shared.",
        "- Text (the prompt, then in think mode the plan) runs through the understanding expert as a prefix-LM and never",
        "  attends to an image, so a generation-expert update leaves every judgement and plan bit-identical.",
        "- Understanding stream: 16 raw 16×16-pixel patches (BAGEL's ViT path), an `<ask>` token (P(the image shows the",
        "  prompt)), one query per region box (P(the object in the box is one the prompt asks for) + its colour, shape,",
        "  size, texture), per-patch heads (what covers each slot: the model's own grounding), and planner heads.",
        "- Generation stream: 16 noisy 16×16-pixel patches (one per slot, as BAGEL's latent tokens cover 16×16 pixels),",
        "  adaLN-modulated by the flow time, x0 head; rectified flow with classifier-free guidance.",
        "- Think mode: the planner writes `<think> slot 5 (row 1, col 1): large striped red circle; … </think>` one",
        "  object at a time (fields sampled with the image's own seeded generator; one object per slot), then the",
        "  generation expert draws from prompt + plan. Plain mode: the prompt alone.",
        "",
        "## Data",
        "- Every batch is drawn fresh from the world (no dataset is stored): scenes are laid out on the slot grid and",
        "  pasted from exact object tiles.",
        "- **Generation** sees renders of *train*-split prompts only (never an in-distribution evaluation prompt, never a",
        "  held-out colour–shape pair) under **noisy captions**, like web alt-text; "
        f"{data['plan_p']:.0%} of examples also see their exact plan (think mode), {_get(config, 'cond_dropout'):.0%} the"
        " null condition (CFG). Caption corruption rates:",
        "",
        "  | corruption | rate | what it does |",
        "  |---|---|---|",
    ]
    for key, value in noise.items():
        lines.append(f"  | `{key}` | {value:.0%} | {NOISE_TEXT.get(key, '')} |")
    splits = ", ".join(f"{name} {share:.0%}" for name, share in data["und_splits"])
    lines += [
        "",
        f"- **Understanding** sees exact prompts of every split ({splits}): half the images show the prompt, half a near",
        "  miss (colours swapped, relation flipped, an attribute, count or object changed) or another prompt's render;",
        "  one region query per object (and sometimes an empty box) labelled by whether the object is one the prompt",
        "  asks for; per-slot labels; the planner's target is the prompt's own layout. Images are degraded at random",
        f"  (blur, noise, brightness; {data['ghost_p']:.0%} carry a faint ghost object) so the judge stays right on the"
        " model's own drawings.",
        "",
        "## Training",
        f"- {summary.get('steps')} steps in {summary.get('train_seconds')} s on {_get(config, 'threads')} CPU threads"
        f" (`--device {_get(config, 'device')}`); batch {_get(config, 'gen_batch')} generation + {_get(config, 'und_batch')}"
        " understanding examples per step.",
        f"- AdamW lr {_get(config, 'lr')} (warm-up {_get(config, 'warmup_steps')}, cosine to {_get(config, 'lr_min_ratio'):g}×"
        f" at step {_get(config, 'steps')}), weight decay {_get(config, 'weight_decay')}, clip {_get(config, 'grad_clip')},"
        f" EMA {_get(config, 'ema_decay')}; logit-normal timesteps with shift {_get(config, 'timestep_shift')};"
        + (" bf16 autocast for the matmuls." if _get(config, "bf16") else " float32."),
        f"- Loss: flow MSE + {_get(config, 'w_yes')}·BCE(yes) + {_get(config, 'w_region')}·(region BCE + objectness BCE) + "
        f"{_get(config, 'w_attr')}·region attribute CE + {_get(config, 'w_patch')}·per-slot heads + "
        f"{_get(config, 'w_plan')}·planner CE.",
        f"- Seed {_get(config, 'seed')}; everything random flows from it. Full config in `training_config.json`, the"
        " curve in `train_log.jsonl`.",
        "",
        "Last logged training metrics (mean over the last log window):",
        "",
        "| metric | value |",
        "|---|---|",
    ]
    for k in ("gen_loss", "yes_loss", "yes_acc", "region_loss", "region_acc", "plan_loss", "plan_color_acc",
              "plan_end_acc"):
        if k in fm:
            lines.append(f"| {k} | {fm[k]:.4f} |")
    if v3:
        lines += [
            "",
            "## v3: think mode with realistic mistakes",
            "",
            "v3 continues the v2 weights (`init_from`) for a second stage in which think mode makes the mistakes a real",
            "model's does (srum_core/world/plan_errors.py: a wrong count, a changed or swapped attribute, a flipped",
            "relation, a missing or an extra object — one per plan, everything else kept):",
            f"- the planner's target is a plan with one such mistake for {100 * data['plan_error_p']:.0f}% of prompts;",
            f"- {100 * data.get('plan_follow_error_p', 0.0):.0f}% of plan-conditioned generation examples show an image"
            " with one mistake against the right plan they are given (the generator sometimes fails a right plan);",
            f"- {100 * data.get('edit_negative_p', 0.0):.0f}% of the judge's near misses are the right layout with one"
            " mistake (flipped relations weighted 3×).",
            "",
            "Reproduce (seed 0, 2 CPU threads): `python -m srum_core.tinyumm.train --out V2` (the v2 stage; it ran under",
            "bf16 autocast on a CPU with bf16 hardware, add `--no-bf16` elsewhere),",
            "then `python -m srum_core.tinyumm.train --recipe v3 --init-from V2 --out V3` (float32). This v3 stage",
            f"ran {summary.get('steps')} of its {_get(config, 'steps')} scheduled steps in"
            f" {summary.get('train_seconds')} s on a shared 2-core machine; the recipe stops at step 2500 by step"
            " count (`stop_step`), where the shipped run stopped, so a rerun follows the same steps.",
        ]
    lines += [
        "",
        "## Samples",
        "",
        f"`samples.png`: pairs of images at the same seed — plain mode, then think mode — {_get(config, 'sample_steps')}"
        f" Euler steps, guidance {_get(config, 'sample_guidance')}; the prompts, row-major:",
        "",
    ]
    for i, p in enumerate(summary.get("sample_prompts", [])):
        lines.append(f"{i}. {p}")
    lines += ["", "## Measured results", "", measured or "Not measured yet: run `python -m experiments.sandbox_model`.",
              ""]
    return "\n".join(lines)


def write_model_card(out: Path, config: Any, summary: dict, measured: str | None = None) -> None:
    """Write ``out/README.md`` from the run's config and summary (and measured results, when given)."""
    (Path(out) / "README.md").write_text(card_text(config, summary, measured))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m srum_core.tinyumm.card", description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", type=Path, required=True, help="a folder written by srum_core.tinyumm.train")
    parser.add_argument("--measured", type=Path, default=None, help="markdown of measured results to include")
    args = parser.parse_args(argv)
    config = json.loads((args.weights / "training_config.json").read_text())
    summary = json.loads((args.weights / "train_summary.json").read_text())
    measured = args.measured.read_text() if args.measured else None
    write_model_card(args.weights, config, summary, measured)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
