"""Noisy captions: what the embedded model's *generation* pre-training reads, the way web alt-text is.

Understanding pre-training sees every prompt exactly (and hard near-miss negatives); generation pre-training
sees the same images under captions that are often partial or wrong, at the documented rates of
:class:`CaptionNoise`. That makes the world's unified model understand more than it draws *by construction*,
which is SRUM's premise: the model can judge its own drawings better than it makes them.

Each corruption acts on the caption only; the image always shows the true spec:

========================= ===========================================================================
``swap_colors``           two objects of different colours: the caption gives each the other's colour
``swap_textures``         the same for textures (two-object texture prompts)
``swap_sizes``            the same for sizes (two-object shape prompts)
``flip_relation``         "left of" ↔ "right of", "above" ↔ "below"
``drop_relation``         the relation is left out ("a red circle and a blue square")
``miscount``              a count written one too high or too low (1..4)
``drop_texture``          an object's texture word left out (per object)
``drop_size``             an object's size word left out (per object)
========================= ===========================================================================

Single-object prompts only ever lose their size word, so a plain single object is always captioned right.
A caption need not be a prompt of the grammar (``"a red circle and a striped blue square"`` mixes forms); the
model's tokenizer only needs its words.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from .spec import NUMBER_WORDS, RELATION_PHRASES, ObjectSpec, PromptSpec

OPPOSITE = {"left of": "right of", "right of": "left of", "above": "below", "below": "above"}


@dataclass(frozen=True)
class CaptionNoise:
    """Rates of each caption corruption (see the module docstring). All zero: exact captions."""

    swap_colors: float = 0.4
    swap_textures: float = 0.4
    swap_sizes: float = 0.4
    flip_relation: float = 0.35
    drop_relation: float = 0.15
    miscount: float = 0.35
    drop_texture: float = 0.3
    drop_size: float = 0.3

    def __post_init__(self) -> None:
        for name, value in asdict(self).items():
            if not 0.0 <= float(value) <= 1.0:
                raise ValueError(f"{name}={value}: a corruption rate must lie in [0, 1]")
        if self.flip_relation + self.drop_relation > 1.0:
            raise ValueError("flip_relation + drop_relation must not exceed 1 (they exclude each other)")

    def to_dict(self) -> dict[str, float]:
        return asdict(self)


EXACT = CaptionNoise(**{k: 0.0 for k in CaptionNoise.__dataclass_fields__})


def _phrase(obj: dict[str, Any], numbered: bool) -> str:
    adjectives = [w for w in (obj["size"], obj["texture"], obj["color"]) if w is not None]
    if obj["count"] > 1 or numbered:
        det = NUMBER_WORDS[obj["count"] - 1]
    else:
        first = adjectives[0] if adjectives else obj["shape"]
        det = "an" if first[0] in "aeiou" else "a"
    noun = obj["shape"] + "s" if obj["count"] > 1 else obj["shape"]
    return " ".join([det, *adjectives, noun])


def _swap(objs: list[dict[str, Any]], key: str, rng: np.random.Generator) -> bool:
    """Swap ``key`` between two random objects that differ in it; False when none differ."""
    pairs = [(i, j) for i in range(len(objs)) for j in range(i + 1, len(objs))
             if objs[i][key] is not None and objs[j][key] is not None and objs[i][key] != objs[j][key]]
    if not pairs:
        return False
    i, j = pairs[int(rng.integers(len(pairs)))]
    objs[i][key], objs[j][key] = objs[j][key], objs[i][key]
    return True


def noisy_caption(spec: PromptSpec, rng: np.random.Generator, noise: CaptionNoise) -> tuple[str, list[str]]:
    """A caption of an image that shows ``spec`` exactly, corrupted at ``noise``'s rates.

    Returns ``(text, corruptions applied)``; with :data:`EXACT` the text is ``spec.text``.
    """
    objs = [dict(ObjectSpec.to_dict(o)) for o in spec.objects]
    numbered = spec.category == "numeracy"
    applied: list[str] = []
    if len(objs) >= 2:
        for key, rate in (("color", noise.swap_colors), ("texture", noise.swap_textures), ("size", noise.swap_sizes)):
            if rate > 0 and rng.random() < rate and _swap(objs, key, rng):
                applied.append(f"swap_{key}s" if key != "texture" else "swap_textures")
    if noise.miscount > 0:
        for obj in objs:
            if (obj["count"] > 1 or numbered) and rng.random() < noise.miscount:
                options = [c for c in (obj["count"] - 1, obj["count"] + 1) if 1 <= c <= len(NUMBER_WORDS)]
                obj["count"] = options[int(rng.integers(len(options)))]
                applied.append("miscount")
    for obj in objs:
        if obj["texture"] is not None and noise.drop_texture > 0 and rng.random() < noise.drop_texture:
            obj["texture"] = None
            applied.append("drop_texture")
        if obj["size"] is not None and noise.drop_size > 0 and rng.random() < noise.drop_size:
            obj["size"] = None
            applied.append("drop_size")
    phrases = [_phrase(o, numbered) for o in objs]
    relation = spec.relation
    if relation is not None:
        draw = rng.random()
        if draw < noise.flip_relation:
            relation = (relation[0], OPPOSITE[relation[1]], relation[2])
            applied.append("flip_relation")
        elif draw < noise.flip_relation + noise.drop_relation:
            relation = None
            applied.append("drop_relation")
    if relation is not None:
        text = f"{phrases[0]} {RELATION_PHRASES[relation[1]]} {phrases[1]}"
    elif len(phrases) == 1:
        text = phrases[0]
    else:
        text = ", ".join(phrases[:-1]) + " and " + phrases[-1]
    return text, applied
