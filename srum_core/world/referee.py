"""The independent referee: a non-learned detector and a GenEval-style verifier for the synthetic world.

The referee is the *measure* of the sandbox experiments. It is never used to train or to judge inside a SRUM
round (the model judges itself); it only says, afterwards, whether an image shows what its prompt asks for.

Detection: foreground = saturated pixels (the background is a light grey); each pixel gets the named colour
nearest in hue (HSV hue is unchanged by the darker stripe shade and by anti-aliased blending with the neutral
background); 8-connected components, split by colour when two colours share one component; then per object
the shape by blur-invariant moments of its mask (vertical skewness, diagonal vs axial kurtosis), the
size by its box's longer side, and the texture by the fraction of interior pixels much darker than the colour.

Verification (per category, the GenEval way): every requested object kind is present the exact number of
times with the requested size and texture, the relation holds by box centres, and nothing else is in the
picture (the world holds only the prompted objects, so an extra object is an error).
"""

from __future__ import annotations

import colorsys
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..boxes.segmenter import as_float_rgb, component_box, label_components
from .spec import COLORS, IMAGE_SIZE, ObjectSpec, PromptSpec

#: Foreground: HSV saturation, chroma (max - min) and value above these (RGB in [0, 1]).
MIN_SATURATION = 0.3
MIN_CHROMA = 0.1
MIN_VALUE = 0.12
#: Darker pixels (a stripe's shade blended into the background) count with less saturation.
DARK_VALUE = 0.8
DARK_MIN_SATURATION = 0.15
#: Smallest object kept, in pixels of a 64 x 64 image (the smallest drawn object covers about 40).
MIN_AREA = 10
#: A second colour inside one component counts as its own object above this share of the component's pixels.
SPLIT_SHARE = 0.3
#: ... and only if the colours' mean hues are this far apart (degrees); one object whose hue sits on the border
#: between two neighbouring names (a colour cast) has two classes only a few degrees apart.
SPLIT_MIN_HUE_GAP = 18.0
#: Shape thresholds (see ``_shape_features``); measured on blurred, noisy small renders: triangles skew <= -0.27,
#: circles and squares |skew| <= 0.12; squares ratio <= 0.73, circles >= 0.82.
TRIANGLE_SKEW = -0.2
SQUARE_KURTOSIS_RATIO = 0.78
#: Longer box side (pixels at 64 px) that separates "small" from "large" (drawn: 8 vs 14 pixels across).
SIZE_THRESHOLD = 11.0
#: A pixel is a dark stripe below this fraction of its colour's brightness; striped above this share of them.
#: Measured on blurred, noisy renders: solid objects <= 2% such pixels, striped ones >= 21% (small) and >= 50%.
DARK_FRACTION = 0.85
STRIPED_SHARE = 0.1
#: Relation by centres (cf. GenEval): the offset along the relation's axis must exceed this fraction of the
#: two boxes' extents along it, and make up at least half of the centre distance (within 60 degrees).
RELATION_MARGIN = 0.1
RELATION_MIN_COSINE = 0.5

_NAMES = tuple(COLORS)
_HUES = np.array([colorsys.rgb_to_hsv(*(np.array(COLORS[c]) / 255.0))[0] * 360.0 for c in _NAMES])
_RGB = np.array([COLORS[c] for c in _NAMES], dtype=np.float64) / 255.0


@dataclass(frozen=True)
class Detection:
    """One object the referee found: named colour, shape and texture, pixel box (exclusive ends), box centre
    ``(x, y)``, mask area in pixels and size word."""

    shape: str
    color: str
    texture: str
    box: tuple[int, int, int, int]
    center: tuple[float, float]
    area: int
    size: str = "small"
    shape_features: dict[str, float] = field(default_factory=dict, compare=False)

    @property
    def phrase(self) -> str:
        return f"{self.size} {self.texture} {self.color} {self.shape}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "shape": self.shape,
            "color": self.color,
            "texture": self.texture,
            "size": self.size,
            "box": list(self.box),
            "center": [round(self.center[0], 2), round(self.center[1], 2)],
            "area": self.area,
        }


@dataclass(frozen=True)
class Verdict:
    """The referee's answer for one image: ``passed`` iff every check holds."""

    passed: bool
    checks: dict[str, bool]
    detections: list[Detection]
    notes: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": dict(self.checks),
            "detections": [d.to_dict() for d in self.detections],
            "notes": self.notes,
        }


# --------------------------------------------------------------------------------------------------------------
# detection


def _hsv(rgb: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Hue in degrees, saturation, value and chroma of an ``(H, W, 3)`` image in [0, 1]."""
    top = rgb.max(-1)
    chroma = top - rgb.min(-1)
    r, g, b = rgb[..., 0], rgb[..., 1], rgb[..., 2]
    safe = np.where(chroma > 0, chroma, 1.0)
    hue = np.where(top == r, ((g - b) / safe) % 6.0, np.where(top == g, (b - r) / safe + 2.0, (r - g) / safe + 4.0))
    saturation = np.where(top > 0, chroma / np.where(top > 0, top, 1.0), 0.0)
    return hue * 60.0, saturation, top, chroma


def _nearest_color(hue: np.ndarray) -> np.ndarray:
    """Index into the named colours of the nearest hue (circular distance), per pixel."""
    diff = np.abs(hue[..., None] - _HUES)
    return np.argmin(np.minimum(diff, 360.0 - diff), axis=-1)


def _shape_features(mask: np.ndarray) -> dict[str, float]:
    """Blur-robust shape features of a binary mask, from central moments of its pixel coordinates.

    ``skew``: vertical skewness; an upright triangle (apex up, y down) has about -0.57, circles and squares 0.
    ``kurtosis_ratio``: fourth cumulant along the diagonals over that along the axes; a square's diagonal
    projection is a sum of two uniforms (ratio 0.5), a disc is isotropic (ratio 1). Third and fourth cumulants
    are unchanged by a symmetric (Gaussian) blur, which is why these survive a blurry generator.
    """
    ys, xs = np.nonzero(mask)
    x = xs - xs.mean()
    y = ys - ys.mean()
    var_y = float((y**2).mean())
    skew = float((y**3).mean() / var_y**1.5) if var_y > 0 else 0.0

    def kappa4(t: np.ndarray) -> float:
        return float((t**4).mean() - 3.0 * (t**2).mean() ** 2)

    axis = (kappa4(x) + kappa4(y)) / 2.0
    diagonal = (kappa4((x + y) / np.sqrt(2.0)) + kappa4((x - y) / np.sqrt(2.0))) / 2.0
    ratio = diagonal / axis if axis < 0 else float("inf")
    return {"skew": skew, "kurtosis_ratio": ratio}


def _classify_shape(mask: np.ndarray) -> tuple[str, dict[str, float]]:
    features = _shape_features(mask)
    if features["skew"] < TRIANGLE_SKEW:
        return "triangle", features
    return ("square" if features["kurtosis_ratio"] < SQUARE_KURTOSIS_RATIO else "circle"), features


def _classify_texture(rgb: np.ndarray, mask: np.ndarray, color_index: int) -> str:
    """``striped`` when enough interior pixels are a much darker shade of the object's colour."""
    padded = np.pad(mask, 1)
    interior = mask & padded[:-2, 1:-1] & padded[2:, 1:-1] & padded[1:-1, :-2] & padded[1:-1, 2:]
    if interior.sum() < 6:
        interior = mask
    reference = _RGB[color_index]
    # How much of the reference colour each pixel holds: 1 for the flat colour, 0.5 (STRIPE_SHADE) in a stripe.
    amount = rgb[interior] @ reference / float(reference @ reference)
    dark = (amount < DARK_FRACTION).mean()
    return "striped" if dark > STRIPED_SHARE else "solid"


def _describe(rgb: np.ndarray, mask: np.ndarray, color_index: int, scale: float) -> Detection:
    x1, y1, x2, y2 = component_box(mask.astype(np.int32), 1)
    local = mask[y1:y2, x1:x2]
    shape, features = _classify_shape(local)
    texture = _classify_texture(rgb[y1:y2, x1:x2], local, color_index)
    size = "large" if max(x2 - x1, y2 - y1) > SIZE_THRESHOLD * scale else "small"
    return Detection(
        shape=shape,
        color=_NAMES[color_index],
        texture=texture,
        box=(x1, y1, x2, y2),
        center=((x1 + x2) / 2.0, (y1 + y2) / 2.0),
        area=int(mask.sum()),
        size=size,
        shape_features=features,
    )


def _hue_gap(hue: np.ndarray, color_of: np.ndarray, component: np.ndarray, classes: list[int]) -> float:
    """Largest circular distance (degrees) between the mean hues of ``classes`` inside ``component``."""
    means = []
    for c in classes:
        angles = np.deg2rad(hue[component & (color_of == c)])
        means.append(np.rad2deg(np.arctan2(np.sin(angles).mean(), np.cos(angles).mean())))
    gaps = [abs(a - b) % 360.0 for i, a in enumerate(means) for b in means[i + 1 :]]
    return max(min(g, 360.0 - g) for g in gaps)


def detect(image: Any) -> list[Detection]:
    """Every object in ``image`` (PIL RGB or ``(H, W, 3)`` array), in raster order of their first pixel."""
    rgb = as_float_rgb(image)
    h, w, _ = rgb.shape
    scale = max(h, w) / IMAGE_SIZE
    min_area = max(1, round(MIN_AREA * h * w / IMAGE_SIZE**2))
    hue, saturation, value, chroma = _hsv(rgb)
    saturated = (saturation > MIN_SATURATION) | ((value < DARK_VALUE) & (saturation > DARK_MIN_SATURATION))
    foreground = saturated & (chroma > MIN_CHROMA) & (value > MIN_VALUE)
    color_of = _nearest_color(hue)
    labels, n = label_components(foreground)
    found: list[tuple[int, Detection]] = []
    for k in range(1, n + 1):
        component = labels == k
        area = int(component.sum())
        if area < min_area:
            continue
        votes = np.bincount(color_of[component], minlength=len(_NAMES))
        strong = [int(c) for c in np.nonzero(votes >= SPLIT_SHARE * area)[0]]
        if len(strong) <= 1 or _hue_gap(hue, color_of, component, strong) < SPLIT_MIN_HUE_GAP:
            parts = [(int(np.argmax(votes)), component)]
        else:
            # Two colours in one blob: objects touching. Split by colour; minor colours join nobody.
            parts = []
            for c in strong:
                sub_labels, m = label_components(component & (color_of == c))
                parts += [(c, sub_labels == j) for j in range(1, m + 1) if (sub_labels == j).sum() >= min_area]
        for c, part in parts:
            first = int(np.flatnonzero(part)[0])
            found.append((first, _describe(rgb, part, c, scale)))
    found.sort(key=lambda item: item[0])
    return [d for _first, d in found]


# --------------------------------------------------------------------------------------------------------------
# verification


def _matches_kind(d: Detection, obj: ObjectSpec) -> bool:
    return d.shape == obj.shape and (obj.color is None or d.color == obj.color)


def _relation_holds(a: Detection, rel: str, b: Detection) -> tuple[bool, str]:
    dx, dy = b.center[0] - a.center[0], b.center[1] - a.center[1]
    extent_x = (a.box[2] - a.box[0]) + (b.box[2] - b.box[0])
    extent_y = (a.box[3] - a.box[1]) + (b.box[3] - b.box[1])
    along, extent = {
        "left of": (dx, extent_x),
        "right of": (-dx, extent_x),
        "above": (dy, extent_y),
        "below": (-dy, extent_y),
    }[rel]
    distance = float(np.hypot(dx, dy))
    ok = along > RELATION_MARGIN * extent and distance > 0 and along / distance >= RELATION_MIN_COSINE
    return bool(ok), f"offset along {along:.1f}px of {distance:.1f}px"


def verify(image: Any, spec: PromptSpec) -> Verdict:
    """Does ``image`` show exactly what ``spec`` asks for? See the module docstring for the checks."""
    detections = detect(image)
    checks: dict[str, bool] = {}
    notes: list[str] = []
    used: set[int] = set()
    matched: list[list[Detection]] = []
    for obj in spec.objects:
        idx = [i for i, d in enumerate(detections) if _matches_kind(d, obj)]
        used.update(idx)
        group = [detections[i] for i in idx]
        matched.append(group)
        label = obj.phrase
        checks[f"count: {label}"] = len(group) == obj.count
        if len(group) != obj.count:
            notes.append(f"{label}: found {len(group)}")
        if obj.size is not None:
            checks[f"size: {label}"] = bool(group) and all(d.size == obj.size for d in group)
        if obj.texture is not None:
            checks[f"texture: {label}"] = bool(group) and all(d.texture == obj.texture for d in group)
    if spec.relation is not None:
        s, rel, o = spec.relation
        key = f"relation: {spec.objects[s].phrase} {rel} {spec.objects[o].phrase}"
        subjects, objects = matched[s], matched[o]
        if not subjects or not objects:
            checks[key] = False
            notes.append("relation: an object is missing")
        else:
            results = [_relation_holds(a, rel, b) for a in subjects for b in objects]
            checks[key] = all(ok for ok, _ in results)
            notes.append(f"relation: {'; '.join(text for _, text in results)}")
    extra = [d for i, d in enumerate(detections) if i not in used]
    checks["no extra objects"] = not extra
    if extra:
        notes.append("extra: " + ", ".join(d.phrase for d in extra))
    return Verdict(passed=all(checks.values()), checks=checks, detections=detections, notes="; ".join(notes))


# --------------------------------------------------------------------------------------------------------------
# rows for JSONL and their summary


def verdict_row(image: Any, prompt: str) -> dict[str, Any]:
    """The referee's JSON-safe verdict on ``image`` for a prompt given as text.

    ``{"prompt", "category", "passed", "checks", "detected", "notes"}``; a prompt outside the world's grammar
    gives ``{"prompt", "category": None, "passed": None, "error": ...}`` so it is counted, not dropped.
    """
    from .prompts import parse_prompt

    spec = parse_prompt(prompt)
    if spec is None:
        return {
            "prompt": prompt,
            "category": None,
            "passed": None,
            "error": "prompt is outside the sandbox world's grammar (see srum_core.world.prompts); not judged",
        }
    verdict = verify(image, spec)
    return {
        "prompt": prompt,
        "category": spec.category,
        "passed": verdict.passed,
        "checks": dict(verdict.checks),
        "detected": [d.to_dict() for d in verdict.detections],
        "notes": verdict.notes,
    }


def summarise(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per category ``{"n", "passed", "accuracy"}`` plus ``"all"``; rows whose prompt could not be judged are
    counted under ``"unjudged"`` (``n`` only) and left out of every accuracy."""
    out: dict[str, dict[str, float]] = {}
    for row in rows:
        key = row.get("category") if row.get("passed") is not None else "unjudged"
        for name in (key, "all") if key != "unjudged" else (key,):
            entry = out.setdefault(name, {"n": 0, "passed": 0})
            entry["n"] += 1
            entry["passed"] += int(bool(row.get("passed")))
    for name, entry in out.items():
        if name != "unjudged":
            entry["accuracy"] = entry["passed"] / entry["n"]
    return out


# --------------------------------------------------------------------------------------------------------------
# all right / partly wrong / all wrong

#: How a referee-checked image turned out: every check holds, some requested object is drawn right but the image
#: fails, or none of the requested objects is drawn right.
OUTCOMES: tuple[str, ...] = ("all right", "partly wrong", "all wrong")


def requested_right(spec: PromptSpec, objects) -> tuple[int, int]:
    """``(right, asked)``: how many of the ``asked`` objects ``spec`` requests are drawn right among ``objects``
    (detections, or a scene's placed objects): a drawn object of the requested kind — its shape, and its colour,
    size and texture where the prompt fixes them — each drawn object counted for one requested copy at most."""
    pool = list(objects)
    taken = [False] * len(pool)
    right = 0
    for want in spec.objects:
        hits = [i for i, o in enumerate(pool) if not taken[i] and o.shape == want.shape
                and (want.color is None or o.color == want.color) and (want.size is None or o.size == want.size)
                and (want.texture is None or o.texture == want.texture)]
        for i in hits[: want.count]:
            taken[i] = True
            right += 1
    return right, spec.total_objects


def outcome(verdict: Verdict, spec: PromptSpec) -> str:
    """One of :data:`OUTCOMES` for an image the referee judged: "all right" when it passed, "partly wrong" when it
    failed with at least one requested object drawn right (a flipped relation with every object right is partly
    wrong too: the objects are right, their layout is not), else "all wrong"."""
    if verdict.passed:
        return OUTCOMES[0]
    right, _ = requested_right(spec, verdict.detections)
    return OUTCOMES[1] if right >= 1 else OUTCOMES[2]
