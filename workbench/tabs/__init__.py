"""The Workbench tabs, one module each; shared helpers that turn engine errors into gentle UI messages.

Engine code raises ``ValueError`` (and friends) with a message that says how to fix the input; here those
become ``gr.Error`` so the visitor sees the message, the app keeps running and the session state is untouched.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

import gradio as gr

logger = logging.getLogger(__name__)

#: The one queue group every event that touches the backend joins: one such event runs at a time and the
#: others wait, seeing their place in the queue.
ENGINE_QUEUE = "engine"

#: Exceptions whose message is written for the user (bad input, missing files, refused overwrites).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, KeyError)


def to_gr_error(err: BaseException) -> gr.Error:
    if isinstance(err, gr.Error):
        return err
    if isinstance(err, USER_ERRORS):
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        return gr.Error(message, title="Input problem")
    logger.exception("Workbench handler failed")
    return gr.Error(f"{type(err).__name__}: {err}", title="Something went wrong (the session is unchanged)")


def friendly(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Wrap a handler so engine errors reach the visitor as ``gr.Error`` with the engine's message."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - every failure becomes a message, never a crash
            raise to_gr_error(err) from err

    return wrapper


def friendly_generator(fn: Callable[..., Any]) -> Callable[..., Any]:
    """:func:`friendly` for generator handlers (streaming outputs)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            yield from fn(*args, **kwargs)
        except Exception as err:  # noqa: BLE001
            raise to_gr_error(err) from err

    return wrapper
