"""Run folders, history and undo: exact restoration of earlier states."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from PIL import Image

from srum_core.config import GenerationConfig, TrainingConfig
from srum_core.rounds import RoundConfig, run_round
from srum_core.runs import RunHistory, commit_run, load_run, read_run, staging_dir
from tests.fakes import FakeBackend

GEN = GenerationConfig(steps=4, batch_size=4)


def _pixels(backend, prompt="a red circle", seed=42):
    return np.asarray(backend.generate([prompt], [seed], GEN)[0].image)


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "prompts.json"
    path.write_text(json.dumps(["a red circle", "a blue square", "a green triangle", "a purple circle"]))
    return RoundConfig(
        prompts=str(path),
        n_prompts=4,
        seed=1,
        generation=GEN,
        training=TrainingConfig(steps=3, lr=3e-2, batch_size=2),
        eval_split=None,
        n_fixed_samples=1,
    )


def _two_rounds(backend, config, tmp_path):
    states = [_pixels(backend)]
    run_round(backend, config, tmp_path / "r1")
    states.append(_pixels(backend))
    run_round(backend, replace(config, seed=2), tmp_path / "r2", resume=tmp_path / "r1")
    states.append(_pixels(backend))
    return states


def test_undo_restores_exact_previous_outputs(tmp_path, config):
    backend = FakeBackend()
    states = _two_rounds(backend, config, tmp_path)
    assert not np.array_equal(states[0], states[1]) and not np.array_equal(states[1], states[2])
    history = RunHistory([tmp_path / "r1", tmp_path / "r2"])
    assert history.current == 2 and history.current_run == tmp_path / "r2"
    history.undo(1)
    history.apply(backend)
    assert np.array_equal(_pixels(backend), states[1])
    assert history.rounds == (tmp_path / "r1",)
    history.undo(0)
    history.apply(backend)
    assert np.array_equal(_pixels(backend), states[0])
    assert history.current_run is None
    with pytest.raises(ValueError):
        history.undo(1)


def test_history_add_after_undo_drops_later_rounds(tmp_path, config):
    backend = FakeBackend()
    _two_rounds(backend, config, tmp_path)
    history = RunHistory.from_run(tmp_path / "r2")
    assert history.rounds == (tmp_path / "r1", tmp_path / "r2")
    history.undo(1)
    history.apply(backend)
    run_round(backend, replace(config, seed=3), tmp_path / "r2b", resume=history.current_run)
    assert history.add(tmp_path / "r2b") == 2
    assert history.rounds == (tmp_path / "r1", tmp_path / "r2b")
    assert read_run(tmp_path / "r2b").round_index == 2
    with pytest.raises(FileNotFoundError):
        history.add(tmp_path / "nothing")


def test_load_run_reproduces_its_images_at_the_same_seed(tmp_path, config):
    backend = FakeBackend()
    run_round(backend, config, tmp_path / "r1")
    fresh = FakeBackend()
    info = load_run(tmp_path / "r1", fresh)
    assert info.round_index == 1 and info.backend == "fake"
    rows = [json.loads(line) for line in (tmp_path / "r1" / "samples" / "samples.jsonl").read_text().splitlines()]
    image = fresh.generate([rows[0]["prompt"]], [rows[0]["seed"]], GEN)[0].image
    saved = Image.open(tmp_path / "r1" / "samples" / "after_00.png").convert("RGB")
    assert np.array_equal(np.asarray(image), np.asarray(saved))
    before = Image.open(tmp_path / "r1" / "samples" / "before_00.png").convert("RGB")
    assert not np.array_equal(np.asarray(before), np.asarray(saved))


def test_resume_continues_from_the_previous_adapter(tmp_path, config):
    # Round 2 resumed from round 1 on a fresh backend equals round 2 run on the backend that did round 1.
    a = FakeBackend()
    _two_rounds(a, config, tmp_path)
    b = FakeBackend()
    run_round(b, replace(config, seed=2), tmp_path / "r2-again", resume=tmp_path / "r1")
    assert np.array_equal(_pixels(a), _pixels(b))


def test_load_run_refuses_other_backends_and_incomplete_folders(tmp_path, config):
    run_round(FakeBackend(), config, tmp_path / "r1")

    class Other(FakeBackend):
        name = "other"

    with pytest.raises(ValueError, match="backend"):
        load_run(tmp_path / "r1", Other())
    with pytest.raises(FileNotFoundError):
        load_run(tmp_path, FakeBackend())


def test_staging_is_renamed_only_when_complete(tmp_path):
    staging = staging_dir(tmp_path / "out")
    assert staging.parent == tmp_path and staging.name.startswith(".out.partial-")
    (staging / "file").write_text("x")
    commit_run(staging, tmp_path / "out")
    assert (tmp_path / "out" / "file").read_text() == "x" and not staging.exists()
    with pytest.raises(FileExistsError):
        staging_dir(tmp_path / "out")


def test_a_round_is_written_from_its_result_and_read_back(tmp_path, config):
    seen_during_round = []

    def look(event):
        seen_during_round.append(sorted(p.name for p in tmp_path.iterdir()))

    result = run_round(FakeBackend(), config, tmp_path / "r1", callback=look)
    # Nothing reaches the disk while the round computes: a killed round leaves no half-written folder.
    assert all(names == ["prompts.json"] for names in seen_during_round)
    info = read_run(tmp_path / "r1")
    assert [p.name for p in info.contents()] == [
        "adapter", "config.json", "metrics.jsonl", "eval.json", "round.log", "records.jsonl",
        "training_records.jsonl", "samples", "images",
    ]  # fmt: skip
    rows = info.generation_rows()
    assert [row["prompt"] for row in rows] == [image.item.text for image in result.images]
    assert [row["trained"] for row in rows] == [image.trained for image in result.images]
    assert info.meta["box_source"] == result.box_source == "quadrants"
    assert info.records_file.is_file() and info.summary["n_samples"] == result.n_samples
    assert (tmp_path / "r1" / "round.log").read_text().splitlines() == list(result.log)
