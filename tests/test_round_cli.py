"""The round/eval CLI end to end on the fake backend (the loader is swapped for the fake)."""

from __future__ import annotations

import json

import pytest

from srum_core.cli import main
from srum_core.commands import round_cmd
from srum_core.runs import read_jsonl, read_run
from tests.fakes import FakeBackend


@pytest.fixture(autouse=True)
def fake_backend(monkeypatch):
    monkeypatch.setattr(round_cmd, "load_backend", lambda name, device="auto", model=None: FakeBackend())


def _round_args(prompts, out, *extra):
    return [
        "round", "--backend", "sandbox", "--prompts", str(prompts), "--n-prompts", "4", "--steps", "2",
        "--lr", "0.01", "--lam", "0.5", "--map", "released", "--grid", "area", "--lora-rank", "4", "--seed", "3",
        "--gen-steps", "2", "--eval-split", "none", "--out", str(out), *extra,
    ]  # fmt: skip


@pytest.fixture
def prompts(tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps(["a red circle", "a blue square", "UNREADABLE thing", "a green triangle"]))
    return path


def test_round_then_resume(tmp_path, prompts, capsys):
    assert main(_round_args(prompts, tmp_path / "r1")) == 0
    out = capsys.readouterr().out
    assert "round 1 written" in out and "left out 1" in out
    assert main(_round_args(prompts, tmp_path / "r2", "--resume", str(tmp_path / "r1"), "--map", "sft")) == 0
    info = read_run(tmp_path / "r2")
    assert info.round_index == 2 and info.config["reward"] == {"mode": "sft", "grid": "area"}
    assert info.config["training"]["lora_rank"] == 4 and info.config["training"]["lam"] == 0.5
    assert len(read_jsonl(tmp_path / "r2" / "records.jsonl")) == 4


def test_round_refuses_bad_input(tmp_path, prompts, capsys):
    (tmp_path / "exists").mkdir()
    assert main(_round_args(prompts, tmp_path / "exists")) == 2
    assert "already exists" in capsys.readouterr().err
    assert main(_round_args(prompts, tmp_path / "x", "--resume", str(tmp_path / "missing"))) == 2
    assert main(_round_args(tmp_path / "nope.json", tmp_path / "y")) == 2
    assert "no such JSON/JSONL file exists" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(_round_args(prompts, tmp_path / "z", "--map", "nonsense"))
    assert main(_round_args(prompts, tmp_path / "w", "--lam", "-1")) == 2
    assert main(_round_args(prompts, tmp_path / "g", "--gate", "1.5")) == 2
    assert "gate=1.5" in capsys.readouterr().err
    assert not (tmp_path / "x").exists() and not (tmp_path / "y").exists() and not (tmp_path / "w").exists()
    assert not (tmp_path / "g").exists()


def test_round_images_per_prompt(tmp_path, prompts):
    assert main(_round_args(prompts, tmp_path / "r1", "--n-prompts", "2", "--images-per-prompt", "2")) == 0
    assert len(read_jsonl(tmp_path / "r1" / "records.jsonl")) == 4
    assert main(_round_args(prompts, tmp_path / "r2", "--images-per-prompt", "0")) == 2
    assert not (tmp_path / "r2").exists()


def test_round_with_a_gate_reports_what_it_left_out(tmp_path, prompts, capsys):
    assert main(_round_args(prompts, tmp_path / "r1", "--gate", "0")) == 0
    out = capsys.readouterr().out
    info = read_run(tmp_path / "r1")
    assert info.config["gate"] == 0.0
    gated = info.summary["n_gated_out"]
    assert f"trained on {info.summary['n_trained']}," in out and f"gated out {gated} (g ≤ 0.0)" in out
    assert info.summary["n_trained"] + gated + 1 == 4  # one image's global judgement is unreadable


def test_eval_writes_results(tmp_path, prompts, capsys, monkeypatch):
    assert main(_round_args(prompts, tmp_path / "r1")) == 0

    def always_pass(image, item):
        return True

    class Refereed(FakeBackend):
        def referee(self):
            return always_pass

    monkeypatch.setattr(round_cmd, "load_backend", lambda name, device="auto", model=None: Refereed())
    out = tmp_path / "results.json"
    args = ["eval", "--backend", "sandbox", "--run", str(tmp_path / "r1"), "--split", "val", "--category", "single",
            "--n-prompts", "2", "--seed", "5", "--n-seeds", "2", "--gen-steps", "2", "--out", str(out)]  # fmt: skip
    assert main(args) == 0
    data = json.loads(out.read_text())
    assert data["state"] == str(tmp_path / "r1") and data["backend"] == "fake"
    assert data["seeds"] == [5, 6] and data["overall"]["n"] == 4 and set(data["per_category"]) == {"single"}
    assert data["referee"] == "always_pass" and data["overall"]["referee_accuracy"] == 1.0  # the backend's own
    assert "judge" in data and "self-judge:fake" in data["judge"]
    assert main(args) == 2  # refuses to overwrite
    assert main([*args, "--force"]) == 0


def test_round_gen_mode_and_train_part_reach_the_run_config(tmp_path, prompts, capsys):
    assert main(_round_args(prompts, tmp_path / "r", "--gen-mode", "plain", "--train-part", "gen")) == 0
    info = read_run(tmp_path / "r")
    assert info.config["generation"]["mode"] == "plain"
    assert info.config["training"]["train_part"] == "gen"
    capsys.readouterr()
    # The fake backend has no think mode and one trainable part: both are refused in one line, before any work.
    assert main(_round_args(prompts, tmp_path / "t", "--gen-mode", "think")) == 2
    assert "generates in plain mode only" in capsys.readouterr().err
    assert main(_round_args(prompts, tmp_path / "a", "--train-part", "all")) == 2
    assert "--train-part gen" in capsys.readouterr().err
    assert not (tmp_path / "t").exists() and not (tmp_path / "a").exists()


def test_an_interrupted_round_continues_with_resume_from_its_last_complete_stage(tmp_path, prompts, monkeypatch,
                                                                               capsys):
    from srum_core import rounds
    from srum_core.checkpoints import checkpoint_dir

    real_train = rounds.train_on_samples

    def killed(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(rounds, "train_on_samples", killed)
    assert main(_round_args(prompts, tmp_path / "r1")) == 130  # as a Ctrl-C
    assert "run the same command with --resume" in capsys.readouterr().out
    assert not (tmp_path / "r1").exists() and checkpoint_dir(tmp_path / "r1").is_dir()
    monkeypatch.setattr(rounds, "train_on_samples", real_train)

    assert main(_round_args(prompts, tmp_path / "r1")) == 2  # never silently started again over the stages
    assert "add --resume to continue it" in capsys.readouterr().err
    assert main(_round_args(prompts, tmp_path / "r1", "--lr", "0.02", "--resume")) == 2  # other settings refused
    assert "another round (different config.training.lr)" in capsys.readouterr().err

    calls = {"generate": 0}
    real_generate = rounds.generate_samples

    def counted(*args, **kwargs):
        calls["generate"] += 1
        return real_generate(*args, **kwargs)

    monkeypatch.setattr(rounds, "generate_samples", counted)
    assert main(_round_args(prompts, tmp_path / "r1", "--resume")) == 0
    assert calls["generate"] == 0  # the round's images came from the completed stage
    assert not checkpoint_dir(tmp_path / "r1").exists()
    assert read_run(tmp_path / "r1").round_index == 1
    assert len(read_jsonl(tmp_path / "r1" / "records.jsonl")) == 4
    assert main(_round_args(prompts, tmp_path / "r9", "--resume")) == 2
    assert "nothing to continue" in capsys.readouterr().err
