"""``generate`` and ``score`` CLI commands, on a tiny random TinyUMM saved to a temporary folder."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from srum_core.backends.sandbox import SandboxBackend
from srum_core.cli import main
from srum_core.records import ScoringRecord, load_records


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-umm")
    SandboxBackend.from_random(seed=0).model.save_pretrained(folder)
    return folder


def gen_args(weights, out, *extra):
    return ["generate", "--backend", "sandbox", "--model", str(weights), "--device", "cpu", "--prompt",
            "a red circle", "--n", "3", "--seed", "10", "--steps", "2", "--out", str(out), *extra]


def test_generate_writes_images_and_listing_and_refuses_overwrite(weights, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(gen_args(weights, out)) == 0
    lines = [json.loads(x) for x in (out / "generation.jsonl").read_text().splitlines()]
    assert [x["file"] for x in lines] == ["000.png", "001.png", "002.png"]
    assert [x["seed"] for x in lines] == [10, 11, 12]
    assert all(x["prompt"] == "a red circle" and x["backend"] == "sandbox" for x in lines)
    assert lines[0]["settings"]["steps"] == 2
    first = np.asarray(Image.open(out / "000.png"))
    assert first.shape == (64, 64, 3)
    capsys.readouterr()
    assert main(gen_args(weights, out)) == 2
    assert "--force" in capsys.readouterr().err
    assert main(gen_args(weights, out, "--force")) == 0
    assert np.array_equal(np.asarray(Image.open(out / "000.png")), first)  # same seed, same image


def test_score_writes_one_scoring_record_per_image(weights, tmp_path, capsys):
    out = tmp_path / "gen"
    assert main(gen_args(weights, out)) == 0
    records = tmp_path / "scores.jsonl"
    args = ["score", "--backend", "sandbox", "--model", str(weights), "--device", "cpu", "--images", str(out),
            "--out", str(records), "--box-source", "segmenter", "--region-view", "coords", "--max-regions", "3"]
    assert main(args) == 0
    loaded = load_records(records)
    assert loaded.ok and len(loaded.records) == 3
    rec = loaded.records[0][1] if isinstance(loaded.records[0], tuple) else loaded.records[0]
    assert isinstance(rec, ScoringRecord)
    assert rec.image_file == "000.png" and rec.prompt == "a red circle"
    assert -1 <= rec.global_layout_reward.global_layout_score <= 1
    assert len(rec.vlm_rewards) <= 3 and all(r.source == "segmenter" for r in rec.vlm_rewards)
    capsys.readouterr()
    assert main(args) == 2  # exists
    assert main([*args[:-6], "--box-source", "nope", "--force"]) == 2
    assert "self-grounding" in capsys.readouterr().err


def test_score_reports_missing_listing(weights, tmp_path, capsys):
    args = ["score", "--backend", "sandbox", "--model", str(weights), "--images", str(tmp_path),
            "--out", str(tmp_path / "s.jsonl")]
    assert main(args) == 2
    assert "generation.jsonl" in capsys.readouterr().err


def test_generate_mode_think_lists_the_plan_and_plain_does_not(weights, tmp_path):
    think, plain = tmp_path / "think", tmp_path / "plain"
    assert main(gen_args(weights, think, "--mode", "think")) == 0
    assert main(gen_args(weights, plain, "--mode", "plain")) == 0
    thought = [json.loads(x) for x in (think / "generation.jsonl").read_text().splitlines()]
    drawn = [json.loads(x) for x in (plain / "generation.jsonl").read_text().splitlines()]
    assert all(x["settings"]["mode"] == "think" and x["plan"] == x["settings"]["plan"] for x in thought)
    assert all(isinstance(x["plan"], str) and x["plan"] for x in thought)
    assert all(x["settings"]["mode"] == "plain" and "plan" not in x for x in drawn)


def test_generate_refuses_an_unknown_mode(weights, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(gen_args(weights, tmp_path / "x", "--mode", "dream"))
    assert "invalid choice" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
