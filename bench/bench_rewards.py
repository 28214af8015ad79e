"""Benchmark of the reward-map path at BAGEL's scale: 1024×1024 images, 10 SAM boxes, 16-pixel tokens.

Prints per-call times and ratios measured side by side in one run:
- building the pixel map vs projecting it to tokens (bilinear and area);
- SRUM's two-term loss vs a plain unweighted mean on the same (B, N) errors (the cost of the reward weighting).

    python -m bench.bench_rewards [--size 1024] [--boxes 10] [--repeats 50]
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import torch

from srum_core.rewards import build_pixel_map, project_to_tokens, srum_loss
from srum_core.types import GlobalJudgement, Region, RegionJudgement, RewardReport


def timeit(fn, repeats: int) -> float:
    """Median seconds per call after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def make_report(size: int, boxes: int, seed: int = 0) -> RewardReport:
    rng = np.random.default_rng(seed)
    judged = []
    for _ in range(boxes):
        x1, y1 = rng.integers(0, size - 64, size=2)
        w, h = rng.integers(32, size // 2, size=2)
        judged.append(
            RegionJudgement(
                region=Region((int(x1), int(y1), int(x1 + w), int(y1 + h)), "bench"),
                object_name="obj",
                score=float(rng.uniform(-1, 1)),
            )
        )
    return RewardReport("bench", size, size, GlobalJudgement(score=0.6), tuple(judged))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1024)
    parser.add_argument("--boxes", type=int, default=10)
    parser.add_argument("--repeats", type=int, default=50)
    parser.add_argument("--token-size", type=int, default=16)
    args = parser.parse_args()

    report = make_report(args.size, args.boxes)
    pixel = build_pixel_map(report, "released")
    t_map = timeit(lambda: build_pixel_map(report, "released"), args.repeats)
    t_bilinear = timeit(lambda: project_to_tokens(pixel, args.token_size, "bilinear"), args.repeats)
    t_area = timeit(lambda: project_to_tokens(pixel, args.token_size, "area"), args.repeats)

    tokens = (args.size // args.token_size) ** 2
    errors = torch.rand(16, tokens)
    weights = torch.rand(16, tokens)
    t_plain = timeit(lambda: errors.mean(), args.repeats)
    t_srum = timeit(lambda: srum_loss(errors, weights, 0.5), args.repeats)

    print(
        f"reward maps: {args.size}x{args.size} image, {args.boxes} boxes, {args.token_size}px tokens, torch {torch.__version__}"
    )
    print(f"{'step':<34}{'ms/call':>10}")
    print(f"{'pixel map (released)':<34}{t_map * 1e3:>10.3f}")
    print(f"{'project to tokens (bilinear)':<34}{t_bilinear * 1e3:>10.3f}")
    print(f"{'project to tokens (area)':<34}{t_area * 1e3:>10.3f}")
    print(f"{'plain mean loss, 16 images':<34}{t_plain * 1e3:>10.3f}")
    print(f"{'SRUM two-term loss, 16 images':<34}{t_srum * 1e3:>10.3f}")
    print("ratios (same run):")
    print(f"  area / bilinear projection      {t_area / t_bilinear:.2f}x")
    print(f"  projection (area) / pixel map   {t_area / t_map:.2f}x")
    print(f"  SRUM loss / plain mean          {t_srum / t_plain:.2f}x")


if __name__ == "__main__":
    main()
