"""What the speed benchmarks share: timing a call repeatedly, and a side-by-side ratio of two timings."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Sequence


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


def ratio_line(name_a: str, seconds_a: Sequence[float], name_b: str, seconds_b: Sequence[float]) -> str:
    """``a`` vs ``b`` measured side by side: medians and their ratio."""
    a, b = statistics.median(seconds_a), statistics.median(seconds_b)
    return f"{name_a}: {a * 1e3:.2f} ms   {name_b}: {b * 1e3:.2f} ms   ratio {a / b:.2f}×"
