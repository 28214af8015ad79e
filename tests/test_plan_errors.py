"""The think mode's realistic mistakes (srum_core.world.plan_errors) and the referee's all/partly/none split."""

import numpy as np
import pytest

from srum_core.world.plan_errors import PLAN_ERROR_KINDS, corrupt_plan, plan_of
from srum_core.world.prompts import make_prompts, parse_prompt
from srum_core.world.referee import outcome, requested_right, verify
from srum_core.world.render import render_scene, sample_scene, scene_from_slots, scene_matches
from srum_core.world.spec import CATEGORIES


def _cases(n=12):
    for cat in CATEGORIES:
        yield from make_prompts("eval", cat, n, seed=3)


def test_every_corruption_breaks_the_prompt_and_keeps_the_rest():
    rng = np.random.default_rng(0)
    seen = set()
    for spec in _cases():
        plan = plan_of(spec, sample_scene(spec, rng))
        assert scene_matches(spec, scene_from_slots(plan))
        for _ in range(4):
            wrong, kind = corrupt_plan(spec, plan, rng)
            seen.add(kind)
            assert kind in PLAN_ERROR_KINDS
            assert not scene_matches(spec, scene_from_slots(wrong))
            # One mistake: at most one object differs, or one is added/removed, or two trade something.
            same = len(set(wrong) & set(plan))
            assert same >= len(plan) - 2
            assert abs(len(wrong) - len(plan)) <= 1
            assert len({row[0] for row in wrong}) == len(wrong), "two objects in one slot"
    assert seen == set(PLAN_ERROR_KINDS)


def test_relation_flip_keeps_objects_and_breaks_only_the_relation():
    spec = parse_prompt("a red square to the left of a blue circle")
    rng = np.random.default_rng(1)
    plan = plan_of(spec, sample_scene(spec, rng))
    wrong, kind = corrupt_plan(spec, plan, rng, kinds=("relation",))
    assert kind == "relation"
    assert sorted(r[1:] for r in wrong) == sorted(r[1:] for r in plan)
    assert {r[0] for r in wrong} == {r[0] for r in plan}
    assert not scene_matches(spec, scene_from_slots(wrong))


def test_corrupt_plan_is_deterministic_and_rejects_bad_input():
    spec = parse_prompt("two red circles and a blue square")
    plan = plan_of(spec, sample_scene(spec, np.random.default_rng(2)))
    a = corrupt_plan(spec, plan, np.random.default_rng(5))
    b = corrupt_plan(spec, plan, np.random.default_rng(5))
    assert a == b
    with pytest.raises(ValueError, match="not a right plan"):
        corrupt_plan(spec, plan[:1], np.random.default_rng(0))
    with pytest.raises(ValueError, match="unknown plan-error kinds"):
        corrupt_plan(spec, plan, np.random.default_rng(0), kinds=("typo",))
    with pytest.raises(ValueError, match="no plan error"):
        corrupt_plan(parse_prompt("a red circle"), plan_of(parse_prompt("a red circle"), sample_scene(
            parse_prompt("a red circle"), np.random.default_rng(0))), np.random.default_rng(0), kinds=("relation",))


def test_referee_outcomes_on_right_partly_wrong_and_all_wrong_images():
    spec = parse_prompt("a red square and a blue circle")
    right = scene_from_slots([(0, "red", "square", "large", "solid"), (10, "blue", "circle", "large", "solid")])
    partly = scene_from_slots([(0, "red", "square", "large", "solid"), (10, "green", "circle", "large", "solid")])
    none = scene_from_slots([(0, "yellow", "triangle", "large", "solid")])
    got = [outcome(verify(render_scene(s), spec), spec) for s in (right, partly, none)]
    assert got == ["all right", "partly wrong", "all wrong"]
    assert requested_right(spec, partly.objects) == (1, 2)
