"""One validation per parameter, in the configs: whole numbers stay whole, NaN and infinities are refused, one
seed per round, and records over the limits are refused before any map is built."""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from srum_core.config import GenerationConfig, JudgeConfig, TrainingConfig, check_float, check_int
from srum_core.limits import MAX_IMAGE_SIDE, MAX_PROMPT_CHARS, MAX_RECORD_REGIONS, MAX_SEED
from srum_core.params import ROUND_PARAMS, preset_values, round_config
from srum_core.records import load_records, records_to_reports
from srum_core.rounds import RoundConfig
from srum_core.runs import OWNER_FILE, clean_stale_staging, history_inside, inside_root, staging_dir

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.parametrize(
    ("value", "expected"),
    [(3, 3), (3.0, 3), (0, 0)],
)
def test_check_int_accepts_whole_numbers(value, expected):
    result = check_int(value, "n", 0, 10)
    assert result == expected and isinstance(result, int)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (2.5, "n=2.5: give a whole number from 0 to 10, not a fraction"),
        (math.nan, "n=nan"),
        (math.inf, "n=inf"),
        (True, "n=True"),
        ("3", "n='3'"),
        (11, "n=11: give a whole number from 0 to 10"),
        (-1, "n=-1"),
        (10**30, "n=1000000000000000000000000000000"),
    ],
)
def test_check_int_refuses_without_coercing(value, message):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")) as info:
        check_int(value, "n", 0, 10)
    assert "\n" not in str(info.value)


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, None, "x", True])
def test_check_float_refuses_non_finite_and_non_numbers(value):
    with pytest.raises(ValueError, match="give a finite number"):
        check_float(value, "x", 0.0, 1.0)


def test_configs_validate_types_and_keep_whole_numbers_as_ints():
    assert GenerationConfig(steps=4.0).steps == 4 and isinstance(GenerationConfig(steps=4.0).steps, int)
    with pytest.raises(ValueError, match="steps=2.7"):
        GenerationConfig(steps=2.7)
    with pytest.raises(ValueError, match="guidance=nan"):
        GenerationConfig(guidance=math.nan)
    with pytest.raises(ValueError, match="lr=inf"):
        TrainingConfig(lr=math.inf)
    with pytest.raises(ValueError, match="lora_rank=2.5"):
        TrainingConfig(lora_rank=2.5)
    with pytest.raises(ValueError, match="max_regions=0"):
        JudgeConfig(max_regions=0)


def test_round_seed_is_checked_and_is_the_only_seed():
    with pytest.raises(ValueError, match="seed=-1"):
        RoundConfig(seed=-1)
    with pytest.raises(ValueError, match=f"seed={10**30}"):
        RoundConfig(seed=10**30)
    with pytest.raises(ValueError, match="seed=1.5"):
        RoundConfig(seed=1.5)
    assert RoundConfig(seed=MAX_SEED).seed == MAX_SEED
    with pytest.raises(ValueError, match="a round has one seed"):
        RoundConfig(seed=3, training=TrainingConfig(seed=4))
    with pytest.raises(ValueError, match="images_per_prompt=0"):
        RoundConfig(images_per_prompt=0)
    with pytest.raises(ValueError, match="gate=nan"):
        RoundConfig(gate=math.nan)


def test_params_take_defaults_and_help_from_the_configs_and_presets_from_the_registry():
    assert ROUND_PARAMS["training.lr"].default == TrainingConfig().lr
    assert ROUND_PARAMS["n_prompts"].default == RoundConfig().n_prompts
    assert ROUND_PARAMS["training.steps"].help and ROUND_PARAMS["seed"].help
    config = round_config({"training.steps": 3, "seed": 7}, preset="cpu-quick", eval_split=None)
    assert config.training.steps == 3 and config.seed == 7  # a given value wins over the preset
    assert config.training.lr == preset_values("cpu-quick")["training.lr"]  # the preset wins over the default
    assert round_config({}).training.lr == TrainingConfig().lr
    with pytest.raises(ValueError, match="preset 'nope' is unknown"):
        round_config({}, preset="nope")


def _scoring(regions=1, size=64, prompt="a red circle") -> str:
    rewards = [{"identified_object": "x", "score": 0.5, "bbox": [0, 0, 4, 4]} for _ in range(regions)]
    glob = {"global_layout_score": 0.5, "bbox": [0, 0, size, size]}
    return json.dumps({"image_file": "a.png", "prompt": prompt, "vlm_rewards": rewards, "global_layout_reward": glob})


def test_records_over_the_limits_are_bad_lines_with_the_limit_named(tmp_path):
    path = tmp_path / "r.jsonl"
    lines = [
        _scoring(),
        _scoring(regions=MAX_RECORD_REGIONS + 1),
        _scoring(size=MAX_IMAGE_SIDE + 1),
        _scoring(prompt="p" * (MAX_PROMPT_CHARS + 1)),
        "[" * 100_000 + "]" * 100_000,
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    loaded = load_records(path)
    assert [n for n, _ in loaded.records] == [1]
    reasons = {bad.line: bad.reason for bad in loaded.bad_lines}
    assert f"at most {MAX_RECORD_REGIONS} per record" in reasons[2]
    assert f"larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}" in reasons[3]
    assert f"at most {MAX_PROMPT_CHARS}" in reasons[4]
    assert "nested too deeply" in reasons[5]
    reports, bad = records_to_reports(loaded.records, (MAX_IMAGE_SIDE * 2, 8))
    assert reports == [] and "larger than" in bad[0].reason


def test_only_the_staging_folders_of_dead_processes_are_cleaned(tmp_path):
    alive = staging_dir(tmp_path / "ui" / "s1" / "round-01")
    dead = staging_dir(tmp_path / "round-02")
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    owner = json.loads((dead / OWNER_FILE).read_text())
    (dead / OWNER_FILE).write_text(json.dumps({**owner, "pid": child.pid}))
    elsewhere = staging_dir(tmp_path / "round-03")
    (elsewhere / OWNER_FILE).write_text(json.dumps({**owner, "host": "another-host", "pid": child.pid}))
    old = tmp_path / ".round-04.partial-old"
    old.mkdir()
    os.utime(old, (time.time() - 3 * 24 * 3600,) * 2)
    removed = clean_stale_staging(tmp_path)
    assert sorted(removed) == sorted([dead, old])
    assert alive.is_dir() and elsewhere.is_dir()


def test_paths_and_resume_links_must_stay_inside_the_runs_root(tmp_path):
    root, outside = tmp_path / "runs", tmp_path / "elsewhere"
    (root / "a").mkdir(parents=True)
    outside.mkdir()
    (root / "link").symlink_to(outside)
    assert inside_root(root, root / "a") == (root / "a").resolve()
    for path in (root / "link", root / ".." / "elsewhere", outside):
        with pytest.raises(ValueError, match="not under the runs root"):
            inside_root(root, path)
    # A run inside the root whose resumed_from points outside it cannot be followed.
    (root / "b").mkdir()
    (outside / "config.json").write_text(json.dumps({"round": 1}))
    (root / "b" / "config.json").write_text(json.dumps({"round": 2, "resumed_from": str(outside)}))
    with pytest.raises(ValueError, match="resumes from a folder outside the runs root"):
        history_inside(root, root / "b")


def test_generate_cli_refuses_an_empty_prompt_and_a_bad_seed(capsys):
    from srum_core.cli import main

    for argv, message in (
        (["--prompt", "  "], "prompt is empty"),
        (["--prompt", "a red circle", "--seed", "-1"], "seed=-1"),
        (["--prompt", "a red circle", "--seed", "1.5"], "seed=1.5"),
        (["--prompt", "a red circle", "--n", "0"], "n=0"),
    ):
        assert main(["generate", "--backend", "sandbox", "--out", "unused", *argv]) == 2
        err = capsys.readouterr().err.strip()
        assert message in err and len(err.splitlines()) == 1


def test_a_killed_round_leaves_the_previous_run_intact(tmp_path):
    """Kill a round's process (SIGKILL) while it trains: the run it resumed from is untouched byte for byte, no
    run folder appears, and no staging folder is left once stale ones are cleaned."""
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(["a red circle", "a blue square"]))
    script = tmp_path / "round.py"
    script.write_text(
        "import sys\n"
        "from srum_core.commands import round_cmd\n"
        "from tests.fakes import FakeBackend\n"
        "round_cmd.load_backend = lambda *a, **k: FakeBackend()\n"
        "from srum_core.cli import main\n"
        "sys.exit(main(sys.argv[1:]))\n"
    )
    common = ["-v", "round", "--backend", "fake", "--prompts", str(prompts), "--n-prompts", "2", "--gen-steps", "1",
              "--eval-split", "none", "--seed", "1", "--lr", "0.01"]  # fmt: skip
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    first = subprocess.run(
        [sys.executable, str(script), *common, "--steps", "1", "--out", str(tmp_path / "r1")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert first.returncode == 0, first.stderr
    before = {p.relative_to(tmp_path / "r1"): p.read_bytes() for p in (tmp_path / "r1").rglob("*") if p.is_file()}

    long_round = subprocess.Popen(
        [sys.executable, str(script), *common, "--steps", "100000", "--resume", str(tmp_path / "r1"),
         "--out", str(tmp_path / "r2")],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    log: list[str] = []
    reader = threading.Thread(target=lambda: log.extend(long_round.stderr), daemon=True)
    reader.start()
    try:
        deadline = time.monotonic() + 240
        # The round logs "judged N images" just before it starts training.
        while time.monotonic() < deadline and long_round.poll() is None and not any("judged" in x for x in log):
            time.sleep(0.2)
        assert long_round.poll() is None, "the round ended before it could be killed: " + "".join(log)[-2000:]
        assert any("judged" in x for x in log), "the round never reached training"
    finally:
        long_round.send_signal(signal.SIGKILL)
        long_round.wait(timeout=60)
    assert not (tmp_path / "r2").exists()
    after = {p.relative_to(tmp_path / "r1"): p.read_bytes() for p in (tmp_path / "r1").rglob("*") if p.is_file()}
    assert after == before  # the previous state, byte for byte
    clean_stale_staging(tmp_path)
    assert not list(tmp_path.glob(".r2.partial-*"))
    # The killed round kept its completed stages; a round with other settings over them is refused, naming them.
    stages = tmp_path / ".r2.stages"
    assert (stages / "generate.pkl").is_file() and (stages / "judge.pkl").is_file()
    refused = subprocess.run(
        [sys.executable, str(script), *common, "--steps", "1", "--resume", str(tmp_path / "r1"),
         "--out", str(tmp_path / "r2")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert refused.returncode == 2 and "different config.training.steps" in refused.stderr
    shutil.rmtree(stages)
    # The next round resumes from the intact run.
    again = subprocess.run(
        [sys.executable, str(script), *common, "--steps", "1", "--resume", str(tmp_path / "r1"),
         "--out", str(tmp_path / "r2")],
        env=env, capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert again.returncode == 0, again.stderr
