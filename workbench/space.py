"""Hugging Face Spaces support: ``gpu(duration)`` wraps GPU work with ``spaces.GPU`` when it is importable.

On a ZeroGPU Space the ``spaces`` package lends a GPU for the duration of each decorated call; everywhere else
(local CPU, a GPU box, tests) the decorator returns the function unchanged.
"""

from __future__ import annotations

import importlib.util
from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])


def spaces_available() -> bool:
    """Whether the ``spaces`` package (Hugging Face ZeroGPU) can be imported here."""
    return importlib.util.find_spec("spaces") is not None


def gpu(duration: int = 60) -> Callable[[F], F]:
    """``@gpu(duration=120)``: request a ZeroGPU slot for up to ``duration`` seconds per call, or do nothing."""
    if duration <= 0:
        raise ValueError(f"duration={duration}: give the longest expected call in seconds, a positive number")
    if not spaces_available():
        return lambda fn: fn
    import spaces

    return spaces.GPU(duration=duration)
