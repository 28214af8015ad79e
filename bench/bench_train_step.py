"""Benchmark of one TinyUMM training step: float32 against bf16 autocast, measured side by side.

    python -m bench.bench_train_step [--repeats 20] [--threads 2]

The shipped model is trained with the trunk's matmuls under CPU bf16 autocast (``TrainRunConfig.bf16``;
fp32 master weights, fp32 attention, losses and codec). This prints, for the shipped architecture on random
init and the same data:
- the median time of a full optimiser step (forward, backward, AdamW) in each precision and their ratio;
- the losses of the same step in both precisions (how far bf16 moves them);
- whether the CPU advertises AMX / AVX512-BF16 (without them bf16 is emulated and slower).
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.common import ratio_line, timeit


def cpu_flags() -> set[str]:
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return set()
    for line in text.splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=20, help="timed steps per precision (default 20)")
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads (default 2)")
    args = parser.parse_args(argv)

    import copy
    from dataclasses import replace

    import numpy as np
    import torch

    from srum_core.tinyumm.data import PoolConfig, WorldPool
    from srum_core.tinyumm.train import TrainRunConfig, build_model, training_step

    torch.set_num_threads(args.threads)
    config = replace(TrainRunConfig(), pool=PoolConfig(size=200, refresh_per_step=0))
    pool = WorldPool(config.pool, seed=0)
    torch.manual_seed(0)
    base, tokenizer = build_model(config)
    base.codec.eval().requires_grad_(False)

    def stepper(bf16: bool):
        model = copy.deepcopy(base)
        opt = torch.optim.AdamW(model.trunk_parameters(), lr=1e-4)
        gen = torch.Generator().manual_seed(0)

        def step() -> float:
            with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
                loss, _ = training_step(model, tokenizer, pool, config, gen)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            return float(loss.detach())

        return model, step

    # Same weights, same data, one step each: how far does bf16 move the loss?
    losses = {}
    for bf16 in (False, True):
        pool.rng = np.random.default_rng(1)
        _, step = stepper(bf16)
        losses[bf16] = step()
    _, fp32_step = stepper(False)
    _, bf16_step = stepper(True)
    # Interleave the two so machine load drifts hit both alike.
    t32, t16 = [], []
    for _ in range(args.repeats):
        t32 += timeit(fp32_step, repeats=1, warmup=0 if t32 else 2)
        t16 += timeit(bf16_step, repeats=1, warmup=0 if t16 else 2)
    flags = cpu_flags()
    print(f"threads {args.threads}; CPU has amx_bf16: {'amx_bf16' in flags}, avx512_bf16: {'avx512_bf16' in flags}")
    print(f"step loss, same weights and batch: fp32 {losses[False]:.5f}   bf16 autocast {losses[True]:.5f}   "
          f"relative difference {abs(losses[True] - losses[False]) / losses[False]:.2%}")
    print("training step (gen 32 + und 32 images): " + ratio_line("fp32", t32, "bf16 autocast", t16))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
