"""The Inspect facade (srum_core.facade): one prompt through generate → regions → judge → every reward map."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from srum_core import facade as insp
from srum_core.config import MAP_MODES, GenerationConfig, JudgeConfig
from srum_core.scoring import NOTICE_NO_GLOBAL, NOTICE_NO_OBJECTS
from srum_core.types import GlobalJudgement, Region, RegionJudgement
from tests.fakes import SIZE, TOKEN, FakeBackend

GEN = GenerationConfig(steps=2)
JUDGE = JudgeConfig()


@pytest.fixture(scope="module")
def backend() -> FakeBackend:
    return FakeBackend(seed=0)


def test_inspect_prompt_builds_every_map_in_both_views(backend):
    result = insp.inspect_prompt(backend, "  a red   circle ", 7, GEN, JUDGE, None)
    assert result.prompt == "a red circle"  # whitespace normalised
    assert result.seed == 7 and result.sample.seed == 7
    assert result.box_source == "quadrants"  # the backend's default (first) source
    assert len(result.regions) == 4 and len(result.region_judgements) == 4
    assert set(result.maps) == set(MAP_MODES) and not result.map_errors
    for reward_map in result.maps.values():
        assert reward_map.pixel.shape == (SIZE, SIZE)
        assert reward_map.token.shape == (SIZE // TOKEN, SIZE // TOKEN)
    # Released map, hand-computed (SRUM_SPEC §1.5): max(0.5, (s+1)/2) inside each box, times (g+1)/2.
    g = result.global_judgement.score
    for judgement in result.region_judgements:
        x1, y1, x2, y2 = judgement.region.box
        expected = max(0.5, (judgement.score + 1) / 2) * (g + 1) / 2
        np.testing.assert_allclose(result.maps["released"].pixel[y1:y2, x1:x2], expected, rtol=1e-6)
    assert np.all(result.maps["sft"].pixel == 1.0)


def test_same_seed_same_image_and_scores_and_none_draws_a_reported_seed(backend):
    a = insp.inspect_prompt(backend, "a red circle", 11, GEN, JUDGE, None)
    b = insp.inspect_prompt(backend, "a red circle", 11, GEN, JUDGE, None)
    assert np.array_equal(np.asarray(a.image), np.asarray(b.image))
    assert a.global_judgement.score == b.global_judgement.score
    drawn = insp.inspect_prompt(backend, "a red circle", None, GEN, JUDGE, None)
    assert 0 <= drawn.seed <= insp.MAX_SEED
    again = insp.inspect_prompt(backend, "a red circle", drawn.seed, GEN, JUDGE, None)
    assert np.array_equal(np.asarray(drawn.image), np.asarray(again.image))


@pytest.mark.parametrize("prompt", ["", "   \n\t ", None])
def test_empty_prompt_is_refused(backend, prompt):
    with pytest.raises(ValueError, match="prompt is empty"):
        insp.inspect_prompt(backend, prompt, 0, GEN, JUDGE, None)


def test_overlong_prompt_is_refused_with_the_limit():
    with pytest.raises(ValueError, match=f"at most {insp.MAX_PROMPT_CHARS}"):
        insp.check_prompt("a" * 10_000)


@pytest.mark.parametrize("seed", [-1, insp.MAX_SEED + 1, 1.5])
def test_out_of_range_seed_is_refused(seed):
    with pytest.raises(ValueError, match="seed"):
        insp.draw_seed(seed)


def test_user_box_source_judges_exactly_the_typed_boxes(backend):
    result = insp.inspect_prompt(backend, "a red circle", 3, GEN, JUDGE, "user", "[[0, 0, 8, 8]]")
    assert result.box_source == "user"
    assert [j.region.box for j in result.region_judgements] == [(0, 0, 8, 8)]
    assert result.region_judgements[0].region.source == "user"


def test_no_regions_gives_a_global_only_reward_and_a_notice(backend):
    result = insp.inspect_prompt(backend, "a red circle", 3, GEN, JUDGE, "user", "")
    assert NOTICE_NO_OBJECTS in result.notices
    g = result.global_judgement.score
    np.testing.assert_allclose(result.maps["released"].pixel, 0.5 * (g + 1) / 2, rtol=1e-6)


def test_prompt_without_known_objects_drops_proposed_regions():
    class Knows(FakeBackend):
        def prompt_objects(self, prompt: str) -> list[str]:
            return ["circle"] if "circle" in prompt else []

    knows = Knows(seed=0)
    with_objects = insp.inspect_prompt(knows, "a red circle", 3, GEN, JUDGE, None)
    assert len(with_objects.regions) == 4 and NOTICE_NO_OBJECTS not in with_objects.notices
    nothing = insp.inspect_prompt(knows, "a pleasant mood", 3, GEN, JUDGE, None)
    assert nothing.regions == () and NOTICE_NO_OBJECTS in nothing.notices
    g = nothing.global_judgement.score
    np.testing.assert_allclose(nothing.maps["released"].token, 0.5 * (g + 1) / 2, rtol=1e-6)


def test_unreadable_global_judgement_is_flagged_and_only_maps_without_g_are_built(backend):
    result = insp.inspect_prompt(backend, "UNREADABLE red circle", 3, GEN, JUDGE, None)
    assert NOTICE_NO_GLOBAL in result.notices
    assert set(result.maps) == {"local-only", "sft"}
    assert set(result.map_errors) == {"released", "signed", "binary", "global-only"}
    assert "global score" in result.map_errors["released"]


def test_unknown_box_source_names_the_choices(backend):
    with pytest.raises(ValueError, match="quadrants, user"):
        insp.inspect_prompt(backend, "a red circle", 3, GEN, JUDGE, "sam")


def test_rescoring_with_an_edited_template_keeps_the_image(backend):
    result = insp.inspect_prompt(backend, "a red circle", 5, GEN, JUDGE, None)
    edited = JudgeConfig(global_template="Is this {prompt}? Yes or No.")
    again = insp.score_sample(backend, result.sample, edited, None)
    assert again.sample is result.sample
    assert again.global_judgement.question == "Is this a red circle? Yes or No."


def test_compare_results_matches_objects_by_name():
    def result(g, objects):
        regions = tuple(
            RegionJudgement(region=Region((0, 0, 4, 4), "user"), object_name=name, score=score) for name, score in objects
        )
        return SimpleNamespace(global_judgement=GlobalJudgement(score=g), region_judgements=regions)

    before = result(0.2, [("red circle", 0.5), ("blue square", -0.5), ("red circle", 0.1)])
    after = result(0.6, [("blue square", 0.25), ("red circle", 0.75), ("green triangle", 1.0)])
    rows = [(r.what, r.before, r.after, r.delta) for r in insp.compare_results(before, after)]
    assert rows[0] == ("global", 0.2, 0.6, pytest.approx(0.4))
    assert rows[1:] == [
        ("red circle", 0.5, 0.75, 0.25),  # first with first
        ("blue square", -0.5, 0.25, 0.75),
        ("red circle", 0.1, None, None),  # no second red circle after training
        ("green triangle", None, 1.0, None),  # new on the trained side
    ]


def test_region_crop_enlarges_the_clamped_box(backend):
    result = insp.inspect_prompt(backend, "a red circle", 5, GEN, JUDGE, None)
    crop = insp.region_crop(result.image, Region((4, 4, 40, 8), "user"), scale=3)
    assert crop.size == ((SIZE - 4) * 3, 4 * 3)


def test_referee_verdict_comes_from_the_backends_referee(backend):
    result = insp.inspect_prompt(backend, "a red circle", 5, GEN, JUDGE, None)
    assert insp.referee_verdict(backend, result.image, "a red circle") is None  # the fake has no referee

    class Refereed(FakeBackend):
        def referee(self):
            return lambda image, item: "circle" in item.text

    refereed = Refereed()
    assert insp.referee_verdict(refereed, result.image, "a red circle") == {"passed": True, "checks": {}, "notes": ""}
    assert insp.referee_verdict(refereed, result.image, "a blue square")["passed"] is False


def test_engine_never_imports_gradio():
    root = Path(__file__).resolve().parents[1]
    code = (
        "import sys; sys.modules['gradio'] = None\n"
        "import srum_core, srum_core.facade, srum_core.scoring, srum_core.rounds, srum_core.runs\n"
        "assert 'gradio' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=root, check=True, timeout=60)
