"""What the experiments share: the embedded model on the CPU, the ``renders`` diagnostic, mean ± std, plain-text
tables, and where results go."""

from __future__ import annotations

import json
import os
import statistics
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

#: Where experiments write their JSON results by default (git ignores it).
OUT_DIR = Path(__file__).resolve().parent / "out"


def load_cpu_sandbox(model: str | None = None) -> Any:
    """The sandbox backend on the CPU (``model``: a weights folder; None = the shipped ``assets/tiny-umm``), with
    torch using ``OMP_NUM_THREADS`` threads (default 2, the development machine's cores)."""
    import torch

    from srum_core.backends.sandbox import load_sandbox

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    return load_sandbox(model, device="cpu")


def render_round(backend: Any, config: Any, fresh: bool) -> dict[str, Any]:
    """The ``renders`` diagnostic: ``config``'s training (a RoundConfig) on the world renderer's clean drawings of
    the round's own prompts, with uniform weights — what perfect self-generated data could teach in this recipe."""
    from srum_core.adapters import attach_adapter, init_adapter
    from srum_core.prompt_sets import sample_prompts
    from srum_core.training import train_on_samples
    from srum_core.types import Sample
    from srum_core.world.prompts import parse_prompt
    from srum_core.world.render import render_spec
    from srum_core.world.spec import PromptSpec

    start = time.perf_counter()
    items = sample_prompts(backend, config.prompts, config.categories, config.n_prompts, config.seed)
    rng = np.random.default_rng(config.seed)
    specs = [PromptSpec.from_dict(i.spec) if i.spec is not None else parse_prompt(i.text) for i in items]
    samples = [Sample(prompt=i.text, seed=k, image=render_spec(spec, rng)[0])
               for k, (i, spec) in enumerate(zip(items, specs))]  # fmt: skip
    attach_adapter(backend, config.training)
    if fresh:
        init_adapter(backend, config.seed)
    weights = np.ones((len(samples), backend.token_grid(*backend.image_size)[0] ** 2), dtype=np.float32)
    result = train_on_samples(backend, samples, weights, replace(config.training, seed=config.seed))
    return {"n_trained": len(samples), "train": result, "timings": {"train": time.perf_counter() - start}}


def mean_std(values: Sequence[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (0 for a single value)."""
    values = [float(v) for v in values]
    if not values:
        return float("nan"), float("nan")
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else 0.0)


def fmt_mean_std(values: Sequence[float | None], percent: bool = False) -> str:
    """``"mean ± std"`` over the known values (``–`` when none), as percentages if ``percent``."""
    known = [v for v in values if v is not None]
    if not known:
        return "–"
    mean, std = mean_std(known)
    if percent:
        return f"{100 * mean:5.1f} ± {100 * std:4.1f}%"
    return f"{mean:.4g} ± {std:.2g}"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned plain-text table; returns the text (the caller prints it)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(path: str | Path, results: dict[str, Any]) -> Path:
    """Write an experiment's results as indented JSON (folders created) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"results written to {out}")
    return out
