"""The referee: right on clean renders, fooled by no near miss, tolerant of a small generator's blur and noise."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image, ImageFilter

from srum_core.world.prompts import compose, make_prompts, parse_prompt, perturb_spec
from srum_core.world.referee import detect, verify
from srum_core.world.render import render_scene, render_spec
from srum_core.world.spec import BACKGROUND, COLORS, IMAGE_SIZE, SHAPES, TEXTURES, ObjectSpec, PlacedObject, Scene


def _degrade(img: Image.Image, rng: np.random.Generator) -> np.ndarray:
    """Gaussian blur of radius 1 plus noise of sigma 10/255, like a small generator's output."""
    arr = np.asarray(img.filter(ImageFilter.GaussianBlur(1.0))).astype(np.float64)
    return np.clip(arr + rng.normal(0.0, 10.0, arr.shape), 0, 255).astype(np.uint8)


@pytest.fixture(scope="module")
def rendered():
    specs = make_prompts("train", None, 175, seed=21) + make_prompts("val", None, 175, seed=21)
    rng = np.random.default_rng(0)
    return [(spec, render_spec(spec, rng)[0]) for spec in specs]


def test_clean_renders_pass_and_near_misses_fail(rendered):
    rng = np.random.default_rng(1)
    passed = sum(verify(img, spec).passed for spec, img in rendered)
    rejected = sum(not verify(img, perturb_spec(spec, rng)).passed for spec, img in rendered)
    n = len(rendered)
    assert {spec.category for spec, _ in rendered} == {
        "single", "color", "shape", "texture", "spatial", "numeracy", "complex"
    }  # fmt: skip
    assert passed / n >= 0.99, f"{passed}/{n} clean renders passed"
    assert rejected / n >= 0.99, f"{rejected}/{n} near misses rejected"


def test_blurred_noisy_renders_still_pass(rendered):
    rng = np.random.default_rng(2)
    passed = sum(verify(_degrade(img, rng), spec).passed for spec, img in rendered)
    assert passed / len(rendered) >= 0.95, f"{passed}/{len(rendered)} degraded renders passed"


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("texture", TEXTURES)
def test_every_attribute_is_read_on_small_objects(shape, texture):
    rng = np.random.default_rng(3)
    for color in COLORS:
        obj = PlacedObject(shape, color, "small", texture, cx=20.3, cy=33.7, radius=4.6)
        for img in (render_scene(Scene((obj,))), _degrade(render_scene(Scene((obj,))), rng)):
            (d,) = detect(img)
            assert (d.shape, d.color, d.texture, d.size) == (shape, color, texture, "small")
            assert abs(d.center[0] - 20.3) <= 1.0 and abs(d.center[1] - 33.7) <= 1.0


def test_detection_geometry_on_a_known_square():
    obj = PlacedObject("square", "yellow", "large", "solid", cx=40.0, cy=20.0, radius=10.0)
    (d,) = detect(render_scene(Scene((obj,))))
    assert d.box == obj.box == (30, 10, 50, 30)
    assert d.center == (40.0, 20.0) and d.area == 400 and d.size == "large"


def test_blank_canvas_and_grey_smudges_hold_no_objects():
    blank = np.full((IMAGE_SIZE, IMAGE_SIZE, 3), BACKGROUND, dtype=np.uint8)
    assert detect(blank) == []
    blank[10:30, 10:30] = (90, 90, 90)  # dark but colourless
    assert detect(blank) == []
    verdict = verify(blank, parse_prompt("a red circle"))
    assert not verdict.passed and verdict.checks == {"count: a red circle": False, "no extra objects": True}


def test_verdict_names_what_went_wrong_and_serialises():
    spec = compose([ObjectSpec("circle", "red"), ObjectSpec("square", "blue")], (0, "left of", 1))
    scene = Scene(
        (
            PlacedObject("circle", "red", "large", "solid", cx=45.0, cy=32.0, radius=9.0),
            PlacedObject("square", "blue", "large", "solid", cx=15.0, cy=32.0, radius=9.0),
            PlacedObject("triangle", "green", "small", "solid", cx=30.0, cy=55.0, radius=5.0),
        )
    )
    verdict = verify(render_scene(scene), spec)
    assert not verdict.passed
    assert verdict.checks == {
        "count: a red circle": True,
        "count: a blue square": True,
        "relation: a red circle left of a blue square": False,
        "no extra objects": False,
    }
    assert "green triangle" in verdict.notes
    data = json.loads(json.dumps(verdict.to_dict()))
    assert data["passed"] is False and len(data["detections"]) == 3
    # The same scene without the distractor satisfies the flipped relation.
    flipped = compose(spec.objects, (0, "right of", 1))
    assert verify(render_scene(Scene(scene.objects[:2])), flipped).passed


def test_relation_needs_a_clear_offset():
    spec = parse_prompt("a red circle above a blue circle")
    diagonal = Scene(
        (
            PlacedObject("circle", "red", "small", "solid", cx=10.0, cy=25.0, radius=5.0),
            PlacedObject("circle", "blue", "small", "solid", cx=50.0, cy=35.0, radius=5.0),
        )
    )
    # Higher, but mostly beside it: not "above" (offset within 60 degrees of the axis is required).
    assert not verify(render_scene(diagonal), spec).passed


# --------------------------------------------------------------------------------------------------------------
# the `prompts` and `verify` commands


def _cli(argv, capsys):
    from srum_core.cli import main

    code = main(argv)
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_prompts_command_prints_json_lines(capsys):
    code, out, _ = _cli(["prompts", "--backend", "sandbox", "--split", "val", "--category", "spatial", "--n", "4",
                         "--seed", "3"], capsys)  # fmt: skip
    assert code == 0
    rows = [json.loads(line) for line in out.splitlines()]
    assert len(rows) == 4 and all(r["split"] == "val" and r["category"] == "spatial" for r in rows)
    assert [r["prompt"] for r in rows] == [s.text for s in make_prompts("val", "spatial", 4, 3)]
    assert parse_prompt(rows[0]["prompt"]).to_dict() == rows[0]["spec"]
    code, _, err = _cli(["prompts", "--split", "nope"], capsys)
    assert code == 2 and "train, eval, val" in err  # the backend's own prompt sets
    code, _, err = _cli(["prompts", "--backend", "janus"], capsys)
    assert code == 2 and "needs a model" in err
    code, _, err = _cli(["prompts", "--category", "colour"], capsys)
    assert code == 2 and "numeracy" in err


def test_verify_command_writes_verdicts_and_summary(tmp_path, capsys):
    rng = np.random.default_rng(5)
    good = parse_prompt("two red circles")
    img, _ = render_spec(good, rng)
    img.save(tmp_path / "000.png")
    img.save(tmp_path / "001.png")
    img.save(tmp_path / "002.png")
    lines = [
        {"prompt": "two red circles", "seed": 0, "file": "000.png", "settings": {}, "backend": "sandbox"},
        {"prompt": "three red circles", "seed": 1, "file": "001.png", "settings": {}, "backend": "sandbox"},
        {"prompt": "a photo of a dog", "seed": 2, "file": "002.png", "settings": {}, "backend": "sandbox"},
    ]
    (tmp_path / "generation.jsonl").write_text("".join(json.dumps(x) + "\n" for x in lines))
    out_file = tmp_path / "verdicts.jsonl"
    code, out, _ = _cli(["verify", "--images", str(tmp_path), "--out", str(out_file)], capsys)
    assert code == 0
    rows = [json.loads(line) for line in out_file.read_text().splitlines()]
    assert [r["passed"] for r in rows] == [True, False, None]
    assert rows[0]["category"] == "numeracy" and len(rows[0]["detected"]) == 2 and rows[0]["file"] == "000.png"
    assert "grammar" in rows[2]["error"]
    assert "numeracy       2       1     0.500" in out and "1 image(s)" in out
    code, _, err = _cli(["verify", "--images", str(tmp_path), "--out", str(out_file)], capsys)
    assert code == 2 and "--force" in err
    assert _cli(["verify", "--images", str(tmp_path), "--out", str(out_file), "--force"], capsys)[0] == 0
    (tmp_path / "001.png").unlink()
    code, _, err = _cli(["verify", "--images", str(tmp_path), "--out", str(tmp_path / "v2.jsonl")], capsys)
    assert code == 2 and "001.png" in err and not (tmp_path / "v2.jsonl").exists()
    code, _, err = _cli(["verify", "--images", str(tmp_path / "nowhere"), "--out", str(tmp_path / "v3.jsonl")], capsys)
    assert code == 2 and "generation.jsonl" in err


def test_touching_objects_of_neighbouring_colours_are_split_but_one_object_is_not():
    touching = Scene(
        (
            PlacedObject("square", "red", "large", "solid", cx=20.0, cy=32.0, radius=9.0),
            PlacedObject("square", "yellow", "large", "solid", cx=38.0, cy=32.0, radius=9.0),
        )
    )
    found = detect(render_scene(touching))
    assert [(d.color, d.shape, d.box) for d in found] == [
        ("red", "square", (11, 23, 29, 41)),
        ("yellow", "square", (29, 23, 47, 41)),
    ]
    # A colour cast that puts one yellow square near the red/yellow border still gives one object.
    single = np.asarray(render_scene(Scene(touching.objects[1:]))).astype(np.float64)
    obj = np.all(single == COLORS["yellow"], axis=-1)
    single[obj] = (240, 150, 20)  # hue 35 deg, between red (0) and yellow (54)
    rng = np.random.default_rng(0)
    noisy = np.clip(single + rng.normal(0, 10, single.shape), 0, 255).astype(np.uint8)
    (d,) = detect(noisy)
    assert d.shape == "square" and d.color in ("red", "yellow")
