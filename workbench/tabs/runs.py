"""Runs tab: the run folders this visitor may see, their downloads, load, and the reward maps of SRUM records.

Events: ``list_runs`` (the table), ``show_run`` (config, metrics and downloadable files of one run),
``load_run`` (make a run this session's current state), ``import_records`` (read a SRUM JSONL and draw the
reward map of one of its records). A visitor sees their own rounds and the shared read-only runs (shipped or
made by the CLI), never another visitor's (:meth:`workbench.state.Engine.visible_runs`); Show and Load open
exactly the runs the table lists.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from srum_core import runs as engine_runs
from srum_core.config import MAP_MODES, RewardConfig, check_choice, check_int
from srum_core.limits import MAX_UPLOAD_BYTES, mib
from srum_core.records import load_records, records_to_reports
from srum_core.rewards import build_reward_map

from .. import plots
from ..space import SHORT_GPU_S, gpu
from ..state import Engine, SessionState, ensure_session
from . import ENGINE_QUEUE, checked, friendly

RUN_HEADERS = ["run", "round", "backend", "resumed from", "map mode", "images", "trained", "excluded"]
#: Most characters of a record's prompt echoed back in the status text.
SHOWN_PROMPT_CHARS = 200


@dataclass
class RunsTab:
    table: Any
    #: ``(fn, inputs)`` that fill the table for a session (on page load, tab select, after a round).
    refresh: Any


def run_rows(engine: Engine, session: SessionState | None) -> list[list[Any]]:
    """One row per run the session may see, newest first (``run`` is the folder relative to the runs root)."""
    rows = []
    for run_dir in engine.visible_runs(session):
        try:
            info = engine_runs.read_run(run_dir)
        except (OSError, ValueError):  # changed since it was listed
            continue
        summary = info.summary
        reward = info.config.get("reward", {}) if isinstance(info.config, dict) else {}
        rows.append(
            [
                engine.relative(run_dir),
                info.round_index,
                info.backend,
                "" if info.resumed_from is None else engine.relative(info.resumed_from),
                reward.get("mode", ""),
                summary.get("n_samples"),
                summary.get("n_trainable"),
                summary.get("n_excluded_global_unusable"),
            ]
        )
    return rows


def run_card(info: engine_runs.RunInfo, engine: Engine) -> str:
    """A short markdown card describing one run: its config, round summary and evaluation."""
    resumed = f" (resumed from `{engine.relative(info.resumed_from)}`)" if info.resumed_from else ""
    lines = [
        f"# SRUM run: {info.run_dir.name}",
        "",
        f"- backend: `{info.backend}`",
        f"- round: {info.round_index}{resumed}",
        "",
        "## Round config",
        "```json",
        json.dumps(info.config, indent=2, ensure_ascii=False),
        "```",
        "## Round summary",
        "```json",
        json.dumps(info.summary, indent=2, ensure_ascii=False),
        "```",
    ]
    if info.eval is not None:
        lines += ["## Evaluation", "```json", json.dumps(info.eval, indent=2, ensure_ascii=False), "```"]
    return "\n".join(lines) + "\n"


def check_upload(path: str | None) -> None:
    """Refuse an uploaded file over :data:`srum_core.limits.MAX_UPLOAD_BYTES` before reading it."""
    if path:
        size = os.path.getsize(path)
        if size > MAX_UPLOAD_BYTES:
            raise ValueError(
                f"the file is {mib(size)}; this app reads at most {mib(MAX_UPLOAD_BYTES)} "
                "(use `python -m srum_core map` for larger files)"
            )


def committed_headline(path: Path | str | None) -> str:
    """One line on the committed SRUM table of this model (``docs/results/sandbox_srum.json``): SRUM's and SFT's
    paired change against the base and SRUM − SFT, with 95% intervals, images and seeds — so a single round's
    numbers are read beside what the measured table says. Empty when there is no committed table."""
    if path is None or not Path(path).is_file():
        return ""
    data = json.loads(Path(path).read_text())
    arms = data.get("arms", {})
    srum, sft = arms.get("srum"), arms.get("sft")
    if not srum or "delta_vs_base" not in srum:
        return ""

    def ci(row: dict, key: str) -> str:
        lo, hi = row[f"ci95_{key}"]
        return f"{row[f'delta_{key}']:+.1f} [{lo:+.1f}, {hi:+.1f}]"

    seeds = data.get("config", {}).get("seeds", [])
    parts = [f"SRUM vs base {ci(srum, 'vs_base')}"]
    if sft and "delta_vs_base" in sft:
        parts.append(f"SFT vs base {ci(sft, 'vs_base')}")
    if "delta_vs_sft" in srum:
        parts.append(f"SRUM − SFT {ci(srum, 'vs_sft')}")
    return (f"Committed table for this model ({Path(path).name}, {srum.get('n_images')} paired images per arm, "
            f"round seeds {seeds}): " + "; ".join(parts) + " points, 95% CI.")


def srum_result_figure(set_name: str, path: Path) -> tuple[Any, str]:
    """The committed SRUM result as bars per arm and category, and a one-line caption (what it is, or why none)."""
    check_choice(set_name, "evaluation set", ("eval", "transfer"))
    if not path.is_file():
        return None, f"No measured result at {path.name}: run `python -m experiments.srum_table --seeds 0 1 2`."
    data = json.loads(path.read_text())
    config = data.get("config", {})
    seeds = config.get("seeds", [])
    caption = (
        f"Paired change of referee accuracy against the base model, points with 95% bootstrap intervals; "
        f"{len(seeds)} round seeds, the same evaluation images for every arm (plain mode). Grey bars are controls. "
        "Full tables: docs/results.md."
    )
    return plots.srum_result(data, set_name), caption


def build(engine: Engine, state: Any) -> RunsTab:
    measured = getattr(engine.backend, "measured_result", None)  # the backend's committed SRUM result, if any
    if measured is not None:
        measured = Path(measured)
        with gr.Accordion(f"The measured SRUM result on this model ({measured.name})", open=True):
            result_set = gr.Radio(
                [("in-distribution", "eval"), ("transfer", "transfer")], value="eval", label="Evaluation set",
                elem_id="runs-result-set",
            )
            figure, caption = srum_result_figure("eval", measured)
            result_caption = gr.Markdown(caption)
            result_plot = gr.Plot(value=figure, label="SRUM result", elem_id="runs-result")

            def show_result(set_name: str):
                return srum_result_figure(set_name, measured)

            result_set.change(
                show_result, result_set, [result_plot, result_caption], api_name="srum_result", queue=False
            )
    with gr.Row():
        refresh = gr.Button("Refresh the list", elem_id="runs-refresh")
        run_path = gr.Textbox(value="", label="Run folder (relative to the runs root)", elem_id="runs-path", scale=3)
        show = gr.Button("Show", elem_id="runs-show")
        load = gr.Button("Load into this session", variant="primary", elem_id="runs-load")
    table = gr.Dataframe(
        headers=RUN_HEADERS,
        label="Your runs and the shared runs (click a row to pick it)",
        interactive=False,
        elem_id="runs-table",
    )
    with gr.Row():
        config_json = gr.JSON(label="Config", elem_id="runs-config")
        metrics_json = gr.JSON(label="Round metrics and evaluation")
    files = gr.File(
        label="Downloads: SRUM JSONL, adapter, run card", file_count="multiple", interactive=False, elem_id="runs-files"
    )
    status = gr.Markdown(label="Load status", elem_id="runs-status")
    gr.Markdown(
        "### Reward maps of SRUM JSONL records (an uploaded file, or the chosen run's records.jsonl)\n"
        f"Up to {mib(MAX_UPLOAD_BYTES)} per file; records may list up to 64 regions and declare images up to "
        "4096 px a side."
    )
    with gr.Row():
        upload = gr.File(label="SRUM JSONL (scoring or training records)", file_types=[".jsonl", ".json"], type="filepath")
        with gr.Column():
            record_index = gr.Number(label="Record (0-based among the good ones)", value=0, precision=None)
            mode = gr.Dropdown(list(MAP_MODES), value="released", label="Map mode")
            view = gr.Radio(["pixel", "token"], value="pixel", label="View")
            show_record = gr.Button("Draw (uploaded file, else the chosen run's records)", elem_id="runs-import")
    import_status = gr.Markdown(label="Records read", elem_id="runs-import-status")
    record_plot = gr.Plot(label="Reward map of the record")

    @friendly
    def list_runs(session: Any):
        return run_rows(engine, None if session is None else ensure_session(session))

    def check_run(path_text: Any, session: Any) -> None:
        engine.open_run(ensure_session(session), path_text)

    @friendly
    def show_run(path_text: str, session: Any):
        session = ensure_session(session)
        info, _ = engine.open_run(session, path_text)
        details = {"summary": info.summary, "eval": info.eval}
        return info.config, details, engine.downloads(session, info, run_card(info, engine)), session

    @friendly
    @gpu(SHORT_GPU_S)
    def load_run(path_text: str, session: Any):
        session = ensure_session(session)
        info, history = engine.open_run(session, path_text)
        with engine.lock:
            engine.forget_applied()
            try:
                history.apply(engine.backend)
            except Exception as err:
                engine.activate(session)  # put this session's previous weights back; its state is unchanged
                raise ValueError(
                    f"could not load run {info.run_dir.name}: its adapter is unreadable or does not fit this backend "
                    f"({type(err).__name__}); your session is unchanged — pick another run or re-run the round"
                ) from err
            session.history = history
            session.weights_version += 1
            engine.activate(session)
        message = f"Loaded **{info.run_dir.name}**: this session is now at round {history.current} of that run."
        return message, session

    def records_source(path: str | None, path_text: str | None, session: SessionState) -> tuple[str, Path | None]:
        """The records file to read (an upload, else the chosen run's records) and the folder of its images."""
        if path:
            check_upload(path)
            return path, None
        if not path_text or not str(path_text).strip():
            raise ValueError("no records: upload a SRUM JSONL file, or choose a run folder above to read its records")
        info, _ = engine.open_run(session, path_text)
        records = info.run_dir / engine_runs.RECORDS_FILE
        engine_runs.inside_root(info.run_dir, records)  # a symlink out of the run is never read
        if not records.is_file():
            raise ValueError(f"run {info.run_dir.name} has no {engine_runs.RECORDS_FILE}")
        check_upload(str(records))
        return str(records), info.run_dir

    def check_import(
        path: str | None, index: Any, mode_name: Any, view_kind: Any, path_text: str, session: Any
    ) -> None:
        check_int(index if index is not None else 0, "record", 0, None, "0 is the first good record")
        check_choice(mode_name, "map mode", MAP_MODES)
        check_choice(view_kind, "view", ("pixel", "token"))
        records_source(path, path_text, ensure_session(session))

    @friendly
    def import_records(
        path: str | None, index: float | None, mode_name: str, view_kind: str, path_text: str, session: Any
    ):
        check_import(path, index, mode_name, view_kind, path_text, session)
        session = ensure_session(session)
        source, image_root = records_source(path, path_text, session)
        loaded = load_records(source)
        reports, unsized = records_to_reports(loaded.records, None)
        bad = list(loaded.bad_lines) + list(unsized)
        if not reports:
            detail = "; ".join(str(b) for b in bad[:3]) or "the file is empty"
            raise ValueError(f"no usable SRUM record in the file ({detail})")
        if bad:
            gr.Warning(f"{len(bad)} bad lines skipped: " + "; ".join(str(b) for b in bad[:3]))
        session.imported = reports
        k = check_int(index if index is not None else 0, "record", 0, None, "0 is the first good record")
        if k >= len(reports):
            raise ValueError(f"record {k} does not exist: the file has {len(reports)} good records (0 to {len(reports) - 1})")
        line, report = reports[k]
        reward_map = build_reward_map(report, RewardConfig(mode=mode_name), engine.backend.token_size)
        from PIL import Image

        canvas = None  # an uploaded file comes without its images: the map is drawn on a blank canvas
        if image_root is not None and report.image_file:
            image_path = image_root / report.image_file
            try:
                if image_path.is_file() and engine_runs.inside_root(image_root, image_path):
                    canvas = Image.open(image_path).convert("RGB")
            except ValueError:
                canvas = None  # an image outside the run folder is never read
        if canvas is not None and canvas.size != (report.width, report.height):
            canvas = None  # not the image the record describes
        boxes = [(tuple(j.region.box), f"{i}. {j.object_name}") for i, j in enumerate(report.regions, start=1)]
        prompt = report.prompt if len(report.prompt) <= SHOWN_PROMPT_CHARS else report.prompt[:SHOWN_PROMPT_CHARS] + "…"
        figure = plots.reward_heatmap(
            canvas, reward_map.pixel, reward_map.token, view=view_kind, boxes=boxes, title=f"line {line}: {prompt[:60]}"
        )
        g = report.global_judgement.score
        objects = ", ".join(f"{i}. {j.object_name or '?'}" for i, j in enumerate(report.regions[:10], start=1))
        text = (
            f"{len(reports)} records read, {len(bad)} bad lines. Showing line {line}: **{prompt}** — "
            f"global score {'unreadable' if g is None else f'{g:+.3f}'}, {len(report.regions)} regions"
            + (f" ({objects}{', …' if len(report.regions) > 10 else ''})" if objects else "")
            + "."
        )
        return text, figure, session

    refresh.click(list_runs, state, table, api_name="list_runs")
    checked(show.click, check_run, [run_path, state], "show_run")(
        show_run, [run_path, state], [config_json, metrics_json, files, state], api_name="show_run"
    )
    checked(load.click, check_run, [run_path, state], "load_run")(
        load_run, [run_path, state], [status, state], api_name="load_run", concurrency_id=ENGINE_QUEUE
    )
    import_inputs = [upload, record_index, mode, view, run_path, state]
    checked(show_record.click, check_import, import_inputs, "import_records")(
        import_records, import_inputs, [import_status, record_plot, state], api_name="import_records"
    )

    def pick_run(evt: gr.SelectData):
        row = getattr(evt, "row_value", None)
        return row[0] if row else gr.skip()

    table.select(pick_run, None, run_path, api_name="pick_run", api_visibility="private", queue=False)
    return RunsTab(table=table, refresh=(list_runs, [state]))
