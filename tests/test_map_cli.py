"""``python -m srum_core map`` reproduces SRUM_SPEC's numbers and fails clearly on bad input."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from srum_core.cli import main as cli_main


def main(argv):
    return cli_main(["map", *argv])


ROOT = Path(__file__).resolve().parents[1]


def write(path, rows):
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in rows))
    return path


def scoring(image_file="img.png", g=0.95, regions=((0, 0, 16, 16, 0.95),), size=(32, 32)):
    return {
        "image_file": image_file,
        "prompt": "a red car",
        "vlm_rewards": [
            {"identified_object": "car", "score": s, "reason": "", "bbox": [x1, y1, x2, y2], "area": 0}
            for x1, y1, x2, y2, s in regions
        ],
        "global_layout_reward": {"global_layout_score": g, "reason": "", "bbox": [0, 0, *size], "area": 0},
    }


def test_map_reproduces_spec_numbers(tmp_path, capsys):
    records = write(tmp_path / "r.jsonl", [scoring(), "broken line", scoring(g=None), scoring(g=-1.0)])
    out = tmp_path / "maps.npz"
    assert (
        main([str(records), "--mode", "released", "--grid", "bilinear", "--token-size", "16", "--out", str(out)]) == 0
    )
    err = capsys.readouterr().err
    assert "line 2" in err and "line 3" in err  # the bad line and the unreadable global are both reported
    data = np.load(out)
    assert sorted(data.files) == ["line_numbers", "pixel_0", "pixel_1", "token_0", "token_1"]
    assert data["line_numbers"].tolist() == [1, 4]
    p0 = data["pixel_0"]
    assert p0.dtype == np.float32 and p0.shape == (32, 32)
    assert p0[0, 0] == pytest.approx(0.950625) and p0[31, 31] == pytest.approx(0.4875)
    assert data["token_0"].shape == (2, 2)
    assert data["token_0"].flatten().tolist() == pytest.approx([0.950625, 0.4875, 0.4875, 0.4875])
    assert np.all(data["pixel_1"] == 0.0)  # g = -1


def test_map_area_grid_explicit_size_and_overlay(tmp_path):
    Image.new("RGB", (64, 32), (200, 200, 200)).save(tmp_path / "img.png")
    records = write(tmp_path / "r.jsonl", [scoring(regions=((0, 0, 2, 16, 1.0),), size=(10, 10))])
    out = tmp_path / "m.npz"
    rc = main(
        [
            str(records),
            "--grid",
            "area",
            "--token-size",
            "16",
            "--size",
            "64x32",
            "--out",
            str(out),
            "--overlay",
            str(tmp_path / "ov"),
        ]
    )
    assert rc == 0
    data = np.load(out)
    assert data["pixel_0"].shape == (32, 64) and data["token_0"].shape == (2, 4)
    assert data["token_0"][0, 0] > 0.4875  # the thin box still counts under area averaging
    overlay = Image.open(tmp_path / "ov" / "overlay_0.png")
    assert overlay.size == (64, 32)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["missing.jsonl", "--out", "o.npz"], "does not exist"),
        (["r.jsonl", "--out", "o.txt"], ".npz"),
        (["empty.jsonl", "--out", "o.npz"], "no usable records"),
        (["r.jsonl", "--out", "o.npz", "--token-size", "12"], "does not tile"),
    ],
)
def test_map_bad_input_exits_nonzero_with_one_line(tmp_path, argv, message, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    write(tmp_path / "r.jsonl", [scoring()])
    write(tmp_path / "empty.jsonl", ["garbage"])
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("error:") and message in err[-1]


def test_map_refuses_to_overwrite(tmp_path, capsys):
    records = write(tmp_path / "r.jsonl", [scoring()])
    out = tmp_path / "o.npz"
    out.write_bytes(b"keep me")
    assert main([str(records), "--out", str(out)]) == 2
    assert out.read_bytes() == b"keep me"
    assert main([str(records), "--out", str(out), "--force"]) == 0


def test_cli_help_and_bad_flags_run_as_a_module():
    help_text = subprocess.run(
        [sys.executable, "-m", "srum_core", "map", "--help"], capture_output=True, text=True, cwd=ROOT, check=True
    ).stdout
    for flag in ("--mode", "--grid", "--token-size", "--size", "--out", "--overlay"):
        assert flag in help_text
    bad = subprocess.run(
        [sys.executable, "-m", "srum_core", "map", "x.jsonl", "--mode", "nope", "--out", "o.npz"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert bad.returncode != 0 and "invalid choice" in bad.stderr
