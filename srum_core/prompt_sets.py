"""Prompt sets the project ships: the T2I-CompBench training prompts SRUM trained on (SRUM_SPEC §1.1).

``assets/t2i_compbench_train.json`` is the list of ``{"Question", "Category", "Question_id"}`` records from
T2I-CompBench (Huang et al., MIT licence) as redistributed with SRUM (Apache-2.0). ``complex_action`` and
``complex_spatial`` repeat ``complex`` prompts under new ids.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

ASSET_PATH = Path(__file__).resolve().parent.parent / "assets" / "t2i_compbench_train.json"

#: The categories of the shipped file, the eight SRUM trains on first.
T2I_CATEGORIES: tuple[str, ...] = (
    "color",
    "shape",
    "texture",
    "spatial",
    "3d_spatial",
    "non-spatial",
    "numeracy",
    "complex",
    "complex_action",
    "complex_spatial",
)


def _read_records(path: Path) -> list[dict[str, Any]]:
    if not path.is_file():
        raise FileNotFoundError(
            f"T2I-CompBench prompts not found at {path}; restore assets/t2i_compbench_train.json from the repository"
        )
    with path.open(encoding="utf-8") as handle:
        records = json.load(handle)
    if not isinstance(records, list):
        raise ValueError(f"{path} must hold a JSON list of {{Question, Category, Question_id}} records")
    for rec in records:
        if not {"Question", "Category", "Question_id"} <= set(rec):
            raise ValueError(f"{path}: record {rec!r} lacks Question/Category/Question_id")
    return records


def load_t2i_compbench(
    category: str | None = None, n: int | None = None, seed: int = 0, path: str | Path | None = None
) -> list[dict[str, Any]]:
    """T2I-CompBench training records, optionally of one ``category``, optionally ``n`` of them.

    Returns dicts ``{"Question": str, "Category": str, "Question_id": int}`` in file order; with ``n`` set, a
    random subset of ``n`` drawn with ``random.Random(seed)`` and then put back in file order, so the same
    seed always gives the same prompts. ``n`` larger than what exists raises instead of silently returning
    fewer.
    """
    if category is not None and category not in T2I_CATEGORIES:
        raise ValueError(f"unknown T2I-CompBench category {category!r}; choose one of: {', '.join(T2I_CATEGORIES)}")
    records = _read_records(Path(path) if path is not None else ASSET_PATH)
    if category is not None:
        records = [r for r in records if r["Category"] == category]
    if n is not None:
        if n < 0:
            raise ValueError(f"n={n}: ask for a non-negative number of prompts")
        if n > len(records):
            where = f"category {category!r}" if category else "the file"
            raise ValueError(f"n={n} but {where} holds only {len(records)} prompts; ask for at most {len(records)}")
        keep = sorted(random.Random(seed).sample(range(len(records)), n))
        records = [records[i] for i in keep]
    return [dict(r) for r in records]
