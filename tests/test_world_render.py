"""The renderer: layouts honour the prompt, pictures are deterministic and anti-aliased."""

from __future__ import annotations

import numpy as np

from srum_core.world.prompts import compose, make_prompts
from srum_core.world.render import OBJECT_GAP, render_masks, render_scene, render_spec, sample_scene
from srum_core.world.spec import (
    BACKGROUND,
    COLORS,
    IMAGE_SIZE,
    SIZE_RADII,
    ObjectSpec,
    PlacedObject,
    Scene,
    slot_center,
    slot_of,
)


def _specs(n=140, seed=5):
    return make_prompts("train", None, n, seed) + make_prompts("val", None, n, seed)


def test_scenes_satisfy_their_specs():
    rng = np.random.default_rng(0)
    for spec in _specs():
        scene = sample_scene(spec, rng)
        assert len(scene.objects) == spec.total_objects
        for obj in scene.objects:
            x1, y1, x2, y2 = obj.box
            assert 0 <= x1 < x2 <= IMAGE_SIZE and 0 <= y1 < y2 <= IMAGE_SIZE
            lo, hi = SIZE_RADII[obj.size]
            assert lo <= obj.radius <= hi
        # Exact counts of each requested kind, with the requested attributes.
        for o in spec.objects:
            match = [p for p in scene.objects if (p.color, p.shape) == (o.color, o.shape)]
            assert len(match) == o.count
            assert all(o.size in (None, p.size) and o.texture in (None, p.texture) for p in match)
        for i, a in enumerate(scene.objects):
            assert a.slot == slot_of(a.cx, a.cy) and (a.cx, a.cy) == slot_center(a.slot)
            for b in scene.objects[i + 1 :]:
                reach = a.radius + b.radius + OBJECT_GAP
                assert a.slot != b.slot
                assert abs(a.cx - b.cx) >= reach or abs(a.cy - b.cy) >= reach
        if spec.relation:
            s, rel, o = spec.relation
            (a,) = [p for p in scene.objects if (p.color, p.shape) == spec.objects[s].kind]
            (b,) = [p for p in scene.objects if (p.color, p.shape) == spec.objects[o].kind]
            delta = {"left of": b.cx - a.cx, "right of": a.cx - b.cx, "above": b.cy - a.cy, "below": a.cy - b.cy}[rel]
            across = {"left of": b.cy - a.cy, "right of": b.cy - a.cy, "above": b.cx - a.cx, "below": b.cx - a.cx}[rel]
            assert delta >= a.radius + b.radius and abs(across) <= delta


def test_render_is_deterministic_and_seeded():
    spec = compose([ObjectSpec("circle", "red"), ObjectSpec("square", "blue", count=2)])
    img1, scene1 = render_spec(spec, np.random.default_rng(3))
    img2, scene2 = render_spec(spec, np.random.default_rng(3))
    img3, _ = render_spec(spec, np.random.default_rng(4))
    assert scene1 == scene2 and np.array_equal(np.asarray(img1), np.asarray(img2))
    assert not np.array_equal(np.asarray(img1), np.asarray(img3))
    assert img1.mode == "RGB" and img1.size == (IMAGE_SIZE, IMAGE_SIZE)
    assert Scene.from_dict(scene1.to_dict()) == scene1


def test_render_draws_the_right_pixels():
    obj = PlacedObject("square", "green", "large", "solid", cx=32.0, cy=32.0, radius=10.0)
    img = np.asarray(render_scene(Scene((obj,)))).astype(int)
    assert tuple(img[32, 32]) == COLORS["green"]
    assert tuple(img[2, 2]) == BACKGROUND
    assert obj.box == (22, 22, 42, 42)
    inside = (np.abs(img - np.array(COLORS["green"])).sum(-1) == 0).sum()
    assert inside == 20 * 20  # an axis-aligned square on whole pixels covers exactly its box
    # A circle on a half-pixel centre has anti-aliased edge pixels between the two colours.
    circle = PlacedObject("circle", "red", "large", "solid", cx=31.5, cy=30.3, radius=9.3)
    img = np.asarray(render_scene(Scene((circle,)))).astype(int)
    red, bg = np.array(COLORS["red"]), np.array(BACKGROUND)
    mixed = ~np.all(img == red, -1) & ~np.all(img == bg, -1)
    assert 20 < mixed.sum() < 120
    area = render_masks(Scene((circle,)))[0].sum()
    assert abs(area - np.pi * 9.3**2) < 3.0


def test_stripes_alternate_and_keep_the_hue():
    obj = PlacedObject("square", "blue", "large", "striped", cx=32.0, cy=32.0, radius=10.0)
    img = np.asarray(render_scene(Scene((obj,)))).astype(int)
    column = img[22:42, 32]
    blue = np.array(COLORS["blue"])
    bright = np.all(column == blue, -1)
    dark = np.all(np.abs(column - blue * 0.5) <= 1, -1)
    assert bright[:2].all() and dark[2:4].all() and bright[4:6].all()  # 2-pixel bands (STRIPE_PERIOD 4)
    assert bright.sum() + dark.sum() == 20


def test_slot_relations_and_scene_matching():
    from srum_core.world.render import scene_from_slots, scene_matches, slot_relation_holds

    assert slot_relation_holds(4, "left of", 6) and not slot_relation_holds(6, "left of", 4)
    assert slot_relation_holds(0, "left of", 5)  # one row down, one column right: along == across
    assert not slot_relation_holds(0, "left of", 9)  # two rows down, one column right: more across than along
    assert slot_relation_holds(1, "above", 13) and slot_relation_holds(13, "below", 1)
    spec = compose([ObjectSpec("circle", "red"), ObjectSpec("square", "blue")], (0, "left of", 1))
    right = scene_from_slots([(4, "red", "circle", "small", "solid"), (6, "blue", "square", "large", "striped")])
    flipped = scene_from_slots([(6, "red", "circle", "small", "solid"), (4, "blue", "square", "large", "solid")])
    extra = scene_from_slots([*[(4, "red", "circle", "small", "solid"), (6, "blue", "square", "large", "solid")],
                              (15, "green", "triangle", "small", "solid")])
    assert scene_matches(spec, right) and not scene_matches(spec, flipped) and not scene_matches(spec, extra)


def test_every_scene_of_a_prompt_matches_it_and_near_misses_do_not():
    from srum_core.world.prompts import perturb_spec
    from srum_core.world.render import scene_matches

    rng = np.random.default_rng(2)
    for spec in _specs(70, 9):
        assert scene_matches(spec, sample_scene(spec, rng))
        assert not scene_matches(spec, sample_scene(perturb_spec(spec, rng), rng))


def test_slot_tiles_are_exactly_the_generic_drawing():
    from srum_core.world.render import _render_generic

    rng = np.random.default_rng(4)
    for spec in _specs(30, 1):
        scene = sample_scene(spec, rng)
        assert np.array_equal(np.asarray(render_scene(scene)), np.asarray(_render_generic(scene)))
