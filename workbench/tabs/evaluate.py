"""Evaluate tab: base and this session's rounds scored by an independent judge (srum_core.eval_runs).

Events: ``evaluate`` (run an evaluation of base + the session's rounds into the session's folder, then show it),
``list_evaluations`` (the evaluation folders this visitor may open: the CLI's, and the session's own) and
``show_evaluation`` (one folder's scores per category, worst images and self-judge agreement).

On a shared app the tab judges with the backend's own referee only: a local VLM or an endpoint is chosen by
whoever runs the CLI (``python -m srum_core evaluate``), whose folders this tab opens.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from srum_core.config import check_int
from srum_core.eval_runs import PLAN_FILE, RESULTS_FILE, EvaluationConfig, read_results, run_evaluation, states_for
from srum_core.eval_sets import REASONBENCH_STYLE

from ..space import LONG_GPU_S, gpu
from ..state import UI_DIR, Engine, ensure_session
from . import ENGINE_QUEUE, checked, friendly

AGREEMENT_HEADERS = ["state", "score", "Δ vs base [95%]", "self-judge bal. acc.", "AUROC", "agreement", "images"]
#: A UI evaluation's size is bounded: prompts per category × seeds × states.
MAX_UI_PER_CATEGORY = 16
MAX_UI_SEEDS = 4


@dataclass
class EvaluateTab:
    status: Any
    plot: Any


def parse_seeds(text: str) -> tuple[int, ...]:
    try:
        seeds = tuple(int(s) for s in str(text).replace(" ", "").split(",") if s)
    except ValueError:
        raise ValueError(f"seeds {str(text)[:40]!r}: give whole numbers separated by commas, e.g. 0,1") from None
    if not 1 <= len(seeds) <= MAX_UI_SEEDS:
        raise ValueError(f"give 1 to {MAX_UI_SEEDS} seeds (the CLI takes more)")
    return seeds


def ui_config(eval_set: str, n_per_category: Any, seeds: str) -> EvaluationConfig:
    n = check_int(n_per_category, "prompts per category", 1, MAX_UI_PER_CATEGORY, "the CLI takes more")
    return EvaluationConfig(eval_set=eval_set, n_per_category=n, seeds=parse_seeds(seeds))


def _fmt(value: float | None, digits: int = 1) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


def score_figure(results: dict[str, Any]) -> Any:
    """Mean score (0–100) per category and overall, one bar group per state; hover shows the change vs base."""
    import plotly.graph_objects as go

    categories = [*results["categories"], "overall"]
    fig = go.Figure()
    for state, entry in results["per_state"].items():
        rows = [entry["per_category"].get(c, {}) if c != "overall" else entry["overall"] for c in categories]
        deltas = [
            ((entry.get("vs_base") or {}).get("per_category") or {}).get(c)
            if c != "overall"
            else (entry.get("vs_base") or {}).get("overall")
            for c in categories
        ]
        hover = [
            "" if d is None else f"Δ vs base {d['delta']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
            for d in deltas
        ]
        fig.add_bar(name=state, x=categories, y=[r.get("score") for r in rows], hovertext=hover)
    fig.update_layout(
        barmode="group",
        yaxis={"title": f"score (0–100), judge {results.get('judge', '')}"[:90], "range": [0, 100]},
        height=380,
        margin={"l": 50, "r": 10, "t": 30, "b": 40},
        title="Independent judge, per category",
    )
    return fig


def agreement_rows(results: dict[str, Any]) -> list[list[Any]]:
    rows = []
    for state, entry in results["per_state"].items():
        d = (entry.get("vs_base") or {}).get("overall")
        delta = "" if d is None else f"{d['delta']:+.1f} [{d['ci95'][0]:+.1f}, {d['ci95'][1]:+.1f}]"
        ag = entry["agreement"]
        rows.append(
            [
                state,
                _fmt(entry["overall"]["score"]),
                delta,
                _fmt(ag["balanced_accuracy"], 3),
                _fmt(ag["auroc"], 3),
                _fmt(ag["raw_agreement"], 3),
                entry["overall"]["n"],
            ]
        )
    return rows


def worst_images(results: dict[str, Any], folder: Path) -> list[tuple[Any, str]]:
    """The worst images per category of the last state, as (PIL image, caption)."""
    from PIL import Image

    state = list(results["per_state"])[-1]
    out = []
    for category, items in results["per_state"][state]["worst"].items():
        for item in items:
            path = (folder / item["image"]).resolve()
            if folder.resolve() not in path.parents or not path.is_file():
                continue
            caption = f"{state} · {category} · {100 * item['score']:.0f}: {item['prompt']}"
            out.append((Image.open(path).convert("RGB"), caption[:160]))
    return out


def summary_text(results: dict[str, Any], shown: str) -> str:
    return (
        f"Evaluation `{shown}`: {', '.join(results['per_state'])} on `{results['eval_set']}`, seeds "
        f"{results['seeds']}; judge `{results['judge']}`. A self-judge whose agreement with the independent judge "
        "falls over rounds while its own pass rate rises is a sign of reward hacking."
    )


def build(engine: Engine, state: Any) -> EvaluateTab:
    backend = engine.backend
    sets = [*backend.prompt_sets(), REASONBENCH_STYLE]
    has_referee = backend.referee() is not None
    gr.Markdown(
        "Base and this session's rounds, the same prompts and seeds, scored by an **independent judge** (here the "
        "backend's referee; the CLI's `evaluate` takes a local VLM or an OpenAI-compatible endpoint, and its "
        "folders open below). Changes against the base come with paired bootstrap 95% intervals."
    )
    with gr.Row():
        eval_set = gr.Dropdown(
            sets, value="eval" if "eval" in sets else sets[0], label="Evaluation set", elem_id="eval-set"
        )
        n_per_category = gr.Number(2, precision=0, label="Prompts per category", elem_id="eval-n")
        seeds = gr.Textbox("0", label="Seeds (comma-separated)", elem_id="eval-seeds")
    run = gr.Button("Evaluate base and my rounds", variant="primary", elem_id="eval-run", interactive=has_referee)
    with gr.Row():
        folders = gr.Dropdown([], label="Evaluation folder", allow_custom_value=True, elem_id="eval-folders")
        refresh = gr.Button("List evaluations", elem_id="eval-list")
        show = gr.Button("Show", elem_id="eval-show")
    status = gr.Markdown(
        "" if has_referee else "This backend has no referee: run `python -m srum_core evaluate --eval-judge vlm ...`",
        elem_id="eval-status",
    )
    plot = gr.Plot(elem_id="eval-plot")
    table = gr.Dataframe(
        headers=AGREEMENT_HEADERS,
        interactive=False,
        elem_id="eval-agreement",
        label="Against the base, and the self-judge against the independent judge",
    )
    worst = gr.Gallery(label="Worst images per category", columns=6, height=260, elem_id="eval-worst")

    def visible(session: Any) -> list[str]:
        session = ensure_session(session)
        found = []
        root = engine.runs_root
        for results in sorted(root.glob("**/" + RESULTS_FILE)):
            folder = results.parent
            rel = folder.relative_to(root)
            if not (folder / PLAN_FILE).is_file() or len(rel.parts) > 4:
                continue
            if rel.parts[:1] == (UI_DIR,) and rel.parts[1:2] != (session.session_id,):
                continue  # another visitor's
            found.append(str(rel))
        return found

    def outputs(results: dict[str, Any], folder: Path) -> tuple[Any, ...]:
        return (
            summary_text(results, engine.relative(folder)),
            score_figure(results),
            agreement_rows(results),
            worst_images(results, folder),
        )

    @friendly
    def list_evaluations(session: Any) -> Any:
        choices = visible(session)
        return gr.Dropdown(choices=choices, value=choices[-1] if choices else None)

    @friendly
    def show_evaluation(session: Any, name: str | None) -> tuple[Any, ...]:
        if not name or name not in visible(session):
            raise ValueError("pick an evaluation folder from the list (List evaluations)")
        folder = engine.runs_root / name
        return outputs(read_results(folder), folder)

    def check_evaluate(session: Any, set_name: str, n: Any, seed_text: str) -> None:
        ui_config(set_name, n, seed_text)

    @friendly
    @gpu(LONG_GPU_S)
    def evaluate(session: Any, set_name: str, n: Any, seed_text: str, progress: gr.Progress = gr.Progress()):  # noqa: B008
        session = ensure_session(session)
        config = ui_config(set_name, n, seed_text)
        rounds = [] if session.history is None else list(session.history.rounds[: session.history.current])
        out = engine.session_dir(session) / f"eval-{time.strftime('%Y%m%d-%H%M%S')}"

        def report(event: Any) -> None:
            progress((event.step, max(event.total, 1)), desc=f"evaluate {event.message}"[:80])

        with engine.lock:
            engine.forget_applied()
            try:
                results = run_evaluation(backend, states_for(rounds), config, out, callback=report)
            finally:
                engine.activate(session)
        choices = visible(session)
        return (*outputs(results, out), gr.Dropdown(choices=choices, value=engine.relative(out)), session)

    checked(run.click, check_evaluate, [state, eval_set, n_per_category, seeds], "evaluate")(
        evaluate,
        [state, eval_set, n_per_category, seeds],
        [status, plot, table, worst, folders, state],
        api_name="evaluate",
        concurrency_id=ENGINE_QUEUE,
    )
    refresh.click(list_evaluations, [state], folders, api_name="list_evaluations", queue=False)
    show.click(show_evaluation, [state, folders], [status, plot, table, worst], api_name="show_evaluation")
    return EvaluateTab(status=status, plot=plot)
