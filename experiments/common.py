"""What the experiments share: the embedded model on the CPU, the ``renders`` diagnostic, mean ± std, plain-text
tables, and where results go."""

from __future__ import annotations

import json
import os
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

#: Where experiments write their JSON results by default (git ignores it).
OUT_DIR = Path(__file__).resolve().parent / "out"


def load_cpu_sandbox(model: str | None = None) -> Any:
    """The sandbox backend on the CPU (``model``: a weights folder; None = the shipped ``assets/tiny-umm``), with
    torch using ``OMP_NUM_THREADS`` threads (default 2, the development machine's cores)."""
    import torch

    from srum_core.backends.sandbox import load_sandbox

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "2")))
    return load_sandbox(model, device="cpu")


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
