"""Where a round's prompts come from, and the prompt set the project ships for any backend.

:func:`sample_prompts` resolves a round's prompt source, in this order: a prompt set the backend offers itself
(``backend.prompt_sets()``, e.g. the sandbox's ``train`` and ``val``), ``"t2i-compbench"`` (the T2I-CompBench
training prompts SRUM trained on, SRUM_SPEC §1.1), or the path of a JSON/JSONL prompt file.

``assets/t2i_compbench_train.json`` is the list of ``{"Question", "Category", "Question_id"}`` records from
T2I-CompBench (Huang et al., MIT licence) as redistributed with SRUM (Apache-2.0). ``complex_action`` and
``complex_spatial`` repeat ``complex`` prompts under new ids.
"""

from __future__ import annotations

import json
import random
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .limits import MAX_PROMPT_CHARS
from .types import PromptItem

#: The source name of the shipped T2I-CompBench training prompts (works with every backend).
T2I_COMPBENCH = "t2i-compbench"

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


def t2i_compbench_prompts(categories: Sequence[str] | None, n: int, seed: int) -> list[PromptItem]:
    """``n`` prompts drawn (seeded, without repeats) from the shipped T2I-CompBench set, of ``categories`` (None =
    all)."""
    records = [r for category in (categories or [None]) for r in load_t2i_compbench(category)]
    pool = [PromptItem(text=r["Question"], category=r["Category"]) for r in records]
    return draw_prompts(pool, categories, n, seed, T2I_COMPBENCH)


def _check_length(prompt: str, path: Path, number: int) -> None:
    if len(prompt) > MAX_PROMPT_CHARS:
        raise ValueError(f"{path} entry {number}: the prompt is {len(prompt)} characters; at most {MAX_PROMPT_CHARS}")


def read_prompt_file(path: str | Path) -> list[PromptItem]:
    """The prompts of a JSON/JSONL file: strings, or objects with ``prompt`` (or T2I-CompBench's ``Question``) and
    an optional ``category`` (``Category``); a JSON file may also hold ``{"prompts": [...]}``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"prompt file {path} does not exist; give a prompt set name or a JSON/JSONL file")
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        entries = [json.loads(line) for line in text.splitlines() if line.strip()]
    else:
        entries = json.loads(text)
        if isinstance(entries, dict):
            entries = entries.get("prompts", [])
    items = []
    for number, entry in enumerate(entries, start=1):
        if isinstance(entry, str):
            _check_length(entry, path, number)
            items.append(PromptItem(text=entry))
            continue
        if not isinstance(entry, dict):
            raise ValueError(f"{path} entry {number}: expected a string or an object with a 'prompt' field")
        prompt = entry.get("prompt", entry.get("Question", entry.get("text")))
        if not isinstance(prompt, str) or not prompt.strip():
            raise ValueError(f"{path} entry {number}: no 'prompt' (or T2I-CompBench 'Question') text")
        _check_length(prompt, path, number)
        category = entry.get("category", entry.get("Category", "unknown"))
        items.append(PromptItem(text=prompt.strip(), category=str(category), spec=entry.get("spec")))
    return items


def draw_prompts(
    pool: Sequence[PromptItem], categories: Sequence[str] | None, n: int, seed: int, source: str
) -> list[PromptItem]:
    """``n`` distinct entries of ``pool`` (of ``categories``, if given), drawn with ``seed``, in pool order."""
    if categories:
        pool = [p for p in pool if p.category in categories]
    if len(pool) < n:
        raise ValueError(
            f"{source} has {len(pool)} prompts{' in ' + ', '.join(categories) if categories else ''}, "
            f"fewer than n_prompts={n}; lower --n-prompts"
        )
    picked = sorted(np.random.default_rng(seed).choice(len(pool), size=n, replace=False).tolist())
    return [pool[i] for i in picked]


def share_out(categories: Sequence[str], n: int) -> list[tuple[str, int]]:
    """``(category, count)`` pairs that share ``n`` prompts out over ``categories``, the first ones one more."""
    k = len(categories)
    return [(category, n // k + (1 if i < n % k else 0)) for i, category in enumerate(categories)]


def sample_prompts(
    backend: Any, source: str, categories: Sequence[str] | None, n_prompts: int, seed: int
) -> list[PromptItem]:
    """A round's ``n_prompts`` prompts from ``source``: one of the backend's prompt sets, ``"t2i-compbench"``, or a
    JSON/JSONL file (see the module docstring); the same arguments give the same prompts."""
    if source in backend.prompt_sets():
        return backend.prompts(source, categories, n_prompts, seed)
    if source == T2I_COMPBENCH:
        return t2i_compbench_prompts(categories, n_prompts, seed)
    if not Path(source).is_file():
        offered = ", ".join([*backend.prompt_sets(), T2I_COMPBENCH])
        raise FileNotFoundError(
            f"prompt source {source!r} is not a prompt set of backend {backend.name!r} ({offered}), and no such "
            "JSON/JSONL file exists"
        )
    return draw_prompts(read_prompt_file(source), categories, n_prompts, seed, source)


#: Example prompts, T2I-CompBench style, for backends that draw real images: (category, prompt).
T2I_EXAMPLES: tuple[tuple[str, str], ...] = (
    ("single", "a red apple"),
    ("color", "a blue cup and a yellow book"),
    ("shape", "a round clock and a square frame"),
    ("texture", "a striped sock next to a wooden spoon"),
    ("spatial", "a cat to the left of a dog"),
    ("numeracy", "three green balloons"),
    ("complex", "two red cubes on top of a blue table"),
)


class T2ICompBenchWorld:
    """The world of a backend that draws real images (a mixin for its class): the shipped T2I-CompBench prompts
    as its one prompt set, their categories, T2I-CompBench-style examples, and no referee — only the model's own
    judge can score its images."""

    def categories(self) -> tuple[str, ...]:
        return tuple(T2I_CATEGORIES)

    def prompt_sets(self) -> tuple[str, ...]:
        return (T2I_COMPBENCH,)

    def prompts(self, set_name: str, categories: Sequence[str] | None, n: int, seed: int) -> list[PromptItem]:
        """``n`` T2I-CompBench training prompts (of ``categories``), drawn with ``seed``."""
        if set_name != T2I_COMPBENCH:
            raise ValueError(f"prompt set {set_name!r} is unknown; this backend offers {T2I_COMPBENCH}")
        return t2i_compbench_prompts(categories, n, seed)

    def example_prompts(self, seed: int = 0) -> list[tuple[str, str]]:
        return list(T2I_EXAMPLES)

    def referee(self) -> None:
        return None
