"""Small helpers shared by the benchmarks: timing, mean ± std, side-by-side ratios, plain-text tables."""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any


def timeit(fn: Callable[[], object], repeats: int = 5, warmup: int = 1) -> list[float]:
    """Seconds per call of ``fn`` for ``repeats`` calls, after ``warmup`` untimed calls."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return times


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


def ratio_line(name_a: str, seconds_a: Sequence[float], name_b: str, seconds_b: Sequence[float]) -> str:
    """``a`` vs ``b`` measured side by side: medians and their ratio."""
    a, b = statistics.median(seconds_a), statistics.median(seconds_b)
    return f"{name_a}: {a * 1e3:.2f} ms   {name_b}: {b * 1e3:.2f} ms   ratio {a / b:.2f}×"


def print_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    """A left-aligned plain-text table; returns the text (the caller prints it)."""
    cells = [[str(h) for h in headers]] + [[str(c) for c in row] for row in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def write_results(path: str | Path, results: dict[str, Any]) -> Path:
    """Write a bench's results as indented JSON (folders created) and say where."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=1) + "\n", encoding="utf-8")
    print(f"results written to {out}")
    return out
