"""An interrupted round continues from its last complete stage: nothing done is redone, nothing is lost, and the
result is the one an uninterrupted round gives."""

from __future__ import annotations

import json
import threading

import numpy as np
import pytest
from safetensors.numpy import load_file

from srum_core.checkpoints import StageCheckpoint, checkpoint_dir
from srum_core.config import TrainingConfig
from srum_core.rounds import Cancelled, run_round
from srum_core.runs import read_jsonl
from tests import test_rounds
from tests.fakes import FakeBackend

prompt_file = test_rounds.prompt_file  # the fixture: test_rounds' prompt file

def _config(prompt_file, **kwargs):
    """test_rounds' small round (five prompts, one unreadable), one fixed sample, four training steps."""
    return test_rounds._config(prompt_file, **{"seed": 3, "n_fixed_samples": 1,
                                         "training": TrainingConfig(steps=4, lr=1e-2, batch_size=2), **kwargs})


def _adapter(run_dir):
    files = sorted((run_dir / "adapter").glob("*.safetensors"))
    return load_file(str(files[0]))


def _cancel_at(stage, step=1):
    cancel = threading.Event()

    def callback(event):
        if event.stage == stage and event.step >= step:
            cancel.set()

    return cancel, callback


def _records(run_dir):
    return [{k: v for k, v in r.items() if not k.startswith("time")} for r in read_jsonl(run_dir / "records.jsonl")]


def test_a_round_killed_in_training_continues_without_generating_or_judging_again(tmp_path, prompt_file):
    reference = run_round(FakeBackend(), _config(prompt_file), tmp_path / "reference")

    backend = FakeBackend()
    stages = checkpoint_dir(tmp_path / "run")
    cancel, callback = _cancel_at("train", 2)
    with pytest.raises(Cancelled):
        run_round(backend, _config(prompt_file), tmp_path / "run", callback=callback, cancel=cancel,
                  checkpoint=stages)
    assert not (tmp_path / "run").exists()
    assert StageCheckpoint(stages, json.loads((stages / "round.json").read_text())).stages() == [
        "evaluate_before", "generate", "judge"]
    generated = backend.calls["generate"]

    result = run_round(backend, _config(prompt_file), tmp_path / "run", checkpoint=stages)
    # Only the fixed "after" samples are generated again: the round's images come from the checkpoint.
    assert backend.calls["generate"] - generated == 1
    assert not stages.exists()  # removed once the run folder is written
    assert result.n_samples == reference.n_samples
    for name, value in _adapter(tmp_path / "reference").items():
        np.testing.assert_allclose(_adapter(tmp_path / "run")[name], value, rtol=1e-5, atol=1e-6)
    assert _records(tmp_path / "run") == _records(tmp_path / "reference")


def test_a_round_killed_in_its_last_evaluation_does_not_train_again(tmp_path, prompt_file):
    config = _config(prompt_file, eval_split="val", eval_n_prompts=1)
    reference = run_round(FakeBackend(), config, tmp_path / "reference")

    class Kill(Exception):
        pass

    seen = {"trained": False}

    def kill_in_the_evaluation_after_training(event):
        if event.stage == "train" and event.step == event.total:
            seen["trained"] = True
        elif event.stage == "evaluate" and seen["trained"]:
            raise Kill

    backend = FakeBackend()
    stages = checkpoint_dir(tmp_path / "run")
    with pytest.raises(Kill):
        run_round(backend, config, tmp_path / "run", callback=kill_in_the_evaluation_after_training,
                  checkpoint=stages)
    assert "train" in StageCheckpoint(stages, json.loads((stages / "round.json").read_text())).stages()
    trained = backend.calls["token_losses"]
    result = run_round(backend, config, tmp_path / "run", checkpoint=stages)
    assert backend.calls["token_losses"] == trained  # the trained weights came from the checkpoint
    for name, value in _adapter(tmp_path / "reference").items():
        np.testing.assert_allclose(_adapter(tmp_path / "run")[name], value, rtol=1e-5, atol=1e-6)
    assert result.eval_after.overall.n == reference.eval_after.overall.n
    assert result.eval_before.to_dict() == reference.eval_before.to_dict()


def test_a_drawn_seed_is_reused_and_other_settings_are_refused(tmp_path, prompt_file):
    backend = FakeBackend()
    stages = checkpoint_dir(tmp_path / "run")
    cancel, callback = _cancel_at("train", 1)
    with pytest.raises(Cancelled):
        run_round(backend, _config(prompt_file, seed=None), tmp_path / "run", callback=callback, cancel=cancel,
                  checkpoint=stages)
    drawn = json.loads((stages / "round.json").read_text())["config"]["seed"]
    with pytest.raises(ValueError, match="another round .*n_prompts"):
        run_round(backend, _config(prompt_file, seed=None, n_prompts=3), tmp_path / "run", checkpoint=stages)
    assert stages.is_dir()  # the refused round touched nothing
    result = run_round(backend, _config(prompt_file, seed=None), tmp_path / "run", checkpoint=stages)
    assert result.seed == drawn


def test_a_round_without_a_completed_stage_leaves_no_checkpoint(tmp_path, prompt_file):
    cancel, callback = _cancel_at("generate", 0)
    cancel.set()
    with pytest.raises(Cancelled):
        run_round(FakeBackend(), _config(prompt_file), tmp_path / "run", callback=callback, cancel=cancel,
                  checkpoint=checkpoint_dir(tmp_path / "run"))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["prompts.jsonl"]
