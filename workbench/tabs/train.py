"""Train tab: one SRUM round on the session's own state, with live progress, curves, cancel and undo.

Events: ``train_round`` (streams progress and curves while the round runs), ``cancel_round``, ``undo`` (go
back to an earlier round or the base) and ``history`` (the session's rounds). Each session trains its own
adapter: rounds resume from the session's current round and land in a run folder under the runs root.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from pathlib import Path
from typing import Any

import gradio as gr

from srum_core import runs as engine_runs
from srum_core.config import MAP_MODES, GenerationConfig, JudgeConfig, RewardConfig, TrainingConfig

from .. import plots
from ..space import LONG_GPU_S, SHORT_GPU_S, gpu
from ..state import Engine, SessionState, ensure_session, round_choices
from . import ENGINE_QUEUE, friendly, friendly_generator

HISTORY_HEADERS = ["round", "run folder (under the runs root)", "current", "images", "trained", "excluded", "referee after"]
MAX_PROMPTS = 256
MAX_STEPS = 500


def _shown(path: Path, root: Path) -> str:
    """``path`` relative to the runs root when it lies under it (what the Runs tab's "run" column shows)."""
    try:
        return str(Path(path).resolve().relative_to(Path(root).resolve()))
    except ValueError:
        return str(path)


def history_rows(session: SessionState, root: Path) -> list[list[Any]]:
    rows: list[list[Any]] = [[0, "(base model)", session.history is None or session.history.current == 0, None, None, None, None]]
    if session.history is None:
        return rows
    for index, run_dir in enumerate(session.history.rounds, start=1):
        try:
            info = engine_runs.read_run(run_dir)
            summary, evaluation = info.summary, info.eval or {}
        except (OSError, ValueError):
            summary, evaluation = {}, {}
        after = (evaluation.get("after") or {}).get("overall", {}) if isinstance(evaluation, dict) else {}
        rows.append(
            [
                index,
                _shown(run_dir, root),
                index == session.history.current,
                summary.get("n_samples"),
                summary.get("n_trainable"),
                summary.get("n_excluded_global_unusable"),
                after.get("referee_accuracy"),
            ]
        )
    return rows


def accuracy_rows(run_dir: Path, round_index: int) -> list[dict[str, Any]]:
    """Per-category referee accuracy and judge–referee agreement before/after a round, from its eval.json."""
    path = Path(run_dir) / engine_runs.EVAL_FILE
    if not path.is_file():
        return []
    data = json.loads(path.read_text(encoding="utf-8"))
    rows = []
    for when in ("before", "after"):
        result = data.get(when)
        if not isinstance(result, dict):
            continue
        name = "base" if when == "before" and round_index == 1 else f"round {round_index - (when == 'before')}"
        for category, values in result.get("per_category", {}).items():
            for measure, key in (("referee", "referee_accuracy"), ("judge agrees", "agreement")):
                if values.get(key) is not None:
                    rows.append({"round": name, "measure": measure, "category": category, "accuracy": values[key]})
    return rows


def reward_values(run_dir: Path) -> dict[str, list[float]]:
    """Global and region scores of a round's scoring records, for the distribution plot."""
    path = Path(run_dir) / engine_runs.RECORDS_FILE
    values: dict[str, list[float]] = {"global": [], "region": []}
    if not path.is_file():
        return values
    from srum_core.records import load_records, records_to_reports

    reports, _ = records_to_reports(load_records(path).records)
    for _, report in reports:
        if report.global_judgement.usable:
            values["global"].append(float(report.global_judgement.score))
        values["region"] += [float(r.score) for r in report.usable_regions]
    return values


def _dedupe(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for row in rows:
        key = (row["round"], row["measure"], row["category"])
        if key not in seen:
            seen.add(key)
            out.append(row)
    return out


def _parse_gate(gate: float | str | None) -> float | None:
    """The gate field: empty → None (no gate), else a number (RoundConfig checks its range)."""
    if gate is None or (isinstance(gate, str) and not gate.strip()):
        return None
    try:
        return float(gate)
    except ValueError:
        raise ValueError(f"gate {gate!r} is not a number: leave it empty, or give e.g. 0 or 0.9") from None


def build_round_config(
    backend: Any,
    prompt_set: str,
    prompts_file: str | None,
    categories: list[str] | None,
    n_prompts: float,
    steps: float,
    lr: float,
    lam: float,
    map_mode: str,
    lora_rank: float,
    seed: float | None,
    gen_steps: float,
    eval_prompts: float = 0,
    images_per_prompt: float | None = 1,
    gate: float | str | None = None,
) -> Any:
    """The engine's RoundConfig from the tab's inputs; raises ValueError with a fix for bad values."""
    from srum_core.rounds import RoundConfig

    n = int(n_prompts or 0)
    if n < 1:
        raise ValueError("a round needs at least one prompt: set 'Prompts' to 1 or more")
    if n > MAX_PROMPTS:
        raise ValueError(f"{n} prompts is more than this UI runs in one round ({MAX_PROMPTS}); use the CLI for more")
    k = int(images_per_prompt or 1)
    if k < 1:
        raise ValueError("'Images per prompt' must be 1 or more")
    if n * k > MAX_PROMPTS:
        raise ValueError(
            f"{n} prompts × {k} images is more than this UI generates in one round ({MAX_PROMPTS}); use the CLI"
        )
    if int(steps) > MAX_STEPS:
        raise ValueError(f"{int(steps)} steps is more than this UI runs in one round ({MAX_STEPS}); use the CLI")
    if seed is None:
        from srum_core.facade import draw_seed

        seed = draw_seed(None)
    source = prompts_file if prompt_set == "file" else prompt_set
    if prompt_set == "file" and not prompts_file:
        raise ValueError("prompt set 'file' needs a JSONL/JSON file of prompts: upload one")
    training = TrainingConfig(
        steps=int(steps), lr=float(lr), lam=float(lam), lora_rank=int(lora_rank), seed=int(seed),
        batch_size=min(8, n), warmup_steps=min(2, int(steps)),
    )
    n_eval = int(eval_prompts or 0)
    if not 0 <= n_eval <= 16:
        raise ValueError(f"{n_eval} evaluation prompts per category: use 0 (no evaluation) to 16")
    return RoundConfig(
        prompts=source,
        categories=tuple(categories) if categories else None,
        n_prompts=n,
        seed=int(seed),
        generation=GenerationConfig(steps=int(gen_steps)),
        judge=JudgeConfig(),
        reward=RewardConfig(mode=map_mode),
        training=training,
        eval_split="val" if n_eval > 0 else None,
        eval_n_prompts=max(n_eval, 1),
        n_fixed_samples=2,
        images_per_prompt=k,
        gate=_parse_gate(gate),
    )


def build(engine: Engine, state: Any) -> None:
    backend = engine.backend
    categories = list(backend.categories())
    with gr.Row():
        with gr.Column(scale=1):
            sets = [*backend.prompt_sets(), "file"]
            prompt_set = gr.Radio(sets, value=sets[0], label="Prompt set", elem_id="train-set")
            prompts_file = gr.File(label="Prompt file (JSONL/JSON, for 'file')", type="filepath", file_types=[".jsonl", ".json"])
            category_pick = gr.CheckboxGroup(categories, value=categories, label="Categories (none = all)")
            n_prompts = gr.Number(label="Prompts", value=4, precision=0, elem_id="train-n-prompts")
            steps = gr.Number(label="Training steps", value=4, precision=0, elem_id="train-steps")
            gen_steps = gr.Slider(1, 100, value=GenerationConfig().steps, step=1, label="Sampling steps")
            lr = gr.Number(label="Learning rate", value=3e-4)
            lam = gr.Slider(0.0, 2.0, value=0.5, step=0.05, label="λ (constraint weight)")
            map_mode = gr.Dropdown(list(MAP_MODES), value="released", label="Map mode")
            lora_rank = gr.Slider(1, 64, value=8, step=1, label="LoRA rank (a session's later rounds keep it; undo to base to change it)")
            seed = gr.Number(label="Seed (empty = random)", value=0, precision=0)
            eval_prompts = gr.Number(
                label="Evaluation prompts per category before/after (0 = none)", value=1, precision=0,
                elem_id="train-eval",
            )
            images_per_prompt = gr.Number(label="Images per prompt (each at its own seed)", value=1, precision=0)
            gate = gr.Textbox(
                label="Gate: train only on images whose global score exceeds this, in [-1, 1) (empty = SRUM: every "
                "image trains)",
                value="",
            )
            with gr.Row():
                run = gr.Button("Run round", variant="primary", elem_id="train-run")
                cancel = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
            with gr.Row():
                undo_to = gr.Dropdown(["base"], value="base", label="Undo to", allow_custom_value=True)
                undo = gr.Button("Undo", elem_id="train-undo")
        with gr.Column(scale=2):
            status = gr.Markdown(elem_id="train-status")
            loss_plot = gr.Plot(label="Loss", elem_id="train-loss")
            dist_plot = gr.Plot(label="Reward distributions")
            acc_plot = gr.Plot(label="Accuracy per category")
            preview = gr.Image(label="Latest generated sample", type="pil", height=160, interactive=False, format="png")
            history = gr.Dataframe(headers=HISTORY_HEADERS, label="Round history", interactive=False, elem_id="train-history")

    def _outputs(session: SessionState, message: str, sample: Any = None) -> tuple[Any, ...]:
        choices = [c for c in round_choices(session) if c != "latest"]
        return (
            message,
            plots.loss_curves(session.step_rows),
            plots.reward_distribution(session.reward_values),
            plots.accuracy_by_category(session.accuracy_rows),
            gr.skip() if sample is None else sample,
            history_rows(session, engine.runs_root),
            gr.Dropdown(choices=choices, value=choices[-1]),
            session,
        )

    @friendly_generator
    @gpu(LONG_GPU_S)
    def train_round(
        set_name: str, file_path: str | None, picked: list[str] | None, n: float, k_steps: float, gen_k: float,
        rate: float, lam_value: float, mode: str, rank: float, seed_value: float | None, n_eval: float,
        k_images: float | None, gate_value: str | None,
        session: Any, request: gr.Request, progress: gr.Progress = gr.Progress(),  # noqa: B008 - gradio injects it
    ):
        from srum_core.rounds import run_round

        session = ensure_session(session)
        config = build_round_config(
            backend, set_name, file_path, picked, n, k_steps, rate, lam_value, mode, rank, seed_value, gen_k, n_eval,
            k_images, gate_value,
        )  # fmt: skip
        index = 1 + (0 if session.history is None else session.history.current)
        out_dir = engine.runs_root / "ui" / session.session_id / f"round-{index:02d}-{time.strftime('%Y%m%d-%H%M%S')}"
        events: queue.Queue = queue.Queue()
        cancel_event = engine.cancel_event(request.session_hash if request is not None else session.session_id)
        cancel_event.clear()
        outcome: dict[str, Any] = {}
        step_offset = len(session.step_rows)

        def work() -> None:
            with engine.lock:
                engine.activate(session)
                resume = None if session.history is None else session.history.current_run
                engine.forget_applied()
                try:
                    outcome["result"] = run_round(
                        backend, config, out_dir, resume=resume, callback=events.put, cancel=cancel_event
                    )
                except BaseException as err:  # noqa: BLE001 - handed to the UI thread below
                    outcome["error"] = err
                finally:
                    engine.activate(session)  # the session's previous state (the round is not added yet)
                    events.put(None)

        worker = threading.Thread(target=work, name=f"srum-round-{session.session_id}", daemon=True)
        worker.start()
        try:
            yield _outputs(session, f"Round {index} started → `{out_dir}`")
            last_yield = time.monotonic()
            latest = None
            while True:
                event = events.get()
                if event is None:
                    break
                progress((event.step, max(event.total, 1)), desc=f"{event.stage} {event.message}".strip())
                if event.stage == "train" and event.metrics:
                    row = dict(event.metrics)
                    row["total"] = row.get("loss", row.get("total"))
                    row["global_step"] = step_offset + len(session.step_rows[step_offset:]) + 1
                    session.step_rows.append(row)
                if event.preview is not None:
                    latest = event.preview
                if time.monotonic() - last_yield > 0.5:
                    last_yield = time.monotonic()
                    yield _outputs(session, f"Round {index}: {event.stage} {event.step}/{event.total}", latest)
                    latest = None
        except GeneratorExit:
            # The visitor left (closed the tab): stop the round rather than train for nobody.
            cancel_event.set()
            raise
        worker.join()
        if "error" in outcome:
            del session.step_rows[step_offset:]
            err = outcome["error"]
            if type(err).__name__ == "Cancelled":
                gr.Warning("Round cancelled: the session is back where it was before the round.")
                yield _outputs(session, f"Round {index} cancelled; nothing changed.")
                return
            raise err
        if session.history is None:
            session.history = engine_runs.RunHistory()
        session.history.add(out_dir)
        session.weights_version += 1
        session.accuracy_rows = _dedupe(session.accuracy_rows + accuracy_rows(out_dir, session.history.current))
        session.reward_values = reward_values(out_dir)
        yield _outputs(session, f"Round {index} done → `{out_dir}`")

    def cancel_round(request: gr.Request):
        found = engine.request_cancel(request.session_hash) if request is not None else False
        return "Cancelling after the current step…" if found else "No round is running."

    @friendly
    @gpu(SHORT_GPU_S)
    def undo_round(target: str, session: Any):
        session = ensure_session(session)
        label = str(target or "base").strip().lower()
        index = 0 if label == "base" else int(label) if label.isdigit() else -1
        if session.history is None:
            if index == 0:
                return _outputs(session, "Already at the base model.")
            raise ValueError("nothing to undo: this session has no rounds yet")
        if index < 0:
            raise ValueError(f"undo target {target!r}: choose 'base' or a round number from the history")
        with engine.lock:
            session.history.undo(index)
            session.weights_version += 1
            engine.activate(session)
        session.accuracy_rows = [
            r for r in session.accuracy_rows if r["round"] == "base" or int(r["round"].split()[-1]) <= index
        ]
        return _outputs(session, f"Back to {'the base model' if index == 0 else f'round {index}'}.")

    @friendly
    def show_history(session: Any):
        return history_rows(ensure_session(session), engine.runs_root)

    outputs = [status, loss_plot, dist_plot, acc_plot, preview, history, undo_to, state]
    run.click(
        train_round,
        [prompt_set, prompts_file, category_pick, n_prompts, steps, gen_steps, lr, lam, map_mode, lora_rank, seed, eval_prompts,
         images_per_prompt, gate, state],
        outputs,
        api_name="train_round",
        concurrency_id=ENGINE_QUEUE,
    )
    cancel.click(cancel_round, None, status, api_name="cancel_round", queue=False)
    undo.click(undo_round, [undo_to, state], outputs, api_name="undo", concurrency_id=ENGINE_QUEUE)
    gr.Button("Refresh history", size="sm").click(show_history, state, history, api_name="history", queue=False)
