"""``round`` and ``eval`` under ``accelerate launch`` with two CPU processes (gloo), on a tiny random sandbox model.

accelerate's ``--cpu --num_processes 2`` starts a single process unless MPI is installed, so two CPU processes
are launched the torchrun way (``--multi_gpu``) with ``ACCELERATE_USE_CPU=1`` and no visible GPU.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from srum_core.cli import main
from srum_core.runs import read_jsonl

ROOT = Path(__file__).resolve().parents[1]
ROUND_ARGS = [
    "--backend", "sandbox", "--prompts", "train", "--n-prompts", "6", "--steps", "3", "--lr", "1e-3",
    "--lam", "0.5", "--map", "released", "--grid", "bilinear", "--lora-rank", "4", "--seed", "5",
    "--gen-steps", "4", "--train-batch-size", "4", "--eval-n-prompts", "1", "--category", "single",
    "--category", "spatial", "--device", "cpu",
]  # fmt: skip


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _launch(args: list[str]) -> subprocess.CompletedProcess:
    env = {
        **os.environ,
        "ACCELERATE_USE_CPU": "1",
        "CUDA_VISIBLE_DEVICES": "",
        "OMP_NUM_THREADS": "1",
        "HF_HUB_OFFLINE": "1",
        "PYTHONPATH": str(ROOT),
    }
    cmd = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        "--num_machines", "1", "--mixed_precision", "no", "--dynamo_backend", "no",
        "--main_process_port", str(_free_port()), "-m", "srum_core", *args,
    ]  # fmt: skip
    return subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def tiny_weights(tmp_path_factory):
    from srum_core.backends.sandbox import SandboxBackend

    folder = tmp_path_factory.mktemp("tiny-umm")
    SandboxBackend.from_random(0, tiny=True).model.save_pretrained(str(folder))
    return folder


def test_round_and_eval_under_two_processes_match_one_process(tmp_path, tiny_weights):
    two = tmp_path / "two"
    done = _launch(["round", *ROUND_ARGS, "--model", str(tiny_weights), "--out", str(two)])
    assert done.returncode == 0, done.stderr[-3000:]
    assert "2 process(es)" in (two / "round.log").read_text()
    assert done.stdout.count("written to") == 1  # only the main process reports
    assert [p.name for p in tmp_path.iterdir()] == ["two"]  # one folder, no staging left behind

    # The same round in one process: identical images and judgements (generation and scoring were split, then
    # gathered in order); training noise differs per process, so the adapters are not compared bit for bit.
    one = tmp_path / "one"
    from srum_core.backends import sandbox

    sandbox._CACHE.clear()
    try:
        assert main(["round", *ROUND_ARGS, "--model", str(tiny_weights), "--out", str(one)]) == 0
    finally:
        sandbox._CACHE.clear()  # the cached model now carries a LoRA adapter; keep it out of other tests
    for name in sorted(p.name for p in (one / "images").glob("*.png")):
        assert (one / "images" / name).read_bytes() == (two / "images" / name).read_bytes()
    assert read_jsonl(one / "records.jsonl") == read_jsonl(two / "records.jsonl")
    assert len(read_jsonl(two / "records.jsonl")) == 6

    results = tmp_path / "eval.json"
    done = _launch(["eval", "--backend", "sandbox", "--model", str(tiny_weights), "--run", str(two), "--split", "val",
                    "--category", "single", "--n-prompts", "3", "--seed", "0", "--gen-steps", "4", "--device", "cpu",
                    "--out", str(results)])  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    data = json.loads(results.read_text())
    assert data["overall"]["n"] == 3 and len(data["items"]) == 3
    assert [item["seed"] for item in data["items"]] == [0, 1, 2]
