"""Recipes as files: validated against the typed configs, run by ``round --recipe``, written into the run folder
(and read back equal), refused with a one-line reason when wrong; ``--dry-run`` plans without loading a model."""

from __future__ import annotations

import json

import pytest
import yaml

from srum_core import cli
from srum_core.commands import round_cmd
from srum_core.recipes import RECIPE_FILE, load_recipe, plan, recipe_from_dict, write_recipe
from tests.test_ui_api import tiny_backend

RECIPE = {
    "backend": "sandbox",
    "prompts": {"source": "train", "n_prompts": 4},
    "generation": {"steps": 3, "batch_size": 4, "mode": "plain"},
    "judge": {"max_regions": 4},
    "map": {"mode": "released", "grid": "area"},
    "training": {"steps": 2, "lr": 0.01, "batch_size": 2},
    "round": {"seed": 5, "n_fixed_samples": 1},
    "evaluation": {"split": None},
}


@pytest.fixture
def recipe_file(tmp_path):
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(RECIPE), encoding="utf-8")
    return path


def test_a_recipe_runs_and_its_run_folder_holds_the_same_recipe(recipe_file, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(round_cmd, "load_backend", lambda *a, **k: tiny_backend())
    out = tmp_path / "r1"
    assert cli.main(["round", "--recipe", str(recipe_file), "--out", str(out)]) == 0
    written = load_recipe(out / RECIPE_FILE)
    assert written.to_dict() == load_recipe(recipe_file).to_dict()
    config = json.loads((out / "config.json").read_text())["round_config"]
    assert config["n_prompts"] == 4 and config["training"]["steps"] == 2 and config["reward"]["grid"] == "area"
    assert config["seed"] == 5 and config["generation"]["mode"] == "plain"
    assert "round 1 written" in capsys.readouterr().out


def test_round_trip_through_yaml_and_json(tmp_path):
    recipe = recipe_from_dict(RECIPE)
    for name in ("a.yaml", "a.json"):
        assert load_recipe(write_recipe(recipe, tmp_path / name)).to_dict() == recipe.to_dict()
    full = recipe.to_dict()
    assert full["training"]["lam"] == 0.5 and full["generation"]["guidance"] == 3.0  # defaults spelled out


@pytest.mark.parametrize(
    "change, message",
    [
        ({"trainig": {}}, "unknown key"),
        ({"training": {"stepz": 3}}, "section 'training': unknown key"),
        ({"training": {"lr": -1}}, "lr=-1"),
        ({"map": {"mode": "nope"}}, "choose one of released"),
        ({"training": {"seed": 3}}, "the seed is the round's"),
        ({"backend": ""}, "name the backend"),
    ],
)
def test_a_bad_recipe_is_refused_with_what_to_fix(change, message):
    with pytest.raises(ValueError, match=message):
        recipe_from_dict({**RECIPE, **change})


def test_flags_beside_a_recipe_are_refused_and_dry_run_loads_nothing(recipe_file, tmp_path, monkeypatch, capsys):
    def no_model(*args, **kwargs):
        raise AssertionError("a dry run must not load the backend")

    monkeypatch.setattr(round_cmd, "load_backend", no_model)
    assert cli.main(["round", "--recipe", str(recipe_file), "--steps", "9", "--out", str(tmp_path / "x")]) == 2
    assert "drop --steps" in capsys.readouterr().err.replace("training.steps", "--steps")
    assert cli.main(["round", "--recipe", str(recipe_file), "--dry-run"]) == 0
    text = capsys.readouterr().out
    assert "recipe valid: backend sandbox" in text and "generate  images 4" in text and "optimiser_steps 2" in text
    assert not (tmp_path / "x").exists()
    # the same plan from flags alone
    assert cli.main(["round", "--backend", "sandbox", "--n-prompts", "8", "--dry-run"]) == 0
    assert "images 8" in capsys.readouterr().out


def test_plan_counts_and_measured_seconds():
    steps = plan(recipe_from_dict({**RECIPE, "backend": "bagel", "generation": {"device": "cuda"}}))
    assert steps["stages"][0]["images"] == 4 and steps["stages"][1]["calls_at_most"] == 4 * 5
    assert steps["seconds_generating"] == pytest.approx(2.9 * steps["images_generated"])
    assert plan(recipe_from_dict(RECIPE))["seconds_generating"] is None


def test_the_recipes_evaluation_judge_scores_the_round_and_evaluate_recipe_repeats_it(tmp_path, monkeypatch,
                                                                                      capsys):
    monkeypatch.setattr(round_cmd, "load_backend", lambda *a, **k: tiny_backend())
    recipe = {**RECIPE, "evaluation": {"split": None, "n_prompts": 1, "seeds": [0], "categories": ["color", "numeracy"],
                                       "judge": {"kind": "referee"}, "set": "eval"}}
    path = tmp_path / "recipe.json"
    path.write_text(json.dumps(recipe), encoding="utf-8")
    assert recipe_from_dict(recipe).to_dict()["evaluation"]["judge"]["kind"] == "referee"
    assert load_recipe(write_recipe(recipe_from_dict(recipe), tmp_path / "again.yaml")).to_dict() == \
        recipe_from_dict(recipe).to_dict()

    run = tmp_path / "r1"
    assert cli.main(["round", "--recipe", str(path), "--out", str(run)]) == 0
    assert "independent evaluation written" in capsys.readouterr().out
    inside = json.loads((run / "evaluation" / "results.json").read_text())
    assert list(inside["per_state"]) == ["base", "round1"] and inside["eval_set"] == "eval"
    assert inside["judge"].startswith("referee") and set(inside["per_state"]["base"]["per_category"]) == {
        "color", "numeracy"}

    # the same evaluation, for the same run folder, from the recipe alone: the same items, the same scores
    assert cli.main(["evaluate", "--recipe", str(path), "--run", str(run), "--out", str(tmp_path / "ev")]) == 0
    again = json.loads((tmp_path / "ev" / "results.json").read_text())
    for state in ("base", "round1"):
        assert again["per_state"][state]["overall"]["n"] == inside["per_state"][state]["overall"]["n"]
        assert again["per_state"][state]["overall"]["score"] == pytest.approx(
            inside["per_state"][state]["overall"]["score"], abs=1e-6)

    wrong = tmp_path / "wrong.json"
    wrong.write_text(json.dumps({**recipe, "evaluation": {**recipe["evaluation"], "categories": ["count"]}}))
    assert cli.main(["round", "--recipe", str(wrong), "--out", str(tmp_path / "w")]) == 2
    assert "unknown categories ['count']" in capsys.readouterr().err and not (tmp_path / "w").exists()
    assert cli.main(["evaluate", "--recipe", str(path), "--eval-judge", "vlm", "--out", str(tmp_path / "x")]) == 2
    assert "drop --eval-judge" in capsys.readouterr().err
    assert cli.main(["evaluate", "--recipe", str(tmp_path / "none.yaml"), "--out", str(tmp_path / "x")]) == 2
    no_judge = tmp_path / "plain.json"
    no_judge.write_text(json.dumps(RECIPE), encoding="utf-8")
    assert cli.main(["evaluate", "--recipe", str(no_judge), "--out", str(tmp_path / "x")]) == 2
    assert "names no evaluation.judge" in capsys.readouterr().err
    with pytest.raises(ValueError, match="evaluation.judge: unknown key"):
        recipe_from_dict({**RECIPE, "evaluation": {"judge": {"kind": "referee", "modle": "x"}}})
    with pytest.raises(ValueError, match="needs judge.model"):
        recipe_from_dict({**RECIPE, "evaluation": {"judge": {"kind": "vlm"}}})
