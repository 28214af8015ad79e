"""Hugging Face Spaces support: ``gpu(duration)`` wraps GPU work with ``spaces.GPU`` when it is importable.

On a ZeroGPU Space the ``spaces`` package lends a GPU for the duration of each decorated call; everywhere else
(local CPU, a GPU box, tests) the decorator returns the function unchanged.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

F = TypeVar("F", bound=Callable[..., Any])

#: Seconds of GPU asked for per call: a scoring pass is short, a training round long.
SHORT_GPU_S = 60
LONG_GPU_S = 600


def gpu(duration: int = SHORT_GPU_S) -> Callable[[F], F]:
    """``@gpu(duration=120)``: request a ZeroGPU slot for up to ``duration`` seconds per call, or do nothing."""
    if duration <= 0:
        raise ValueError(f"duration={duration}: give the longest expected call in seconds, a positive number")
    try:
        import spaces
    except ImportError:
        return lambda fn: fn
    return spaces.GPU(duration=duration)
