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
    GRID,
    IMAGE_SIZE,
    N_SLOTS,
    SIZE_RADII,
    SIZES,
    STRIPE_PERIOD,
    STRIPE_SHADE,
    TEXTURES,
    UNSPECIFIED_TEXTURE_P,
    PlacedObject,
    PromptSpec,
    Scene,
    slot_center,
    slot_of,
)

logger = logging.getLogger(__name__)

SUPERSAMPLE = 4
#: Kept for callers of the first world: objects now sit in separate slots, so boxes are always at least
#: ``SLOT - 2 · max radius`` = 2 pixels apart at 64 px.
OBJECT_GAP = 2.0


def slot_relation_holds(subject_slot: int, rel: str, object_slot: int) -> bool:
    """The relation between two slots: strictly further along the relation's axis, and at least as far along it
    as across it (so "left of" never looks like "above")."""
    sr, sc = divmod(subject_slot, GRID)
    orow, ocol = divmod(object_slot, GRID)
    along, across = {
        "left of": (ocol - sc, orow - sr),
        "right of": (sc - ocol, orow - sr),
        "above": (orow - sr, ocol - sc),
        "below": (sr - orow, ocol - sc),
    }[rel]
    return along > 0 and abs(across) <= along


def scene_matches(spec: PromptSpec, scene: Scene) -> bool:
    """Does ``scene`` show exactly what ``spec`` asks for (decided on the scene itself, not on pixels)? Each
    requested kind the exact number of times with its requested size and texture, nothing else, and the relation
    between the two objects' slots."""
    objs = list(scene.objects)
    used: set[int] = set()
    groups = []
    for want in spec.objects:
        idx = [i for i, o in enumerate(objs) if o.shape == want.shape and (want.color is None or o.color == want.color)]
        if len(idx) != want.count:
            return False
        if any((want.size is not None and objs[i].size != want.size)
               or (want.texture is not None and objs[i].texture != want.texture) for i in idx):
            return False
        used.update(idx)
        groups.append(idx)
    if len(used) != len(objs):
        return False
    if spec.relation is not None:
        s, rel, o = spec.relation
        slot = [slot_of(obj.cx, obj.cy, scene.size) for obj in objs]
        return all(slot_relation_holds(slot[a], rel, slot[b]) for a in groups[s] for b in groups[o])
    return True


_PAIRS: dict[str, list[tuple[int, int]]] = {}


def _relation_pairs(rel: str) -> list[tuple[int, int]]:
    """Every (subject slot, object slot) pair for which ``rel`` holds (cached)."""
    if rel not in _PAIRS:
        _PAIRS[rel] = [(a, b) for a in range(N_SLOTS) for b in range(N_SLOTS)
                       if a != b and slot_relation_holds(a, rel, b)]
    return _PAIRS[rel]


def _draw_attributes(spec: PromptSpec, rng: np.random.Generator) -> list[tuple[int, dict]]:
    """One ``(group index, attributes)`` per object copy, open attributes drawn at random."""
    color_names = list(COLORS)
    texture_p = np.array([UNSPECIFIED_TEXTURE_P[t] for t in TEXTURES], dtype=float)
    copies = []
    for gi, obj in enumerate(spec.objects):
        for _ in range(obj.count):
            color = obj.color if obj.color is not None else color_names[int(rng.integers(len(color_names)))]
            size = obj.size if obj.size is not None else SIZES[int(rng.integers(len(SIZES)))]
            texture = obj.texture if obj.texture is not None else TEXTURES[int(rng.choice(len(TEXTURES), p=texture_p))]
            copies.append((gi, {"shape": obj.shape, "color": color, "size": size, "texture": texture}))
    return copies


def _choose_slots(spec: PromptSpec, copies: list[tuple[int, dict]], rng: np.random.Generator) -> list[int]:
    """Distinct slots, one per copy, uniformly among the assignments that satisfy the relation (if any)."""
    n = len(copies)
    if spec.relation is None:
        return [int(s) for s in rng.choice(N_SLOTS, size=n, replace=False)]
    subject, rel, obj = spec.relation
    # A relation joins two single objects (the grammar guarantees it): draw their pair, then the rest.
    pairs = _relation_pairs(rel)
    a, b = pairs[int(rng.integers(len(pairs)))]
    slots = [-1] * n
    index_of = {gi: i for i, (gi, _) in enumerate(copies)}
    slots[index_of[subject]], slots[index_of[obj]] = a, b
    free = [s for s in range(N_SLOTS) if s not in (a, b)]
    rest = [i for i in range(n) if slots[i] < 0]
    for i, s in zip(rest, rng.choice(free, size=len(rest), replace=False)):
        slots[i] = int(s)
    return slots


def sample_scene(spec: PromptSpec, rng: np.random.Generator, size: int = IMAGE_SIZE) -> Scene:
    """A random layout of ``size`` x ``size`` pixels that satisfies ``spec``.

    Exactly ``count`` copies of each object, each at the centre of its own slot of the grid, at the fixed radius
    of its size; a relation holds between the two objects' slots (:func:`slot_relation_holds`). Attributes the
    prompt leaves open (colour, size, texture) are drawn at random per copy.
    """
    if size < 32:
        raise ValueError(f"size={size}: the world needs at least 32 pixels per side (64 is the default)")
    if spec.total_objects > N_SLOTS:
        raise ValueError(f"{spec.text!r} asks for {spec.total_objects} objects; the grid has {N_SLOTS} slots")
    scale = size / IMAGE_SIZE
    copies = _draw_attributes(spec, rng)
    slots = _choose_slots(spec, copies, rng)
    placed = []
    for (_gi, attrs), slot in zip(copies, slots):
        cx, cy = slot_center(slot, size)
        radius = float(np.mean(SIZE_RADII[attrs["size"]])) * scale
        placed.append(PlacedObject(cx=cx, cy=cy, radius=radius, **attrs))
    return Scene(objects=tuple(placed), size=size)


def scene_from_slots(objects: list[tuple[int, str, str, str, str]], size: int = IMAGE_SIZE) -> Scene:
    """A scene from ``(slot, colour, shape, size, texture)`` tuples (a plan), objects at their slot centres."""
    scale = size / IMAGE_SIZE
    placed = []
    for slot, color, shape, size_word, texture in objects:
        cx, cy = slot_center(int(slot), size)
        placed.append(PlacedObject(shape=shape, color=color, size=size_word, texture=texture, cx=cx, cy=cy,
                                   radius=float(np.mean(SIZE_RADII[size_word])) * scale))
    return Scene(objects=tuple(placed), size=size)


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


def _render_generic(scene: Scene) -> Image.Image:
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


_TILES: dict[tuple[str, str, str, str], tuple[np.ndarray, np.ndarray]] = {}


def object_tile(shape: str, color: str, size: str, texture: str) -> tuple[np.ndarray, np.ndarray]:
    """``(rgb (SLOT, SLOT, 3) uint8, coverage (SLOT, SLOT) float32)`` of one object drawn at the centre of a slot
    of the 64-pixel canvas: exactly the pixels :func:`render_scene` draws for it (cached)."""
    key = (shape, color, size, texture)
    if key not in _TILES:
        cx, cy = slot_center(0)
        obj = PlacedObject(shape, color, size, texture, cx=cx, cy=cy, radius=float(np.mean(SIZE_RADII[size])))
        step = IMAGE_SIZE // GRID
        rgb = np.asarray(_render_generic(Scene((obj,))))[:step, :step].copy()
        small = _shape_mask(obj, IMAGE_SIZE).resize((IMAGE_SIZE, IMAGE_SIZE), Image.Resampling.BOX)
        cover = (np.asarray(small, dtype=np.float32) / 255.0)[:step, :step].copy()
        _TILES[key] = (rgb, cover)
    return _TILES[key]


def _on_slot(obj: PlacedObject, size: int) -> int | None:
    """The slot ``obj`` sits exactly on (centre and a standard radius, 64-pixel canvas), else None."""
    if size != IMAGE_SIZE or obj.size not in SIZE_RADII or obj.radius != float(np.mean(SIZE_RADII[obj.size])):
        return None
    step = IMAGE_SIZE // GRID
    col, row = (obj.cx - step / 2) / step, (obj.cy - step / 2) / step
    if col != int(col) or row != int(row) or not (0 <= col < GRID and 0 <= row < GRID):
        return None
    return int(row) * GRID + int(col)


def render_scene(scene: Scene) -> Image.Image:
    """The scene as a ``size`` x ``size`` RGB image, anti-aliased; deterministic.

    Drawn at ``SUPERSAMPLE`` times the resolution, then each output pixel is the mean of its block. Objects on
    the slots of a 64-pixel canvas (every scene :func:`sample_scene` makes) are pasted from a cache of tiles that
    hold exactly those pixels, which is what makes training data cheap to draw on a CPU.
    """
    slots = [_on_slot(o, scene.size) for o in scene.objects]
    if any(s is None for s in slots) or len(set(slots)) != len(slots):
        return _render_generic(scene)
    canvas = np.empty((scene.size, scene.size, 3), dtype=np.uint8)
    canvas[:] = BACKGROUND
    step = IMAGE_SIZE // GRID
    for obj, slot in zip(scene.objects, slots):
        if obj.texture not in TEXTURES:
            raise ValueError(f"cannot paint texture {obj.texture!r}; choose one of {', '.join(TEXTURES)}")
        rgb, _ = object_tile(obj.shape, obj.color, obj.size, obj.texture)
        r, c = divmod(slot, GRID)
        canvas[r * step : (r + 1) * step, c * step : (c + 1) * step] = rgb
    return Image.fromarray(canvas, "RGB")


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
