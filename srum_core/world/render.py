"""Random layouts that satisfy a prompt, and an anti-aliased renderer for them.

``sample_scene`` decides everything a prompt leaves open (positions, radii, open attributes) with an explicit
``numpy.random.Generator``; ``render_scene`` is a pure function of the scene: it draws at ``SUPERSAMPLE`` times
the resolution and box-filters down, so edges are anti-aliased and the same scene always gives the same pixels.
"""

from __future__ import annotations

import logging

import numpy as np
from PIL import Image, ImageDraw

from .spec import (
    BACKGROUND,
    COLORS,
    IMAGE_SIZE,
    SIZE_RADII,
    SIZES,
    STRIPE_PERIOD,
    STRIPE_SHADE,
    TEXTURES,
    UNSPECIFIED_TEXTURE_P,
    PlacedObject,
    PromptSpec,
    Scene,
)

logger = logging.getLogger(__name__)

SUPERSAMPLE = 4
#: Minimum free space between the boxes of two objects, and between a box and the image border (pixels at 64 px).
OBJECT_GAP = 3.0
BORDER_GAP = 1.0
_CANDIDATES = 256
_LAYOUT_ATTEMPTS = 400


def _separated(a: PlacedObject, b: PlacedObject, gap: float) -> bool:
    """True when the boxes of ``a`` and ``b`` are at least ``gap`` pixels apart along x or along y."""
    reach = a.radius + b.radius + gap
    return abs(a.cx - b.cx) >= reach or abs(a.cy - b.cy) >= reach


def _relation_holds(subject: PlacedObject, rel: str, obj: PlacedObject, gap: float) -> bool:
    """The relation with a clear margin: the boxes are fully separated along the relation's axis, and the centres
    are offset more along that axis than across it (so "left of" never looks like "above")."""
    dx, dy = obj.cx - subject.cx, obj.cy - subject.cy
    along, across = {"left of": (dx, dy), "right of": (-dx, dy), "above": (dy, dx), "below": (-dy, dx)}[rel]
    return along >= subject.radius + obj.radius + gap and abs(across) <= along


def _draw_attributes(spec: PromptSpec, rng: np.random.Generator, scale: float) -> list[tuple[int, dict]]:
    """One ``(group index, attributes)`` per object copy, open attributes drawn at random."""
    color_names = list(COLORS)
    texture_p = np.array([UNSPECIFIED_TEXTURE_P[t] for t in TEXTURES], dtype=float)
    copies = []
    for gi, obj in enumerate(spec.objects):
        for _ in range(obj.count):
            color = obj.color if obj.color is not None else color_names[int(rng.integers(len(color_names)))]
            size = obj.size if obj.size is not None else SIZES[int(rng.integers(len(SIZES)))]
            texture = obj.texture if obj.texture is not None else TEXTURES[int(rng.choice(len(TEXTURES), p=texture_p))]
            lo, hi = SIZE_RADII[size]
            radius = float(rng.uniform(lo, hi)) * scale
            copies.append(
                (gi, {"shape": obj.shape, "color": color, "size": size, "texture": texture, "radius": radius})
            )
    return copies


def sample_scene(spec: PromptSpec, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Scene:
    """A random layout of ``size`` x ``size`` pixels that satisfies ``spec``.

    Exactly ``count`` copies of each object; boxes never overlap (``OBJECT_GAP`` apart); a relation holds for
    every (subject copy, object copy) pair with the boxes fully separated along its axis. Attributes the prompt
    leaves open (colour, size, texture) are drawn at random per copy. Raises ``RuntimeError`` if no layout is
    found (only possible for a spec far outside the world's object budget).
    """
    if size < 32:
        raise ValueError(f"size={size}: the world needs at least 32 pixels per side (64 is the default)")
    scale = size / IMAGE_SIZE
    gap = OBJECT_GAP * scale
    border = BORDER_GAP * scale
    copies = _draw_attributes(spec, rng, scale)
    # Big objects first: they are the hardest to fit.
    order = sorted(range(len(copies)), key=lambda i: -copies[i][1]["radius"])
    for _attempt in range(_LAYOUT_ATTEMPTS):
        placed: dict[int, PlacedObject] = {}
        for i in order:
            gi, attrs = copies[i]
            r = attrs["radius"]
            xs = rng.uniform(r + border, size - r - border, _CANDIDATES)
            ys = rng.uniform(r + border, size - r - border, _CANDIDATES)
            chosen = None
            for cx, cy in zip(xs, ys):
                cand = PlacedObject(cx=float(cx), cy=float(cy), **attrs)
                if not all(_separated(cand, other, gap) for other in placed.values()):
                    continue
                if spec.relation is not None and not _relation_ok(spec, copies, placed, i, cand, gap):
                    continue
                chosen = cand
                break
            if chosen is None:
                break
            placed[i] = chosen
        if len(placed) == len(copies):
            return Scene(objects=tuple(placed[i] for i in range(len(copies))), size=size)
    raise RuntimeError(f"could not lay out {spec.text!r} on a {size}px canvas; use fewer or smaller objects")


def _relation_ok(
    spec: PromptSpec,
    copies: list[tuple[int, dict]],
    placed: dict[int, PlacedObject],
    i: int,
    cand: PlacedObject,
    gap: float,
) -> bool:
    subject, rel, obj = spec.relation
    gi = copies[i][0]
    for j, other in placed.items():
        gj = copies[j][0]
        if gi == subject and gj == obj and not _relation_holds(cand, rel, other, gap):
            return False
        if gi == obj and gj == subject and not _relation_holds(other, rel, cand, gap):
            return False
    return True


def _draw_shape(draw: ImageDraw.ImageDraw, obj: PlacedObject, fill: int | tuple[int, int, int]) -> None:
    """Draw one object at ``SUPERSAMPLE`` times its pixel coordinates."""
    s = SUPERSAMPLE
    x1, y1 = (obj.cx - obj.radius) * s, (obj.cy - obj.radius) * s
    x2, y2 = (obj.cx + obj.radius) * s, (obj.cy + obj.radius) * s
    if obj.shape == "circle":
        draw.ellipse([x1, y1, x2 - 1, y2 - 1], fill=fill)
    elif obj.shape == "square":
        draw.rectangle([x1, y1, x2 - 1, y2 - 1], fill=fill)
    elif obj.shape == "triangle":
        draw.polygon([(obj.cx * s, y1), (x2 - 1, y2 - 1), (x1, y2 - 1)], fill=fill)
    else:
        raise ValueError(f"cannot draw shape {obj.shape!r}")


def _shape_mask(obj: PlacedObject, size: int) -> Image.Image:
    """A supersampled ``L`` mask (255 inside) of one object."""
    ss = size * SUPERSAMPLE
    mask = Image.new("L", (ss, ss), 0)
    _draw_shape(ImageDraw.Draw(mask), obj, 255)
    return mask


def _paint_stripes(canvas: Image.Image, obj: PlacedObject, size: int) -> None:
    """Overpaint every other band of ``STRIPE_PERIOD / 2`` pixels of a drawn object with its darker shade."""
    ss = size * SUPERSAMPLE
    x1, y1, x2, y2 = obj.box
    crop = (max(0, x1 * SUPERSAMPLE), max(0, y1 * SUPERSAMPLE), min(ss, x2 * SUPERSAMPLE), min(ss, y2 * SUPERSAMPLE))
    if crop[2] <= crop[0] or crop[3] <= crop[1]:
        return
    mask = np.array(_shape_mask(obj, size).crop(crop))
    period = STRIPE_PERIOD * size / IMAGE_SIZE
    # Pixel-unit y of each supersampled row centre; bands start bright at the object's top edge.
    y = (np.arange(crop[1], crop[3]) + 0.5) / SUPERSAMPLE - (obj.cy - obj.radius)
    bright = (np.floor(y / (period / 2)) % 2) == 0
    mask[bright] = 0
    shade = tuple(int(v) for v in np.round(np.array(COLORS[obj.color], dtype=np.float64) * STRIPE_SHADE))
    canvas.paste(shade, crop, Image.fromarray(mask, "L"))


def render_scene(scene: Scene) -> Image.Image:
    """The scene as a ``size`` x ``size`` RGB image, anti-aliased; deterministic.

    Drawn at ``SUPERSAMPLE`` times the resolution, then each output pixel is the mean of its block.
    """
    ss = scene.size * SUPERSAMPLE
    canvas = Image.new("RGB", (ss, ss), BACKGROUND)
    draw = ImageDraw.Draw(canvas)
    for obj in scene.objects:
        if obj.texture not in TEXTURES:
            raise ValueError(f"cannot paint texture {obj.texture!r}; choose one of {', '.join(TEXTURES)}")
        _draw_shape(draw, obj, COLORS[obj.color])
        if obj.texture == "striped":
            _paint_stripes(canvas, obj, scene.size)
    return canvas.resize((scene.size, scene.size), Image.Resampling.BOX)


def render_masks(scene: Scene) -> np.ndarray:
    """``(K, size, size)`` float32 coverage in [0, 1] of each of the scene's K objects (for dense labels)."""
    out = np.zeros((len(scene.objects), scene.size, scene.size), dtype=np.float32)
    for k, obj in enumerate(scene.objects):
        small = _shape_mask(obj, scene.size).resize((scene.size, scene.size), Image.Resampling.BOX)
        out[k] = np.asarray(small, dtype=np.float32) / 255.0
    return out


def render_spec(spec: PromptSpec, rng: np.random.Generator, size: int = IMAGE_SIZE) -> tuple[Image.Image, Scene]:
    """Sample a layout for ``spec`` and draw it."""
    scene = sample_scene(spec, rng, size=size)
    return render_scene(scene), scene
