"""Run folders (one per round): their layout, how a round is written and read back, the history of a session's
rounds, and undo. This is the only module that knows where things live inside a run folder.

A round's folder holds everything needed to understand and reproduce it::

    RUN_DIR/
      config.json              the RoundConfig (seed resolved), backend, round index, the run it resumed
      round.log                what happened, stage by stage, with counts of excluded records
      metrics.jsonl            one line per training step, then one per round (rewards, evaluation before/after)
      eval.json                evaluation before and after the round (per category, referee and self-judge)
      records.jsonl            SRUM scoring records, one per generated image (srum_core.records)
      training_records.jsonl   SRUM training records of the images that trained
      images/                  the generated images + generation.jsonl (prompt, seed, file, settings, mode, plan,
                               backend)
      samples/                 before_*.png / after_*.png at fixed prompts and seeds
      adapter/                 the weights after the round (safetensors + adapter_config.json)

:func:`write_round` writes a completed round from its :class:`srum_core.rounds.RoundResult`; :func:`read_run`
reads a folder back as a :class:`RunInfo`. A folder appears only when its round completed: it is written into a
hidden sibling folder and renamed at the end (:func:`staging_dir`, :func:`commit_run`), so a failed or cancelled
round leaves nothing half-written and never touches the folder it resumed from. Round ``k + 1`` resumes from
round ``k``'s adapter.
A staging folder names the process that writes it (``.owner``); :func:`clean_stale_staging` removes those of
processes that died (a killed round).

A shared app reads run folders only inside its runs root: :func:`inside_root` and :func:`history_inside` refuse
a folder, a file or a ``resumed_from`` link (symlinks included) that resolves outside it.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .adapters import load_adapter, reset_to_base, save_adapter
from .records import scoring_record_from_report, training_record_from_report, write_jsonl

if TYPE_CHECKING:
    from .rounds import RoundResult

CONFIG_FILE = "config.json"
LOG_FILE = "round.log"
METRICS_FILE = "metrics.jsonl"
EVAL_FILE = "eval.json"
RECORDS_FILE = "records.jsonl"
TRAINING_RECORDS_FILE = "training_records.jsonl"
IMAGES_DIR = "images"
GENERATION_FILE = "generation.jsonl"
SAMPLES_DIR = "samples"
ADAPTER_DIR = "adapter"
#: What a run folder is made of, in the order a model card lists it (what ``push`` uploads).
RUN_CONTENTS = (
    ADAPTER_DIR,
    CONFIG_FILE,
    METRICS_FILE,
    EVAL_FILE,
    LOG_FILE,
    RECORDS_FILE,
    TRAINING_RECORDS_FILE,
    SAMPLES_DIR,
    IMAGES_DIR,
)


def image_file(index: int) -> str:
    """Where image ``index`` of a round lives, relative to the run folder."""
    return f"{IMAGES_DIR}/{index:04d}.png"
#: Inside a staging folder: which process writes it (host and pid), so a dead process's folder can be removed.
OWNER_FILE = ".owner"
#: A staging folder without an owner file is removed once it is this old (written before owners were recorded).
STALE_UNOWNED_S = 24 * 3600

logger = logging.getLogger(__name__)


def staging_dir(out_dir: str | os.PathLike[str]) -> Path:
    """A fresh hidden folder beside ``out_dir`` to build the run in; refuses if ``out_dir`` already exists."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(
            f"run folder {out_dir} already exists; choose a new --out folder (runs are never overwritten)"
        )
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.partial-", dir=out_dir.parent))
    owner = {"host": socket.gethostname(), "pid": os.getpid(), "started": time.time()}
    (staging / OWNER_FILE).write_text(json.dumps(owner) + "\n", encoding="utf-8")
    return staging


def commit_run(staging: Path, out_dir: str | os.PathLike[str]) -> Path:
    """Make the finished ``staging`` folder the run folder ``out_dir`` in one rename."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        raise FileExistsError(f"run folder {out_dir} appeared while the round ran; the round stays in {staging}")
    (staging / OWNER_FILE).unlink(missing_ok=True)
    os.replace(staging, out_dir)
    return out_dir


def is_staging(path: Path) -> bool:
    """Whether ``path`` is a round's staging folder (hidden, ``.NAME.partial-XXXX``)."""
    return path.name.startswith(".") and ".partial-" in path.name


def _process_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by someone else
        return True
    return True


def staging_is_stale(staging: Path, now: float | None = None) -> bool:
    """Whether ``staging``'s round can no longer complete: its process (on this host) is gone.

    A folder written by another host is never judged stale (its process cannot be seen from here); one without
    an owner file is stale once it is :data:`STALE_UNOWNED_S` old.
    """
    now = time.time() if now is None else now
    try:
        owner = json.loads((staging / OWNER_FILE).read_text(encoding="utf-8"))
        host, pid = str(owner["host"]), int(owner["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        try:
            return now - staging.stat().st_mtime > STALE_UNOWNED_S
        except OSError:
            return False
    return host == socket.gethostname() and not _process_alive(pid)


def clean_stale_staging(root: str | os.PathLike[str], depth: int = 4) -> list[Path]:
    """Remove the staging folders under ``root`` (up to ``depth`` levels) whose round can no longer complete.

    Returns the folders removed. Symlinks are never followed or removed.
    """
    root = Path(root)
    removed: list[Path] = []
    if not root.is_dir():
        return removed
    level = [root]
    for _ in range(depth):
        below: list[Path] = []
        for folder in level:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if not entry.is_dir(follow_symlinks=False):
                    continue
                path = Path(entry.path)
                if is_staging(path):
                    if staging_is_stale(path):
                        shutil.rmtree(path, ignore_errors=True)
                        removed.append(path)
                        logger.info("removed the staging folder of a round that did not complete: %s", path)
                elif not entry.name.startswith("."):
                    below.append(path)
        level = below
    return removed


def discard_run(staging: Path | None) -> None:
    """Remove a staging folder of a round that did not complete."""
    if staging is not None:
        shutil.rmtree(staging, ignore_errors=True)


def inside_root(root: str | os.PathLike[str], path: str | os.PathLike[str]) -> Path:
    """``path`` resolved (symlinks followed), refusing anything that does not resolve inside ``root``."""
    resolved = Path(path).resolve()
    try:
        resolved.relative_to(Path(root).resolve())
    except ValueError:
        raise ValueError("that path is not under the runs root; pick a run from the list") from None
    return resolved


def history_inside(root: str | os.PathLike[str], run_dir: str | os.PathLike[str]) -> RunHistory:
    """The history that leads to ``run_dir`` (:meth:`RunHistory.from_run`), refusing a chain that leaves ``root``.

    Every run of the chain, its ``config.json`` and its adapter files must resolve inside ``root``: a
    ``resumed_from`` or a symlink pointing elsewhere makes the run unusable here.
    """
    history = RunHistory.from_run(inside_root(root, run_dir), root=root)
    for run in history.rounds:
        for item in (run / CONFIG_FILE, *_files_below(run / ADAPTER_DIR)):
            inside_root(root, item)
    return history


def _files_below(folder: Path) -> list[Path]:
    return sorted(folder.rglob("*")) if folder.is_dir() else []


def write_json(path: Path, data: Any) -> None:
    path.write_text(json.dumps(data, indent=2, sort_keys=False, ensure_ascii=False) + "\n", encoding="utf-8")


def append_jsonl(path: Path, rows: Iterable[dict[str, Any]]) -> None:
    with path.open("a", encoding="utf-8") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    """Every JSON line of ``path`` (blank lines skipped); a bad line raises with its number."""
    rows = []
    with Path(path).open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    raise ValueError(f"{path}:{number} is not valid JSON ({err})") from err
    return rows


def write_round(out_dir: str | os.PathLike[str], result: RoundResult, backend: Any) -> Path:
    """Write the completed round ``result`` to the new run folder ``out_dir``, all at once (see the module
    docstring); ``backend`` carries the trained adapter, which is saved with it."""
    staging = staging_dir(out_dir)
    try:
        _write_images(staging, result, backend.name)
        _write_samples(staging, result)
        config = result.config
        append_jsonl(staging / METRICS_FILE, [{"kind": "step", **row} for row in result.train.metrics] + [result.summary])
        write_json(
            staging / EVAL_FILE,
            {
                "generation": config.generation.to_dict(),
                "judge": config.judge.to_dict(),
                "before": result.eval_before.to_dict() if result.eval_before is not None else None,
                "after": result.eval_after.to_dict() if result.eval_after is not None else None,
            },
        )
        save_adapter(backend, staging / ADAPTER_DIR, config.training)
        write_json(
            staging / CONFIG_FILE,
            {
                "round": result.round_index,
                "backend": backend.name,
                "resumed_from": os.path.abspath(result.resumed_from) if result.resumed_from is not None else None,
                "box_source": result.box_source,
                "token_size": backend.token_size,
                "image_size": list(backend.image_size),
                "round_config": config.to_dict(),
            },
        )
        (staging / LOG_FILE).write_text("\n".join(result.log) + "\n", encoding="utf-8")
    except BaseException:
        discard_run(staging)
        raise
    return commit_run(staging, out_dir)


def _write_images(folder: Path, result: RoundResult, backend_name: str) -> None:
    """The round's images with their listing, its scoring records, and the training records of those that trained."""
    (folder / IMAGES_DIR).mkdir()
    rows, scoring, training = [], [], []
    for index, image in enumerate(result.images):
        name = image_file(index)
        image.sample.image.save(folder / name)
        rows.append(
            {
                "prompt": image.item.text,
                "seed": image.seed,
                "file": Path(name).name,
                "settings": image.sample.settings or result.config.generation.to_dict(),
                "mode": (image.sample.settings or {}).get("mode", result.config.generation.mode),
                # The think mode's plan (its text), as the model wrote it before drawing; None in plain mode.
                "plan": (image.sample.settings or {}).get("plan"),
                "backend": backend_name,
                "category": image.item.category,
                "spec": image.item.spec,
                "referee_pass": image.referee_pass,
                "trainable": image.report.trainable,
                "trained": image.trained,
            }
        )
        scoring.append(scoring_record_from_report(image.report, name))
        # The images that trained: a usable global score (SRUM) and, with a gate, a global score above it.
        record = training_record_from_report(image.report, name) if image.trained else None
        if record is not None:
            training.append(record)
    append_jsonl(folder / IMAGES_DIR / GENERATION_FILE, rows)
    write_jsonl(folder / RECORDS_FILE, scoring)
    write_jsonl(folder / TRAINING_RECORDS_FILE, training)


def _write_samples(folder: Path, result: RoundResult) -> None:
    """Before/after images at the round's fixed prompts and seeds."""
    if not result.fixed:
        return
    (folder / SAMPLES_DIR).mkdir()
    rows = []
    for i, fixed in enumerate(result.fixed):
        fixed.before.save(folder / SAMPLES_DIR / f"before_{i:02d}.png")
        fixed.after.save(folder / SAMPLES_DIR / f"after_{i:02d}.png")
        rows.append({"index": i, "prompt": fixed.item.text, "category": fixed.item.category, "seed": fixed.seed})
    append_jsonl(folder / SAMPLES_DIR / "samples.jsonl", rows)


@dataclass(frozen=True)
class RunInfo:
    """What a run folder says about itself (read without a backend). ``meta`` is its whole ``config.json``
    (backend, box source, token and image size); ``config`` the round's configuration in it."""

    run_dir: Path
    config: dict[str, Any]
    round_index: int
    resumed_from: Path | None
    backend: str
    summary: dict[str, Any]
    eval: dict[str, Any] | None
    meta: dict[str, Any] | None = None

    @property
    def adapter_dir(self) -> Path:
        return self.run_dir / ADAPTER_DIR

    @property
    def records_file(self) -> Path:
        return self.run_dir / RECORDS_FILE

    def generation_rows(self) -> list[dict[str, Any]]:
        """One ``{"prompt", "seed", "file", ...}`` row per generated image, in order."""
        return read_jsonl(self.run_dir / IMAGES_DIR / GENERATION_FILE)

    def contents(self) -> list[Path]:
        """The files and folders the run holds, in :data:`RUN_CONTENTS` order (those present)."""
        return [self.run_dir / name for name in RUN_CONTENTS if (self.run_dir / name).exists()]


def read_run(run_dir: str | os.PathLike[str]) -> RunInfo:
    """Read a completed run folder's config, round summary and evaluation."""
    run_dir = Path(run_dir)
    config_path = run_dir / CONFIG_FILE
    if not config_path.is_file():
        raise FileNotFoundError(f"{config_path} is missing: {run_dir} is not a completed SRUM run folder")
    meta = json.loads(config_path.read_text(encoding="utf-8"))
    summary: dict[str, Any] = {}
    metrics_path = run_dir / METRICS_FILE
    if metrics_path.is_file():
        rounds = [row for row in read_jsonl(metrics_path) if row.get("kind") == "round"]
        summary = rounds[-1] if rounds else {}
    eval_path = run_dir / EVAL_FILE
    evaluation = json.loads(eval_path.read_text(encoding="utf-8")) if eval_path.is_file() else None
    resumed = meta.get("resumed_from")
    return RunInfo(
        run_dir=run_dir,
        config=meta.get("round_config", {}),
        round_index=int(meta.get("round", 1)),
        resumed_from=Path(resumed) if resumed else None,
        backend=str(meta.get("backend", "")),
        summary=summary,
        eval=evaluation,
        meta=meta,
    )


def load_run(run_dir: str | os.PathLike[str], backend: Any) -> RunInfo:
    """Put ``backend`` in the state a run folder ended in (its adapter): the same seed then gives the same image."""
    info = read_run(run_dir)
    if info.backend and info.backend != backend.name:
        raise ValueError(f"run {info.run_dir} was made with backend {info.backend!r}, not {backend.name!r}")
    if not info.adapter_dir.is_dir():
        raise FileNotFoundError(f"{info.adapter_dir} is missing: the run folder is incomplete")
    load_adapter(backend, info.adapter_dir)
    return info


class RunHistory:
    """A session's rounds in order and which one is current (0 = the base model, k = after round k).

    ``undo(k)`` makes round ``k`` current again (0 = base) and forgets the rounds after it (their folders stay
    on disk); a new round then continues from round ``k``. ``apply(backend)`` puts the backend in the current
    state. The history changes only when asked: a failed or cancelled round is never added.
    """

    def __init__(self, rounds: Sequence[str | os.PathLike[str]] = (), current: int | None = None) -> None:
        self._rounds = [Path(r) for r in rounds]
        self._current = len(self._rounds) if current is None else int(current)
        if not 0 <= self._current <= len(self._rounds):
            raise ValueError(f"current={current}: choose 0 (base) to {len(self._rounds)}")

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str], root: str | os.PathLike[str] | None = None) -> RunHistory:
        """The history that leads to ``run_dir``, following each run's ``resumed_from`` back to the base.

        ``root``: refuse a ``resumed_from`` that resolves outside this folder (see :func:`history_inside`).
        """
        chain = []
        seen = set()
        path: Path | None = Path(run_dir)
        while path is not None:
            if root is not None:
                try:
                    path = inside_root(root, path)
                except ValueError:
                    raise ValueError(
                        f"run {chain[-1].name if chain else path.name} resumes from a folder outside the runs root"
                    ) from None
            if path.resolve() in seen:
                raise ValueError(f"run folders resume from each other in a loop at {path.name}")
            seen.add(path.resolve())
            chain.append(path)
            path = read_run(path).resumed_from
        return cls(list(reversed(chain)))

    @property
    def rounds(self) -> tuple[Path, ...]:
        return tuple(self._rounds)

    @property
    def current(self) -> int:
        return self._current

    @property
    def current_run(self) -> Path | None:
        """The run folder of the current state (None = base): what the next round resumes from."""
        return self._rounds[self._current - 1] if self._current > 0 else None

    def add(self, run_dir: str | os.PathLike[str]) -> int:
        """Record a completed round after the current one (later rounds are dropped); returns its index."""
        read_run(run_dir)  # refuse anything that is not a completed run folder
        self._rounds = self._rounds[: self._current] + [Path(run_dir)]
        self._current = len(self._rounds)
        return self._current

    def undo(self, to_round: int) -> None:
        """Go back to round ``to_round`` (0 = base) and forget the rounds after it."""
        if not 0 <= to_round <= self._current:
            raise ValueError(f"cannot undo to round {to_round}: choose 0 (base) to {self._current}")
        self._rounds = self._rounds[:to_round]
        self._current = to_round

    def apply(self, backend: Any) -> None:
        """Load the current state into ``backend``: the current round's adapter, or the base weights."""
        run = self.current_run
        if run is None:
            reset_to_base(backend)
        else:
            load_run(run, backend)

    def to_dict(self) -> dict[str, Any]:
        return {"rounds": [str(r) for r in self._rounds], "current": self._current}
