"""Small, pure statistics for judging judges and comparing arms: balanced accuracy, AUROC, paired bootstrap.

A judge is measured against the referee with **balanced accuracy** (the mean of its recall on right and on wrong
images) and **AUROC** (the chance that a random right image scores above a random wrong one, ties counting
half) — raw agreement flatters a judge when most images are wrong (always saying "no" scores the base rate).

Arms are compared **paired**: every arm is measured on the same (prompt, seed) items, and the confidence interval
of a difference comes from resampling items (:func:`paired_bootstrap`), optionally within clusters (round
seeds), so the correlation between arms on one item is kept.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


def balanced_accuracy(truth: Sequence[bool], predicted: Sequence[bool]) -> float | None:
    """Mean of the recall on positives and on negatives; None when either class is absent."""
    t = np.asarray(truth, dtype=bool)
    p = np.asarray(predicted, dtype=bool)
    if t.shape != p.shape:
        raise ValueError(f"truth has {t.size} items but predicted {p.size}")
    if t.all() or not t.any():
        return None
    return float(0.5 * ((p[t]).mean() + (~p[~t]).mean()))


def auroc(truth: Sequence[bool], scores: Sequence[float]) -> float | None:
    """Area under the ROC curve of ``scores`` for the positives in ``truth`` (ties count half); None when either
    class is absent. Computed from average ranks (the Mann–Whitney U statistic)."""
    t = np.asarray(truth, dtype=bool)
    s = np.asarray(scores, dtype=np.float64)
    if t.shape != s.shape:
        raise ValueError(f"truth has {t.size} items but scores {s.size}")
    n_pos, n_neg = int(t.sum()), int((~t).sum())
    if n_pos == 0 or n_neg == 0:
        return None
    order = np.argsort(s, kind="mergesort")
    ranks = np.empty(len(s), dtype=np.float64)
    sorted_s = s[order]
    i = 0
    while i < len(s):
        j = i
        while j + 1 < len(s) and sorted_s[j + 1] == sorted_s[i]:
            j += 1
        ranks[order[i : j + 1]] = 0.5 * (i + j) + 1.0
        i = j + 1
    u = ranks[t].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


@dataclass(frozen=True)
class PairedDelta:
    """The mean paired difference ``b - a`` and its bootstrap percentile interval."""

    delta: float
    low: float
    high: float
    n: int
    n_resamples: int

    def to_dict(self) -> dict:
        return {"delta": self.delta, "ci95": [self.low, self.high], "n": self.n, "n_resamples": self.n_resamples}


def paired_bootstrap(
    a: Sequence[float],
    b: Sequence[float],
    clusters: Sequence[int] | None = None,
    n_resamples: int = 2000,
    seed: int = 0,
    level: float = 0.95,
) -> PairedDelta:
    """Mean of ``b - a`` over paired items and its percentile bootstrap interval.

    Items are resampled with replacement; with ``clusters`` (e.g. the round seed of each item), items are
    resampled within each cluster, so every resample keeps each cluster's size. Deterministic from ``seed``.
    """
    x = np.asarray(a, dtype=np.float64)
    y = np.asarray(b, dtype=np.float64)
    if x.shape != y.shape or x.ndim != 1:
        raise ValueError(f"paired arms need equal 1-D lengths, got {x.shape} and {y.shape}")
    if x.size == 0:
        raise ValueError("no paired items to compare")
    if not 0 < level < 1:
        raise ValueError("level must lie in (0, 1)")
    diff = y - x
    rng = np.random.default_rng(seed)
    groups = [np.arange(diff.size)] if clusters is None else [
        np.flatnonzero(np.asarray(clusters) == c) for c in np.unique(np.asarray(clusters))
    ]
    means = np.empty(n_resamples)
    for r in range(n_resamples):
        total = 0.0
        for g in groups:
            total += diff[g[rng.integers(0, g.size, size=g.size)]].sum()
        means[r] = total / diff.size
    alpha = (1.0 - level) / 2.0
    low, high = np.quantile(means, [alpha, 1.0 - alpha])
    return PairedDelta(delta=float(diff.mean()), low=float(low), high=float(high), n=int(diff.size),
                       n_resamples=int(n_resamples))
