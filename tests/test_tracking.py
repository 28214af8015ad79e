"""--track: a round and an evaluation written to a local trackio project and read back (in a subprocess, since
trackio reads TRACKIO_DIR at import)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("trackio", reason="trackio is optional: pip install trackio==0.43.0 (requirements-dev.txt)")
ROOT = Path(__file__).resolve().parents[1]

SCRIPT = r"""
import json, sys
from srum_core.tracking import log_evaluation, log_round_folder
from trackio.sqlite_storage import SQLiteStorage
results = json.loads(open(sys.argv[1]).read())
ev = log_evaluation(results, sys.argv[2], project="srum-test")
rd = log_round_folder(sys.argv[3], project="srum-test")
logs = {name: SQLiteStorage.get_logs("srum-test", name) for name in SQLiteStorage.get_runs("srum-test")}
print("RESULT" + json.dumps({"ev": ev, "rd": rd, "logs": logs}, default=str))
"""


def test_an_evaluation_and_a_round_land_in_a_local_trackio_project(tmp_path):
    from srum_core.config import GenerationConfig, TrainingConfig
    from srum_core.eval_runs import EvaluationConfig, run_evaluation, states_for
    from srum_core.rounds import RoundConfig, run_round
    from tests.test_ui_api import tiny_backend

    gen = GenerationConfig(steps=2, batch_size=4, mode="plain")
    backend = tiny_backend()
    run = tmp_path / "r1"
    run_round(
        backend,
        RoundConfig(
            prompts="train",
            n_prompts=2,
            seed=1,
            generation=gen,
            eval_split=None,
            n_fixed_samples=1,
            training=TrainingConfig(steps=2, batch_size=2),
        ),
        run,
    )
    results = run_evaluation(
        backend,
        states_for([run]),
        EvaluationConfig(eval_set="eval", categories=("color",), n_per_category=2),
        tmp_path / "ev",
        generation=gen,
    )
    (tmp_path / "results.json").write_text(json.dumps(results))
    env = {**os.environ, "TRACKIO_DIR": str(tmp_path / "trackio"), "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path / "results.json"), str(tmp_path / "ev"), str(run)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    out = json.loads(done.stdout.split("RESULT", 1)[1])
    ev = out["logs"][out["ev"]]
    assert [r["step"] for r in ev if "eval/overall/score" in r] == [0, 1]
    assert ev[0]["eval/overall/score"] == pytest.approx(results["per_state"]["base"]["overall"]["score"])
    assert "agreement/raw_agreement" in ev[1]
    steps = [r for r in out["logs"][out["rd"]] if "train/loss" in r]
    assert len(steps) == 2 and all(r["train/loss"] > 0 for r in steps)
    assert (tmp_path / "trackio").is_dir()
