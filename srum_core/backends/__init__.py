"""Backends: one file per unified model, each implementing :class:`srum_core.protocol.UnifiedModel`.

:func:`load_backend` is the one registry the CLI and the app share. Backend modules are imported only when
asked for, so importing this package loads no model library.
"""

from __future__ import annotations

from typing import Any

#: Names accepted by ``--backend``; ``janus`` needs a model id or path (``--model``, or ``janus:<id>``);
#: ``bagel`` loads BAGEL-7B-MoT unless given other weights (``bagel:<id or folder>`` or ``--model``).
BACKENDS: tuple[str, ...] = ("sandbox", "janus", "janus-pro-1b", "janus-pro-7b", "bagel")


def split_backend_name(name: str, model: str | None = None) -> tuple[str, str | None]:
    """``"janus:ID"`` → ``("janus", "ID")``, ``"bagel:ID"`` → ``("bagel", "ID")``; other names pass through."""
    for kind in ("janus", "bagel"):
        if name.lower().startswith(kind + ":"):
            return kind, name.split(":", 1)[1] or model
    return name.lower(), model


def load_backend(name: str, device: str = "auto", model: str | None = None) -> Any:
    """The named backend with its weights loaded (once per process); ``model`` overrides its default weights."""
    kind, model = split_backend_name(name, model)
    if kind == "sandbox":
        from .sandbox import load_sandbox

        return load_sandbox(model, device=device)
    if kind in ("janus", "janus-pro-1b", "janus-pro-7b"):
        from .janus import load_janus

        if kind == "janus" and not model:
            raise ValueError(
                "backend 'janus' needs a model: --model HUB_ID_OR_PATH (or use janus-pro-1b / janus-pro-7b)"
            )
        return load_janus(model or kind, device=device)
    if kind == "bagel":
        from .bagel import DEFAULT_MODEL, load_bagel

        return load_bagel(model or DEFAULT_MODEL, device=device)
    raise ValueError(
        f"backend {name!r} is unknown; choose one of {', '.join(BACKENDS)} (or janus:<hub id or folder>, "
        "bagel:<hub id or folder>)"
    )


def cpu_warning(name: str, device: str = "auto", model: str | None = None) -> str | None:
    """What running backend ``name`` costs on this machine's CPU, when that is prohibitive; None otherwise."""
    kind, model = split_backend_name(name, model)
    if kind.startswith("janus"):
        from .janus import janus_cpu_warning

        return janus_cpu_warning(model or kind, device)
    if kind == "bagel":
        from .bagel import DEFAULT_MODEL, bagel_cpu_warning

        return bagel_cpu_warning(model or DEFAULT_MODEL, device)
    return None
