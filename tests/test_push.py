"""Hub push, offline: the dry run writes exactly what would be uploaded, with a model card that says what it is."""

from __future__ import annotations

import json

import pytest

from srum_core.cli import main
from srum_core.config import GenerationConfig, RewardConfig, TrainingConfig
from srum_core.hub import build_model_card, push_run
from srum_core.rounds import RoundConfig, run_round
from tests.fakes import FakeBackend


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    root = tmp_path_factory.mktemp("push")
    prompts = root / "p.json"
    prompts.write_text(json.dumps(["a red circle", "a blue square", "UNREADABLE", "a green triangle"]))

    def referee(image, item):  # evaluation needs a referee; a fixed one keeps the card's numbers predictable
        return True

    import srum_core.rounds as rounds

    original = rounds.evaluate

    def evaluate_with_fixed_referee(*args, **kwargs):
        return original(*args, **{**kwargs, "referee": referee})

    rounds.evaluate = evaluate_with_fixed_referee
    try:
        config = RoundConfig(
            prompts=str(prompts),
            n_prompts=4,
            seed=2,
            generation=GenerationConfig(steps=2),
            reward=RewardConfig(mode="signed", grid="area"),
            training=TrainingConfig(steps=2, lam=0.3, lora_rank=4),
            eval_split="val",
            eval_n_prompts=1,
            eval_categories=("single", "color"),
            n_fixed_samples=2,
        )
        run_round(FakeBackend(), config, root / "run")
    finally:
        rounds.evaluate = original
    return root / "run"


def test_model_card_says_how_and_what(run_dir):
    card = build_model_card(run_dir, "me/srum-test")
    assert card.startswith("---\ntags:") and "library_name: peft" in card
    assert "# me/srum-test" in card
    assert "mode `signed`, token grid `area`" in card
    assert "| λ (constraint weight) | 0.3 |" in card
    assert "LoRA rank 4" in card and "`fake`" in card
    assert "- a red circle" in card and "- UNREADABLE" in card
    assert "left out because the global judgement could not be read: 1" in card
    # before/after table: one row overall plus one per evaluated category, referee at 100% (fixed referee)
    rows = [line for line in card.splitlines() if line.startswith("| overall |") or line.startswith("| single |")]
    assert len(rows) == 2
    for row in rows:
        cells = [c.strip() for c in row.strip("|").split("|")]
        assert cells[1:3] == ["100.0%", "100.0%"]  # referee before, after
    assert rows[0].endswith("| 2 |") and rows[1].endswith("| 1 |")  # images counted
    assert "Does the arrangement" in card  # the judge's question


def test_dry_run_writes_the_upload_folder_and_sends_nothing(run_dir, tmp_path, monkeypatch):
    import huggingface_hub

    def no_network(*args, **kwargs):
        raise AssertionError("a dry run must not reach the Hub")

    monkeypatch.setattr(huggingface_hub.HfApi, "upload_folder", no_network)
    monkeypatch.setattr(huggingface_hub.HfApi, "create_repo", no_network)
    result = push_run(run_dir, "me/srum-test", dry_run_dir=tmp_path / "preview")
    assert result.url is None
    files = set(result.files)
    for expected in (
        "README.md",
        "adapter/adapter_model.safetensors",
        "adapter/adapter_config.json",
        "config.json",
        "metrics.jsonl",
        "eval.json",
        "round.log",
        "records.jsonl",
        "training_records.jsonl",
        "samples/before_00.png",
        "samples/after_01.png",
        "images/0000.png",
        "images/generation.jsonl",
    ):
        assert expected in files
    assert (tmp_path / "preview" / "README.md").read_text() == build_model_card(run_dir, "me/srum-test")
    with pytest.raises(FileExistsError):
        push_run(run_dir, "me/srum-test", dry_run_dir=tmp_path / "preview")
    with pytest.raises(ValueError, match="user-or-org/name"):
        push_run(run_dir, "no-slash", dry_run_dir=tmp_path / "other")


def test_push_cli_dry_run_and_missing_token(run_dir, tmp_path, monkeypatch, capsys):
    assert main(["push", str(run_dir), "--repo-id", "me/x", "--dry-run", str(tmp_path / "p")]) == 0
    assert "nothing uploaded" in capsys.readouterr().out
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "get_token", lambda: None)
    assert main(["push", str(run_dir), "--repo-id", "me/x"]) == 2
    assert "hf auth login" in capsys.readouterr().err


def test_model_card_of_a_gated_round_counts_what_the_gate_left_out(tmp_path):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(["a red circle", "a blue square", "UNREADABLE", "a green triangle"]))
    config = RoundConfig(
        prompts=str(prompts), n_prompts=4, seed=2, generation=GenerationConfig(steps=2),
        training=TrainingConfig(steps=1, lora_rank=4), eval_split=None, n_fixed_samples=0, gate=0.0,
    )  # fmt: skip
    result = run_round(FakeBackend(), config, tmp_path / "run")
    card = build_model_card(tmp_path / "run", "me/srum-gated")
    gated = result.summary["n_gated_out"]
    assert f"trained on: {result.n_trained};" in card
    assert f"left out by the gate (global score ≤ 0.0): {gated}" in card
    assert result.n_trained + gated + 1 == 4


def test_model_card_lists_each_prompt_once_when_drawn_several_times(tmp_path):
    prompts = tmp_path / "p.json"
    prompts.write_text(json.dumps(["a red circle", "a blue square"]))
    config = RoundConfig(
        prompts=str(prompts), n_prompts=2, images_per_prompt=3, seed=2, generation=GenerationConfig(steps=2),
        training=TrainingConfig(steps=1, lora_rank=4), eval_split=None, n_fixed_samples=0,
    )  # fmt: skip
    run_round(FakeBackend(), config, tmp_path / "run")
    card = build_model_card(tmp_path / "run", "me/srum-k")
    assert card.count("- a red circle") == 1 and card.count("- a blue square") == 1
    assert "2 prompts × 3 image(s)" in card
