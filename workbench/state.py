"""Process-wide engine and per-browser-session state.

:class:`Engine` is built once per process: the backend (base weights loaded once, shared by every visitor),
the runs root, one lock that serialises work on the backend, and the cancel flags of running rounds.
:class:`SessionState` lives in a ``gr.State``: each browser session owns its own training history (adapter +
rounds), its last scoring, its curves and imported records, so two visitors never see or change each other's
runs. Before a session's work touches the backend, :meth:`Engine.activate` puts that session's adapter (or the
base weights) in place under the lock.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from srum_core.protocol import UnifiedModel

logger = logging.getLogger(__name__)


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

    def __init__(self, backend: UnifiedModel, runs_root: str | Path = "runs", max_queue: int = 16):
        self.backend = backend
        self.runs_root = Path(runs_root)
        self.max_queue = max_queue
        self.lock = threading.RLock()
        self._cancel: dict[str, threading.Event] = {}
        self._applied: tuple[str, int] | None = None

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
