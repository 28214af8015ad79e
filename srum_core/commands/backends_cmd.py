"""``backends``: the backends ``--backend`` accepts, and the named generator + judge pairs with their GPU memory.

    python -m srum_core backends

Nothing is loaded: the list comes from the registry (:mod:`srum_core.backends`) and the pair presets
(:data:`srum_core.backends.pair.PRESETS`).
"""

from __future__ import annotations

import argparse

#: (name, what it is) for every backend family; the pair presets follow in their own table.
BACKEND_LINES: tuple[tuple[str, str], ...] = (
    ("sandbox", "embedded tiny unified model in a world of coloured shapes (CPU, offline; the default)"),
    ("janus-pro-1b, janus-pro-7b, janus:ID", "Janus-Pro through transformers (self-judging)"),
    ("bagel, bagel:ID", "BAGEL-7B-MoT, the model SRUM was built on (self-judging)"),
    ("pair --generator ID --judge ID", "a diffusers SD3, FLUX.1 or Sana pipeline judged by a vision-language model"),
    ("pair:PRESET, pair:GENERATOR+JUDGE", "a named pair (below), or two aliases / hub ids joined by +"),
)


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser(
        "backends",
        help="list the backends and the named generator + judge pairs (with their GPU memory)",
        description="List what --backend accepts, and the pair presets with GPU memory at 512² and 1024².",
    )
    p.set_defaults(handler=run_backends)


def run_backends(args: argparse.Namespace) -> int:
    from ..backends.pair import GENERATORS, JUDGE_MODELS, PRESETS, estimate_memory_gb

    width = max(len(name) for name, _ in BACKEND_LINES)
    print("backends (--backend NAME):")
    for name, what in BACKEND_LINES:
        print(f"  {name:<{width}}  {what}")
    print()
    print("pair presets (--backend pair:NAME): GPU memory of a LoRA round in bf16, both models on the GPU, and with")
    print("--offload swap (one model on the GPU at a time):")
    name_w = max(len(p.name) for p in PRESETS.values())
    print(f"  {'name':<{name_w}}  {'512²':>8}  {'1024²':>8}  {'swap 1024²':>10}  generator / judge")
    for preset in PRESETS.values():
        kind = "measured" if preset.measured else "estimated"
        generator = GENERATORS[preset.generator].hub_id
        judge = JUDGE_MODELS[preset.judge].hub_id
        print(
            f"  {preset.name:<{name_w}}  {preset.memory(512):6.1f}GB  {preset.memory(1024):6.1f}GB  "
            f"{estimate_memory_gb(preset.generator, preset.judge, 1024, offload='swap'):8.1f}GB  "
            f"{generator} / {judge} ({kind}; {preset.note})"
        )
    print()
    print("aliases: generators " + ", ".join(GENERATORS) + "; judges " + ", ".join(JUDGE_MODELS))
    print("estimated = bf16 weights of both models + the transformer's activations for one training image + 2 GB;")
    print("python -m bench.bench_pair_gpu measures them on a GPU.")
    return 0
