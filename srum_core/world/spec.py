"""The vocabulary and plain data types of the synthetic compositional world (version 2: a grid of slots).

The world is a 64 x 64 RGB canvas cut into a 4 x 4 grid of 16-pixel *slots*; each object sits at the centre of
its own slot, drawn flat on a light background at one of two fixed sizes. Four hues, three shapes and two
textures keep every object legible at a glance, and the slot grid turns a layout into a short, exact plan
("slot (row 1, col 2): large striped red circle"), which is what the embedded model's think mode writes.
It is small enough for a tiny unified model to learn on a CPU, and rich enough for the prompt categories of
T2I-CompBench / GenEval (attribute binding, spatial relations, counting, combinations).

Coordinates are pixels, ``x`` to the right and ``y`` down, with ``(0, 0)`` the top-left corner of the image.
Every shape of "radius" ``r`` centred at ``(cx, cy)`` fills (part of) the square ``[cx - r, cx + r] x
[cy - r, cy + r]``: a circle of radius ``r``, a square of half-side ``r``, an upright isosceles triangle with its
apex at the top middle and its base along the bottom edge.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

SHAPES: tuple[str, ...] = ("circle", "square", "triangle")

#: Named colours, chosen far apart in hue (red 0 deg, yellow 54, green 129, blue 227) and strongly saturated, so
#: they stay separable after blur, noise and blending with the background.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (220, 40, 40),
    "yellow": (230, 205, 20),
    "green": (40, 170, 60),
    "blue": (40, 80, 220),
}

SIZES: tuple[str, ...] = ("small", "large")

#: Radius range in pixels at ``IMAGE_SIZE``. Sizes are fixed (each range is one value): a small object spans
#: 8 pixels, a large one 14, both inside their 16-pixel slot with a free margin.
SIZE_RADII: dict[str, tuple[float, float]] = {"small": (4.0, 4.0), "large": (7.0, 7.0)}

#: Stripes are horizontal bands of a darker shade of the object's own colour (same hue), ``STRIPE_PERIOD``
#: pixels apart (2-pixel bands, so a small object still shows two dark bands).
TEXTURES: tuple[str, ...] = ("solid", "striped")
STRIPE_PERIOD: float = 4.0
STRIPE_SHADE: float = 0.5

#: Probability of each texture when a prompt leaves the texture open (plain shapes are the common case).
UNSPECIFIED_TEXTURE_P: dict[str, float] = {"solid": 0.75, "striped": 0.25}

RELATIONS: tuple[str, ...] = ("left of", "right of", "above", "below")
#: How a relation reads in a prompt.
RELATION_PHRASES: dict[str, str] = {
    "left of": "to the left of",
    "right of": "to the right of",
    "above": "above",
    "below": "below",
}
OPPOSITE_RELATION: dict[str, str] = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}

CATEGORIES: tuple[str, ...] = ("single", "color", "shape", "texture", "spatial", "numeracy", "complex")

IMAGE_SIZE: int = 64
BACKGROUND: tuple[int, int, int] = (235, 235, 235)

#: The slot grid: ``GRID`` x ``GRID`` slots of ``SLOT`` pixels; slot ``k`` is row ``k // GRID``, column ``k % GRID``.
GRID: int = 4
SLOT: int = IMAGE_SIZE // GRID
N_SLOTS: int = GRID * GRID

MAX_OBJECTS: int = 4
NUMBER_WORDS: tuple[str, ...] = ("one", "two", "three", "four")


@dataclass(frozen=True)
class ObjectSpec:
    """One kind of object a prompt asks for; ``count`` copies of it. ``None`` attributes are left open."""

    shape: str
    color: str | None = None
    size: str | None = None
    texture: str | None = None
    count: int = 1

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"shape={self.shape!r}: choose one of {', '.join(SHAPES)}")
        if self.color is not None and self.color not in COLORS:
            raise ValueError(f"color={self.color!r}: choose one of {', '.join(COLORS)} or None")
        if self.size is not None and self.size not in SIZES:
            raise ValueError(f"size={self.size!r}: choose one of {', '.join(SIZES)} or None")
        if self.texture is not None and self.texture not in TEXTURES:
            raise ValueError(f"texture={self.texture!r}: choose one of {', '.join(TEXTURES)} or None")
        if not 1 <= self.count <= MAX_OBJECTS:
            raise ValueError(f"count={self.count}: use between 1 and {MAX_OBJECTS} objects of one kind")

    def words(self, numbered: bool = False) -> list[str]:
        """The words of this object's noun phrase: determiner, size, texture, colour, shape (plural if count > 1).

        ``numbered`` writes a count of one as "one" (numeracy prompts) instead of "a"/"an".
        """
        adjectives = [w for w in (self.size, self.texture, self.color) if w is not None]
        if self.count > 1 or numbered:
            determiner = NUMBER_WORDS[self.count - 1]
        else:
            first = adjectives[0] if adjectives else self.shape
            determiner = "an" if first[0] in "aeiou" else "a"
        noun = self.shape + "s" if self.count > 1 else self.shape
        return [determiner, *adjectives, noun]

    @property
    def phrase(self) -> str:
        """``"a red circle"``, ``"three green squares"``."""
        return " ".join(self.words())

    @property
    def kind(self) -> tuple[str | None, str]:
        """``(color, shape)``: the pairing the train/validation split is made on."""
        return (self.color, self.shape)

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "color": self.color,
            "size": self.size,
            "texture": self.texture,
            "count": self.count,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ObjectSpec:
        return cls(
            shape=data["shape"],
            color=data.get("color"),
            size=data.get("size"),
            texture=data.get("texture"),
            count=int(data.get("count", 1)),
        )


@dataclass(frozen=True)
class PromptSpec:
    """A prompt and its meaning.

    ``relation`` is ``(subject index, relation, object index)`` into ``objects``, e.g. ``(0, "left of", 1)``.
    """

    text: str
    category: str
    objects: tuple[ObjectSpec, ...]
    relation: tuple[int, str, int] | None = None

    def __post_init__(self) -> None:
        if self.category not in CATEGORIES:
            raise ValueError(f"category={self.category!r}: choose one of {', '.join(CATEGORIES)}")
        if not self.objects:
            raise ValueError("a PromptSpec needs at least one object")
        object.__setattr__(self, "objects", tuple(self.objects))
        if self.relation is not None:
            subject, rel, obj = self.relation
            if rel not in RELATIONS:
                raise ValueError(f"relation {rel!r}: choose one of {', '.join(RELATIONS)}")
            n = len(self.objects)
            if not (0 <= subject < n and 0 <= obj < n and subject != obj):
                raise ValueError(f"relation indices ({subject}, {obj}) must name two different objects of {n}")
            object.__setattr__(self, "relation", (int(subject), rel, int(obj)))
        if self.total_objects > MAX_OBJECTS:
            raise ValueError(f"{self.total_objects} objects in one scene: the world holds at most {MAX_OBJECTS}")

    @property
    def total_objects(self) -> int:
        return sum(o.count for o in self.objects)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-safe dict; :meth:`from_dict` restores an equal spec."""
        return {
            "text": self.text,
            "category": self.category,
            "objects": [o.to_dict() for o in self.objects],
            "relation": list(self.relation) if self.relation is not None else None,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptSpec:
        relation = data.get("relation")
        return cls(
            text=data["text"],
            category=data["category"],
            objects=tuple(ObjectSpec.from_dict(o) for o in data["objects"]),
            relation=(int(relation[0]), str(relation[1]), int(relation[2])) if relation is not None else None,
        )


def slot_center(slot: int, size: int = IMAGE_SIZE) -> tuple[float, float]:
    """``(cx, cy)`` in pixels of slot ``slot`` on a ``size`` x ``size`` canvas."""
    if not 0 <= slot < N_SLOTS:
        raise ValueError(f"slot={slot}: use 0..{N_SLOTS - 1} (row-major on the {GRID}x{GRID} grid)")
    step = size / GRID
    return ((slot % GRID + 0.5) * step, (slot // GRID + 0.5) * step)


def slot_of(cx: float, cy: float, size: int = IMAGE_SIZE) -> int:
    """The slot whose cell holds the point ``(cx, cy)`` (clamped to the grid)."""
    step = size / GRID
    col = min(GRID - 1, max(0, int(cx // step)))
    row = min(GRID - 1, max(0, int(cy // step)))
    return row * GRID + col


@dataclass(frozen=True)
class PlacedObject:
    """One object as drawn: all attributes decided, centre ``(cx, cy)`` and radius in pixels."""

    shape: str
    color: str
    size: str
    texture: str
    cx: float
    cy: float
    radius: float

    @property
    def slot(self) -> int:
        """The slot of the grid that holds this object's centre (for a canvas of ``IMAGE_SIZE``)."""
        return slot_of(self.cx, self.cy)

    @property
    def box(self) -> tuple[int, int, int, int]:
        """``(x1, y1, x2, y2)`` pixel box, exclusive ends, covering every pixel the shape touches."""
        return (
            int(math.floor(self.cx - self.radius)),
            int(math.floor(self.cy - self.radius)),
            int(math.ceil(self.cx + self.radius)),
            int(math.ceil(self.cy + self.radius)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "color": self.color,
            "size": self.size,
            "texture": self.texture,
            "cx": self.cx,
            "cy": self.cy,
            "radius": self.radius,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PlacedObject:
        return cls(
            **{k: data[k] for k in ("shape", "color", "size", "texture")},
            cx=float(data["cx"]),
            cy=float(data["cy"]),
            radius=float(data["radius"]),
        )


@dataclass(frozen=True)
class Scene:
    """A fully decided layout: what :func:`srum_core.world.render.render_scene` draws."""

    objects: tuple[PlacedObject, ...]
    size: int = IMAGE_SIZE

    def to_dict(self) -> dict[str, Any]:
        return {"objects": [o.to_dict() for o in self.objects], "size": self.size}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        return cls(objects=tuple(PlacedObject.from_dict(o) for o in data["objects"]), size=int(data["size"]))
