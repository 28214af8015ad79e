"""Process-wide engine and per-browser-session state.

:class:`Engine` is built once per process: the backend (base weights loaded once, shared by every visitor),
the runs root, one lock that serialises work on the backend, and the cancel flags of running rounds.
:class:`SessionState` lives in a ``gr.State``: each browser session owns its own training history (adapter +
rounds), its last scoring, its curves and imported records, so two visitors never see or change each other's
runs. Before a session's work touches the backend, :meth:`Engine.activate` puts that session's adapter (or the
base weights) in place under the lock.

Runs on a shared app: a session's rounds are written under ``RUNS_ROOT/ui/<session id>/`` and only that session
lists, shows and loads them; every other run under the root (shipped, or made by the CLI) is listed to everyone,
read-only. A run is listed only when it can be shown and loaded here (:meth:`Engine.visible_runs`), and a
folder, file or ``resumed_from`` that resolves outside the runs root is never read.
"""

from __future__ import annotations

import atexit
import logging
import shutil
import tempfile
import threading
import uuid
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srum_core import runs as engine_runs
from srum_core.protocol import UnifiedModel

logger = logging.getLogger(__name__)

#: Folder under the runs root holding the Workbench sessions' own runs, one subfolder per session.
UI_DIR = "ui"
#: How deep under the runs root run folders are looked for (``ui/<session>/<round>`` is 3 deep).
RUN_DEPTH = 3


@dataclass
class SessionState:
    """What one browser session owns. Mutable on purpose: handlers update it and hand it back to gr.State."""

    session_id: str = field(default_factory=lambda: uuid.uuid4().hex[:12])
    #: srum_core.runs.RunHistory of this session's rounds (None until the first round or a loaded run).
    history: Any = None
    #: The run folder this session's rounds are written to.
    run_dir: Path | None = None
    #: Bumped whenever the session's active weights change (a round, an undo, a loaded run).
    weights_version: int = 0
    #: The last generated Sample and its GenerationConfig (what ``score`` judges).
    sample: Any = None
    generation: Any = None
    #: The last Inspect result (srum_core.facade.InspectResult) and the picked object.
    last: Any = None
    selected: int | None = None
    #: Per-step training metrics (dicts with global_step, total, reward_term, constraint_term, ...).
    step_rows: list[dict[str, Any]] = field(default_factory=list)
    #: Accuracy rows {"round", "measure", "category", "accuracy"} for the per-category plot.
    accuracy_rows: list[dict[str, Any]] = field(default_factory=list)
    #: Reward component values of the last round, for the distribution plot.
    reward_values: dict[str, list[float]] = field(default_factory=dict)
    #: Reports read from an imported SRUM JSONL: (line number, RewardReport).
    imported: list[tuple[int, Any]] = field(default_factory=list)

    def weights_key(self) -> tuple[str, int]:
        return (self.session_id, self.weights_version)


class Engine:
    """The shared backend plus everything the tabs need to run work on it safely.

    ``backend``: a :class:`srum_core.protocol.UnifiedModel` whose base weights every session shares.
    ``runs_root``: where run folders are listed and written (the CLI's ``--out`` folders may live here too).
    """

    def __init__(
        self, backend: UnifiedModel, runs_root: str | Path = "runs", max_queue: int = 16, max_round_s: float = 600.0
    ):
        self.backend = backend
        self.runs_root = Path(runs_root)
        self.max_queue = max_queue
        #: A round started from the UI is cancelled after this many seconds (the CLI has no such limit).
        self.max_round_s = max_round_s
        self.lock = threading.RLock()
        self._cancel: dict[str, threading.Event] = {}
        self._applied: tuple[str, int] | None = None
        self._example: Any = None
        # Downloads offered by Show are copied here, one folder per session, replaced on each Show.
        self.downloads_root = Path(tempfile.mkdtemp(prefix="srum-downloads-"))
        atexit.register(shutil.rmtree, self.downloads_root, True)
        removed = engine_runs.clean_stale_staging(self.runs_root)
        if removed:
            logger.info("removed %d staging folders of rounds that did not complete", len(removed))

    # --- weights ---------------------------------------------------------------------------------------------

    def reset_to_base(self) -> None:
        """Make the shared backend compute with its base weights (a LoRA adapter then adds exactly nothing)."""
        from srum_core.adapters import reset_to_base

        reset_to_base(self.backend)

    def activate(self, session: SessionState | None) -> None:
        """Put ``session``'s weights on the backend (its current round's adapter, or the base). Hold the lock."""
        key = None if session is None else session.weights_key()
        if key is not None and key == self._applied:
            return
        self._applied = None
        if session is not None and session.history is not None:
            session.history.apply(self.backend)
        else:
            self.reset_to_base()
        self._applied = key

    def activate_round(self, session: SessionState, which: str | int | None) -> str:
        """Put one of ``session``'s states on the backend without changing its history; returns its label.

        ``which``: ``"base"``, ``"latest"`` (the session's current state) or a round number (0 = base). Hold the
        lock; call :meth:`activate` afterwards to return to the session's current state.
        """
        from srum_core.runs import load_run

        label = str(which if which is not None else "latest").strip().lower()
        if label in ("latest", "current", ""):
            self.activate(session)
            current = 0 if session.history is None else session.history.current
            return "base (no round yet)" if current == 0 else f"round {current}"
        if label == "base":
            index = 0
        else:
            try:
                index = int(label.removeprefix("round").strip())
            except ValueError:
                raise ValueError(f"round {which!r} is unknown: choose 'base', 'latest' or a round number") from None
        rounds = () if session.history is None else session.history.rounds
        if not 0 <= index <= len(rounds):
            raise ValueError(f"round {index} does not exist: this session has rounds 0 (base) to {len(rounds)}")
        self._applied = None
        if index == 0:
            self.reset_to_base()
            return "base"
        load_run(rounds[index - 1], self.backend)
        return f"round {index}"

    def forget_applied(self) -> None:
        """Say the backend's weights are unknown (after a round changed them in place)."""
        self._applied = None

    @contextmanager
    def using(self, session: SessionState | None) -> Iterator[UnifiedModel]:
        """``with engine.using(session) as backend:`` — the backend with that session's weights, exclusively."""
        with self.lock:
            self.activate(session)
            yield self.backend

    # --- runs: privacy and access ------------------------------------------------------------------------------

    def relative(self, path: str | Path) -> str:
        """``path`` as shown to a visitor: relative to the runs root (never a server path)."""
        try:
            return str(Path(path).resolve().relative_to(self.runs_root.resolve()))
        except (ValueError, OSError):
            return Path(path).name

    def session_dir(self, session: SessionState) -> Path:
        """Where ``session``'s rounds are written: private to it."""
        return self.runs_root / UI_DIR / session.session_id

    def _visible_to(self, relative: Path, session: SessionState | None) -> bool:
        parts = relative.parts
        if not parts or parts[0] != UI_DIR:
            return True  # shipped or made by the CLI: read-only for everyone
        return session is not None and len(parts) >= 2 and parts[1] == session.session_id

    def visible_runs(self, session: SessionState | None) -> list[Path]:
        """The run folders ``session`` may list, show and load, newest first.

        A run is listed when it is visible to the session (its own, or not a session's), completed, made with
        this backend, and it and every run it resumes from lie inside the runs root (symlinks resolved) and are
        visible too: exactly the runs :meth:`open_run` opens.
        """
        root = self.runs_root
        if not root.is_dir():
            return []
        found: set[Path] = set()
        for level in range(1, RUN_DEPTH + 1):
            found.update(config.parent for config in root.glob("*/" * level + engine_runs.CONFIG_FILE))
        runs = []
        for run_dir in found:
            relative = run_dir.relative_to(root)
            # Hidden folders are rounds still being written (or abandoned); they are not runs.
            if any(part.startswith(".") for part in relative.parts) or not self._visible_to(relative, session):
                continue
            try:
                self._check_run(run_dir, session)
            except (OSError, ValueError) as err:
                logger.debug("not listing %s: %s", relative, err)
                continue
            runs.append(run_dir)
        return sorted(runs, key=lambda p: (p.stat().st_mtime, str(p)), reverse=True)

    def _check_run(self, run_dir: Path, session: SessionState | None) -> engine_runs.RunHistory:
        info = engine_runs.read_run(engine_runs.inside_root(self.runs_root, run_dir))
        if info.backend and info.backend != self.backend.name:
            raise ValueError(f"run {run_dir.name} was made with backend {info.backend!r}, not {self.backend.name!r}")
        if not info.adapter_dir.is_dir():
            raise ValueError(f"run {run_dir.name} has no adapter folder")
        history = engine_runs.history_inside(self.runs_root, run_dir)
        for run in history.rounds:
            if not self._visible_to(run.relative_to(self.runs_root.resolve()), session):
                raise ValueError(f"run {run_dir.name} resumes from a run that is not yours")
        return history

    def open_run(self, session: SessionState | None, text: str | None) -> tuple[engine_runs.RunInfo, Any]:
        """``(info, history)`` of the run ``text`` names (relative to the runs root), if ``session`` may open it."""
        if not text or not str(text).strip():
            raise ValueError("no run chosen: pick a run in the table (or type its folder from the 'run' column)")
        name = str(text).strip()
        if len(name) > 500:
            raise ValueError("that run folder name is too long; pick a run from the table")
        path = self.runs_root / name
        engine_runs.inside_root(self.runs_root, path)  # refuses ../ and symlinks out of the root
        wanted = path.resolve()
        for run_dir in self.visible_runs(session):
            if run_dir.resolve() == wanted:
                return engine_runs.read_run(run_dir), self._check_run(run_dir, session)
        raise ValueError(f"{name!r} is not one of the runs listed for you; pick one from the table (Refresh first)")

    def downloads(self, session: SessionState, info: engine_runs.RunInfo, card: str) -> list[str]:
        """Copies of a run's records, metrics and adapter (zip) plus ``card``, for ``session`` to download.

        The session's previous copies are removed first, so each session holds at most one set. Only regular
        files inside the run folder are copied; a symlink is never followed.
        """
        folder = self.downloads_root / session.session_id
        shutil.rmtree(folder, ignore_errors=True)
        folder.mkdir(parents=True)
        name = info.run_dir.name
        files = []
        for item in (engine_runs.RECORDS_FILE, engine_runs.TRAINING_RECORDS_FILE, engine_runs.METRICS_FILE):
            source = info.run_dir / item
            if source.is_file() and not source.is_symlink():
                files.append(str(shutil.copyfile(source, folder / f"{name}-{item}")))
        if info.adapter_dir.is_dir() and not info.adapter_dir.is_symlink():
            archive = folder / f"{name}-adapter.zip"
            adapter = info.adapter_dir.resolve()
            with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as bundle:
                for source in sorted(info.adapter_dir.rglob("*")):
                    if source.is_file() and not source.is_symlink() and source.resolve().is_relative_to(adapter):
                        bundle.write(source, source.relative_to(info.adapter_dir))
            files.append(str(archive))
        card_path = folder / f"{name}-card.md"
        card_path.write_text(card, encoding="utf-8")
        files.append(str(card_path))
        return files

    def example(self, build: Callable[[UnifiedModel], Any]) -> Any:
        """What ``build(backend)`` returns on the base weights, computed once per process (the page's opening
        example, the same for every visitor)."""
        with self.lock:
            if self._example is None:
                self.activate(None)
                self._example = build(self.backend)
            return self._example

    # --- cancel flags ----------------------------------------------------------------------------------------

    def cancel_event(self, session_id: str) -> threading.Event:
        event = self._cancel.get(session_id)
        if event is None:
            event = self._cancel[session_id] = threading.Event()
        return event

    def request_cancel(self, session_id: str) -> bool:
        event = self._cancel.get(session_id)
        if event is None:
            return False
        event.set()
        return True


def ensure_session(state: SessionState | None) -> SessionState:
    """The session's state, created on first use (gr.State starts as None)."""
    return state if isinstance(state, SessionState) else SessionState()


def round_choices(session: SessionState) -> list[str]:
    """Dropdown choices for the states a session can compare with or undo to."""
    n = 0 if session.history is None else len(session.history.rounds)
    return ["latest", "base", *[str(k) for k in range(1, n + 1)]]
