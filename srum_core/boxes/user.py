"""Boxes a user gives (drawn in the UI, typed, or passed on the command line) as a box source of kind ``"user"``.

:func:`parse_user_boxes` reads the forms the Inspect tab accepts and checks every box against the image size.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from ..limits import MAX_RECORD_REGIONS
from ..types import Region

#: The box source name that means "the boxes the user typed".
USER_BOX_SOURCE = "user"
#: Longest box text a user may type (64 boxes with labels fit easily).
MAX_BOXES_CHARS = 20_000


class UserBoxes:
    """A box source that returns boxes a user gave (drawn in the UI or passed on the command line)."""

    kind = "user"

    def __init__(self, boxes: Sequence[Sequence[int]], labels: Sequence[str | None] | None = None):
        labels = list(labels) if labels is not None else [None] * len(boxes)
        if len(labels) != len(boxes):
            raise ValueError(f"UserBoxes got {len(boxes)} boxes but {len(labels)} labels; give one label per box")
        self.name = "user"
        self._regions = [Region(box=tuple(b), source="user", label=lab) for b, lab in zip(boxes, labels)]
        for r in self._regions:
            x1, y1, x2, y2 = r.box
            if x2 <= x1 or y2 <= y1:
                raise ValueError(f"User box {list(r.box)} is empty: write it as [x1, y1, x2, y2] with x2 > x1, y2 > y1")

    def propose(self, image: Any, prompt: str, max_regions: int = 10) -> list[Region]:
        return list(self._regions[:max_regions])


def parse_user_boxes(text: str | None, width: int, height: int) -> list[Region]:
    """Boxes a user typed, as regions with ``source="user"``.

    Accepted forms: JSON ``[[x1, y1, x2, y2], ...]``, JSON ``[{"box": [x1, y1, x2, y2], "label": "a cat"}, ...]``,
    a single JSON box ``[x1, y1, x2, y2]``, or one ``x1, y1, x2, y2`` per line / separated by ``;``. Pixel
    coordinates on the ``width`` x ``height`` image, exclusive ends. An empty text gives no boxes.
    """
    if text is None or not text.strip():
        return []
    if len(text) > MAX_BOXES_CHARS:
        raise ValueError(f"the boxes text is {len(text)} characters long; give at most {MAX_RECORD_REGIONS} boxes")
    stripped = text.strip()
    entries: list[Any]
    if stripped.startswith(("[", "{")):
        try:
            data = json.loads(stripped)
        except json.JSONDecodeError as err:
            raise ValueError(
                f"the boxes are not valid JSON ({err.msg} at character {err.pos}); "
                "write them as [[x1, y1, x2, y2], ...]"
            ) from None
        if isinstance(data, dict):
            data = [data]
        if isinstance(data, list) and len(data) == 4 and all(isinstance(v, (int, float)) for v in data):
            data = [data]
        if not isinstance(data, list):
            raise ValueError("the boxes must be a JSON list, e.g. [[8, 8, 32, 32], [40, 8, 60, 30]]")
        entries = data
    else:
        entries = []
        for chunk in re.split(r"[;\n]+", stripped):
            if chunk.strip():
                entries.append([part for part in re.split(r"[,\s]+", chunk.strip()) if part])

    if len(entries) > MAX_RECORD_REGIONS:
        raise ValueError(f"{len(entries)} boxes: give at most {MAX_RECORD_REGIONS}")
    boxes: list[list[float]] = []
    labels: list[str | None] = []
    for index, entry in enumerate(entries, start=1):
        label = None
        if isinstance(entry, dict):
            label = entry.get("label")
            entry = entry.get("box", entry.get("bbox"))
        if not isinstance(entry, (list, tuple)) or len(entry) != 4:
            raise ValueError(f"box {index} is {entry!r}: give four numbers x1, y1, x2, y2")
        try:
            box = [float(v) for v in entry]
        except (TypeError, ValueError):
            raise ValueError(f"box {index} is {list(entry)!r}: its four values must be numbers") from None
        x1, y1, x2, y2 = box
        if x2 <= x1 or y2 <= y1:
            raise ValueError(f"box {index} {[int(v) for v in box]} is empty: x2 must exceed x1 and y2 exceed y1")
        if x2 <= 0 or y2 <= 0 or x1 >= width or y1 >= height:
            raise ValueError(
                f"box {index} {[int(v) for v in box]} lies outside the {width}x{height} image; "
                f"use pixel coordinates between 0 and {width} (x) and 0 and {height} (y)"
            )
        boxes.append(box)
        labels.append(None if label is None else str(label))
    return UserBoxes(boxes, labels).propose(None, "", max_regions=len(boxes))
