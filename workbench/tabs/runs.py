"""Runs tab: the run folders under the runs root (from the CLI and the UI alike), downloads, load, import.

Events: ``list_runs`` (the table), ``show_run`` (config, metrics and downloadable files of one run),
``load_run`` (make a run this session's current state), ``import_records`` (read a SRUM JSONL and draw the
reward map of one of its records).
"""

from __future__ import annotations

import json
import shutil
import tempfile
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from srum_core import runs as engine_runs
from srum_core.config import MAP_MODES, RewardConfig
from srum_core.records import load_records, records_to_reports
from srum_core.rewards import build_reward_map

from .. import plots
from ..space import SHORT_GPU_S, gpu
from ..state import Engine, ensure_session
from . import ENGINE_QUEUE, friendly

RUN_HEADERS = ["run", "round", "backend", "resumed from", "map mode", "images", "trained", "excluded"]


def find_runs(root: Path, depth: int = 3) -> list[Path]:
    """Completed run folders (a ``config.json`` beside an ``adapter/``) under ``root``, newest first."""
    if not root.is_dir():
        return []
    found = []
    for level in range(1, depth + 1):
        found += [config.parent for config in root.glob("*/" * level + engine_runs.CONFIG_FILE)]
    # Hidden folders are rounds still being written (or abandoned); they are not runs.
    runs = [p for p in found if not any(part.startswith(".") for part in p.relative_to(root).parts)]
    return sorted(set(runs), key=lambda p: p.stat().st_mtime, reverse=True)


def _inside(root: Path, path: Path) -> Path:
    """``path`` resolved, refusing anything outside the runs root (a public Space must not serve other files)."""
    resolved = path.resolve()
    try:
        resolved.relative_to(root.resolve())
    except ValueError:
        raise ValueError(f"{path} is not under the runs root {root}; pick a run from the list") from None
    return resolved


def run_rows(root: Path) -> list[list[Any]]:
    rows = []
    for run_dir in find_runs(root):
        try:
            info = engine_runs.read_run(run_dir)
        except (OSError, ValueError) as err:
            rows.append([str(run_dir.relative_to(root)), None, f"unreadable: {err}", "", "", None, None, None])
            continue
        summary = info.summary
        reward = info.config.get("reward", {}) if isinstance(info.config, dict) else {}
        rows.append(
            [
                str(run_dir.relative_to(root)),
                info.round_index,
                info.backend,
                "" if info.resumed_from is None else str(info.resumed_from),
                reward.get("mode", ""),
                summary.get("n_samples"),
                summary.get("n_trainable"),
                summary.get("n_excluded_global_unusable"),
            ]
        )
    return rows


def run_card(info: engine_runs.RunInfo) -> str:
    """A short markdown card describing one run: its config, round summary and evaluation."""
    lines = [
        f"# SRUM run: {info.run_dir.name}",
        "",
        f"- backend: `{info.backend}`",
        f"- round: {info.round_index}" + (f" (resumed from `{info.resumed_from}`)" if info.resumed_from else ""),
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


def run_downloads(info: engine_runs.RunInfo) -> list[str]:
    """Files to download for a run: its SRUM JSONL records, the adapter as a zip and a run card."""
    out = Path(tempfile.mkdtemp(prefix="srum-run-"))
    files = []
    for name in (engine_runs.RECORDS_FILE, engine_runs.TRAINING_RECORDS_FILE, engine_runs.METRICS_FILE):
        if (info.run_dir / name).is_file():
            # Served from a temp copy: gradio serves files only from its own allowed folders.
            files.append(shutil.copy(info.run_dir / name, out / f"{info.run_dir.name}-{name}"))
    if info.adapter_dir.is_dir():
        files.append(shutil.make_archive(str(out / f"{info.run_dir.name}-adapter"), "zip", info.adapter_dir))
    card = out / f"{info.run_dir.name}-card.md"
    card.write_text(run_card(info), encoding="utf-8")
    files.append(str(card))
    return files


def build(engine: Engine, state: Any) -> None:
    root = engine.runs_root
    with gr.Row():
        refresh = gr.Button("Refresh the list", elem_id="runs-refresh")
        run_path = gr.Textbox(value="", label="Run folder (relative to the runs root)", elem_id="runs-path", scale=3)
        show = gr.Button("Show")
        load = gr.Button("Load into this session", variant="primary", elem_id="runs-load")
    # A callable value is re-read on every page load, so a fresh visitor sees the current folders.
    table = gr.Dataframe(
        value=lambda: run_rows(root), headers=RUN_HEADERS, label=f"Run folders under {root}", interactive=False
    )
    with gr.Row():
        config_json = gr.JSON(label="Config")
        metrics_json = gr.JSON(label="Round metrics and evaluation")
    files = gr.File(label="Downloads: SRUM JSONL, adapter, run card", file_count="multiple", interactive=False)
    status = gr.Markdown(elem_id="runs-status")
    gr.Markdown("### Reward maps of SRUM JSONL records (an uploaded file, or the chosen run's records.jsonl)")
    with gr.Row():
        upload = gr.File(label="SRUM JSONL (scoring or training records)", file_types=[".jsonl", ".json"], type="filepath")
        with gr.Column():
            record_index = gr.Number(label="Record (0-based among the good ones)", value=0, precision=0)
            mode = gr.Dropdown(list(MAP_MODES), value="released", label="Map mode")
            view = gr.Radio(["pixel", "token"], value="pixel", label="View")
            show_record = gr.Button("Draw (uploaded file, else the chosen run's records)", elem_id="runs-import")
    import_status = gr.Markdown(elem_id="runs-import-status")
    record_plot = gr.Plot(label="Reward map of the record")

    @friendly
    def list_runs():
        return run_rows(root)

    def _info(path_text: str) -> engine_runs.RunInfo:
        if not path_text or not path_text.strip():
            raise ValueError("no run chosen: type a run folder from the list (e.g. the 'run' column)")
        return engine_runs.read_run(_inside(root, root / path_text.strip()))

    @friendly
    def show_run(path_text: str):
        info = _info(path_text)
        details = {"summary": info.summary, "eval": info.eval}
        return info.config, details, run_downloads(info)

    @friendly
    @gpu(SHORT_GPU_S)
    def load_run(path_text: str, session: Any):
        session = ensure_session(session)
        info = _info(path_text)
        history = engine_runs.RunHistory.from_run(info.run_dir)
        with engine.lock:
            engine.forget_applied()
            try:
                history.apply(engine.backend)
            except Exception as err:
                engine.activate(session)  # put this session's previous weights back; its state is unchanged
                raise ValueError(
                    f"could not load run {info.run_dir.name}: its adapter is unreadable or does not fit this backend "
                    f"({type(err).__name__}: {err}); your session is unchanged — pick another run or re-run the round"
                ) from err
            session.history = history
            session.weights_version += 1
            engine.activate(session)
        message = f"Loaded **{info.run_dir.name}**: this session is now at round {history.current} of that run."
        return message, session

    @friendly
    def import_records(
        path: str | None, index: float | None, mode_name: str, view_kind: str, path_text: str, session: Any
    ):
        session = ensure_session(session)
        image_root: Path | None = None
        if not path:
            if not path_text or not path_text.strip():
                raise ValueError("no records: upload a SRUM JSONL file, or choose a run folder above to read its records")
            info = _info(path_text)
            path, image_root = str(info.run_dir / engine_runs.RECORDS_FILE), info.run_dir
        loaded = load_records(path)
        reports, unsized = records_to_reports(loaded.records, None)
        bad = list(loaded.bad_lines) + list(unsized)
        if not reports:
            detail = "; ".join(str(b) for b in bad[:5]) or "the file is empty"
            raise ValueError(f"no usable SRUM record in the file ({detail})")
        if bad:
            gr.Warning(f"{len(bad)} bad lines skipped: " + "; ".join(str(b) for b in bad[:3]))
        session.imported = reports
        k = int(index or 0)
        if not 0 <= k < len(reports):
            raise ValueError(f"record {k} does not exist: the file has {len(reports)} good records (0 to {len(reports) - 1})")
        line, report = reports[k]
        reward_map = build_reward_map(report, RewardConfig(mode=mode_name), engine.backend.token_size)
        from PIL import Image

        image_path = None if image_root is None or not report.image_file else image_root / report.image_file
        if image_path is not None and image_path.is_file():
            canvas = Image.open(image_path).convert("RGB")
        else:  # an uploaded file comes without its images: draw the map on a blank canvas
            canvas = Image.fromarray(np.full((report.height, report.width, 3), 255, dtype=np.uint8))
        boxes = [(tuple(j.region.box), f"{i}. {j.object_name}") for i, j in enumerate(report.regions, start=1)]
        figure = plots.reward_heatmap(
            canvas, reward_map.pixel, reward_map.token, view=view_kind, boxes=boxes,
            title=f"line {line}: {report.prompt[:60]}",
        )
        g = report.global_judgement.score
        text = (
            f"{len(reports)} records read, {len(bad)} bad lines. Showing line {line}: **{report.prompt}** — "
            f"global score {'unreadable' if g is None else f'{g:+.3f}'}, {len(report.regions)} regions."
        )
        return text, figure, session

    refresh.click(list_runs, None, table, api_name="list_runs")
    show.click(show_run, run_path, [config_json, metrics_json, files], api_name="show_run")
    load.click(load_run, [run_path, state], [status, state], api_name="load_run", concurrency_id=ENGINE_QUEUE)
    show_record.click(
        import_records, [upload, record_index, mode, view, run_path, state], [import_status, record_plot, state],
        api_name="import_records",
    )

    def pick_run(evt: gr.SelectData):
        row = getattr(evt, "row_value", None)
        return row[0] if row else gr.skip()

    table.select(pick_run, None, run_path, api_name="pick_run", api_visibility="private", queue=False)
