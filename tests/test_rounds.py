"""The round engine on a tiny fake backend: stages, exclusions, cancellation, ablation modes, evaluation."""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import replace

import numpy as np
import pytest
import torch

from srum_core import adapters as A
from srum_core.config import MAP_MODES, GenerationConfig, RewardConfig, TrainingConfig
from srum_core.evaluation import EvalItem, evaluate, summarise
from srum_core.rounds import (
    Cancelled,
    RoundConfig,
    run_round,
    select_training_set,
)
from srum_core.runs import read_jsonl, read_run
from srum_core.scoring import training_maps
from srum_core.types import PromptItem
from tests.fakes import FakeBackend

PROMPTS = ["a red circle", "a blue square UNREADABLE", "two green triangles", "a purple square", "a red square"]


@pytest.fixture
def prompt_file(tmp_path):
    path = tmp_path / "prompts.jsonl"
    path.write_text("".join(json.dumps({"prompt": p, "category": "test"}) + "\n" for p in PROMPTS))
    return path


def _config(prompt_file, **kwargs):
    defaults = dict(
        prompts=str(prompt_file),
        n_prompts=5,
        seed=7,
        generation=GenerationConfig(steps=4, batch_size=4),
        training=TrainingConfig(steps=3, lr=1e-2, batch_size=2),
        eval_split=None,
        n_fixed_samples=2,
    )
    defaults.update(kwargs)
    return RoundConfig(**defaults)


def _tree_hash(folder):
    digest = hashlib.sha256()
    for path in sorted(folder.rglob("*")):
        if path.is_file():
            digest.update(str(path.relative_to(folder)).encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def test_failed_global_parse_is_excluded_and_counted(tmp_path, prompt_file):
    backend = FakeBackend()
    result = run_round(backend, _config(prompt_file), tmp_path / "run")
    assert result.n_samples == 5 and result.n_trained == 4 and result.n_excluded == 1
    assert result.summary["n_excluded_global_unusable"] == 1
    run = tmp_path / "run"
    assert len(read_jsonl(run / "records.jsonl")) == 5  # every image keeps its scoring record
    training_records = read_jsonl(run / "training_records.jsonl")
    assert len(training_records) == 4
    assert all("UNREADABLE" not in r["prompt"] for r in training_records)
    failed = [r for r in read_jsonl(run / "records.jsonl") if "UNREADABLE" in r["prompt"]][0]
    assert failed["global_layout_reward"]["global_layout_score"] is None
    assert "1 left out" in (run / "round.log").read_text()
    round_line = [row for row in read_jsonl(run / "metrics.jsonl") if row["kind"] == "round"][0]
    assert round_line["n_excluded_global_unusable"] == 1 and round_line["n_trainable"] == 4
    steps = [row for row in read_jsonl(run / "metrics.jsonl") if row["kind"] == "step"]
    assert [row["step"] for row in steps] == [1, 2, 3]


def test_run_folder_layout(tmp_path, prompt_file):
    run = tmp_path / "run"
    run_round(FakeBackend(), _config(prompt_file), run)
    names = {p.relative_to(run).as_posix() for p in run.rglob("*") if p.is_file()}
    for expected in (
        "config.json",
        "round.log",
        "metrics.jsonl",
        "eval.json",
        "records.jsonl",
        "training_records.jsonl",
        "images/0000.png",
        "images/generation.jsonl",
        "samples/before_00.png",
        "samples/after_01.png",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
    ):
        assert expected in names
    generation = read_jsonl(run / "images" / "generation.jsonl")
    assert [g["seed"] for g in generation] == [700000 + i for i in range(5)]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging folder left
    with pytest.raises(FileExistsError):
        run_round(FakeBackend(), _config(prompt_file), run)


def test_round_trains_lora_and_keeps_base(tmp_path, prompt_file):
    backend = FakeBackend()
    base = {k: v.clone() for k, v in backend.net.state_dict().items()}
    run_round(backend, _config(prompt_file), tmp_path / "run")
    after = {k.replace(".base_layer", ""): v for k, v in backend.net.state_dict().items() if "lora_" not in k}
    assert after.keys() == base.keys()
    assert all(torch.equal(after[k], base[k]) for k in base)
    assert any(v.abs().sum() > 0 for k, v in backend.net.state_dict().items() if "lora_B" in k)


def test_cancelled_round_leaves_previous_state_identical(tmp_path, prompt_file):
    backend = FakeBackend()
    run_round(backend, _config(prompt_file), tmp_path / "r1")
    before_hash = _tree_hash(tmp_path / "r1")
    pixels = np.asarray(backend.generate(["a red circle"], [3], GenerationConfig(steps=4))[0].image)

    cancel = threading.Event()

    def cancel_after_first_step(event):
        if event.stage == "train" and event.step == 1:
            cancel.set()

    with pytest.raises(Cancelled):
        run_round(
            backend,
            _config(prompt_file, seed=8),
            tmp_path / "r2",
            resume=tmp_path / "r1",
            callback=cancel_after_first_step,
            cancel=cancel,
        )
    assert _tree_hash(tmp_path / "r1") == before_hash
    assert not (tmp_path / "r2").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.jsonl", "r1"]
    again = np.asarray(backend.generate(["a red circle"], [3], GenerationConfig(steps=4))[0].image)
    assert np.array_equal(again, pixels)


def test_a_failing_stage_restores_the_starting_weights(tmp_path, prompt_file):
    class Broken(FakeBackend):
        def token_losses(self, *args, **kwargs):
            if self.calls["token_losses"] >= 1:
                raise RuntimeError("out of memory")
            return super().token_losses(*args, **kwargs)

    backend = Broken()
    start = np.asarray(backend.generate(["a red circle"], [3], GenerationConfig(steps=4))[0].image)
    with pytest.raises(RuntimeError, match="out of memory"):
        run_round(backend, _config(prompt_file), tmp_path / "run")
    assert not (tmp_path / "run").exists()
    now = np.asarray(backend.generate(["a red circle"], [3], GenerationConfig(steps=4))[0].image)
    assert np.array_equal(now, start)


@pytest.mark.parametrize("mode", MAP_MODES)
def test_every_map_mode_trains(tmp_path, prompt_file, mode):
    backend = FakeBackend()
    result = run_round(backend, _config(prompt_file, reward=RewardConfig(mode=mode, grid="area")), tmp_path / mode)
    assert result.train.steps == 3
    assert result.n_excluded == 1  # the same images train in every mode
    assert json.loads((tmp_path / mode / "config.json").read_text())["round_config"]["reward"]["mode"] == mode


def test_map_mode_changes_the_update(tmp_path, prompt_file):
    states = {}
    for mode in ("released", "sft"):
        backend = FakeBackend()
        run_round(backend, _config(prompt_file, reward=RewardConfig(mode=mode)), None)
        states[mode] = A.adapter_state(backend)
    assert any(not torch.equal(states["released"][k], states["sft"][k]) for k in states["sft"])


def test_seed_none_is_drawn_and_reported(prompt_file):
    result = run_round(FakeBackend(), _config(prompt_file, seed=None, training=TrainingConfig(steps=1)), None)
    assert isinstance(result.seed, int) and result.config.seed == result.seed
    assert result.config.training.seed == result.seed


def test_reward_maps_skip_unusable_images():
    backend = FakeBackend()
    gen = GenerationConfig(steps=2)
    samples = backend.generate(["ok", "UNREADABLE"], [0, 1], gen)
    from srum_core.config import JudgeConfig
    from srum_core.distributed import ProcessInfo
    from srum_core.rounds import judge_samples, propose_regions

    info = ProcessInfo()
    regions = propose_regions(backend, samples, JudgeConfig(max_regions=2), info)
    assert [len(r) for r in regions] == [2, 2]
    reports = judge_samples(backend, samples, regions, JudgeConfig(), info)
    maps = training_maps(reports, RewardConfig(), backend.token_size)
    assert maps[1] is None and maps[0].token.shape == (4, 4)
    chosen = select_training_set(samples, maps)
    assert chosen.kept == (0,) and chosen.excluded == (1,) and chosen.weights.shape == (1, 16)


def test_gate_trains_only_on_images_judged_above_it(tmp_path, prompt_file):
    with pytest.raises(ValueError, match="gate=1.0"):
        _config(prompt_file, gate=1.0)
    backend = FakeBackend()
    ungated = run_round(backend, _config(prompt_file), None)
    A.reset_to_base(backend)
    result = run_round(FakeBackend(), _config(prompt_file, gate=0.0), tmp_path / "run")
    run = tmp_path / "run"
    records = read_jsonl(run / "records.jsonl")
    scores = [r["global_layout_reward"]["global_layout_score"] for r in records]
    above = [i for i, g in enumerate(scores) if g is not None and g > 0.0]
    assert 0 < len(above) < 4, "the fake's brightness scores must fall on both sides of the gate"
    assert result.n_trained == len(above) < ungated.n_trained == 4
    assert result.n_excluded == 1 and result.summary["n_gated_out"] == 4 - len(above)
    assert result.summary["n_trained"] == len(above)
    assert len(records) == 5  # every image keeps its scoring record
    assert len(read_jsonl(run / "training_records.jsonl")) == len(above)
    rows = read_jsonl(run / "images" / "generation.jsonl")
    assert [i for i, row in enumerate(rows) if row["trained"]] == above
    assert f"gate g > 0: {len(above)} of 4 judged images train" in (run / "round.log").read_text()


def test_images_per_prompt_draws_each_prompt_k_times_at_distinct_seeds(tmp_path, prompt_file):
    with pytest.raises(ValueError, match="images_per_prompt=0"):
        _config(prompt_file, images_per_prompt=0)
    config = _config(prompt_file, n_prompts=2, images_per_prompt=3)
    result = run_round(FakeBackend(), config, tmp_path / "run")
    rows = read_jsonl(tmp_path / "run" / "images" / "generation.jsonl")
    assert result.n_samples == 6 and len(rows) == 6
    prompts = [row["prompt"] for row in rows]
    assert prompts[0] == prompts[1] == prompts[2] != prompts[3] == prompts[4] == prompts[5]
    assert len({row["seed"] for row in rows}) == 6
    assert "generated 6 images of 2 prompts" in (tmp_path / "run" / "round.log").read_text()
    assert read_run(tmp_path / "run").config["images_per_prompt"] == 3


def test_select_training_set_gate_needs_reports():
    with pytest.raises(ValueError, match="needs the reports"):
        select_training_set([], [], gate=0.0)


def test_evaluate_counts_judge_and_referee(prompt_file):
    backend = FakeBackend()

    def always_pass(image, item):
        return True

    result = evaluate(
        backend,
        "val",
        ("single", "color"),
        seeds=(0, 1),
        n_prompts=2,
        generation=GenerationConfig(steps=2),
        referee=always_pass,
    )
    assert result.overall.n == 2 * 2 * 2
    assert result.overall.referee_accuracy == 1.0
    assert set(result.per_category) == {"single", "color"}
    # agreement with an always-pass referee equals the judge's own pass rate
    assert result.overall.agreement == pytest.approx(result.overall.judge_pass_rate)
    assert "self-judge:fake" in result.judge and result.referee == "always_pass"
    assert type(result).from_dict(json.loads(json.dumps(result.to_dict()))) == result


def test_summarise_by_hand():
    items = [
        EvalItem("p", "c", 0, referee_pass=True, judge_score=0.5, judge_pass=True),
        EvalItem("p", "c", 1, referee_pass=False, judge_score=0.5, judge_pass=True),
        EvalItem("p", "c", 2, referee_pass=False, judge_score=None, judge_pass=None),
        EvalItem("p", "c", 3, referee_pass=None, judge_score=-0.5, judge_pass=False),
    ]
    s = summarise(items)
    assert s.n == 4 and s.judge_failed == 1
    assert s.referee_accuracy == pytest.approx(1 / 3)
    assert s.judge_pass_rate == pytest.approx(2 / 3)
    assert s.agreement == pytest.approx(1 / 2)
    assert PromptItem("x").category == "unknown"


def test_a_round_where_nothing_is_trainable_still_completes(tmp_path):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(["UNREADABLE one", "UNREADABLE two"]))
    config = RoundConfig(prompts=str(path), n_prompts=2, seed=1, eval_split=None, generation=GenerationConfig(steps=2))
    result = run_round(FakeBackend(), config, tmp_path / "run")
    assert result.n_trained == 0 and result.n_excluded == 2 and result.train.steps == 0
    assert read_jsonl(tmp_path / "run" / "training_records.jsonl") == []
    assert "no training step" in (tmp_path / "run" / "round.log").read_text()


def test_a_refused_resume_leaves_the_backend_as_it_was(tmp_path, prompt_file):
    backend = FakeBackend()
    run_round(backend, _config(prompt_file), tmp_path / "r1")  # LoRA rank 8
    state = A.adapter_state(backend)
    rank2 = _config(prompt_file, training=TrainingConfig(steps=1, lora_rank=2))
    run_round(FakeBackend(), rank2, tmp_path / "rank2")
    with pytest.raises(ValueError, match="rank 2"):  # a rank-2 adapter cannot continue as rank 8
        run_round(backend, _config(prompt_file), tmp_path / "r2", resume=tmp_path / "rank2")
    assert A.adapter_shape(backend)["rank"] == 8
    assert all(torch.equal(state[k], v) for k, v in A.adapter_state(backend).items())
    assert not (tmp_path / "r2").exists()


def test_rounds_of_different_ranks_share_one_backend(tmp_path, prompt_file):
    # Two visitors on one shared backend: rank 8, then rank 2 from the base, then rank 8 resumed again.
    shared = FakeBackend()
    run_round(shared, _config(prompt_file), tmp_path / "a1")
    A.reset_to_base(shared)
    rank2 = _config(prompt_file, training=TrainingConfig(steps=2, lr=1e-2, batch_size=2, lora_rank=2))
    run_round(shared, rank2, tmp_path / "b1")
    assert A.adapter_shape(shared)["rank"] == 2
    run_round(shared, _config(prompt_file, seed=8), tmp_path / "a2", resume=tmp_path / "a1")
    assert A.adapter_shape(shared)["rank"] == 8
    # The rank-2 round from the base matches the same round on a backend that never saw rank 8.
    alone = FakeBackend()
    run_round(alone, rank2, tmp_path / "b1-alone")
    assert (tmp_path / "b1" / "records.jsonl").read_bytes() == (tmp_path / "b1-alone" / "records.jsonl").read_bytes()
    b1 = A.adapter_state(alone)
    A.reset_to_base(shared)
    from srum_core.runs import load_run

    load_run(tmp_path / "b1", shared)
    assert all(torch.equal(b1[k], v) for k, v in A.adapter_state(shared).items())


def test_evaluation_before_reuses_the_resumed_rounds_after(tmp_path, prompt_file, monkeypatch):
    import srum_core.rounds as rounds

    calls = []
    original = rounds.evaluate

    def counting(*args, **kwargs):
        calls.append(1)
        return original(*args, **{**kwargs, "referee": lambda image, item: True})

    monkeypatch.setattr(rounds, "evaluate", counting)
    config = _config(prompt_file, eval_split="val", eval_categories=("single",), eval_n_prompts=1)
    backend = FakeBackend()
    first = run_round(backend, config, tmp_path / "r1")
    assert len(calls) == 2  # before and after
    second = run_round(backend, config, tmp_path / "r2", resume=tmp_path / "r1")
    assert len(calls) == 3  # after only: before = round 1's after
    assert second.eval_before == first.eval_after
    third = run_round(backend, replace(config, eval_n_prompts=2), tmp_path / "r3", resume=tmp_path / "r2")
    assert len(calls) == 5 and third.eval_before.overall.n == 2
    # Only the round from the base model generates and judges without its (all-zero) LoRA layers.
    bypass = "the adapter adds nothing yet"
    assert bypass in (tmp_path / "r1" / "round.log").read_text()
    assert bypass not in (tmp_path / "r2" / "round.log").read_text()


def test_a_round_from_base_depends_only_on_its_seed_not_on_earlier_rounds(tmp_path, prompt_file):
    # Fresh process-like backend: one round at seed 3.
    fresh = FakeBackend()
    run_round(fresh, _config(prompt_file, seed=3), tmp_path / "fresh")
    fresh_adapter = A.adapter_state(fresh)
    # Same seed after an unrelated round (seed 9) ran on the same backend object first.
    used = FakeBackend()
    run_round(used, _config(prompt_file, seed=9), tmp_path / "other")
    run_round(used, _config(prompt_file, seed=3), tmp_path / "again")
    again_adapter = A.adapter_state(used)
    assert fresh_adapter.keys() == again_adapter.keys()
    assert all(torch.equal(fresh_adapter[k], again_adapter[k]) for k in fresh_adapter)
    assert _tree_hash(tmp_path / "fresh" / "samples") == _tree_hash(tmp_path / "again" / "samples")


def test_a_round_evaluates_in_plain_mode_whatever_mode_its_images_used():
    from types import SimpleNamespace

    from srum_core.config import GenerationConfig
    from srum_core.rounds import eval_generation

    think = GenerationConfig(steps=3, guidance=2.0, mode="think")
    both = SimpleNamespace(generation_modes=("plain", "think"))
    assert eval_generation(both, think) == GenerationConfig(steps=3, guidance=2.0, mode="plain")
    assert eval_generation(both, GenerationConfig(mode=None)).mode is None  # the backend's default (plain)
    only_think = SimpleNamespace(generation_modes=("think",))
    assert eval_generation(only_think, think) is think
