"""The Workbench, headless: a demo launched on a free port, driven through gradio_client by api_name.

generate → score → train_round → compare → undo, two visitors who must not see each other's rounds, and every
bad input the issue lists, each answered with a clear message while the session keeps its state.
"""

from __future__ import annotations

import json
import shutil
import socket
import time
from pathlib import Path

import numpy as np
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from srum_core.runs import read_run
from workbench.app import build_demo
from workbench.state import Engine
from workbench.tabs import ENGINE_QUEUE
from workbench.tabs.train import NO_PRESET

PUBLIC = {
    "/generate", "/score", "/train_round", "/cancel_round", "/undo", "/history", "/compare",
    "/list_runs", "/show_run", "/load_run", "/import_records", "/load_recipe",
}  # fmt: skip
SCORE_ARGS = ("self-grounding", "", "crop", 10, "bilinear", None, None, "released", "pixel")


def tiny_backend():
    """The tiny random sandbox, its zero-initialised (adaLN-zero) layers given small random weights: otherwise
    LoRA on the trunk gets exactly zero gradient and a round could never change an image."""
    import torch

    from srum_core.backends.sandbox import SandboxBackend

    backend = SandboxBackend.from_random(seed=0, tiny=True)
    generator = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for param in backend.trainable_module().parameters():
            if not param.any():
                param.copy_(0.05 * torch.randn(param.shape, generator=generator))
    return backend


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    engine = Engine(tiny_backend(), runs_root=tmp_path_factory.mktemp("runs"), max_queue=8)
    demo = build_demo(engine)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        yield engine, demo, url
    finally:
        demo.close()


@pytest.fixture
def client(served):
    """A fresh visitor (its own session) for each test."""
    return Client(served[2], verbose=False)


def image_bytes(value) -> bytes:
    path = value["image"] if isinstance(value, dict) else value
    return Path(path).read_bytes()


def heatmap_z(plot) -> np.ndarray:
    """The reward values drawn in a gr.Plot output (the heatmap trace over the image)."""
    import base64

    trace = next(t for t in json.loads(plot["plot"])["data"] if t["type"] == "heatmap")
    z = trace["z"]
    if isinstance(z, dict):  # plotly's binary array encoding: {"dtype", "bdata" (base64), "shape": "rows, cols"}
        shape = tuple(int(v) for v in str(z["shape"]).split(","))
        return np.frombuffer(base64.b64decode(z["bdata"]), dtype=z["dtype"]).reshape(shape).astype(float)
    return np.asarray(z, dtype=float)


def generate(client, prompt="a red circle", seed=3, steps=4, guidance=3.0):
    return client.predict(prompt, seed, steps, guidance, api_name="/generate")


def score(client, **changes):
    args = dict(zip(
        ("source", "boxes", "view", "max_regions", "grid", "global_tpl", "region_tpl", "mode", "map_view"), SCORE_ARGS
    ))  # fmt: skip
    args.update(changes)
    from srum_core.config import DEFAULT_GLOBAL_TEMPLATE, DEFAULT_REGION_TEMPLATE

    args["global_tpl"] = args["global_tpl"] or DEFAULT_GLOBAL_TEMPLATE
    args["region_tpl"] = args["region_tpl"] or DEFAULT_REGION_TEMPLATE
    return client.predict(*args.values(), api_name="/score")


def train(client, n_prompts=2, steps=2, lr=5e-3, seed=1, **changes):
    args = {
        "set": "train", "file": None, "categories": [], "n_prompts": n_prompts, "steps": steps, "gen_steps": 4,
        "lr": lr, "lam": 0.5, "mode": "released", "rank": 4, "seed": seed, "eval": 0, "images_per_prompt": 1,
        "gate": "", "preset": NO_PRESET,  # LoRA at the config defaults, not the sandbox's full fine-tuning recipe
    }  # fmt: skip
    args.update(changes)
    return client.predict(*args.values(), api_name="/train_round")


def history_rows(client):
    return client.predict(api_name="/history")["data"]


def test_public_api_names_and_private_helpers(served, client):
    _, demo, _ = served
    named = set(client.view_api(return_format="dict", print_info=False)["named_endpoints"])
    assert PUBLIC <= named
    assert not named & {"/pick_row", "/pick_box", "/redraw_mode", "/score_after_generate", "/load_example"}
    # Every event that touches the backend shares one queue group, and the queue is bounded.
    heavy = {fn.api_name: fn.concurrency_id for fn in demo.fns.values()}
    for name in ("generate", "score", "train_round", "compare", "undo", "load_run", "score_after_generate"):
        assert heavy[name] == ENGINE_QUEUE, name
    assert demo._queue.max_size == 8


def test_generate_score_train_compare_undo(served, client):
    engine, _, _ = served
    image, seed_used = generate(client, seed=5)
    assert seed_used == 5
    again, _ = generate(client, seed=5)
    assert image_bytes(image) == image_bytes(again)  # same prompt and seed → same image

    annotated, table, global_md, notices, heatmap, raw, = score(client)
    assert "Global score g =" in global_md
    assert len(annotated["annotations"]) == len(table["data"])
    assert "[global]" in raw
    assert heatmap_z(heatmap).shape == (64, 64)  # pixel view: one value per pixel
    token_z = heatmap_z(score(client, map_view="token")[4])
    assert token_z.shape == (4, 4)  # token view: the 4×4 grid of 16-pixel tokens
    assert float(token_z.min()) >= 0.0 and float(token_z.max()) <= 1.0  # released maps lie in [0, 1]

    status, *_plots, history, _undo = train(client)
    assert "Round 1 done" in status
    assert [row[0] for row in history["data"]] == [0, 1] and history["data"][1][2] == "✓"
    run_dir = engine.runs_root / history["data"][1][1]
    assert run_dir.is_dir()
    assert (run_dir / "adapter").is_dir() and (run_dir / "records.jsonl").is_file()

    slider, verdicts, before, after, deltas, grid = client.predict(
        "a red circle", 5, "1", 1, 4, 3.0, api_name="/compare"
    )
    assert "round 1" in verdicts and "Referee" in verdicts
    assert deltas["data"][0][0] == "global"
    assert len(slider) == 2 and len(grid) == 2
    # The base side of the comparison is the base model's image at that seed.
    assert image_bytes(slider[0]) != b""

    rows = client.predict(api_name="/list_runs")["data"]
    relative = str(run_dir.relative_to(engine.runs_root))
    assert relative in [row[0] for row in rows]
    # The round's own SRUM records, drawn over its images, without uploading anything.
    text, plot = client.predict(None, 0, "released", "token", relative, api_name="/import_records")
    assert "records read, 0 bad lines" in text and heatmap_z(plot).shape == (4, 4)

    status, *_plots, history, _undo = client.predict("base", api_name="/undo")
    assert "base model" in status and [row[0] for row in history["data"]] == [0]
    back, _ = generate(client, seed=5)
    assert image_bytes(back) == image_bytes(image)  # undo restores the exact base outputs


def test_two_visitors_never_share_a_round(served):
    url = served[2]
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    bob_before, _ = generate(bob, seed=9)
    alice_before, _ = generate(alice, seed=9)
    train(alice, lr=5e-2, steps=3)
    assert len(history_rows(alice)) == 2
    assert len(history_rows(bob)) == 1  # bob sees only his own (empty) history
    bob_after, _ = generate(bob, seed=9)
    assert image_bytes(bob_after) == image_bytes(bob_before)  # alice's adapter never reaches bob
    alice_after, _ = generate(alice, seed=9)
    assert image_bytes(alice_after) != image_bytes(alice_before)  # while alice's own images did change


def test_visitors_train_at_their_own_lora_rank(served):
    url = served[2]
    alice, bob = Client(url, verbose=False), Client(url, verbose=False)
    status, *_ = train(alice, lr=5e-2, steps=3, rank=4)
    assert "Round 1 done" in status
    alice_trained, _ = generate(alice, seed=6)
    status, *_ = train(bob, lr=5e-2, steps=3, rank=2, seed=2)  # another rank on the same shared backend
    assert "Round 1 done" in status
    assert image_bytes(generate(alice, seed=6)[0]) == image_bytes(alice_trained)  # alice's rank-4 adapter is back
    with pytest.raises(AppError, match="same rank"):  # a session's next round continues its adapter
        train(bob, rank=8)
    status, *_ = train(bob, lr=5e-2, steps=3, rank=2, seed=3)
    assert "Round 2 done" in status


def test_the_recipe_preset_and_lora_visitors_share_one_backend(served):
    """The sandbox's default recipe fully fine-tunes the generation expert; a LoRA visitor on the same backend
    gets the base model back first, and each visitor's own weights come back for their next request."""
    engine, _, url = served
    base = image_bytes(generate(Client(url, verbose=False), seed=7)[0])
    full, lora = Client(url, verbose=False), Client(url, verbose=False)
    status, *_ = train(full, lr=5e-2, steps=3, preset="sandbox-srum", gen_mode="think", train_part="gen")
    assert "Round 1 done" in status
    tuned = image_bytes(generate(full, seed=7)[0])
    assert tuned != base
    assert image_bytes(generate(lora, seed=7)[0]) == base  # a new visitor sees the base model
    status, *_ = train(lora, lr=5e-2, steps=3, rank=2, seed=2)
    assert "Round 1 done" in status
    assert image_bytes(generate(full, seed=7)[0]) == tuned  # the full fine-tune is back for its visitor
    configs = [read_run(p.parent).config for p in Path(engine.runs_root).rglob("config.json")]
    recipe = [c for c in configs if c.get("training", {}).get("full_finetune")]
    assert recipe and all(c["generation"]["mode"] == "think" and c["training"]["steps"] == 3 for c in recipe)


@pytest.mark.parametrize(
    ("prompt", "message"),
    [("", "prompt is empty"), ("   \n ", "prompt is empty"), ("a" * 10_000, "shorten it")],
)
def test_bad_prompts_are_refused_clearly(client, prompt, message):
    with pytest.raises(AppError, match=message):
        generate(client, prompt=prompt)


def test_out_of_range_values_through_the_api(client):
    with pytest.raises(AppError, match="greater than maximum"):
        generate(client, steps=1000)
    with pytest.raises(AppError, match="seed"):
        generate(client, seed=-5)
    with pytest.raises(AppError, match="generate one first"):
        score(client)
    generate(client)
    with pytest.raises(AppError, match="box 1"):
        score(client, source="user", boxes="[[10, 10, 5, 5]]")
    with pytest.raises(AppError, match="not in the list of choices"):
        score(client, source="no-such-source")


def test_prompt_without_objects_gets_a_global_only_reward_and_a_notice(client):
    generate(client, prompt="the red and the blue, large and striped")
    _annotated, table, _g, notices, _heatmap, _raw = score(client)
    assert "no recognisable objects" in notices
    assert table["data"] == [] or all(row[0] is None for row in table["data"])


def test_round_with_zero_prompts_is_refused_and_nothing_changes(client):
    with pytest.raises(AppError, match="n_prompts=0: give a whole number from 1"):
        train(client, n_prompts=0)
    assert len(history_rows(client)) == 1


def test_round_with_images_per_prompt_and_a_gate(served, client):
    engine, _, _ = served
    with pytest.raises(AppError, match="not a number"):
        train(client, images_per_prompt=1, gate="high")
    with pytest.raises(AppError, match=r"gate=1.5"):
        train(client, images_per_prompt=1, gate="1.5")
    with pytest.raises(AppError, match="more than this UI generates"):
        train(client, n_prompts=300, images_per_prompt=2, gate="")
    assert len(history_rows(client)) == 1  # refused rounds change nothing
    status, *_plots, history, _undo = train(client, images_per_prompt=2, gate="0")
    assert "Round 1 done" in status
    info = read_run(engine.runs_root / history["data"][1][1])
    assert info.config["images_per_prompt"] == 2 and info.config["gate"] == 0.0
    assert info.summary["n_samples"] == 4
    assert info.summary["n_trained"] + info.summary["n_gated_out"] == info.summary["n_trainable"]


def test_malformed_jsonl_import_is_refused_and_a_partly_bad_one_keeps_the_good_lines(served, client, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"image_file": "x.png", "prompt": \n{not json\n', encoding="utf-8")
    with pytest.raises(AppError, match="no usable SRUM record"):
        client.predict(handle_file(str(bad)), 0, "released", "pixel", api_name="/import_records")
    good_line = (
        '{"image_file": "a.png", "prompt": "a red circle", "vlm_rewards": [{"identified_object": "red circle", '
        '"score": 0.5, "reason": "ok", "bbox": [8, 8, 32, 32], "area": 576}], "global_layout_reward": '
        '{"global_layout_score": 0.5, "reason": "ok", "bbox": [0, 0, 64, 64], "area": 4096}}'
    )
    mixed = tmp_path / "mixed.jsonl"
    mixed.write_text(good_line + "\nnot json at all\n", encoding="utf-8")
    text, figure, = client.predict(handle_file(str(mixed)), 0, "released", "token", api_name="/import_records")
    assert "1 records read, 1 bad lines" in text and figure is not None


def test_corrupt_adapter_is_refused_and_the_session_keeps_its_state(served, client):
    engine, _, _ = served
    train(client, seed=4)
    rows = history_rows(client)
    assert len(rows) == 2
    before, _ = generate(client, seed=2)
    source = engine.runs_root / rows[1][1]
    broken = engine.runs_root / "broken-run"
    shutil.copytree(source, broken)
    (broken / "adapter" / "adapter_model.safetensors").write_bytes(b"this is not a safetensors file")
    with pytest.raises(AppError, match="could not load run broken-run: its adapter is unreadable"):
        client.predict("broken-run", api_name="/load_run")
    assert history_rows(client) == rows  # the session still points at its own round
    after, _ = generate(client, seed=2)
    assert image_bytes(after) == image_bytes(before)
    with pytest.raises(AppError, match="not under the runs root"):
        client.predict("../../etc", api_name="/load_run")
    # A healthy run loads, from the list that the Runs tab shows.
    message = client.predict(str(source.relative_to(engine.runs_root)), api_name="/load_run")
    assert "Loaded" in message


def test_cancel_leaves_the_session_where_it_was(served, client):
    job = client.submit(
        "train", None, [], 2, 400, 4, 1e-3, 0.5, "released", 4, 8, 0, api_name="/train_round"
    )
    deadline = time.monotonic() + 60
    cancelled = False
    while time.monotonic() < deadline and not job.done():
        status = client.predict(api_name="/cancel_round")
        if status.startswith("Cancelling"):
            cancelled = True
            break
        time.sleep(0.2)
    assert cancelled, "the round finished before it could be cancelled"
    outputs = job.result(timeout=120)
    assert "cancelled" in outputs[0]
    assert len(history_rows(client)) == 1


def test_gpu_wrapper_is_a_no_op_without_spaces_and_uses_spaces_gpu_with_it(monkeypatch):
    import sys
    import types

    from workbench import space

    def double(x):
        return 2 * x

    monkeypatch.setitem(sys.modules, "spaces", None)  # makes `import spaces` fail, as on a machine without it
    assert space.gpu(30)(double) is double
    asked = []
    fake = types.ModuleType("spaces")
    fake.GPU = lambda duration: (asked.append(duration), lambda fn: ("wrapped", fn))[1]
    monkeypatch.setitem(sys.modules, "spaces", fake)
    assert space.gpu(90)(double) == ("wrapped", double) and asked == [90]
    with pytest.raises(ValueError, match="positive"):
        space.gpu(0)


def test_importing_app_loads_nothing():
    import subprocess
    import sys

    code = (
        "import sys, app\n"
        "assert 'srum_core.backends.sandbox' not in sys.modules and 'gradio' not in sys.modules\n"
        "assert app.parse_args(['--port', '7000']).port == 7000\n"
    )
    subprocess.run([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[1], check=True, timeout=60)


def test_a_recipe_loaded_in_the_train_tab_runs_with_every_one_of_its_settings(served, client, tmp_path):
    import yaml

    engine = served[0]
    recipe = {
        "backend": "sandbox", "prompts": {"source": "train", "n_prompts": 2},
        "generation": {"steps": 3, "mode": "plain"}, "map": {"mode": "released", "grid": "area"},
        "training": {"steps": 2, "lr": 0.01, "batch_size": 2, "warmup_steps": 1, "lora_rank": 4},
        "round": {"seed": 4, "n_fixed_samples": 1}, "evaluation": {"split": None},
    }  # fmt: skip
    path = tmp_path / "recipe.yaml"
    path.write_text(yaml.safe_dump(recipe), encoding="utf-8")
    status, *values = client.predict(handle_file(str(path)), api_name="/load_recipe")
    assert "recipe.yaml loaded" in status
    named = dict(zip(("set", "file", "categories", "n_prompts", "steps", "gen_steps", "lr", "lam", "mode", "rank",
                      "seed", "eval"), values))  # fmt: skip
    assert (named["n_prompts"], named["steps"], named["gen_steps"], named["rank"], named["seed"]) == (2, 2, 3, 4, 4)
    assert named["eval"] == 0 and named["mode"] == "released"
    before = set(Path(engine.runs_root).rglob("config.json"))
    status, *_ = client.predict(*values, api_name="/train_round")
    assert "Round 1 done" in status
    (config_file,) = set(Path(engine.runs_root).rglob("config.json")) - before
    config = read_run(config_file.parent).config
    # the settings the tab shows no field for came from the recipe, not from the config defaults
    assert config["training"]["warmup_steps"] == 1 and config["training"]["batch_size"] == 2
    assert config["reward"]["grid"] == "area" and config["generation"]["mode"] == "plain"
    assert config["seed"] == 4

    other = tmp_path / "other.yaml"
    other.write_text(yaml.safe_dump({**recipe, "backend": "bagel"}), encoding="utf-8")
    with pytest.raises(AppError, match="recipe is for backend 'bagel'"):
        client.predict(handle_file(str(other)), api_name="/load_recipe")
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**recipe, "training": {"stepz": 2}}), encoding="utf-8")
    with pytest.raises(AppError, match="unknown key"):
        client.predict(handle_file(str(bad)), api_name="/load_recipe")
