"""Realistic mistakes in a layout plan: what a unified model's think mode gets wrong.

A plan is the world's layout language, one ``(slot, colour, shape, size, texture)`` tuple per object (names, as
:func:`~srum_core.world.render.scene_from_slots` draws them). Real think modes are mostly right and wrong in one
place: a wrong count, an attribute changed or swapped between two objects, a flipped relation, a missing or an
extra object. :func:`corrupt_plan` makes exactly one such mistake in a right plan and keeps everything else where
it was, so an image drawn from the result is *partly* wrong — the other objects still right — which is the
situation SRUM's per-object rewards are made for.

Used by the embedded model's trainer (:mod:`srum_core.tinyumm.data`) three ways: as the planner's target for a
share of prompts (think mode writes wrong plans as often as its training data did), as an image that does not
follow the plan it was drawn for (the generation expert sometimes fails a right plan), and as hard negatives for
the judge (the same layout with one thing wrong). Pure functions of their arguments and the ``rng``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .spec import COLORS, MAX_OBJECTS, N_SLOTS, SHAPES, SIZES, TEXTURES, PromptSpec, Scene, slot_of

#: The kinds of mistake, in the order :func:`corrupt_plan` documents them.
PLAN_ERROR_KINDS: tuple[str, ...] = ("count", "attribute", "swap", "relation", "missing", "extra")

PlanRow = tuple[int, str, str, str, str]


def plan_of(spec: PromptSpec, scene: Scene) -> list[PlanRow]:
    """The canonical plan of ``scene`` drawn for ``spec``: objects in the prompt's order, copies of one kind by
    slot (the order the planner writes), as names."""
    objs = list(scene.objects)
    out: list[PlanRow] = []
    start = 0
    for want in spec.objects:
        group = sorted(objs[start : start + want.count], key=lambda p: slot_of(p.cx, p.cy, scene.size))
        start += want.count
        out += [(slot_of(p.cx, p.cy, scene.size), p.color, p.shape, p.size, p.texture) for p in group]
    return out


def _group_starts(spec: PromptSpec) -> list[int]:
    starts, k = [], 0
    for want in spec.objects:
        starts.append(k)
        k += want.count
    return starts


def _other(rng: np.random.Generator, options: Sequence[str], current: str) -> str:
    choices = [o for o in options if o != current]
    return choices[int(rng.integers(len(choices)))]


def _free_slot(rng: np.random.Generator, plan: Sequence[PlanRow]) -> int | None:
    used = {row[0] for row in plan}
    free = [s for s in range(N_SLOTS) if s not in used]
    return int(free[int(rng.integers(len(free)))]) if free else None


def _candidate(kind: str, spec: PromptSpec, plan: list[PlanRow], rng: np.random.Generator) -> list[PlanRow] | None:
    """One edit of ``kind`` (or None where it does not apply to this prompt)."""
    n = len(plan)
    starts = _group_starts(spec)
    if kind == "count":
        # One copy more or one fewer of a kind the prompt counts (or of any kind in a multi-object prompt).
        g = int(rng.integers(len(spec.objects)))
        first, count = starts[g], spec.objects[g].count
        if count >= 2 and (rng.random() < 0.5 or n >= MAX_OBJECTS):
            drop = first + int(rng.integers(count))
            return [row for i, row in enumerate(plan) if i != drop]
        if n >= MAX_OBJECTS or (count == 1 and spec.category not in ("numeracy", "complex")):
            return None
        slot = _free_slot(rng, plan)
        if slot is None:
            return None
        copy = plan[first + int(rng.integers(count))]
        out = list(plan)
        out.insert(first + count, (slot, *copy[1:]))
        return out
    if kind == "attribute":
        i = int(rng.integers(n))
        slot, color, shape, size, texture = plan[i]
        field = ("color", "shape", "size", "texture")[int(rng.integers(4))]
        out = list(plan)
        if field == "color":
            out[i] = (slot, _other(rng, tuple(COLORS), color), shape, size, texture)
        elif field == "shape":
            out[i] = (slot, color, _other(rng, SHAPES, shape), size, texture)
        elif field == "size":
            out[i] = (slot, color, shape, _other(rng, SIZES, size), texture)
        else:
            out[i] = (slot, color, shape, size, _other(rng, TEXTURES, texture))
        return out
    if kind == "swap":
        # Attribute binding: two objects trade a colour (or a texture, or a size).
        if n < 2:
            return None
        i, j = (int(v) for v in rng.choice(n, size=2, replace=False))
        field = 1 + int(rng.choice([0, 2, 3]))  # colour, size or texture
        a, b = list(plan[i]), list(plan[j])
        if a[field] == b[field]:
            return None
        a[field], b[field] = b[field], a[field]
        out = list(plan)
        out[i], out[j] = tuple(a), tuple(b)  # type: ignore[assignment]
        return out
    if kind == "relation":
        if spec.relation is None:
            return None
        s, _rel, o = spec.relation
        i, j = starts[s], starts[o]
        out = list(plan)
        out[i] = (plan[j][0], *plan[i][1:])
        out[j] = (plan[i][0], *plan[j][1:])
        return out
    if kind == "missing":
        if n < 2:
            return None
        drop = int(rng.integers(n))
        return [row for i, row in enumerate(plan) if i != drop]
    if kind == "extra":
        if n >= MAX_OBJECTS:
            return None
        slot = _free_slot(rng, plan)
        if slot is None:
            return None
        row = (slot, _other(rng, tuple(COLORS), ""), SHAPES[int(rng.integers(len(SHAPES)))],
               SIZES[int(rng.integers(len(SIZES)))], TEXTURES[int(rng.integers(len(TEXTURES)))])
        return list(plan) + [row]
    raise ValueError(f"kind={kind!r}: choose one of {', '.join(PLAN_ERROR_KINDS)}")


def corrupt_plan(
    spec: PromptSpec,
    plan: Sequence[PlanRow],
    rng: np.random.Generator,
    kinds: Sequence[str] = PLAN_ERROR_KINDS,
    weights: dict[str, float] | None = None,
) -> tuple[list[PlanRow], str]:
    """Make one mistake in the right plan ``plan`` of ``spec``: ``(wrong plan, kind)``.

    Kinds (drawn with ``weights``, uniform by default, among those that apply to the prompt):

    - ``count``: one copy more or fewer of a kind (numeracy and multi-copy prompts, or a complex scene);
    - ``attribute``: one object's colour, shape, size or texture changed;
    - ``swap``: two objects trade a colour, size or texture (binding);
    - ``relation``: the two related objects trade slots (the relation flips);
    - ``missing``: one object left out (prompts of two or more objects);
    - ``extra``: one more object of a random kind in a free slot.

    Every other object keeps its slot and attributes, and the result is guaranteed not to satisfy ``spec``
    (checked with :func:`~srum_core.world.render.scene_matches`); an edit that happens to leave the prompt
    satisfied (a changed colour the prompt leaves open, say) is redrawn. Raises ``ValueError`` when ``plan`` is
    not a right plan of ``spec`` or no kind can break it.
    """
    from .render import scene_from_slots, scene_matches

    plan = [tuple(row) for row in plan]
    if not scene_matches(spec, scene_from_slots(plan)):
        raise ValueError(f"the plan given is not a right plan of {spec.text!r}")
    unknown = [k for k in kinds if k not in PLAN_ERROR_KINDS]
    if unknown:
        raise ValueError(f"unknown plan-error kinds {unknown}: choose from {', '.join(PLAN_ERROR_KINDS)}")
    w = np.array([float((weights or {}).get(k, 1.0)) for k in kinds])
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError("plan-error weights must be ≥ 0 with a positive sum")
    for _attempt in range(64):
        kind = kinds[int(rng.choice(len(kinds), p=w / w.sum()))]
        out = _candidate(kind, spec, plan, rng)
        if out is not None and not scene_matches(spec, scene_from_slots(out)):
            return out, kind
    raise ValueError(f"no plan error of kinds {list(kinds)} breaks {spec.text!r}")
