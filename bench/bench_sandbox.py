"""Speed of the sandbox backend (TinyUMM): loading it, then generating and scoring a batch of 16 images, and the
FLOP rate that achieves as a fraction of the fp32 matmul rate measured in the same run.

    python -m bench.bench_sandbox [--weights assets/tiny-umm] [--steps 20] [--guidance 3.0] [--seed 0] [--threads 2]

Its quality (referee accuracy, judge agreement) is an experiment: ``python -m experiments.sandbox_model``.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any


def matmul_gflops(threads: int, n: int = 1024, reps: int = 20) -> float:
    import torch

    torch.set_num_threads(threads)
    a, b = torch.randn(n, n), torch.randn(n, n)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    return 2 * n**3 * reps / (time.perf_counter() - t0) / 1e9


def score_batch(backend, samples, judge) -> None:
    """Global judgement + the default box source + region judgements for each sample (what `score` does)."""
    grounding = next(iter(backend.box_sources().values()))
    for s in samples:
        backend.judge_global(s.image, s.prompt, judge)
        regions = grounding.propose(s.image, s.prompt, judge.max_regions)
        if regions:
            backend.judge_regions(s.image, s.prompt, regions, judge)


def load_timed(weights: str | None, threads: int) -> tuple[Any, dict[str, float]]:
    """The sandbox on the CPU, and the seconds spent importing diffusers and loading the weights."""
    import torch

    from srum_core.backends.sandbox import load_sandbox

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    import diffusers  # noqa: F401  (timed apart: the import is shared by every diffusers-based model)

    import_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    backend = load_sandbox(weights, device="cpu")
    load_s = time.perf_counter() - t0
    print(f"import diffusers: {import_s:.2f} s; load weights: {load_s:.2f} s")
    return backend, {"load_seconds": round(load_s, 2), "import_seconds": round(import_s, 2)}


def measure_speed(backend: Any, generation: Any, judge: Any, threads: int, seed: int) -> dict[str, Any]:
    """Generate and score 16 in-distribution evaluation prompts; FLOPs counted in a separate, untimed pass."""
    from torch.utils.flop_counter import FlopCounterMode

    prompts = [item.text for item in backend.prompts("eval", None, 16, seed + 1)]
    seeds = list(range(16))
    backend.generate(prompts[:8], seeds[:8], generation)  # warm-up
    peak = matmul_gflops(threads)
    t0 = time.perf_counter()
    samples = backend.generate(prompts, seeds, generation)
    gen_s = time.perf_counter() - t0
    t1 = time.perf_counter()
    score_batch(backend, samples, judge)
    score_s = time.perf_counter() - t1
    total_s = time.perf_counter() - t0
    with FlopCounterMode(display=False) as counter:
        samples = backend.generate(prompts, seeds, generation)
        score_batch(backend, samples, judge)
    flops = counter.get_total_flops()
    rate = flops / total_s / 1e9
    print(f"generate 16 images ({generation.steps} steps, CFG {generation.guidance}): {gen_s:.2f} s; score them: "
          f"{score_s:.2f} s; total {total_s:.2f} s")
    print(f"{flops / 1e9:.1f} GFLOP in {total_s:.2f} s = {rate:.1f} GFLOP/s = {rate / peak:.1%} of fp32 matmul "
          f"throughput measured now ({peak:.0f} GFLOP/s, {threads} threads)")
    return {
        "batch": 16, "generate_seconds": round(gen_s, 2), "score_seconds": round(score_s, 2),
        "total_seconds": round(total_s, 2), "gflop": round(flops / 1e9, 2), "achieved_gflops": round(rate, 2),
        "matmul_fp32_gflops": round(peak, 1), "fraction_of_matmul": round(rate / peak, 4), "threads": threads,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--weights", default=None, help="TinyUMM folder (default: shipped assets/tiny-umm)")
    parser.add_argument("--steps", type=int, default=20, help="Euler steps (default 20)")
    parser.add_argument("--guidance", type=float, default=3.0, help="CFG scale (default 3.0)")
    parser.add_argument("--seed", type=int, default=0, help="prompt seed (default 0)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    args = parser.parse_args(argv)

    from srum_core.config import GenerationConfig, JudgeConfig

    backend, load = load_timed(args.weights, args.threads)
    speed = measure_speed(backend, GenerationConfig(steps=args.steps, guidance=args.guidance), JudgeConfig(),
                          args.threads, args.seed)  # fmt: skip
    if args.json is not None:
        args.json.write_text(json.dumps({**load, "speed": speed}, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
