"""How good a filter is the self-judge? Precision and recall of reward gates, read from a round's run folder.

For each image of a completed round (world prompts, so the referee's verdict is in ``images/generation.jsonl``),
a gate accepts it when its global self-score ``g`` exceeds a threshold (``round --gate G``), optionally also
requiring every / the mean region score to be positive. Precision: the share of accepted images that pass the
referee (what a gated round trains on). Recall: the share of passing images that the gate accepts.

    python -m srum_core round --backend sandbox --prompts val --n-prompts 448 --steps 1 --eval-split none \\
        --seed 11 --out runs/gate-probe
    python -m experiments.gate runs/gate-probe
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from experiments.common import print_table
from srum_core.runs import read_jsonl, read_run


def gate_row(name: str, accepted: np.ndarray, passed: np.ndarray) -> list[object]:
    n = int(accepted.sum())
    hits = int((accepted & passed).sum())
    precision = f"{100 * hits / n:.0f}%" if n else "–"
    recall = f"{100 * hits / passed.sum():.0f}%" if passed.sum() else "–"
    return [name, n, precision, recall]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run_dir", type=Path, help="a completed round's run folder (world prompts)")
    args = parser.parse_args(argv)
    run = read_run(args.run_dir)
    records, rows = read_jsonl(run.records_file), run.generation_rows()
    if len(records) != len(rows) or not rows:
        raise SystemExit(f"{args.run_dir}: records and generation rows do not match; is this a completed round?")
    if any(row.get("referee_pass") is None for row in rows):
        raise SystemExit(f"{args.run_dir}: some images have no referee verdict; use world prompts (train or val)")
    passed = np.array([bool(row["referee_pass"]) for row in rows])
    g = np.array([np.nan if r["global_layout_reward"]["global_layout_score"] is None
                  else r["global_layout_reward"]["global_layout_score"] for r in records], dtype=float)  # fmt: skip
    regions = [[v["score"] for v in r["vlm_rewards"] if v.get("score") is not None] for r in records]
    min_region = np.array([min(s) if s else -1.0 for s in regions])
    mean_region = np.array([float(np.mean(s)) if s else -1.0 for s in regions])
    usable = ~np.isnan(g)
    g = np.where(usable, g, -np.inf)

    print(f"{len(rows)} images, {100 * passed.mean():.1f}% pass the referee, {int((~usable).sum())} unreadable")
    table = [gate_row("every readable image (SRUM)", usable, passed)]
    for threshold in (0.0, 0.25, 0.5, 0.75, 0.9):
        table.append(gate_row(f"g > {threshold}", g > threshold, passed))
    table.append(gate_row("g > 0 and every region > 0", (g > 0) & (min_region > 0), passed))
    table.append(gate_row("g > 0 and mean region > 0", (g > 0) & (mean_region > 0), passed))
    print(print_table(["gate", "accepted", "precision", "recall"], table))

    categories = np.array([row.get("category", "unknown") for row in rows])
    by_category = []
    for category in sorted(set(categories)):
        mask = categories == category
        row = gate_row(category, (g > 0) & mask, passed & mask)
        by_category.append([category, int(mask.sum()), f"{100 * passed[mask].mean():.0f}%", *row[1:]])
    print()
    print("Gate g > 0 by category")
    print(print_table(["category", "images", "referee pass", "accepted", "precision", "recall"], by_category))
    return 0


if __name__ == "__main__":
    sys.exit(main())
