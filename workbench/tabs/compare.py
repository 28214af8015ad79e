"""Compare tab: the base model and a trained round at the same prompt and seed.

A before/after slider, both reward breakdowns side by side, per-object and global score deltas, the referee's
verdicts (sandbox only; the referee never feeds a reward), and a small grid over consecutive seeds.
Event: ``compare``. Opening the tab carries over the Inspect tab's prompt and seed (unless you changed them here).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gradio as gr

from srum_core import facade
from srum_core.config import GenerationConfig, JudgeConfig, check_int

from ..space import SHORT_GPU_S, gpu
from ..state import Engine, ensure_session, round_choices
from . import ENGINE_QUEUE, checked, friendly
from .inspect import TABLE_HEADERS, result_table
from .runs import committed_headline

DELTA_HEADERS = ["what", "base", "after", "delta"]
MAX_GRID = 8


def verdict_text(verdict: dict[str, Any] | None) -> str:
    if verdict is None:
        return "no referee for this backend"
    if verdict["passed"] is None:
        return f"not judged: {verdict['notes']}"
    failed = [name for name, ok in verdict["checks"].items() if not ok]
    return ("✅ passed" if verdict["passed"] else "❌ failed") + (f" (failed: {', '.join(failed)})" if failed else "")


def _score(value: float | None) -> float | None:
    return None if value is None else round(float(value), 3)


@dataclass
class CompareTab:
    prompt: Any
    seed: Any
    #: (prompt, seed) last carried over from the Inspect tab.
    carried: Any


def carry_over(inspect_prompt: str, inspect_seed: Any, prompt: str, seed: Any, carried: Any):
    """Compare's prompt and seed on opening the tab: Inspect's, unless the visitor changed Compare's own since
    they were last carried over."""
    untouched = not (prompt or "").strip() or carried is None or (prompt, seed) == tuple(carried)
    if not untouched:
        return gr.skip(), gr.skip(), carried
    new_seed = seed if inspect_seed is None else inspect_seed
    return inspect_prompt, new_seed, (inspect_prompt, new_seed)


def build(engine: Engine, state: Any, initial_prompt: str = "") -> CompareTab:
    # The backend's own sampling defaults where it has them (BAGEL: SRUM's 50 steps, CFG 4).
    gen_default = GenerationConfig(**getattr(engine.backend, "generation_defaults", {}))
    with gr.Row():
        with gr.Column(scale=1):
            prompt = gr.Textbox(label="Prompt", value=initial_prompt, lines=2, elem_id="compare-prompt")
            seed = gr.Number(label="Seed", value=0, precision=None, elem_id="compare-seed")
            carried = gr.State((initial_prompt, 0))
            round_pick = gr.Dropdown(
                ["latest", "base"], value="latest", label="Trained state to compare with the base",
                allow_custom_value=True, elem_id="compare-round",
            )
            n_grid = gr.Slider(0, MAX_GRID, value=3, step=1, label="Seed grid: images per side (0 = off)")
            steps = gr.Slider(1, 100, value=gen_default.steps, step=1, label="Sampling steps")
            guidance = gr.Slider(0.0, 15.0, value=gen_default.guidance, step=0.5, label="CFG guidance")
            run = gr.Button("Compare", variant="primary", elem_id="compare-run")
        with gr.Column(scale=2):
            slider = gr.ImageSlider(label="Base ↔ trained", type="pil", format="png", elem_id="compare-slider")
            verdicts = gr.Markdown(label="Referee verdicts", elem_id="compare-verdicts")
    with gr.Row():
        before_table = gr.Dataframe(headers=TABLE_HEADERS, label="Base: objects", interactive=False)
        after_table = gr.Dataframe(headers=TABLE_HEADERS, label="Trained: objects", interactive=False)
    deltas = gr.Dataframe(headers=DELTA_HEADERS, label="Score changes (after − base)", interactive=False)
    # One row per seed: the base image, then the trained one (height grows with the rows, none is cut off).
    grid = gr.Gallery(label="Seed grid: base | trained, one row per seed", columns=2, height="auto")

    def check_compare(
        prompt_text: Any, seed_value: Any, which: Any, grid_n: Any, steps_value: Any, guidance_value: Any, session: Any
    ) -> tuple[Any, ...]:
        config = GenerationConfig(steps=steps_value, guidance=guidance_value)
        text = facade.check_prompt(prompt_text)
        n = check_int(grid_n, "seed grid size", 0, MAX_GRID)
        seed_used = facade.draw_seed(seed_value)
        facade.check_seed(seed_used + max(n - 1, 0))  # every seed of the grid must be a valid seed
        session = ensure_session(session)
        label = str(which if which is not None else "latest").strip().lower()
        if label not in ("latest", "current", "", "base"):
            rounds = 0 if session.history is None else len(session.history.rounds)
            check_int(_round_number(label), "round", 0, rounds, "'base', 'latest' or a round of this session")
        return config, text, n, seed_used

    @friendly
    @gpu(SHORT_GPU_S * 2)
    def compare(
        prompt_text: str, seed_value: float | None, which: str, grid_n: float, steps_value: float,
        guidance_value: float, session: Any,
    ):
        config, text, n, seed_used = check_compare(
            prompt_text, seed_value, which, grid_n, steps_value, guidance_value, session
        )
        session = ensure_session(session)
        judge = JudgeConfig()
        with engine.lock:
            engine.activate_round(session, "base")
            before = facade.inspect_prompt(engine.backend, text, seed_used, config, judge, None)
            before_grid = [
                facade.inspect_prompt(engine.backend, text, seed_used + i, config, judge, None) for i in range(n)
            ]
            label = engine.activate_round(session, which)
            after = facade.inspect_prompt(engine.backend, text, seed_used, config, judge, None)
            after_grid = [
                facade.inspect_prompt(engine.backend, text, seed_used + i, config, judge, None) for i in range(n)
            ]
            engine.activate(session)  # back to the session's current state
            verdict_before = facade.referee_verdict(engine.backend, before.image, text)
            verdict_after = facade.referee_verdict(engine.backend, after.image, text)
            grid_verdicts = [
                (facade.referee_verdict(engine.backend, b.image, text),
                 facade.referee_verdict(engine.backend, a.image, text))
                for b, a in zip(before_grid, after_grid)
            ]
        rows = [
            [d.what, _score(d.before), _score(d.after), _score(d.delta)]
            for d in facade.compare_results(before, after)
        ]
        verdict_md = (
            f"Seed **{seed_used}**, base vs **{label}**.\n\n"
            f"Referee — base: {verdict_text(verdict_before)} · {label}: {verdict_text(verdict_after)}"
        )
        headline = committed_headline(getattr(engine.backend, "measured_result", None))
        if headline:
            verdict_md += f"\n\nOne seed is an anecdote. {headline}"
        gallery = []
        for i, (b, a) in enumerate(zip(before_grid, after_grid)):
            vb, va = grid_verdicts[i]
            gallery.append((b.image, f"seed {seed_used + i} base g={_score(b.global_judgement.score)} {verdict_text(vb)}"))
            gallery.append((a.image, f"seed {seed_used + i} {label} g={_score(a.global_judgement.score)} {verdict_text(va)}"))
        return (before.image, after.image), verdict_md, result_table(before), result_table(after), rows, gallery, session

    def refresh_rounds(session: Any):
        return gr.Dropdown(choices=round_choices(ensure_session(session)))

    compare_inputs = [prompt, seed, round_pick, n_grid, steps, guidance, state]
    checked(run.click, check_compare, compare_inputs, "compare")(
        compare,
        compare_inputs,
        [slider, verdicts, before_table, after_table, deltas, grid, state],
        api_name="compare",
        concurrency_id=ENGINE_QUEUE,
    )
    round_pick.focus(
        refresh_rounds, state, round_pick, api_name="compare_rounds", api_visibility="private", queue=False
    )
    return CompareTab(prompt=prompt, seed=seed, carried=carried)


def _round_number(label: str) -> Any:
    """A round label typed in the menu (``"2"`` or ``"round 2"``) as a number, or the text when it is not one."""
    text = label.removeprefix("round").strip()
    return int(text) if text.isdigit() and len(text) < 7 else label
