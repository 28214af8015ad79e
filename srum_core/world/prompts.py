"""The prompt grammar of the synthetic world: generation, parsing, the train/validation split, near misses.

Every prompt is built by :func:`compose` from a list of :class:`ObjectSpec` (plus an optional relation
between the first two), which checks that the combination has one of the category *forms* below and writes
the canonical text. :func:`parse_prompt` reads text back into the same structure and goes through
:func:`compose` again, so ``parse_prompt(spec.text) == spec`` for every prompt the grammar makes.

Forms (every object always has a colour; object kinds ``(colour, shape)`` within a prompt are distinct):

============ =================================================================== ==============================
category     form                                                                example
============ =================================================================== ==============================
single       one object, "a", optional size                                      a large red circle
color        two objects, "a", no size/texture                                   a red circle and a blue square
shape        two objects, "a", both sized                                        a large red circle and a small
                                                                                 red triangle
texture      one or two objects, "a", every object textured, no size             a striped red circle
spatial      two objects, "a", a relation, no size/texture                       a red circle to the left of a
                                                                                 blue triangle
numeracy     one object written with a number word (1-4), no size/texture        three green squares
complex      (a) a relation with a size or texture; (b) two or more kinds with a  a small striped red circle
             count >= 2; (c) three or four objects, "a"                           above a blue square
============ =================================================================== ==============================

The splits. ``val`` (the *transfer* set): the (colour, shape) pairs in :data:`HELD_OUT_COMBOS` occur only in
these prompts; every one of them contains at least one such pair. Every colour and every shape still occurs in
training, only these pairings are new. The other prompts are cut once more, by a fixed hash of their text
(:func:`split_of`), into ``train`` (what pre-training and SRUM rounds may train on) and ``eval`` (about a quarter:
the *in-distribution* evaluation prompts, of the same forms and kinds, never trained on).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

import numpy as np

from .spec import (
    CATEGORIES,
    COLORS,
    MAX_OBJECTS,
    NUMBER_WORDS,
    OPPOSITE_RELATION,
    RELATION_PHRASES,
    RELATIONS,
    SHAPES,
    SIZES,
    TEXTURES,
    ObjectSpec,
    PromptSpec,
)

SPLITS: tuple[str, ...] = ("train", "eval", "val")

#: (colour, shape) pairs seen only in validation (transfer) prompts.
HELD_OUT_COMBOS: tuple[tuple[str, str], ...] = (
    ("red", "triangle"),
    ("green", "circle"),
    ("blue", "square"),
)

#: Version of the train / eval cut: changing it changes which prompts are held out for evaluation.
EVAL_SPLIT_VERSION = "world-v2"
#: One prompt in ``EVAL_SHARE`` (by hash) of the non-transfer prompts is an in-distribution evaluation prompt.
EVAL_SHARE = 4

_COLOR_NAMES = tuple(COLORS)
_PLURALS = {shape + "s": shape for shape in SHAPES}


def _vocab() -> tuple[str, ...]:
    words = {"a", "an", "and", ","}
    words.update(NUMBER_WORDS, SIZES, TEXTURES, _COLOR_NAMES, SHAPES, _PLURALS)
    for phrase in RELATION_PHRASES.values():
        words.update(phrase.split())
    return tuple(sorted(words))


#: Every token the grammar can produce (see :func:`tokenize`), sorted.
VOCAB: tuple[str, ...] = _vocab()


def all_categories() -> tuple[str, ...]:
    return CATEGORIES


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, with commas as their own token; grammar text yields only :data:`VOCAB` words."""
    return text.lower().replace(",", " , ").replace(".", " ").split()


# --------------------------------------------------------------------------------------------------------------
# compose: structure -> category + canonical text


def _infer_category(objects: Sequence[ObjectSpec], relation: tuple[int, str, int] | None, numbered: bool) -> str:
    """The category whose form ``objects`` has; raises ``ValueError`` naming the rule broken."""
    n = len(objects)
    if n == 0 or sum(o.count for o in objects) > MAX_OBJECTS:
        raise ValueError(f"a prompt holds 1 to {MAX_OBJECTS} objects in all")
    if any(o.color is None for o in objects):
        raise ValueError("every object in a prompt needs a colour")
    kinds = [o.kind for o in objects]
    if len(set(kinds)) != n:
        raise ValueError("two objects of one prompt may not share colour and shape; merge them into a count")
    sized = [o.size is not None for o in objects]
    textured = [o.texture is not None for o in objects]
    counted = [o.count > 1 for o in objects]
    if relation is not None:
        if n != 2 or any(counted) or numbered:
            raise ValueError("a relation joins exactly two single objects written with 'a'")
        if tuple(relation[::2]) != (0, 1):
            raise ValueError("a relation reads subject first: use (0, relation, 1)")
        return "complex" if any(sized) or any(textured) else "spatial"
    if n == 1:
        if numbered or counted[0]:
            if sized[0] or textured[0]:
                raise ValueError("counted objects take no size or texture")
            return "numeracy"
        if textured[0]:
            if sized[0]:
                raise ValueError("a textured object takes no size")
            return "texture"
        return "single"
    if numbered:
        raise ValueError("'one' is only written in single-kind counting prompts")
    if any(counted):
        if any(sized) or any(textured):
            raise ValueError("counted objects take no size or texture")
        return "complex"
    if n == 2:
        if any(textured):
            if not all(textured) or any(sized):
                raise ValueError("in a texture prompt every object has a texture and none a size")
            return "texture"
        if all(sized):
            return "shape"
        if any(sized):
            raise ValueError("in a two-object prompt either both objects have a size or neither does")
        return "color"
    if any(sized) or any(textured):
        raise ValueError("three- and four-object prompts take only colours and shapes")
    return "complex"


def _join(phrases: list[str]) -> str:
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def compose(
    objects: Sequence[ObjectSpec], relation: tuple[int, str, int] | None = None, numbered: bool = False
) -> PromptSpec:
    """The canonical prompt for ``objects``; ``numbered`` writes a single kind's count of one as "one".

    Raises ``ValueError`` when the combination has no category form (see the module docstring).
    """
    objects = tuple(objects)
    if relation is not None:
        relation = (int(relation[0]), str(relation[1]), int(relation[2]))
        if relation[1] not in RELATIONS:
            raise ValueError(f"relation {relation[1]!r}: choose one of {', '.join(RELATIONS)}")
    category = _infer_category(objects, relation, numbered)
    phrases = [" ".join(o.words(numbered=numbered)) for o in objects]
    if relation is not None:
        text = f"{phrases[0]} {RELATION_PHRASES[relation[1]]} {phrases[1]}"
    else:
        text = _join(phrases)
    return PromptSpec(text=text, category=category, objects=objects, relation=relation)


# --------------------------------------------------------------------------------------------------------------
# parsing


_RELATION_PATTERN = re.compile(
    r"^(?P<subject>.+?)\s+(?:(?:to\s+the\s+)?(?P<side>left|right)\s+of|(?P<vertical>above|below))\s+(?P<object>.+)$"
)


def _parse_phrase(text: str) -> tuple[ObjectSpec, bool] | None:
    """``(object, written with a number word)`` for one noun phrase, or None."""
    words = text.split()
    if len(words) < 2:
        return None
    det, *adjectives, noun = words
    if det in ("a", "an"):
        count, numbered = 1, False
    elif det in NUMBER_WORDS:
        count, numbered = NUMBER_WORDS.index(det) + 1, True
    else:
        return None
    if noun in SHAPES:
        if count != 1:
            return None
        shape = noun
    elif noun in _PLURALS:
        if count == 1:
            return None
        shape = _PLURALS[noun]
    else:
        return None
    found: dict[str, str] = {}
    for word in adjectives:
        slot = "size" if word in SIZES else "texture" if word in TEXTURES else "color" if word in COLORS else None
        if slot is None or slot in found:
            return None
        found[slot] = word
    return ObjectSpec(shape=shape, count=count, **found), numbered


def _split_list(text: str) -> list[str] | None:
    """Split "p0, p1 and p2" (commas and/or "and" between phrases) into phrases."""
    parts = [p.strip() for p in re.split(r"\s*,\s*(?:and\s+)?|\s+and\s+", text)]
    if any(not p for p in parts):
        return None
    return parts


def parse_prompt(text: str) -> PromptSpec | None:
    """The spec a prompt of this grammar means (with its canonical text), or None for text outside it.

    Tolerant of case, extra whitespace, a final full stop, "a"/"an", adjective order and "left of" without
    "to the".
    """
    if not isinstance(text, str):
        return None
    norm = " ".join(text.lower().replace(",", " , ").split()).replace(" , ", ", ").rstrip(".").strip()
    if not norm:
        return None
    relation = None
    match = _RELATION_PATTERN.match(norm)
    if match:
        rel = f"{match['side']} of" if match["side"] else match["vertical"]
        phrases = [match["subject"], match["object"]]
        relation = (0, rel, 1)
    else:
        phrases = _split_list(norm)
        if phrases is None:
            return None
    parsed = [_parse_phrase(p) for p in phrases]
    if any(p is None for p in parsed):
        return None
    objects = [p[0] for p in parsed]
    flags = [p[1] for p in parsed]
    # A number word on a count of one marks a counting prompt ("one red circle").
    numbered = any(flag and o.count == 1 for o, flag in zip(objects, flags))
    if any(o.count > 1 for o in objects) and len(objects) == 1:
        numbered = True
    try:
        return compose(objects, relation, numbered=numbered)
    except ValueError:
        return None


# --------------------------------------------------------------------------------------------------------------
# the split


def split_of(spec: PromptSpec) -> str:
    """``"val"`` when any object pairs a colour with a shape from :data:`HELD_OUT_COMBOS`; otherwise ``"eval"``
    for the prompts whose canonical text hashes into the evaluation share, else ``"train"``."""
    if any(o.kind in HELD_OUT_COMBOS for o in spec.objects):
        return "val"
    digest = hashlib.sha1(f"{EVAL_SPLIT_VERSION}:{spec.text}".encode()).digest()
    return "eval" if digest[0] % EVAL_SHARE == 0 else "train"


# --------------------------------------------------------------------------------------------------------------
# random prompts


def _pick(rng: np.random.Generator, options: Sequence):
    return options[int(rng.integers(len(options)))]


def _two_distinct_colors(rng: np.random.Generator) -> tuple[str, str]:
    i, j = rng.choice(len(_COLOR_NAMES), size=2, replace=False)
    return _COLOR_NAMES[int(i)], _COLOR_NAMES[int(j)]


def _random_spec(category: str, rng: np.random.Generator) -> PromptSpec:
    """One random prompt of ``category`` (may raise ``ValueError`` on a rare invalid draw; the caller retries)."""
    if category == "single":
        size = _pick(rng, SIZES) if rng.random() < 0.3 else None
        return compose([ObjectSpec(_pick(rng, SHAPES), _pick(rng, _COLOR_NAMES), size=size)])
    if category == "color":
        c1, c2 = _two_distinct_colors(rng)
        return compose([ObjectSpec(_pick(rng, SHAPES), c1), ObjectSpec(_pick(rng, SHAPES), c2)])
    if category == "shape":
        s1, s2 = (SHAPES[int(i)] for i in rng.choice(len(SHAPES), size=2, replace=False))
        color = _pick(rng, _COLOR_NAMES)
        return compose([ObjectSpec(s1, color, size=_pick(rng, SIZES)), ObjectSpec(s2, color, size=_pick(rng, SIZES))])
    if category == "texture":
        n = 1 if rng.random() < 0.4 else 2
        objs = [
            ObjectSpec(_pick(rng, SHAPES), _pick(rng, _COLOR_NAMES), texture=_pick(rng, TEXTURES)) for _ in range(n)
        ]
        return compose(objs)
    if category == "spatial":
        objs = [ObjectSpec(_pick(rng, SHAPES), _pick(rng, _COLOR_NAMES)) for _ in range(2)]
        return compose(objs, (0, _pick(rng, RELATIONS), 1))
    if category == "numeracy":
        return compose(
            [ObjectSpec(_pick(rng, SHAPES), _pick(rng, _COLOR_NAMES), count=int(rng.integers(1, 5)))], numbered=True
        )
    if category == "complex":
        variant = _pick(rng, ("relation", "counts", "many"))
        if variant == "relation":
            objs = []
            for _ in range(2):
                size = _pick(rng, SIZES) if rng.random() < 0.5 else None
                texture = _pick(rng, TEXTURES) if rng.random() < 0.5 else None
                objs.append(ObjectSpec(_pick(rng, SHAPES), _pick(rng, _COLOR_NAMES), size=size, texture=texture))
            if all(o.size is None and o.texture is None for o in objs):
                k = int(rng.integers(2))
                objs[k] = ObjectSpec(objs[k].shape, objs[k].color, size=_pick(rng, SIZES))
            return compose(objs, (0, _pick(rng, RELATIONS), 1))
        if variant == "counts":
            counts = _pick(rng, ((2, 1), (1, 2), (3, 1), (1, 3), (2, 2), (2, 1, 1), (1, 2, 1), (1, 1, 2)))
            return compose([ObjectSpec(_pick(rng, SHAPES), _pick(rng, _COLOR_NAMES), count=c) for c in counts])
        return compose([ObjectSpec(_pick(rng, SHAPES), _pick(rng, _COLOR_NAMES)) for _ in range(3)])
    raise ValueError(f"category={category!r}: choose one of {', '.join(CATEGORIES)}")


def make_prompts(split: str, category: str | None, n: int, seed: int) -> list[PromptSpec]:
    """``n`` random prompts of ``split`` ("train" or "val"), deterministic from ``seed``.

    ``category`` None gives a balanced mix: each category ``n // 7`` or ``n // 7 + 1`` times, shuffled.
    Prompts are distinct where the category has enough of them; repeats appear only once it runs short.
    """
    if split not in SPLITS:
        raise ValueError(f"split={split!r}: choose one of {', '.join(SPLITS)}")
    if category is not None and category not in CATEGORIES:
        raise ValueError(f"category={category!r}: choose one of {', '.join(CATEGORIES)} or None for a mix")
    if n < 0:
        raise ValueError(f"n={n}: ask for zero or more prompts")
    rng = np.random.default_rng(seed)
    if category is None:
        plan = [CATEGORIES[i % len(CATEGORIES)] for i in range(n)]
        plan = [plan[int(i)] for i in rng.permutation(n)]
    else:
        plan = [category] * n
    seen: set[str] = set()
    out: list[PromptSpec] = []
    for cat in plan:
        spec = None
        for _ in range(200):
            try:
                cand = _random_spec(cat, rng)
            except ValueError:
                continue
            if split_of(cand) != split:
                continue
            spec = cand
            if cand.text not in seen:
                break
        if spec is None:
            raise RuntimeError(f"could not draw a {split} prompt of category {cat!r}; is the split too narrow?")
        seen.add(spec.text)
        out.append(spec)
    return out


# --------------------------------------------------------------------------------------------------------------
# near misses


def _replace(obj: ObjectSpec, **changes) -> ObjectSpec:
    fields = obj.to_dict()
    fields.update(changes)
    return ObjectSpec.from_dict(fields)


def _perturbations(spec: PromptSpec, rng: np.random.Generator) -> list[tuple[str, list[ObjectSpec], tuple | None]]:
    """Candidate ``(kind, objects, relation)`` near misses, each contradicting ``spec`` by construction."""
    objs = list(spec.objects)
    n = len(objs)
    out = []
    k = int(rng.integers(n))
    if n >= 2:
        i, j = (int(v) for v in rng.choice(n, size=2, replace=False))
        a, b = objs[i], objs[j]
        # Swapping colours contradicts only if the two objects can be told apart by something else.
        others_differ = (a.shape, a.size, a.texture) != (b.shape, b.size, b.texture) or spec.relation is not None
        if a.color != b.color and others_differ:
            swapped = list(objs)
            swapped[i], swapped[j] = _replace(a, color=b.color), _replace(b, color=a.color)
            out.append(("swap colours", swapped, spec.relation))
    if spec.relation is not None:
        s, rel, o = spec.relation
        out.append(("flip relation", objs, (s, OPPOSITE_RELATION[rel], o)))
    changed = list(objs)
    changed[k] = _replace(objs[k], color=_pick(rng, [c for c in _COLOR_NAMES if c != objs[k].color]))
    out.append(("change colour", changed, spec.relation))
    changed = list(objs)
    changed[k] = _replace(objs[k], shape=_pick(rng, [s for s in SHAPES if s != objs[k].shape]))
    out.append(("change shape", changed, spec.relation))
    if objs[k].size is not None:
        changed = list(objs)
        changed[k] = _replace(objs[k], size=_pick(rng, [s for s in SIZES if s != objs[k].size]))
        out.append(("change size", changed, spec.relation))
    if objs[k].texture is not None:
        changed = list(objs)
        changed[k] = _replace(objs[k], texture=_pick(rng, [t for t in TEXTURES if t != objs[k].texture]))
        out.append(("change texture", changed, spec.relation))
    room = MAX_OBJECTS - spec.total_objects + objs[k].count
    counts = [c for c in range(1, room + 1) if c != objs[k].count]
    if counts and (spec.category in ("numeracy", "complex") or any(o.count > 1 for o in objs)):
        changed = list(objs)
        changed[k] = _replace(objs[k], count=_pick(rng, counts))
        out.append(("change count", changed, spec.relation))
    if n >= 2:
        out.append(("drop object", [o for idx, o in enumerate(objs) if idx != k], None))
    return out


def perturb_spec(spec: PromptSpec, rng: np.random.Generator) -> PromptSpec:
    """A valid prompt of the grammar that contradicts ``spec`` (a near miss, for negative judge examples).

    One random change among: swap colours between objects, change a colour, flip the relation, change a count,
    change a shape, size or texture, drop an object. An image that satisfies ``spec`` never satisfies the
    result, because the world holds exactly the prompted objects and every change alters what must be there.
    """
    numbered = spec.category == "numeracy"
    candidates = _perturbations(spec, rng)
    for idx in rng.permutation(len(candidates)):
        _kind, objects, relation = candidates[int(idx)]
        try:
            out = compose(objects, relation, numbered=numbered and len(objects) == 1)
        except ValueError:
            continue
        if out.text != spec.text:
            return out
    raise ValueError(f"no near miss of {spec.text!r} stays inside the grammar")
