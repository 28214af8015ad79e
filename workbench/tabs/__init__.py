"""The Workbench tabs, one module each; shared helpers that turn engine errors into gentle UI messages.

Engine code raises ``ValueError`` (and friends) with a message that says how to fix the input; here those
become ``gr.Error`` so the visitor sees the message, the app keeps running and the session state is untouched.
Server paths in a message are cut to their last part (a visitor never sees the server's folders).

A button whose inputs can be wrong runs a cheap check first (:func:`checked`): a private event with no outputs
that raises the same ``gr.Error`` the real handler would. Only when it passes does the handler run, so a bad
input shows its message and leaves every output (plots, tables, the Undo menu) as it was. API callers call the
handler's ``api_name`` directly; it validates the same way and raises the same message.
"""

from __future__ import annotations

import functools
import logging
import re
from collections.abc import Callable, Sequence
from typing import Any

import gradio as gr

logger = logging.getLogger(__name__)

#: The one queue group every event that touches the backend joins: one such event runs at a time and the
#: others wait, seeing their place in the queue.
ENGINE_QUEUE = "engine"

#: Exceptions whose message is written for the user (bad input, missing files, refused overwrites).
USER_ERRORS: tuple[type[BaseException], ...] = (ValueError, FileNotFoundError, FileExistsError, KeyError)


# An absolute path (``/a/b/c``) not glued to a word: replaced by its last part.
_ABSOLUTE_PATH = re.compile(r"(?<![\w.~/])/(?:[^\s/'\"`()]+/)+([^\s/'\"`()]*)")


def redact_paths(text: str) -> str:
    """``text`` with every absolute server path replaced by its last part (``/tmp/x/p.json`` → ``p.json``)."""
    return _ABSOLUTE_PATH.sub(lambda match: match.group(1) or "…", text)


def to_gr_error(err: BaseException) -> gr.Error:
    if isinstance(err, gr.Error):
        err.message = redact_paths(str(err.message))
        return err
    if isinstance(err, USER_ERRORS):
        message = str(err.args[0]) if isinstance(err, KeyError) and err.args else str(err)
        return gr.Error(redact_paths(message), title="Input problem")
    logger.exception("Workbench handler failed")
    return gr.Error(
        redact_paths(f"{type(err).__name__}: {err}"), title="Something went wrong (the session is unchanged)"
    )


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


def checked(
    trigger: Callable[..., Any],
    check: Callable[..., Any],
    check_inputs: Sequence[Any],
    name: str,
    **kwargs: Any,
) -> Any:
    """``trigger(check)`` as a private event with no outputs; returns its ``.success`` to chain the handler on.

    ``trigger``: an event listener such as ``button.click``; ``check``: raises for a bad input, returns nothing
    otherwise; ``kwargs`` go to ``trigger`` (e.g. ``inputs_kwargs``).
    """

    @functools.wraps(check)
    def run_check(*args: Any, **values: Any) -> None:
        check(*args, **values)  # whatever it returns, this event has no outputs

    # Queued (in its own concurrency group, not the engine's): gradio shows a queued event's error as a toast.
    event = trigger(
        friendly(run_check), list(check_inputs), None, api_name=f"check_{name}", api_visibility="private", **kwargs
    )
    return event.success
