"""Judge question templates, filled in without ``str.format``.

A template is plain text with fields in braces, e.g. ``'Does this image show "{prompt}"?'``; ``{{`` and ``}}``
stand for literal braces. The global question may use ``{prompt}``; a region question ``{prompt}``,
``{region}`` and ``{object}``. Anything else in braces is refused with a message naming the allowed fields:
format specs (``{prompt:>99999}``), attribute access (``{prompt.__class__}``), indexing (``{0}``,
``{prompt[0]}``) and unknown names. Templates typed into a shared app thus cannot reach into Python objects
or inflate the question, and the filled text is at most the template plus a few field values long.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from .limits import MAX_TEMPLATE_CHARS, MAX_TEMPLATE_FIELDS

#: Fields a global question template may use.
GLOBAL_FIELDS: tuple[str, ...] = ("prompt",)
#: Fields a region question template may use.
REGION_FIELDS: tuple[str, ...] = ("prompt", "region", "object")

# An escaped brace, a field ``{...}`` (no braces inside), or a lone brace (an error).
_TOKEN = re.compile(r"\{\{|\}\}|\{([^{}]*)\}|[{}]")


def _listing(allowed: Sequence[str]) -> str:
    return ", ".join("{" + name + "}" for name in allowed)


def template_fields(template: str, allowed: Sequence[str], what: str = "template") -> list[str]:
    """The fields ``template`` uses, in order of appearance; raises ``ValueError`` for anything else in braces.

    ``allowed``: the field names this template may use; ``what`` names the template in messages.
    """
    if not isinstance(template, str):
        raise ValueError(f"{what} must be text, got {type(template).__name__}")
    if len(template) > MAX_TEMPLATE_CHARS:
        raise ValueError(f"{what} is {len(template)} characters long; shorten it to at most {MAX_TEMPLATE_CHARS}")
    used: list[str] = []
    for match in _TOKEN.finditer(template):
        token = match.group(0)
        if token in ("{{", "}}"):
            continue
        name = match.group(1)
        if name is None:
            raise ValueError(
                f"{what} has a lone {token!r} at character {match.start()}: write {token * 2} for a literal brace, "
                f"or use a field: {_listing(allowed)}"
            )
        if name not in allowed:
            shown = name if len(name) <= 40 else name[:40] + "…"
            raise ValueError(
                f"{what}: {{{shown}}} is not a field; use only {_listing(allowed)} (no format specs, attributes or "
                "indexes; write {{ and }} for literal braces)"
            )
        used.append(name)
    if len(used) > MAX_TEMPLATE_FIELDS:
        raise ValueError(f"{what} uses {len(used)} fields; use at most {MAX_TEMPLATE_FIELDS}")
    return used


def check_template(template: str, allowed: Sequence[str], required: Sequence[str] = (), what: str = "template") -> None:
    """Refuse ``template`` unless it uses only ``allowed`` fields and every ``required`` one."""
    used = template_fields(template, allowed, what)
    for name in required:
        if name not in used:
            raise ValueError(f"{what} must contain {{{name}}} so the judge sees the {name}")


def fill_template(template: str, **fields: object) -> str:
    """``template`` with each ``{name}`` replaced by ``str(fields[name])``; the keyword names are the allowed fields.

    Field values are inserted as they are (braces in a prompt stay braces); a template using a field that was
    not given, or anything ``str.format`` would interpret beyond a plain name, raises ``ValueError``.
    """
    template_fields(template, tuple(fields))

    def substitute(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "{{":
            return "{"
        if token == "}}":
            return "}"
        return str(fields[match.group(1)])

    return _TOKEN.sub(substitute, template)
