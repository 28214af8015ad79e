"""Parsers for SRUM's two judge text formats (SRUM_SPEC §1.4), robust where the released parser is not.

Global answer: ``Score: <number>`` and ``Reason: <text>``, read from the text after the last ``</think>``.
Regional answer: one block per region with ``Region ID:``, ``Identified Object:``, ``Score:``, ``Reason:``; blocks
may be separated by blank lines, ``---`` lines, or nothing at all (each ``Region ID:`` starts a block).

Differences from the released parser, on purpose: scores outside [-1, 1] are clamped *and* flagged
(``parse_status="clamped"``, ``raw_score`` kept); an unreadable answer is a failure (``score=None``,
``parse_status="failed"``), never a neutral 0; a region the judge skipped is ``missing``; the raw text is always kept.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence

from .types import GlobalJudgement, ParseStatus, Region, RegionJudgement

_NUMBER = r"[-+−]?(?:\d+(?:\.\d*)?|\.\d+)"
# Field labels may be wrapped in markdown emphasis (``**Score:**``) and be any case.
_LABEL = r"^[ \t>*_#-]*{name}[ \t*_]*:[ \t*_]*"
_FIELD_NAMES = ("region id", "identified object", "bounding box", "score", "reason")
_ANY_FIELD = re.compile(
    "|".join(_LABEL.format(name=re.escape(n).replace(r"\ ", r"[ \t]+")) for n in _FIELD_NAMES),
    re.IGNORECASE | re.MULTILINE,
)
_SEPARATOR = re.compile(r"^\s*(?:-{3,}|\*{3,}|_{3,})\s*$", re.MULTILINE)


def _label(name: str) -> re.Pattern[str]:
    return re.compile(_LABEL.format(name=name.replace(" ", r"[ \t]+")), re.IGNORECASE | re.MULTILINE)


_SCORE = _label("score")
_REASON = _label("reason")
_OBJECT = _label("identified object")
_REGION_ID = _label("region id")


def answer_text(text: str) -> str:
    """The part of a judge's output after its last ``</think>`` (all of it if there is none)."""
    marker = "</think>"
    index = text.rfind(marker)
    return text[index + len(marker) :] if index >= 0 else text


def _field_value(label: re.Pattern[str], text: str) -> str | None:
    """The text after ``label`` up to the next field label or separator, stripped; None if absent."""
    match = label.search(text)
    if match is None:
        return None
    rest = text[match.end() :]
    stops = [m.start() for m in (_ANY_FIELD.search(rest), _SEPARATOR.search(rest)) if m is not None]
    value = rest[: min(stops)] if stops else rest
    return value.strip().strip("*_").strip()


def parse_score(value: str | None) -> tuple[float | None, float | None, ParseStatus]:
    """``(score in [-1, 1] or None, raw number or None, status)`` from a ``Score:`` field's text."""
    if value is None:
        return None, None, "failed"
    match = re.match(_NUMBER, value.strip())
    if match is None:
        return None, None, "failed"
    raw = float(match.group(0).replace("−", "-"))
    if math.isnan(raw) or math.isinf(raw):
        return None, None, "failed"
    if -1.0 <= raw <= 1.0:
        return raw, raw, "ok"
    return max(-1.0, min(1.0, raw)), raw, "clamped"


def parse_global_response(text: str, question: str = "") -> GlobalJudgement:
    """Read a global (layout) judgement; see the module docstring for the conventions."""
    answer = answer_text(text)
    score, raw, status = parse_score(_field_value(_SCORE, answer))
    reason = _field_value(_REASON, answer) or ""
    return GlobalJudgement(
        score=score, reason=reason, raw_text=text, parse_status=status, raw_score=raw, question=question
    )


def split_region_blocks(text: str) -> list[str]:
    """Split a regional answer into one block per ``Region ID:`` (separators and blank lines tolerated)."""
    answer = answer_text(text)
    starts = [m.start() for m in _REGION_ID.finditer(answer)]
    if not starts:
        return [b for b in re.split(r"\n\s*\n|" + _SEPARATOR.pattern, answer, flags=re.MULTILINE) if b and b.strip()]
    starts.append(len(answer))
    return [answer[a:b] for a, b in zip(starts, starts[1:])]


def parse_region_response(
    text: str, regions: Sequence[Region], question: str = "", first_id: int = 1
) -> list[RegionJudgement]:
    """One :class:`RegionJudgement` per region, in the order of ``regions``.

    Region ``k`` (0-based) was shown to the judge as ``Region ID: k + first_id``. Blocks are matched by their
    ID; if no block carries a readable ID they are matched by order. A region without a block is ``missing``.
    """
    blocks = split_region_blocks(text)
    by_id: dict[int, str] = {}
    for block in blocks:
        id_text = _field_value(_REGION_ID, block)
        id_match = re.match(r"\d+", id_text or "")
        if id_match is not None and int(id_match.group(0)) not in by_id:
            by_id[int(id_match.group(0))] = block
    if not by_id:
        by_id = {i + first_id: block for i, block in enumerate(blocks)}

    judgements: list[RegionJudgement] = []
    for index, region in enumerate(regions):
        block = by_id.get(index + first_id)
        if block is None:
            judgements.append(
                RegionJudgement(
                    region=region,
                    object_name=region.label or "",
                    score=None,
                    reason="the judge gave no answer for this region",
                    raw_text=text,
                    parse_status="missing",
                    question=question,
                )
            )
            continue
        score, raw, status = parse_score(_field_value(_SCORE, block))
        judgements.append(
            RegionJudgement(
                region=region,
                object_name=_field_value(_OBJECT, block) or (region.label or ""),
                score=score,
                reason=_field_value(_REASON, block) or "",
                raw_text=block.strip(),
                parse_status=status,
                raw_score=raw,
                question=question,
            )
        )
    return judgements


def format_region_request(regions: Sequence[Region], first_id: int = 1) -> str:
    """The region list of a SRUM regional request: ``Region ID: k`` and ``Bounding Box: [x1, y1, x2, y2]``."""
    lines = []
    for index, region in enumerate(regions):
        x1, y1, x2, y2 = region.box
        lines.append(f"Region ID: {index + first_id}\nBounding Box: [{x1}, {y1}, {x2}, {y2}]")
    return "\n\n".join(lines)
