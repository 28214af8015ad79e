"""Evaluation prompt sets: what an evaluation generates, ``n`` prompts per category, drawn with a seed.

Names :func:`eval_set_prompts` resolves (formats in ``docs/evaluation.md``):

- a prompt set the backend offers itself (``backend.prompt_sets()``, e.g. the sandbox's ``eval`` and ``val``);
- ``t2i-compbench`` — the shipped T2I-CompBench *training* prompts (tuned on by SRUM: a warning is logged);
- ``t2i-compbench-val:PATH`` — a copy of T2I-CompBench's validation prompts (not shipped here): a folder of
  ``<category>_val.txt`` files, one prompt per line, as in the benchmark's ``examples/dataset/``, or a JSON list
  of ``{"Question", "Category"}`` records;
- ``t2i-reasonbench:PATH`` — a copy of T2I-ReasonBench's prompts (not shipped: its repository states no licence):
  a folder with one JSON file per dimension (``idiom_interpretation.json``, ``textual_image_design.json``,
  ``entity_reasoning.json``, ``scientific_reasoning.json``), or one JSON/JSONL file with a ``category`` per entry;
- ``reasonbench-style`` — 24 prompts written for this project in the style of T2I-ReasonBench's four dimensions
  (``assets/eval_sets/reasonbench_style.json``, Apache-2.0); not the benchmark, a smoke set;
- the path of any JSON/JSONL prompt file (:func:`srum_core.prompt_sets.read_prompt_file`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .prompt_sets import T2I_CATEGORIES, T2I_COMPBENCH, draw_prompts, read_prompt_file, t2i_compbench_prompts
from .types import PromptItem

logger = logging.getLogger(__name__)

ASSETS = Path(__file__).resolve().parent.parent / "assets" / "eval_sets"
REASONBENCH_STYLE = "reasonbench-style"
COMPBENCH_VAL = "t2i-compbench-val"
REASONBENCH = "t2i-reasonbench"
#: T2I-ReasonBench's four dimensions, by the names this project uses, and the file stems that map to them.
REASONBENCH_CATEGORIES: tuple[str, ...] = ("idiom", "textual_image_design", "entity", "scientific")
_REASONBENCH_ALIASES = {
    "idiom_interpretation": "idiom",
    "idiom": "idiom",
    "textual_image_design": "textual_image_design",
    "textual_image": "textual_image_design",
    "entity_reasoning": "entity",
    "entity": "entity",
    "scientific_reasoning": "scientific",
    "scientific": "scientific",
}
#: T2I-CompBench's validation file stems → this project's category names (the training split's).
_COMPBENCH_ALIASES = {"non_spatial": "non-spatial", "3d_spatial": "3d_spatial"}


def named_sets() -> tuple[str, ...]:
    """The set names that need no backend: shipped sets and the prefixes of sets loaded from a copy."""
    return (T2I_COMPBENCH, REASONBENCH_STYLE, f"{COMPBENCH_VAL}:PATH", f"{REASONBENCH}:PATH")


def _entries(value: Any) -> list[Any]:
    """A prompt file's entries: a list, ``{"prompts": [...]}``, or a mapping id → prompt / record."""
    if isinstance(value, dict):
        if "prompts" in value:
            return list(value["prompts"])
        return [v if isinstance(v, dict) else {"prompt": v, "id": k} for k, v in value.items()]
    if isinstance(value, list):
        return value
    raise ValueError("a prompt file holds a JSON list, {'prompts': [...]} or a mapping of id to prompt")


def _prompt_of(entry: Any, where: str) -> str:
    if isinstance(entry, str):
        text = entry
    elif isinstance(entry, dict):
        text = next((entry[k] for k in ("prompt", "Prompt", "Question", "text") if isinstance(entry.get(k), str)), "")
    else:
        text = ""
    if not text.strip():
        raise ValueError(f"{where}: an entry without prompt text (fields: prompt, Prompt, Question or text)")
    return text.strip()


def _read_json_or_jsonl(path: Path) -> list[Any]:
    text = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in text.splitlines() if line.strip()]
    return _entries(json.loads(text))


def load_compbench_val(path: str | Path) -> list[PromptItem]:
    """T2I-CompBench validation prompts from a user's copy (folder of ``<category>_val.txt``, or a JSON list)."""
    path = Path(path)
    if path.is_dir():
        files = sorted(path.glob("*_val.txt"))
        if not files:
            raise FileNotFoundError(f"{path} holds no <category>_val.txt files (T2I-CompBench's examples/dataset/)")
        items = []
        for file in files:
            stem = file.name[: -len("_val.txt")]
            category = _COMPBENCH_ALIASES.get(stem, stem)
            lines = [line.strip() for line in file.read_text(encoding="utf-8").splitlines() if line.strip()]
            items += [PromptItem(text=line, category=category) for line in lines]
        return items
    if path.is_file():
        return read_prompt_file(path)
    raise FileNotFoundError(f"{COMPBENCH_VAL}:{path}: no such folder or file")


def load_reasonbench(path: str | Path) -> list[PromptItem]:
    """T2I-ReasonBench prompts from a user's copy (a folder of per-dimension JSON files, or one file)."""
    path = Path(path)
    if path.is_dir():
        files = sorted([*path.glob("*.json"), *path.glob("*.jsonl")])
        known = [f for f in files if f.stem in _REASONBENCH_ALIASES]
        if not known:
            stems = ", ".join(sorted(_REASONBENCH_ALIASES))
            raise FileNotFoundError(f"{path} holds none of the dimension files ({stems}, .json or .jsonl)")
        return [
            PromptItem(text=_prompt_of(e, f"{f}"), category=_REASONBENCH_ALIASES[f.stem])
            for f in known
            for e in _read_json_or_jsonl(f)
        ]
    if path.is_file():
        items = []
        for number, entry in enumerate(_read_json_or_jsonl(path), start=1):
            raw = str(entry.get("category", entry.get("dimension", "unknown"))) if isinstance(entry, dict) else ""
            category = _REASONBENCH_ALIASES.get(raw, raw or "unknown")
            items.append(PromptItem(text=_prompt_of(entry, f"{path} entry {number}"), category=category))
        return items
    raise FileNotFoundError(f"{REASONBENCH}:{path}: no such folder or file")


def load_reasonbench_style() -> list[PromptItem]:
    """The shipped T2I-ReasonBench-style prompts (written for this project)."""
    data = json.loads((ASSETS / "reasonbench_style.json").read_text(encoding="utf-8"))
    return [PromptItem(text=e["prompt"], category=e["category"]) for e in data["prompts"]]


def load_eval_pool(backend: Any, name: str) -> list[PromptItem] | None:
    """Every prompt of a set that is not the backend's own (None: it is the backend's, drawn by the backend)."""
    if backend is not None and name in backend.prompt_sets():
        return None
    if name == REASONBENCH_STYLE:
        return load_reasonbench_style()
    for prefix, loader in ((COMPBENCH_VAL, load_compbench_val), (REASONBENCH, load_reasonbench)):
        if name.startswith(prefix + ":"):
            return loader(name[len(prefix) + 1 :])
    if name == T2I_COMPBENCH:
        return None
    if Path(name).is_file():
        return read_prompt_file(name)
    offered = ", ".join([*(backend.prompt_sets() if backend is not None else ()), *named_sets()])
    raise FileNotFoundError(f"evaluation set {name!r} is none of: {offered}, nor a JSON/JSONL file")


def eval_set_prompts(
    backend: Any, name: str, categories: Sequence[str] | None, n_per_category: int, seed: int
) -> list[PromptItem]:
    """``n_per_category`` prompts of each category of set ``name`` (None = all its categories), drawn with
    ``seed`` (the same arguments always give the same prompts), grouped by category in the set's order."""
    pool = load_eval_pool(backend, name)
    if pool is None and name == T2I_COMPBENCH:
        logger.warning(
            "t2i-compbench is the training split SRUM tunes on; evaluate on held-out prompts where "
            "you can (t2i-compbench-val:PATH)"
        )
        cats = list(categories) if categories else list(T2I_CATEGORIES[:8])  # the eight SRUM reports
        return [item for c in cats for item in t2i_compbench_prompts([c], n_per_category, seed)]
    if pool is None:
        cats = list(categories) if categories else list(backend.categories())
        return [item for c in cats for item in backend.prompts(name, [c], n_per_category, seed)]
    cats = list(categories) if categories else list(dict.fromkeys(item.category for item in pool))
    missing = [c for c in cats if not any(item.category == c for item in pool)]
    if missing:
        have = ", ".join(dict.fromkeys(item.category for item in pool))
        raise ValueError(f"evaluation set {name!r} has no category {', '.join(missing)} (it has: {have})")
    return [item for c in cats for item in draw_prompts(pool, [c], n_per_category, seed, name)]
