"""Bad inputs, through the API (gradio_client, and raw JSON for NaN/Infinity) and the CLI.

Every case asserts the one-line message the visitor gets and that the app still answers afterwards. The cases
include every one issue 17 lists: records with thousands of regions, huge declared image sizes and prompts,
Show on every listed run, format-string templates, bad training values, temporary copies and symlinks, stale
staging folders, other visitors' runs, ``resumed_from`` outside the runs root, silent coercions, NaN/Infinity
as raw JSON, and the CLI's empty prompt, negative seed and deeply nested JSON.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError

from srum_core.cli import main
from srum_core.commands import round_cmd
from srum_core.config import DEFAULT_GLOBAL_TEMPLATE, DEFAULT_REGION_TEMPLATE, GenerationConfig, TrainingConfig
from srum_core.limits import MAX_IMAGE_SIDE, MAX_PROMPT_CHARS, MAX_RECORD_REGIONS, MAX_TEMPLATE_CHARS, MAX_UPLOAD_BYTES
from srum_core.rounds import RoundConfig, run_round
from srum_core.runs import OWNER_FILE, staging_dir
from tests.fakes import FakeBackend
from tests.test_ui_api import free_port, heatmap_z, tiny_backend
from workbench.app import LAUNCH_OPTIONS, build_demo
from workbench.state import UI_DIR, Engine

SECRET = "SECRET-OUTSIDE-CONTENT"
RANK = 4  # every round in this module uses the same LoRA rank (the shared backend keeps the first one)


def scoring_line(regions: int = 1, size: tuple[int, int] = (64, 64), prompt: str = "a red circle") -> str:
    rewards = [
        {"identified_object": f"object {i}", "score": 0.5, "bbox": [i % 60, i % 50, i % 60 + 4, i % 50 + 4]}
        for i in range(regions)
    ]
    glob = {"global_layout_score": 0.5, "reason": "ok", "bbox": [0, 0, *size]}
    return json.dumps({"image_file": "a.png", "prompt": prompt, "vlm_rewards": rewards, "global_layout_reward": glob})


def dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    """A served Workbench whose runs root holds a shared run, runs that must never be listed, and a stale
    staging folder; plus alice, a visitor with one round of her own."""
    base = tmp_path_factory.mktemp("bad-inputs")
    root, outside = base / "runs", base / "outside"
    outside.mkdir()
    (outside / "secret.jsonl").write_text(SECRET + "\n", encoding="utf-8")
    config = RoundConfig(
        prompts="train", n_prompts=2, seed=1, generation=GenerationConfig(steps=2),
        training=TrainingConfig(steps=1, batch_size=2, lora_rank=RANK), eval_split=None, n_fixed_samples=0,
    )  # fmt: skip
    shared = root / "cli" / "r1"
    run_round(tiny_backend(), config, shared)
    shutil.copytree(shared, outside / "r-outside")
    # A run resuming from a folder outside the root, a folder linking out of it, a run whose records link out.
    shutil.copytree(shared, root / "resumes-outside")
    meta = json.loads((root / "resumes-outside" / "config.json").read_text())
    meta.update(round=2, resumed_from=str(outside / "r-outside"))
    (root / "resumes-outside" / "config.json").write_text(json.dumps(meta))
    (root / "link-out").symlink_to(outside / "r-outside")
    shutil.copytree(shared, root / "linked-records")
    (root / "linked-records" / "records.jsonl").unlink()
    (root / "linked-records" / "records.jsonl").symlink_to(outside / "secret.jsonl")
    shutil.copytree(shared, root / "huge-records")
    with (root / "huge-records" / "records.jsonl").open("a") as handle:
        handle.write("\n" * (MAX_UPLOAD_BYTES + 1))
    # Another visitor's round, and a half-written round of a process that was killed.
    shutil.copytree(shared, root / UI_DIR / "someone-else" / "round-01")
    stale = staging_dir(root / "cli" / "r9")
    owner = json.loads((stale / OWNER_FILE).read_text())
    (stale / OWNER_FILE).write_text(json.dumps({**owner, "pid": dead_pid()}))

    engine = Engine(tiny_backend(), runs_root=root, max_queue=8)
    demo = build_demo(engine)
    _, url, _ = demo.launch(
        prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True, **LAUNCH_OPTIONS
    )
    alice = Client(url, verbose=False)
    status = train(alice)[0]
    assert "Round 1 done" in status
    try:
        yield {"engine": engine, "demo": demo, "url": url, "alice": alice, "stale": stale, "outside": outside}
    finally:
        demo.close()


@pytest.fixture
def client(app):
    return Client(app["url"], verbose=False)


def train(client, **changes):
    args = {
        "prompt_set": "train", "prompts_file": None, "categories": [], "n_prompts": 2, "steps": 1, "gen_steps": 2,
        "lr": 1e-3, "lam": 0.5, "map_mode": "released", "lora_rank": RANK, "seed": 1, "eval_prompts": 0,
        "images_per_prompt": 1, "gate": "",
    }  # fmt: skip
    args.update(changes)
    return client.predict(*args.values(), api_name="/train_round")


def generate(client, prompt="a red circle", seed=3, steps=2, guidance=3.0):
    return client.predict(prompt, seed, steps, guidance, api_name="/generate")


def score(client, **changes):
    args = {
        "source": "self-grounding", "boxes": "", "view": "crop", "max_regions": 10, "grid": "bilinear",
        "global_tpl": DEFAULT_GLOBAL_TEMPLATE, "region_tpl": DEFAULT_REGION_TEMPLATE, "mode": "released",
        "map_view": "pixel",
    }  # fmt: skip
    args.update(changes)
    return client.predict(*args.values(), api_name="/score")


def compare(client, prompt="a red circle", seed=0, which="base", grid=0, steps=2, guidance=3.0):
    return client.predict(prompt, seed, which, grid, steps, guidance, api_name="/compare")


def import_records(client, upload=None, index=0, mode="released", view="pixel", run=""):
    return client.predict(upload, index, mode, view, run, api_name="/import_records")


def alive(client) -> None:
    """The app still answers this visitor: its history and the runs list come back."""
    assert client.predict(api_name="/history")["data"][0][0] == 0
    assert isinstance(client.predict(api_name="/list_runs")["data"], list)


def refused(client, message: str, call) -> str:
    """``call()`` fails with an AppError whose one-line message matches ``message``; the app still answers."""
    with pytest.raises(AppError) as info:
        call()
    text = str(info.value)
    assert re.search(message, text), text
    assert "Traceback" not in text and "\n" not in text.strip()
    alive(client)
    return text


def listed(client) -> list[str]:
    return [row[0] for row in client.predict(api_name="/list_runs")["data"]]


# --- generate / score --------------------------------------------------------------------------------------------

GENERATE_CASES = [
    ({"prompt": ""}, "prompt is empty"),
    ({"prompt": " \n\t "}, "prompt is empty"),
    ({"prompt": "a" * (MAX_PROMPT_CHARS + 1)}, f"at most {MAX_PROMPT_CHARS}"),
    ({"prompt": "a" * 50_000}, f"at most {MAX_PROMPT_CHARS}"),
    ({"seed": -1}, r"seed=-1: give a whole number from 0 to 2147483647"),
    ({"seed": 10**30}, "seed=1000000000000000000000000000000: give a whole number"),
    ({"seed": 1.5}, r"seed=1\.5: .*not a fraction"),
    ({"seed": 2**31}, "seed=2147483648:"),
    ({"steps": 2.5}, r"steps=2\.5: .*not a fraction"),
    ({"steps": 1000}, "greater than maximum"),
    ({"steps": 0}, "less than minimum"),
    ({"guidance": -1.0}, "less than minimum"),
]


@pytest.mark.parametrize(("changes", "message"), GENERATE_CASES)
def test_generate_refuses(client, changes, message):
    refused(client, message, lambda: generate(client, **changes))


def test_score_before_generating_is_refused(client):
    refused(client, "generate one first", lambda: score(client))


SCORE_CASES = [
    ({"global_tpl": "{prompt:>20000000}"}, r"\{prompt:>20000000\} is not a field; use only \{prompt\}"),
    ({"global_tpl": "{prompt.__class__.__mro__}"}, r"is not a field; use only \{prompt\}"),
    ({"global_tpl": "Is it {prompt}? {foo}"}, r"\{foo\} is not a field; use only \{prompt\}"),
    ({"global_tpl": "{0} {prompt}"}, r"\{0\} is not a field"),
    ({"global_tpl": "{prompt[0]}"}, "is not a field"),
    ({"global_tpl": "no field at all"}, r"must contain \{prompt\}"),
    ({"global_tpl": "{prompt} {"}, "lone"),
    ({"global_tpl": "{prompt}" + "x" * MAX_TEMPLATE_CHARS}, f"at most {MAX_TEMPLATE_CHARS}"),
    ({"region_tpl": "{prompt} {object.__dict__}"}, r"use only \{prompt\}, \{region\}, \{object\}"),
    ({"region_tpl": "{prompt} " * 9}, "at most 8"),
    ({"source": "user", "boxes": "[[10, 10, 5, 5]]"}, "box 1 .* is empty"),
    ({"source": "user", "boxes": "[[1, 2, 3]]"}, "give four numbers"),
    ({"source": "user", "boxes": "[[100, 100, 120, 120]]"}, "outside the 64x64 image"),
    ({"source": "user", "boxes": "[" + ",".join(["[1, 1, 5, 5]"] * 65) + "]"}, "at most 64"),
    ({"source": "user", "boxes": "[[1, 1, 5"}, "not valid JSON"),
    ({"max_regions": 2.5}, r"max_regions=2\.5"),
    ({"source": "no-such-source"}, "not in the list of choices"),
]


@pytest.mark.parametrize(("changes", "message"), SCORE_CASES)
def test_score_refuses(client, changes, message):
    generate(client)
    refused(client, message, lambda: score(client, **changes))


def test_a_template_is_filled_literally(client):
    generate(client)
    *_, raw = score(client, global_tpl="Does {{this}} show {prompt}?")
    assert "Does {this} show a red circle?" in raw


# --- train / undo ------------------------------------------------------------------------------------------------

TRAIN_CASES = [
    ({"n_prompts": 0}, "n_prompts=0: give a whole number from 1"),
    ({"n_prompts": 2.5}, r"n_prompts=2\.5"),
    ({"n_prompts": 10_000}, "this app's limit per round"),
    ({"steps": 2.7}, r"steps=2\.7: .*not a fraction"),
    ({"steps": -1}, "steps=-1"),
    ({"steps": 10_000}, "at most 1000 steps"),
    ({"seed": -1}, "seed=-1: give a whole number from 0 to 2147483647"),
    ({"seed": 10**30}, "seed=1000000000000000000000000000000"),
    ({"seed": 1.5}, r"seed=1\.5"),
    ({"lr": 0}, "lr=0"),
    ({"lr": 5.0}, "lr=5"),
    ({"images_per_prompt": 0}, "images_per_prompt=0"),
    ({"images_per_prompt": 1.5}, r"images_per_prompt=1\.5"),
    ({"n_prompts": 300, "images_per_prompt": 2}, "more than this UI generates"),
    ({"eval_prompts": 99}, "eval_prompts=99"),
    ({"gate": "high"}, "not a number"),
    ({"gate": "1.5"}, r"gate=1\.5"),
    ({"gate": "nan"}, "gate=nan"),
    ({"prompt_set": "file"}, "needs a JSONL/JSON file"),
    ({"map_mode": "nope"}, "not in the list of choices"),
]


@pytest.mark.parametrize(("changes", "message"), TRAIN_CASES)
def test_train_round_refuses_and_changes_nothing(client, changes, message):
    refused(client, message, lambda: train(client, **changes))
    assert len(client.predict(api_name="/history")["data"]) == 1  # no round was added


def test_a_bad_prompt_file_is_refused(client, tmp_path):
    long = tmp_path / "long.json"
    long.write_text(json.dumps(["a red circle", "x" * (MAX_PROMPT_CHARS + 1)]))
    refused(client, f"entry 2: the prompt is {MAX_PROMPT_CHARS + 1} characters", lambda: train(
        client, prompt_set="file", prompts_file=handle_file(str(long))
    ))  # fmt: skip
    few = tmp_path / "few.json"
    few.write_text(json.dumps(["a red circle"]))
    text = refused(client, "fewer than n_prompts=2", lambda: train(
        client, prompt_set="file", prompts_file=handle_file(str(few))
    ))  # fmt: skip
    assert str(tmp_path) not in text  # no server path in the message


@pytest.mark.parametrize("target", ["7", "x", "-1"])
def test_undo_without_rounds_is_refused(client, target):
    refused(client, "nothing to undo", lambda: client.predict(target, api_name="/undo"))


def test_undo_beyond_the_history_is_refused(app):
    alice = app["alice"]
    refused(alice, "choose 'base' or a round number from 1 to 1", lambda: alice.predict("5", api_name="/undo"))
    assert len(alice.predict(api_name="/history")["data"]) == 2


# --- compare -----------------------------------------------------------------------------------------------------

COMPARE_CASES = [
    ({"grid": 2.5}, r"seed grid size=2\.5"),
    ({"grid": 9}, "greater than maximum"),
    ({"seed": -3}, "seed=-3"),
    ({"seed": 2**31 - 1, "grid": 2}, "seed=2147483648"),
    ({"prompt": ""}, "prompt is empty"),
    ({"which": "7"}, "round=7"),
    ({"steps": 3.5}, r"steps=3\.5"),
]


@pytest.mark.parametrize(("changes", "message"), COMPARE_CASES)
def test_compare_refuses(client, changes, message):
    refused(client, message, lambda: compare(client, **changes))


# --- NaN and Infinity as raw JSON --------------------------------------------------------------------------------


def raw_call(app, api_name: str, values: list[str]) -> dict:
    """Send ``values`` (JSON literals, e.g. ``NaN``) to ``api_name`` as a browser would; the final message."""
    demo, url = app["demo"], app["url"]
    index, fn = next((i, f) for i, f in demo.fns.items() if f.api_name == api_name)
    literals = iter(values)
    data = ["null" if getattr(block, "stateful", False) else next(literals) for block in fn.inputs]
    session = uuid.uuid4().hex
    body = f'{{"data": [{", ".join(data)}], "fn_index": {index}, "session_hash": "{session}", "event_data": null}}'
    joined = httpx.post(f"{url}gradio_api/queue/join", content=body, headers={"content-type": "application/json"})
    assert joined.status_code == 200, joined.text
    with httpx.stream("GET", f"{url}gradio_api/queue/data?session_hash={session}", timeout=120) as stream:
        for line in stream.iter_lines():
            if line.startswith("data:"):
                message = json.loads(line[5:])
                if message.get("msg") == "process_completed":
                    return message
    raise AssertionError("no answer")


RAW_CASES = [
    ("generate", ['"a red circle"', "NaN", "2", "3.0", '"plain"'], "seed=nan"),
    ("generate", ['"a red circle"', "Infinity", "2", "3.0", '"plain"'], "seed=inf"),
    ("generate", ['"a red circle"', "0", "NaN", "3.0", '"plain"'], "steps=nan"),
    ("generate", ['"a red circle"', "0", "2", "NaN", '"plain"'], "guidance=nan"),
    ("compare", ['"a red circle"', "0", '"base"', "NaN", "2", "3.0"], "seed grid size=nan"),
    (
        "train_round",
        ['"train"', "null", "[]", "NaN", "1", "2", "0.001", "0.5", '"released"', str(RANK), "1", "0", "1", '""',
         "null", '"plain"', '"gen"'],
        "n_prompts=nan",
    ),
    (
        "train_round",
        ['"train"', "null", "[]", "2", "1", "2", "Infinity", "0.5", '"released"', str(RANK), "1", "0", "1", '""',
         "null", '"plain"', '"gen"'],
        "lr=inf",
    ),
]  # fmt: skip


@pytest.mark.parametrize(("api_name", "values", "message"), RAW_CASES)
def test_nan_and_infinity_as_raw_json_get_a_message(app, client, api_name, values, message):
    answer = raw_call(app, api_name, values)
    assert answer["success"] is False
    assert message in (answer["output"].get("error") or "")
    alive(client)


# --- runs: privacy, Show, Load, symlinks, stale folders --------------------------------------------------------


def test_show_and_load_work_for_every_listed_run_and_only_those(app, client):
    rows = listed(client)
    assert "cli/r1" in rows
    for hidden in ("resumes-outside", "link-out", f"{UI_DIR}/someone-else/round-01"):
        assert hidden not in rows
    for run in rows:
        config, details, files = client.predict(run, api_name="/show_run")
        assert config and "summary" in details
        names = sorted(Path(f).name for f in files)
        assert any(name.endswith("-card.md") for name in names) and any(name.endswith("adapter.zip") for name in names)
        assert "Loaded" in client.predict(run, api_name="/load_run")


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ("resumes-outside", "not one of the runs listed for you"),
        (f"{UI_DIR}/someone-else/round-01", "not one of the runs listed for you"),
        ("no-such-run", "not one of the runs listed for you"),
        ("", "no run chosen"),
        ("link-out", "not under the runs root"),
        ("../outside/r-outside", "not under the runs root"),
        ("/etc", "not under the runs root"),
    ],
)
@pytest.mark.parametrize("api_name", ["/show_run", "/load_run"])
def test_show_and_load_refuse_runs_not_listed(client, run, message, api_name):
    refused(client, message, lambda: client.predict(run, api_name=api_name))


def test_visitors_do_not_see_each_others_runs(app, client):
    alice = app["alice"]
    mine = [run for run in listed(alice) if run.startswith(UI_DIR + "/")]
    assert len(mine) == 1
    assert not [run for run in listed(client) if run.startswith(UI_DIR + "/")]
    refused(client, "not one of the runs listed for you", lambda: client.predict(mine[0], api_name="/load_run"))
    refused(client, "not one of the runs listed for you", lambda: import_records(client, run=mine[0]))
    config, _details, _files = alice.predict(mine[0], api_name="/show_run")
    assert config["n_prompts"] == 2


def test_show_keeps_one_copy_per_session(app, client):
    engine = app["engine"]
    for _ in range(3):
        client.predict("cli/r1", api_name="/show_run")
    folders = [p for p in engine.downloads_root.iterdir() if p.is_dir()]
    # One set per session: scoring and training records, metrics, the adapter zip and the card.
    assert folders and all(len(list(p.iterdir())) <= 5 for p in folders)


def test_records_linking_out_of_the_run_are_never_read(client):
    assert "linked-records" in listed(client)  # its adapter and config are fine
    text = refused(client, "not under the runs root", lambda: import_records(client, run="linked-records"))
    assert SECRET not in text
    _config, _details, files = client.predict("linked-records", api_name="/show_run")
    assert all(SECRET not in Path(f).read_text(errors="replace") for f in files if not f.endswith(".zip"))


def test_a_run_records_file_over_the_limit_is_refused_before_reading(client):
    refused(client, "this app reads at most 20.00 MiB", lambda: import_records(client, run="huge-records"))


def test_the_stale_staging_folder_was_removed_at_start(app):
    assert not app["stale"].exists()


# --- imported records: limits -------------------------------------------------------------------------------------


def write(tmp_path, *lines: str) -> str:
    path = tmp_path / f"{uuid.uuid4().hex[:8]}.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return handle_file(str(path))


IMPORT_CASES = [
    ([scoring_line(regions=20_000)], f"at most {MAX_RECORD_REGIONS} per record"),
    ([scoring_line(regions=200)], "200 regions"),
    ([scoring_line(size=(100_000, 100_000))], f"larger than {MAX_IMAGE_SIDE}x{MAX_IMAGE_SIDE}"),
    ([scoring_line(prompt="p" * 50_000)], f"at most {MAX_PROMPT_CHARS} are read"),
    (["[" * 50_000 + "]" * 50_000], "nested too deeply"),
    (["{not json"], "not valid JSON"),
    ([""], "the file is empty"),
    ([json.dumps({"image_file": "a.png", "prompt": "x", "vlm_rewards": "no"})], "vlm_rewards must be a list"),
    ([json.dumps({"hello": 1})], "not a SRUM record"),
]


@pytest.mark.parametrize(("lines", "message"), IMPORT_CASES)
def test_import_refuses_records_over_the_limits(client, tmp_path, lines, message):
    upload = write(tmp_path, *lines)
    refused(client, message, lambda: import_records(client, upload))


def test_import_of_a_large_declared_image_is_drawn_small(client, tmp_path):
    text, plot = import_records(client, write(tmp_path, scoring_line(regions=64, size=(4096, 4096))))
    assert "1 records read" in text
    assert max(heatmap_z(plot).shape) <= 512  # drawn averaged over blocks: the figure does not grow with the image


def test_import_record_index_and_upload_size(client, tmp_path):
    upload = write(tmp_path, scoring_line())
    refused(client, "record 3 does not exist", lambda: import_records(client, upload, index=3))
    refused(client, r"record=1\.5", lambda: import_records(client, upload, index=1.5))
    refused(client, "record=-1", lambda: import_records(client, upload, index=-1))
    refused(client, "no records: upload", lambda: import_records(client))
    big = tmp_path / "big.jsonl"
    big.write_bytes(b"\n" * (MAX_UPLOAD_BYTES + 1))
    with pytest.raises(ValueError, match="maximum file size"):  # gradio refuses the upload itself
        import_records(client, handle_file(str(big)))
    alive(client)


def test_a_prompt_is_echoed_shortened(client, tmp_path):
    text, _plot = import_records(client, write(tmp_path, scoring_line(prompt="p" * MAX_PROMPT_CHARS)))
    assert len(text) < 600


# --- the CLI -----------------------------------------------------------------------------------------------------


@pytest.fixture
def fake_cli_backend(monkeypatch):
    monkeypatch.setattr(round_cmd, "load_backend", lambda name, device="auto", model=None: FakeBackend())


def cli_refuses(argv: list[str], message: str, capsys) -> None:
    """The CLI exits 2 with a one-line ``error:`` that contains ``message`` (warnings may come before it)."""
    try:
        code = main(argv)
    except SystemExit as exit_:  # argparse's own errors
        code = exit_.code
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2, err
    assert err and err[-1].startswith("error:") and message in err[-1], err
    assert not any("Traceback" in line for line in err)


ROUND_BASE = ["round", "--backend", "fake", "--prompts", "train", "--eval-split", "none", "--out"]
CLI_ROUND_CASES = [
    (["--seed", "-1"], "seed=-1: give a whole number from 0 to 2147483647"),
    (["--seed", "1e30"], "seed=1e+30"),
    (["--seed", "1.5"], "seed=1.5"),
    (["--seed", "x"], "'x' is not a number"),
    (["--steps", "2.7"], "steps=2.7"),
    (["--images-per-prompt", "0"], "images_per_prompt=0"),
    (["--n-prompts", "0"], "n_prompts=0"),
    (["--lr", "nan"], "lr=nan"),
    (["--lr", "inf"], "lr=inf"),
    (["--gate", "1.5"], "gate=1.5"),
    (["--lora-rank", "2.5"], "lora_rank=2.5"),
    (["--gen-steps", "0"], "steps=0"),
    (["--eval-seeds", "0"], "eval_seeds=0"),
    (["--preset", "nope"], "invalid choice"),
    (["--map", "nope"], "invalid choice"),
]


@pytest.mark.parametrize(("extra", "message"), CLI_ROUND_CASES)
def test_cli_round_refuses(tmp_path, fake_cli_backend, capsys, extra, message):
    cli_refuses([*ROUND_BASE, str(tmp_path / "r"), *extra], message, capsys)
    assert not (tmp_path / "r").exists()


GENERATE_BASE = ["generate", "--backend", "sandbox", "--out"]
CLI_GENERATE_CASES = [
    (["--prompt", ""], "the prompt is empty"),
    (["--prompt", "a red circle", "--seed", "-1"], "seed=-1"),
    (["--prompt", "a red circle", "--seed", "1.5"], "seed=1.5"),
    (["--prompt", "a red circle", "--seed", str(2**31 - 1), "--n", "2"], "seed=2147483648"),
    (["--prompt", "a red circle", "--n", "0"], "n=0"),
    (["--prompt", "a red circle", "--steps", "2.7"], "steps=2.7"),
    (["--prompt", "a red circle", "--guidance", "nan"], "guidance=nan"),
]


@pytest.mark.parametrize(("extra", "message"), CLI_GENERATE_CASES)
def test_cli_generate_refuses(tmp_path, capsys, extra, message):
    cli_refuses([*GENERATE_BASE, str(tmp_path / "g"), *extra], message, capsys)
    assert not (tmp_path / "g").exists()


CLI_MAP_CASES = [
    (["[" * 100_000 + "]" * 100_000], [], "no usable records"),
    ([scoring_line(regions=20_000)], [], "no usable records"),
    ([scoring_line(size=(100_000, 100_000))], [], "no usable records"),
    ([scoring_line()], ["--size", "100000x5"], "at most 4096"),
    ([scoring_line()], ["--token-size", "0"], "not a positive integer"),
]


@pytest.mark.parametrize(("lines", "extra", "message"), CLI_MAP_CASES)
def test_cli_map_refuses_with_one_line(tmp_path, capsys, lines, extra, message):
    records = tmp_path / "r.jsonl"
    records.write_text("\n".join(lines) + "\n", encoding="utf-8")
    cli_refuses(["map", str(records), "--out", str(tmp_path / "o.npz"), *extra], message, capsys)


def test_cli_map_reports_why_each_line_was_skipped(tmp_path, capsys):
    records = tmp_path / "r.jsonl"
    records.write_text("[" * 100_000 + "]" * 100_000 + "\n" + scoring_line(regions=20_000) + "\n", encoding="utf-8")
    cli_refuses(["map", str(records), "--out", str(tmp_path / "o.npz")], "no usable records", capsys)


@pytest.mark.parametrize(
    ("extra", "message"),
    [(["--n-seeds", "0"], "n_seeds=0"), (["--seed", "-1"], "seed=-1"), (["--n-prompts", "2.5"], "n_prompts=2.5")],
)
def test_cli_eval_refuses(tmp_path, fake_cli_backend, capsys, extra, message):
    cli_refuses(["eval", "--backend", "fake", "--out", str(tmp_path / "e.json"), *extra], message, capsys)


def test_the_cli_as_a_process_answers_in_one_line():
    result = subprocess.run(
        [sys.executable, "-m", "srum_core", "generate", "--backend", "sandbox", "--prompt", "", "--out", "unused"],
        capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], timeout=120,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )  # fmt: skip
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: the prompt is empty: type what the image should show, e.g. 'a red circle'"]


def test_a_round_over_the_time_limit_is_stopped_and_changes_nothing(app, client):
    engine = app["engine"]
    saved, engine.max_round_s = engine.max_round_s, 0.5
    try:
        status, *_outputs = train(client, steps=500, n_prompts=8)
    finally:
        engine.max_round_s = saved
    assert "stopped after 0.5 s, this shared app's limit per round; nothing changed" in status
    assert len(client.predict(api_name="/history")["data"]) == 1
    alive(client)
