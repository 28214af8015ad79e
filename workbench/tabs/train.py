"""Train tab: one SRUM round on the session's own state, with live progress, curves, cancel and undo.

Events: ``train_round`` (streams progress and curves while the round runs), ``cancel_round``, ``undo`` (go
back to an earlier round or the base) and ``history`` (the session's rounds). Each session trains its own
adapter: rounds resume from the session's current round and land in the session's own run folder under the
runs root. The round's inputs are built from :data:`srum_core.params.ROUND_PARAMS` (label, default and help
from the config dataclasses) and reach the handler as one mapping; the engine's configs validate them.
"""

from __future__ import annotations

import json
import queue
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gradio as gr

from srum_core import runs as engine_runs
from srum_core.config import MAP_MODES, PRESETS, TRAIN_PARTS, check_int
from srum_core.limits import MAX_UPLOAD_BYTES, mib
from srum_core.params import ROUND_PARAMS, preset_values, round_config
from srum_core.protocol import check_generation_mode, generation_modes
from srum_core.rounds import default_eval_split, resolve_generation_mode

from .. import plots
from ..space import LONG_GPU_S, SHORT_GPU_S, gpu
from ..state import Engine, SessionState, ensure_session, round_choices
from . import ENGINE_QUEUE, checked, friendly, friendly_generator
from .runs import committed_headline

HISTORY_HEADERS = ["round", "run folder (under the runs root)", "current", "images", "trained", "excluded", "referee after"]
#: Most images (prompts × images per prompt) and training steps one round started from the UI may use.
MAX_PROMPTS = 512
MAX_STEPS = 1000
#: Most evaluation prompts per category (before and after) a UI round may ask for.
MAX_EVAL_PROMPTS = 16
NO_PRESET = "(config defaults)"

#: The tab's round inputs, in the order the ``train_round`` API takes them, and the ROUND_PARAMS key of each.
INPUT_KEYS: dict[str, str | None] = {
    "prompt_set": None,
    "prompts_file": None,
    "categories": None,
    "n_prompts": "n_prompts",
    "steps": "training.steps",
    "gen_steps": "generation.steps",
    "lr": "training.lr",
    "lam": "training.lam",
    "map_mode": "reward.mode",
    "lora_rank": "training.lora_rank",
    "seed": "seed",
    "eval_prompts": "eval_n_prompts",
    "images_per_prompt": "images_per_prompt",
    "gate": "gate",
    "preset": None,
    "gen_mode": "generation.mode",
    "train_part": "training.train_part",
}
#: Inputs a preset fills in when it is picked.
PRESET_INPUTS = ("n_prompts", "images_per_prompt", "steps", "gen_steps", "lr", "lam", "lora_rank")


def _percent(value: Any) -> str | None:
    return None if value is None else f"{100 * float(value):.1f}%"


def history_rows(session: SessionState, engine: Engine) -> list[list[Any]]:
    """The session's rounds: number, run folder (relative), ✓ for the current one, counts, referee accuracy."""
    current = 0 if session.history is None else session.history.current
    rows: list[list[Any]] = [[0, "(base model)", "✓" if current == 0 else "", None, None, None, None]]
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
                engine.relative(run_dir),
                "✓" if index == current else "",
                summary.get("n_samples"),
                summary.get("n_trainable"),
                summary.get("n_excluded_global_unusable"),
                _percent(after.get("referee_accuracy")),
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


def _parse_gate(gate: Any) -> float | None:
    """The gate field: empty → None (no gate), else a number (RoundConfig checks its range)."""
    if gate is None or (isinstance(gate, str) and not gate.strip()):
        return None
    if isinstance(gate, (int, float)) and not isinstance(gate, bool):
        return gate
    try:
        return float(str(gate))
    except ValueError:
        raise ValueError(f"gate {str(gate)[:40]!r} is not a number: leave it empty, or give e.g. 0 or 0.9") from None


#: RoundConfig fields (besides its sections) a loaded recipe carries into a round started from the tab.
_RECIPE_ROUND_FIELDS = ("n_prompts", "images_per_prompt", "seed", "gate", "eval_n_prompts", "eval_seeds",
                        "eval_categories", "n_fixed_samples")


def recipe_values(recipe: Mapping[str, Any]) -> dict[str, Any]:
    """A recipe (its normalised dict, :meth:`srum_core.recipes.Recipe.to_dict`) as values keyed like
    :data:`ROUND_PARAMS` (``section.field``), every setting included: what a round from the tab starts from."""
    from srum_core.recipes import recipe_from_dict

    config = recipe_from_dict(dict(recipe)).config
    out: dict[str, Any] = {}
    for section in ("generation", "judge", "reward", "training"):
        out.update({f"{section}.{k}": v for k, v in getattr(config, section).to_dict().items()})
    out.pop("training.seed", None)  # the round's seed is the one seed
    out.update({k: getattr(config, k) for k in _RECIPE_ROUND_FIELDS})
    return out


def load_recipe_inputs(backend: Any, path: str | None) -> tuple[dict[str, Any], dict[str, Any], str]:
    """A recipe file for this tab: ``(recipe dict, values of the tab's inputs keyed like INPUT_KEYS, message)``.
    Raises ValueError with a one-line reason for a file that is not a recipe of this backend."""
    from srum_core.recipes import load_recipe

    if not path:
        raise ValueError("choose a recipe file (.yaml, .yml or .json) to load")
    size = Path(path).stat().st_size
    if size > MAX_UPLOAD_BYTES:
        raise ValueError(f"the recipe file is {mib(size)}; this app reads at most {mib(MAX_UPLOAD_BYTES)}")
    recipe = load_recipe(path)
    if recipe.backend.split(":")[0] != backend.name.split(":")[0]:
        raise ValueError(f"this recipe is for backend {recipe.backend!r}; the app runs {backend.name!r} (use the CLI)")
    c = recipe.config
    sets = backend.prompt_sets()
    if c.prompts in sets:
        prompt_set, prompts_file = c.prompts, None
    elif Path(c.prompts).is_file():
        prompt_set, prompts_file = "file", c.prompts
    else:
        raise ValueError(f"the recipe's prompts {c.prompts!r} are neither a prompt set here ({', '.join(sets)}) nor a file")
    inputs = {
        "prompt_set": prompt_set, "prompts_file": prompts_file, "categories": list(c.categories or backend.categories()),
        "n_prompts": c.n_prompts, "steps": c.training.steps, "gen_steps": c.generation.steps, "lr": c.training.lr,
        "lam": c.training.lam, "map_mode": c.reward.mode, "lora_rank": c.training.lora_rank, "seed": c.seed,
        "eval_prompts": c.eval_n_prompts if c.eval_split is not None else 0, "images_per_prompt": c.images_per_prompt,
        "gate": "" if c.gate is None else str(c.gate), "preset": NO_PRESET,
        "gen_mode": resolve_generation_mode(backend, c.generation).mode,
        "train_part": c.training.train_part,
    }  # fmt: skip
    round_config_from_inputs(backend, {**inputs, "recipe": recipe.to_dict()})  # the tab's caps, checked now
    message = (
        f"Recipe {Path(path).name} loaded: the fields above show its main settings; every other setting of it "
        "(warm-up, batch size, judge, map grid, evaluation seeds, ...) applies to the next round. Choosing a preset "
        "drops the recipe."
    )
    return recipe.to_dict(), inputs, message


def round_config_from_inputs(backend: Any, values: Mapping[str, Any]) -> Any:
    """The engine's RoundConfig from the tab's inputs (keyed like :data:`INPUT_KEYS`); raises ValueError with a
    one-line fix for a bad value. The configs validate each value; this adds only the shared app's caps."""
    n = check_int(values.get("n_prompts"), "n_prompts", 1, MAX_PROMPTS, "this app's limit per round; the CLI has none")
    k = check_int(values.get("images_per_prompt", 1), "images_per_prompt", 1, MAX_PROMPTS, "1 or more")
    if n * k > MAX_PROMPTS:
        raise ValueError(
            f"{n} prompts × {k} images is more than this UI generates in one round ({MAX_PROMPTS}); use the CLI"
        )
    check_int(values.get("steps"), "steps", 0, MAX_STEPS, f"this app trains at most {MAX_STEPS} steps; use the CLI")
    n_eval = check_int(values.get("eval_prompts", 0), "eval_prompts", 0, MAX_EVAL_PROMPTS, "0 turns evaluation off")
    sets = (*backend.prompt_sets(), "file")
    prompt_set = values.get("prompt_set") or sets[0]
    if prompt_set not in sets:
        raise ValueError(f"prompt set {str(prompt_set)[:40]!r}: choose one of {', '.join(sets)}")
    prompts_file = values.get("prompts_file")
    if prompt_set == "file":
        if not prompts_file:
            raise ValueError("prompt set 'file' needs a JSONL/JSON file of prompts: upload one")
        size = Path(prompts_file).stat().st_size
        if size > MAX_UPLOAD_BYTES:
            raise ValueError(f"the prompt file is {mib(size)}; this app reads at most {mib(MAX_UPLOAD_BYTES)}")
    gen_mode = values.get("gen_mode") or None
    check_generation_mode(backend, gen_mode)
    given = {key: values.get(name) for name, key in INPUT_KEYS.items() if key is not None and name in values}
    given["generation.mode"] = gen_mode
    given["eval_n_prompts"] = max(n_eval, 1)
    given["gate"] = _parse_gate(values.get("gate"))
    preset = values.get("preset")
    categories = values.get("categories")
    if values.get("recipe"):  # a loaded recipe: every setting of it, the tab's fields on top
        given = {**recipe_values(values["recipe"]), **{k: v for k, v in given.items() if v is not None}}
        preset = None
    config = round_config(
        given,
        preset=None if preset in (None, "", NO_PRESET) else preset,
        prompts=prompts_file if prompt_set == "file" else prompt_set,
        categories=tuple(categories) if categories else None,
        eval_split=default_eval_split(backend) if n_eval > 0 else None,
    )
    if prompt_set == "file":
        from srum_core.prompt_sets import sample_prompts

        sample_prompts(backend, config.prompts, config.categories, config.n_prompts, 0)  # reads and checks the file
    return config


def referee_change_note(summary: Mapping[str, Any]) -> str:
    """The round's before/after referee accuracy on the same evaluation images, with its paired 95% interval."""
    if summary.get("referee_change/n") is None:
        return ""
    n = int(summary["referee_change/n"])
    low, high = summary["referee_change/ci95_low"], summary["referee_change/ci95_high"]
    return (
        f"\n\nReferee accuracy on the same {n} evaluation images (plain mode): "
        f"{summary['referee_change/before']:.1f}% → {summary['referee_change/after']:.1f}% "
        f"(Δ {summary['referee_change/delta']:+.1f} points, paired 95% CI [{low:+.1f}, {high:+.1f}]). "
        "With this few images the interval is wide; the committed table is in Runs."
    )


@dataclass
class TrainTab:
    """What other tabs chain on: ``finished`` is the event after a round (or an undo) changed the session."""

    finished: list[Any]


def build(engine: Engine, state: Any) -> TrainTab:
    backend = engine.backend
    categories = list(backend.categories())
    prompt_sets = [*backend.prompt_sets(), "file"]

    def param(key: str) -> Any:
        return ROUND_PARAMS[key]

    # The backend's own recipe (the sandbox: the one behind the measured SRUM result) is the tab's default.
    own_preset = getattr(backend, "default_preset", None)
    own_preset = own_preset if own_preset in PRESETS else None
    preset_defaults = preset_values(own_preset)

    def initial(key: str) -> Any:
        return preset_defaults.get(key, ROUND_PARAMS[key].default)

    with gr.Row():
        with gr.Column(scale=1):
            preset = gr.Dropdown(
                [NO_PRESET, *PRESETS],
                value=own_preset or NO_PRESET,
                label="Preset (srum_core.config.PRESETS, as the CLI's round --preset)",
                elem_id="train-preset",
            )
            prompt_set = gr.Radio(prompt_sets, value=prompt_sets[0], label="Prompt set", elem_id="train-set")
            prompts_file = gr.File(label="Prompt file (JSONL/JSON, for 'file')", type="filepath", file_types=[".jsonl", ".json"])
            category_pick = gr.CheckboxGroup(categories, value=categories, label="Categories (none = all)")
            recipe_file = gr.File(
                label="Load a recipe (YAML/JSON, as round --recipe)", type="filepath",
                file_types=[".yaml", ".yml", ".json"], elem_id="train-recipe",
            )
            recipe_state = gr.State(None)
            inputs: dict[str, Any] = {"prompt_set": prompt_set, "prompts_file": prompts_file, "categories": category_pick,
                                      "recipe": recipe_state}

            def number(name: str, elem_id: str | None = None, **kwargs: Any) -> Any:
                p = param(INPUT_KEYS[name])  # type: ignore[arg-type]
                value = initial(p.key) if p.key != "seed" else p.default
                options = {"label": p.label, "value": value, "info": p.help, "precision": None, **kwargs}
                return gr.Number(elem_id=elem_id, **options)

            def slider(name: str, lo: float, hi: float, step: float, **kwargs: Any) -> Any:
                p = param(INPUT_KEYS[name])  # type: ignore[arg-type]
                options = {"value": initial(p.key), "step": step, "label": p.label, "info": p.help, **kwargs}
                return gr.Slider(lo, hi, **options)

            inputs["n_prompts"] = number("n_prompts", "train-n-prompts")
            inputs["steps"] = number("steps", "train-steps")
            # The backend's own sampling steps where it has them (BAGEL: SRUM's 50), as the CLI.
            own_steps = (getattr(backend, "generation_defaults", None) or {}).get("steps")
            inputs["gen_steps"] = slider("gen_steps", 1, 100, 1, **({"value": own_steps} if own_steps else {}))
            inputs["lr"] = number("lr")
            inputs["lam"] = slider("lam", 0.0, 2.0, 0.05)
            inputs["map_mode"] = gr.Dropdown(
                list(MAP_MODES), value=param("reward.mode").default, label="Map mode", info=param("reward.mode").help
            )
            inputs["lora_rank"] = slider(
                "lora_rank", 1, 64, 1, label="LoRA rank (a session's later rounds keep it; undo to base to change it)"
            )
            inputs["seed"] = number("seed", "train-seed")
            inputs["eval_prompts"] = number("eval_prompts", "train-eval")
            inputs["images_per_prompt"] = number("images_per_prompt")
            inputs["gate"] = gr.Textbox(
                label=param("gate").label + " (empty = SRUM: every image trains)", value="", info=param("gate").help
            )
            inputs["preset"] = preset
            modes = list(generation_modes(backend))
            inputs["gen_mode"] = gr.Radio(
                modes,
                value="think" if "think" in modes else modes[0],
                label="Generation mode of the round's images (SRUM: think — plan first, then draw)",
                info="training always conditions on the short prompt alone; evaluation draws in plain mode",
                elem_id="train-gen-mode",
            )
            inputs["train_part"] = gr.Radio(
                list(TRAIN_PARTS),
                value=param("training.train_part").default,
                label=param("training.train_part").label,
                info=param("training.train_part").help,
                elem_id="train-part",
            )
            with gr.Row():
                run = gr.Button("Run round", variant="primary", elem_id="train-run")
                cancel = gr.Button("Cancel", variant="stop", elem_id="train-cancel")
            with gr.Row():
                undo_to = gr.Dropdown(["base"], value="base", label="Undo to", allow_custom_value=True, elem_id="train-undo-to")
                undo = gr.Button("Undo", elem_id="train-undo")
        with gr.Column(scale=2):
            status = gr.Markdown(label="Round status", elem_id="train-status")
            loss_plot = gr.Plot(label="Loss", elem_id="train-loss")
            dist_plot = gr.Plot(label="Reward distributions")
            acc_plot = gr.Plot(label="Accuracy per category", elem_id="train-accuracy")
            preview = gr.Image(label="Latest generated sample", type="pil", height=160, interactive=False, format="png")
            history = gr.Dataframe(headers=HISTORY_HEADERS, label="Round history", interactive=False, elem_id="train-history")

    def accuracy_note(session: SessionState) -> str:
        if backend.referee() is None:
            return f"Accuracy is measured by a referee; backend {backend.name!r} has none"
        if session.history is None:
            return "No evaluation yet: run a round with evaluation prompts above 0"
        return "The rounds so far ran without evaluation: set evaluation prompts above 0"

    def _outputs(session: SessionState, message: str, sample: Any = None) -> tuple[Any, ...]:
        choices = [c for c in round_choices(session) if c != "latest"]
        return (
            message,
            plots.loss_curves(session.step_rows),
            plots.reward_distribution(session.reward_values),
            plots.accuracy_by_category(session.accuracy_rows, accuracy_note(session)),
            gr.skip() if sample is None else sample,
            history_rows(session, engine),
            gr.Dropdown(choices=choices, value=choices[-1]),
            session,
        )

    def check_round(session: Any, **values: Any) -> None:
        round_config_from_inputs(backend, values)

    @friendly_generator
    @gpu(LONG_GPU_S)
    def train_round(session: Any, request: gr.Request, progress: gr.Progress = gr.Progress(), **values: Any):  # noqa: B008
        from srum_core.rounds import run_round

        session = ensure_session(session)
        config = round_config_from_inputs(backend, values)
        index = 1 + (0 if session.history is None else session.history.current)
        out_dir = engine.session_dir(session) / f"round-{index:02d}-{time.strftime('%Y%m%d-%H%M%S')}"
        shown = engine.relative(out_dir)
        events: queue.Queue = queue.Queue()
        cancel_event = engine.cancel_event(request.session_hash if request is not None else session.session_id)
        cancel_event.clear()
        timed_out = threading.Event()
        outcome: dict[str, Any] = {}
        step_offset = len(session.step_rows)

        def stop_for_time() -> None:
            timed_out.set()
            cancel_event.set()

        def work() -> None:
            with engine.lock:
                # The time limit counts from here: waiting for the engine is not part of the round.
                timer = threading.Timer(engine.max_round_s, stop_for_time)
                timer.daemon = True
                timer.start()
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
                    timer.cancel()
                    engine.activate(session)  # the session's previous state (the round is not added yet)
                    events.put(None)

        worker = threading.Thread(target=work, name=f"srum-round-{session.session_id}", daemon=True)
        worker.start()
        try:
            yield _outputs(session, f"Round {index} waiting for the engine → `{shown}`")
            last_yield, latest, stage, preview_image = time.monotonic(), None, None, None
            while True:
                try:
                    event = events.get(timeout=0.5)
                except queue.Empty:
                    event = False  # nothing new: still refresh the status below
                if event is None:
                    break
                changed = False
                if event is not False:
                    progress((event.step, max(event.total, 1)), desc=f"{event.stage} {event.message}".strip())
                    if event.stage == "train" and event.metrics:
                        row = dict(event.metrics)
                        row["total"] = row.get("loss", row.get("total"))
                        row["global_step"] = len(session.step_rows) + 1
                        session.step_rows.append(row)
                    if event.preview is not None:
                        preview_image = event.preview
                    changed, stage, latest = event.stage != stage, event.stage, event
                if latest is not None and (changed or time.monotonic() - last_yield >= 0.5):
                    last_yield = time.monotonic()
                    # The same stage and step as the progress bar shows.
                    text = f"Round {index}: {latest.stage} {latest.step}/{latest.total} {latest.message}".rstrip()
                    yield _outputs(session, text, preview_image)
                    preview_image = None
        except GeneratorExit:
            # The visitor left (closed the tab): stop the round rather than train for nobody.
            cancel_event.set()
            raise
        worker.join()
        if "error" in outcome:
            del session.step_rows[step_offset:]
            err = outcome["error"]
            if type(err).__name__ == "Cancelled":
                if timed_out.is_set():
                    message = (
                        f"Round {index} stopped after {engine.max_round_s:g} s, this shared app's limit per round; "
                        "nothing changed. Use fewer prompts or steps, or the CLI."
                    )
                else:
                    message = f"Round {index} cancelled; nothing changed."
                gr.Warning(message)
                yield _outputs(session, message)
                return
            raise err
        if session.history is None:
            session.history = engine_runs.RunHistory()
        session.history.add(out_dir)
        session.weights_version += 1
        session.accuracy_rows = _dedupe(session.accuracy_rows + accuracy_rows(out_dir, session.history.current))
        session.reward_values = reward_values(out_dir)
        headline = committed_headline(getattr(engine.backend, "measured_result", None))
        yield _outputs(session, f"Round {index} done → `{shown}`" + referee_change_note(outcome["result"].summary)
                       + (f"\n\n{headline}" if headline else ""))

    def cancel_round(request: gr.Request):
        found = engine.request_cancel(request.session_hash) if request is not None else False
        return "Cancelling after the current step…" if found else "No round is running."

    def undo_index(target: Any, session: SessionState) -> int:
        label = str(target if target is not None else "base").strip().lower()
        index = 0 if label == "base" else int(label) if label.isdigit() and len(label) < 6 else -1
        if session.history is None and index != 0:
            raise ValueError("nothing to undo: this session has no rounds yet")
        current = 0 if session.history is None else session.history.current
        if not 0 <= index <= current:
            raise ValueError(f"undo target {str(target)[:40]!r}: choose 'base' or a round number from 1 to {current}")
        return index

    def check_undo(target: Any, session: Any) -> None:
        undo_index(target, ensure_session(session))

    @friendly
    @gpu(SHORT_GPU_S)
    def undo_round(target: str, session: Any):
        session = ensure_session(session)
        index = undo_index(target, session)
        if session.history is None:
            return _outputs(session, "Already at the base model.")
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
        return history_rows(ensure_session(session), engine)

    def apply_preset(name: str):
        values = preset_values(None if name in (None, "", NO_PRESET) else name)
        if not values:
            return tuple(ROUND_PARAMS[INPUT_KEYS[key]].default for key in PRESET_INPUTS)  # type: ignore[index]
        return tuple(
            values.get(INPUT_KEYS[key], ROUND_PARAMS[INPUT_KEYS[key]].default)  # type: ignore[index]
            for key in PRESET_INPUTS
        )

    recipe_targets = [name for name in INPUT_KEYS if name in inputs]

    @friendly
    def load_recipe(path: str | None):
        recipe, values, message = load_recipe_inputs(backend, path)
        return (recipe, message, *(values[name] for name in recipe_targets))

    recipe_file.upload(
        load_recipe, recipe_file, [recipe_state, status, *(inputs[name] for name in recipe_targets)],
        api_name="load_recipe", queue=False,
    )
    outputs = [status, loss_plot, dist_plot, acc_plot, preview, history, undo_to, state]
    round_done = checked(run.click, check_round, [state], "train_round", inputs_kwargs=inputs)(
        train_round,
        inputs=[state],
        inputs_kwargs=inputs,
        outputs=outputs,
        api_name="train_round",
        concurrency_id=ENGINE_QUEUE,
    )
    cancel.click(cancel_round, None, status, api_name="cancel_round", queue=False)
    undo_done = checked(undo.click, check_undo, [undo_to, state], "undo")(
        undo_round, [undo_to, state], outputs, api_name="undo", concurrency_id=ENGINE_QUEUE
    )
    gr.Button("Refresh history", size="sm").click(show_history, state, history, api_name="history", queue=False)
    preset.input(
        apply_preset, preset, [inputs[key] for key in PRESET_INPUTS], api_name="apply_preset", api_visibility="private",
        queue=False,
    )
    preset.input(lambda _: None, preset, recipe_state, queue=False, api_visibility="private")  # a preset drops it
    return TrainTab(finished=[round_done, undo_done])

