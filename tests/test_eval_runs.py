"""Evaluation runs: base and rounds on the same prompts and seeds, an independent judge, paired intervals, worst
images, self-judge agreement, resumable, and the ``evaluate`` command."""

from __future__ import annotations

import json

import numpy as np
import pytest

from srum_core.config import GenerationConfig, TrainingConfig
from srum_core.eval_judges import EvalJudgeConfig, JudgeResult
from srum_core.eval_runs import (
    ITEMS_FILE,
    EvaluationConfig,
    agreement,
    read_items,
    run_evaluation,
    states_for,
    summarise_evaluation,
)
from srum_core.eval_sets import eval_set_prompts, load_compbench_val, load_reasonbench, load_reasonbench_style
from srum_core.protocol import ProgressEvent
from tests.test_ui_api import tiny_backend

GEN = GenerationConfig(steps=3, batch_size=4, mode="plain")


@pytest.fixture(scope="module")
def backend():
    return tiny_backend()


@pytest.fixture(scope="module")
def round_dir(backend, tmp_path_factory):
    from srum_core.adapters import reset_to_base
    from srum_core.rounds import RoundConfig, run_round

    out = tmp_path_factory.mktemp("runs") / "r1"
    config = RoundConfig(
        prompts="train",
        n_prompts=4,
        seed=3,
        generation=GEN,
        eval_split=None,
        n_fixed_samples=0,
        training=TrainingConfig(steps=2, lr=5e-2, batch_size=2),
    )
    run_round(backend, config, out)
    reset_to_base(backend)
    return out


class CountingJudge:
    """The referee, counting how many images it was asked about (a stand-in with a fixed name and version)."""

    name = "counting-referee"
    version = "t1"

    def __init__(self, backend):
        from srum_core.eval_judges import RefereeJudge

        self.inner = RefereeJudge(backend.referee())
        self.calls = 0

    def judge(self, images, items):
        self.calls += len(images)
        return self.inner.judge(images, items)


def test_base_and_a_round_on_the_same_seeds_with_paired_intervals_and_agreement(backend, round_dir, tmp_path):
    config = EvaluationConfig(eval_set="eval", categories=("color", "spatial"), n_per_category=2, seeds=(0, 1))
    events: list[ProgressEvent] = []
    results = run_evaluation(
        backend, states_for([round_dir]), config, tmp_path / "ev", generation=GEN, callback=events.append
    )
    assert [e.step for e in events] == list(range(1, 17)) and events[-1].total == 16
    items = read_items(tmp_path / "ev")
    assert len(items) == 16 and all((tmp_path / "ev" / i["image"]).is_file() for i in items)
    base = {(i["prompt_index"], i["seed"]): i for i in items if i["state"] == "base"}
    after = [i for i in items if i["state"] == "round1"]
    assert all(base[(i["prompt_index"], i["seed"])]["generation_seed"] == i["generation_seed"] for i in after)
    assert all(i["judge"].startswith("referee:") and i["judge_version"] for i in items)
    state = results["per_state"]["round1"]
    assert set(state["per_category"]) == {"color", "spatial"}
    delta = state["vs_base"]["overall"]
    assert delta["n"] == 8 and delta["ci95"][0] <= delta["delta"] <= delta["ci95"][1]
    assert set(state["agreement"]) >= {"balanced_accuracy", "auroc", "raw_agreement"}
    assert (
        len(state["worst"]["color"]) == 3 and state["worst"]["color"][0]["score"] <= state["worst"]["color"][1]["score"]
    )
    assert results["judge"].startswith("referee:") and json.loads((tmp_path / "ev" / "results.json").read_text())


def test_a_killed_evaluation_resumes_without_redoing_or_losing_an_image(backend, round_dir, tmp_path):
    config = EvaluationConfig(eval_set="eval", categories=("color",), n_per_category=3, seeds=(0,))
    out = tmp_path / "ev"
    states = states_for([round_dir])

    class Kill(Exception):
        pass

    def kill_after_four(event):
        if event.step == 4:
            raise Kill

    judge = CountingJudge(backend)
    with pytest.raises(Kill):
        run_evaluation(backend, states, config, out, generation=GEN, judge=judge, callback=kill_after_four)
    with (out / ITEMS_FILE).open("a") as handle:
        handle.write('{"state": "round1", "prompt_ind')  # a line torn by the kill
    assert len(read_items(out)) == 4
    with pytest.raises(FileExistsError, match="--resume"):
        run_evaluation(backend, states, config, out, generation=GEN, judge=judge)
    with pytest.raises(ValueError, match="other settings"):
        run_evaluation(
            backend,
            states,
            EvaluationConfig(eval_set="eval", categories=("color",), n_per_category=2),
            out,
            generation=GEN,
            judge=judge,
            resume=True,
        )
    judge.calls = 0
    results = run_evaluation(backend, states, config, out, generation=GEN, judge=judge, resume=True)
    assert judge.calls == 2  # 6 images in all, 4 were scored before the kill
    items = read_items(out)
    assert len(items) == 6 and len((out / ITEMS_FILE).read_text().splitlines()) == 6
    # the same images as an uninterrupted run
    fresh = run_evaluation(backend, states, config, tmp_path / "fresh", generation=GEN, judge=CountingJudge(backend))
    assert fresh["per_state"]["round1"]["overall"] == results["per_state"]["round1"]["overall"]
    for item in items:
        a = np.asarray(_open(out / item["image"]))
        b = np.asarray(_open(tmp_path / "fresh" / item["image"]))
        assert np.array_equal(a, b)


def _open(path):
    from PIL import Image

    return Image.open(path).convert("RGB")


def test_agreement_flags_a_lenient_self_judge():
    def item(passed, self_score):
        return {"passed": passed, "self_score": self_score, "self_pass": self_score > 0}

    honest = agreement([item(True, 0.8), item(False, -0.5), item(True, 0.3), item(False, -0.1)])
    lenient = agreement([item(True, 0.8), item(False, 0.5), item(True, 0.3), item(False, 0.9)])
    assert honest["balanced_accuracy"] == 1.0 and honest["auroc"] == 1.0
    assert lenient["balanced_accuracy"] == 0.5 and lenient["self_pass_rate"] == 1.0


def test_summary_scores_failed_images_apart():
    rows = [
        {
            "state": "base",
            "prompt_index": 0,
            "seed": 0,
            "category": "c",
            "score": 0.5,
            "passed": False,
            "questions": [],
            "judge_version": "v",
            "self_score": 0.1,
            "self_pass": True,
            "image": "a",
            "prompt": "p",
        },
        {
            "state": "base",
            "prompt_index": 1,
            "seed": 0,
            "category": "c",
            "score": None,
            "passed": None,
            "questions": [],
            "judge_version": "v",
            "self_score": None,
            "self_pass": None,
            "image": "b",
            "prompt": "q",
        },
    ]
    summary = summarise_evaluation(rows, ["base"], EvaluationConfig())
    overall = summary["per_state"]["base"]["overall"]
    assert overall == {"n": 2, "n_scored": 1, "score": 50.0, "pass_rate": 0.0}


def test_eval_sets_shipped_and_user_supplied(tmp_path, backend):
    style = load_reasonbench_style()
    assert {i.category for i in style} == {"idiom", "textual_image_design", "entity", "scientific"}
    picked = eval_set_prompts(backend, "reasonbench-style", None, 2, seed=0)
    assert len(picked) == 8 and picked == eval_set_prompts(backend, "reasonbench-style", None, 2, seed=0)
    val = tmp_path / "dataset"
    val.mkdir()
    (val / "color_val.txt").write_text("a red car\na blue bench\n")
    (val / "non_spatial_val.txt").write_text("a man holding a cup\n")
    items = load_compbench_val(val)
    assert [(i.text, i.category) for i in items][-1] == ("a man holding a cup", "non-spatial")
    assert len(eval_set_prompts(backend, f"t2i-compbench-val:{val}", ["color"], 2, 0)) == 2
    rb = tmp_path / "prompts"
    rb.mkdir()
    (rb / "idiom_interpretation.json").write_text(json.dumps([{"id": 1, "prompt": "a piece of cake"}]))
    (rb / "entity_reasoning.json").write_text(json.dumps({"1": "the tallest mountain"}))
    assert {(i.category, i.text) for i in load_reasonbench(rb)} == {
        ("idiom", "a piece of cake"),
        ("entity", "the tallest mountain"),
    }
    with pytest.raises(ValueError, match="no category"):
        eval_set_prompts(backend, f"t2i-reasonbench:{rb}", ["scientific"], 1, 0)
    with pytest.raises(FileNotFoundError, match="none of"):
        eval_set_prompts(backend, "no-such-set", None, 1, 0)


def test_evaluate_command_writes_a_results_folder_and_resumes(round_dir, tmp_path, capsys, monkeypatch):
    from srum_core import cli
    from srum_core.backends import sandbox as sandbox_module

    monkeypatch.setattr(sandbox_module, "load_sandbox", lambda *a, **k: tiny_backend(), raising=False)
    out = tmp_path / "ev"
    argv = [
        "evaluate",
        "--backend",
        "sandbox",
        "--run",
        str(round_dir),
        "--set",
        "eval",
        "--category",
        "color",
        "--n-per-category",
        "2",
        "--seeds",
        "0,1",
        "--gen-steps",
        "3",
        "--batch-size",
        "4",
        "--out",
        str(out),
    ]
    assert cli.main(argv) == 0
    text = capsys.readouterr().out
    assert "round1" in text and "judge referee:" in text and "95%" in text
    results = json.loads((out / "results.json").read_text())
    assert set(results["per_state"]) == {"base", "round1"}
    assert cli.main(argv) == 2 and "--resume" in capsys.readouterr().err
    assert cli.main([*argv, "--resume"]) == 0


def test_judge_config_goes_in_the_plan_without_a_key(backend, tmp_path, monkeypatch):
    monkeypatch.setenv("MY_KEY", "sk-very-secret")

    class Stub:
        name = "openai:stub@http://127.0.0.1:1/v1"
        version = "q1+stub"

        def judge(self, images, items):
            return [JudgeResult(0.7, True) for _ in images]

    config = EvaluationConfig(
        eval_set="eval",
        categories=("color",),
        n_per_category=1,
        judge=EvalJudgeConfig(kind="openai", model="stub", base_url="http://127.0.0.1:1/v1", api_key_env="MY_KEY"),
    )
    run_evaluation(backend, states_for([]), config, tmp_path / "ev", generation=GEN, judge=Stub())
    written = "".join(p.read_text() for p in (tmp_path / "ev").glob("*.json*"))
    assert "MY_KEY" in written and "sk-very-secret" not in written
