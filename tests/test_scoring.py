"""The one scoring path: a round and the Inspect facade score the same image identically (records and maps)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from srum_core import facade
from srum_core.adapters import reset_to_base
from srum_core.config import MAP_MODES, GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig
from srum_core.distributed import ProcessInfo
from srum_core.records import scoring_record_from_report
from srum_core.rounds import RoundConfig, judge_samples, propose_regions, run_round
from srum_core.scoring import (
    NOTICE_NO_OBJECTS,
    judge_image,
    propose_image_regions,
    resolve_box_source,
    score_image,
    training_maps,
)
from tests.fakes import FakeBackend

GEN = GenerationConfig(steps=2)
PROMPTS = ["a red circle", "a pleasant mood", "a blue square UNREADABLE", "two green circles"]


class KnowsCircles(FakeBackend):
    """A fake that, like the sandbox, says which prompts name an object it knows (here: circles only)."""

    def prompt_objects(self, prompt: str) -> list[str]:
        return ["circle"] if "circle" in prompt else []


def test_the_round_path_and_the_inspect_path_give_identical_records_and_maps():
    backend = KnowsCircles()
    judge = JudgeConfig(max_regions=3)
    samples = backend.generate(PROMPTS, [5, 6, 7, 8], GEN)
    info = ProcessInfo()
    regions = propose_regions(backend, samples, judge, info)
    reports = judge_samples(backend, samples, regions, judge, info)
    assert [len(r) for r in regions] == [3, 0, 0, 3]  # no known object named: regions dropped in the round too
    for index, (sample, report) in enumerate(zip(samples, reports)):
        inspected = facade.score_sample(backend, sample, judge, grid="area")
        name = f"images/{index:04d}.png"
        assert scoring_record_from_report(inspected.report, name) == scoring_record_from_report(report, name)
        assert inspected.regions == tuple(regions[index])
        for mode in MAP_MODES:
            (round_map,) = training_maps([report], RewardConfig(mode=mode, grid="area"), backend.token_size)
            if round_map is None:  # global score unread: the round trains without this image in every mode
                assert not report.trainable
                continue
            shown = inspected.maps[mode]
            assert np.array_equal(shown.pixel, round_map.pixel) and np.array_equal(shown.token, round_map.token)
    assert NOTICE_NO_OBJECTS in reports[1].notices


def test_a_rounds_records_are_what_inspect_shows_for_the_same_prompt_and_seed(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(PROMPTS))
    backend = KnowsCircles()
    config = RoundConfig(
        prompts=str(path), n_prompts=4, seed=3, generation=GEN, training=TrainingConfig(steps=1),
        eval_split=None, n_fixed_samples=0,
    )  # fmt: skip
    run_round(backend, config, tmp_path / "run")
    reset_to_base(backend)  # the round judged its images with the base model
    rows = [json.loads(line) for line in (tmp_path / "run" / "images" / "generation.jsonl").read_text().splitlines()]
    records = [json.loads(line) for line in (tmp_path / "run" / "records.jsonl").read_text().splitlines()]
    judge = JudgeConfig()
    for row, record in zip(rows, records):
        shown = facade.inspect_prompt(backend, row["prompt"], row["seed"], GEN, judge, None)
        assert scoring_record_from_report(shown.report, record["image_file"]).to_dict() == record


def test_the_score_functions_compose_into_score_image():
    backend = FakeBackend()
    (sample,) = backend.generate(["a red circle"], [1], GEN)
    judge = JudgeConfig(max_regions=2)
    source, regions = propose_image_regions(backend, sample.image, sample.prompt, judge)
    report = judge_image(backend, sample.image, sample.prompt, regions, judge)
    scored = score_image(backend, sample.image, sample.prompt, judge)
    assert source == scored.box_source == "quadrants" and len(regions) == 2
    assert scored.report == report and set(scored.maps) == set(MAP_MODES)


def test_box_sources_are_resolved_by_name_with_the_choices_in_the_error():
    backend = FakeBackend()
    assert resolve_box_source(backend, None)[0] == "quadrants"
    with pytest.raises(ValueError, match="quadrants, user"):
        resolve_box_source(backend, "sam")
    with pytest.raises(ValueError, match="not 'user'"):
        propose_regions(backend, [], JudgeConfig(box_source="user"), ProcessInfo())


def test_typed_boxes_are_judged_as_given_even_when_the_prompt_names_nothing_known():
    backend = KnowsCircles()
    (sample,) = backend.generate(["a pleasant mood"], [1], GEN)
    source, regions = propose_image_regions(backend, sample.image, sample.prompt, JudgeConfig(), "user", "[[0, 0, 8, 8]]")
    assert source == "user" and [r.box for r in regions] == [(0, 0, 8, 8)]
