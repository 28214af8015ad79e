"""The sandbox's world behind the backend contract: categories, prompt sets, examples, referee, prompt objects."""

from __future__ import annotations

import numpy as np
import pytest

from srum_core.backends.sandbox import SandboxBackend, WorldReferee
from srum_core.config import GenerationConfig
from srum_core.evaluation import evaluate
from srum_core.protocol import UnifiedModel
from srum_core.types import PromptItem
from srum_core.world.prompts import make_prompts, parse_prompt
from srum_core.world.render import render_spec


@pytest.fixture(scope="module")
def backend() -> SandboxBackend:
    return SandboxBackend.from_random(seed=0, tiny=True)


def test_the_world_is_reached_through_the_contract(backend):
    assert isinstance(backend, UnifiedModel)
    assert backend.categories() == ("single", "color", "shape", "texture", "spatial", "numeracy", "complex")
    assert set(backend.prompt_sets()) >= {"train", "val"}


def test_prompts_are_the_worlds_and_balanced_over_categories(backend):
    items = backend.prompts("train", ("single", "spatial"), 5, seed=0)
    assert [i.category for i in items].count("single") == 3
    assert [i.category for i in items].count("spatial") == 2
    assert all(i.spec is not None and parse_prompt(i.text).to_dict() == i.spec for i in items)
    mixed = backend.prompts("val", None, 7, seed=2)
    assert [i.text for i in mixed] == [s.text for s in make_prompts("val", None, 7, 2)]
    with pytest.raises(ValueError, match="train"):
        backend.prompts("nope", None, 1, seed=0)
    with pytest.raises(ValueError, match="numeracy"):
        backend.prompts("train", ["colour"], 1, seed=0)


def test_examples_cover_every_category(backend):
    examples = backend.example_prompts()
    assert [c for c, _ in examples] == list(backend.categories())
    assert all(parse_prompt(text) is not None for _, text in examples)


def test_the_referee_checks_drawings_and_says_when_it_cannot_judge(backend):
    referee = backend.referee()
    assert isinstance(referee, WorldReferee) and referee.name == "srum_core.world.referee.verify"
    spec = parse_prompt("two red circles")
    image, _ = render_spec(spec, np.random.default_rng(5))
    good = referee(image, PromptItem(text="two red circles"))
    assert good.passed is True and good.category == "numeracy" and len(good.details["detected"]) == 2
    from_spec = referee(image, PromptItem(text="ignored", spec=parse_prompt("three red circles").to_dict()))
    assert from_spec.passed is False
    outside = referee(image, PromptItem(text="a photo of a dog"))
    assert outside.passed is None and "grammar" in outside.notes


def test_prompt_objects_names_the_shapes_a_prompt_asks_for(backend):
    assert set(backend.prompt_objects("two red circles and a square")) == {"circle", "square"}
    assert backend.prompt_objects("the red and the blue, large and striped") == []


def test_evaluation_names_the_backends_referee(backend):
    result = evaluate(backend, "val", ["single"], seeds=(0,), n_prompts=1, generation=GenerationConfig(steps=1))
    assert result.referee == "srum_core.world.referee.verify" and result.overall.n == 1
    with pytest.raises(ValueError, match="no prompt set 'eval-nope'"):
        evaluate(backend, "eval-nope", None, seeds=(0,), n_prompts=1)
