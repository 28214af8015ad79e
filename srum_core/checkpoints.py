"""Stage checkpoints of a round: what an interrupted round had finished, so that it continues from there.

A round (:func:`srum_core.rounds.run_round`) given a ``checkpoint`` folder saves the result of each stage as it
completes — the generated images, the judgements, the evaluation before training, the trained weights — and, run
again with the same folder and settings, loads them instead of redoing the work. The folder holds::

    round.json          what round the stages belong to: settings (seed resolved), starting run, backend
    <stage>.pkl         one file per completed stage, written atomically (a kill never leaves half a stage)

The round removes the folder once its run folder is written. A folder of another round (other settings) is refused
with the settings that differ, never mixed in. The ``.pkl`` files are Python pickles of the round's own objects:
load only folders your own rounds wrote.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
from pathlib import Path
from typing import Any

KEY_FILE = "round.json"
FORMAT = 1


def checkpoint_dir(out_dir: str | os.PathLike[str]) -> Path:
    """Where the CLI keeps the completed stages of the round that will become ``out_dir``: the hidden sibling
    ``.NAME.stages`` (beside, not inside, so the run folder still appears only when the round is complete)."""
    out_dir = Path(out_dir)
    return out_dir.parent / f".{out_dir.name}.stages"


def _diff(a: Any, b: Any, prefix: str = "") -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        out: list[str] = []
        for key in sorted(set(a) | set(b)):
            out += _diff(a.get(key), b.get(key), f"{prefix}{key}.")
        return out
    return [] if a == b else [prefix.rstrip(".")]


class StageCheckpoint:
    """The completed stages of one round in ``folder``, identified by ``key`` (JSON-able: the round's settings)."""

    def __init__(self, folder: str | os.PathLike[str], key: dict[str, Any]):
        self.folder = Path(folder)
        self.key = json.loads(json.dumps({"format": FORMAT, **key}))
        stored = stored_key(self.folder)
        if stored is not None and stored != self.key:
            differ = ", ".join(_diff(stored, self.key)[:6]) or "format"
            raise ValueError(
                f"{self.folder} holds the stages of another round (different {differ}); "
                "continue it with its own settings, or delete the folder"
            )

    def stages(self) -> list[str]:
        """The stages saved so far."""
        if not self.folder.is_dir():
            return []
        return sorted(p.stem for p in self.folder.glob("*.pkl"))

    def has(self, stage: str) -> bool:
        return (self.folder / f"{stage}.pkl").is_file()

    def load(self, stage: str) -> Any:
        with open(self.folder / f"{stage}.pkl", "rb") as f:
            return pickle.load(f)

    def save(self, stage: str, value: Any) -> None:
        """Save one completed stage (atomically: written beside, then renamed)."""
        self.folder.mkdir(parents=True, exist_ok=True)
        key_file = self.folder / KEY_FILE
        if not key_file.is_file():
            tmp = key_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(self.key, indent=1) + "\n", encoding="utf-8")
            tmp.replace(key_file)
        path = self.folder / f"{stage}.pkl"
        tmp = path.with_suffix(".pkl.tmp")
        with open(tmp, "wb") as f:
            pickle.dump(value, f, protocol=pickle.HIGHEST_PROTOCOL)
        tmp.replace(path)

    def remove(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)


def stored_key(folder: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The key of the round whose stages ``folder`` holds (None: no such folder)."""
    path = Path(folder) / KEY_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


__all__ = ["StageCheckpoint", "checkpoint_dir", "stored_key"]
