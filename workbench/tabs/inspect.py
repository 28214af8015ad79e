"""Inspect tab: one prompt → image → regions → judgements → reward map, every step visible.

Events: ``generate`` (prompt, seed, settings → image and the seed used) then ``score`` (box source, judge
templates → regions, per-object table, global score, heatmap). Changing the map mode or view redraws the
heatmap; picking an object highlights its region and shows its crop, question and answer (private events).
The page opens on the first example prompt, generated and scored once per process on the base weights.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

import gradio as gr

from srum_core import facade
from srum_core.boxes.user import USER_BOX_SOURCE, parse_user_boxes
from srum_core.config import (
    DEFAULT_GLOBAL_TEMPLATE,
    DEFAULT_REGION_TEMPLATE,
    GRID_MODES,
    MAP_MODES,
    REGION_VIEWS,
    GenerationConfig,
    JudgeConfig,
    RewardConfig,
    check_choice,
    help_of,
)
from srum_core.protocol import check_generation_mode, generation_modes

from .. import plots
from ..space import SHORT_GPU_S, gpu
from ..state import Engine, SessionState, ensure_session
from . import ENGINE_QUEUE, checked, friendly

TABLE_HEADERS = ["#", "object", "box [x1, y1, x2, y2]", "score", "status", "reason"]


@dataclass
class InspectTab:
    prompt: Any
    seed: Any
    run: Any
    image: Any
    seed_used: Any
    table: Any
    global_md: Any
    notices: Any
    heatmap: Any
    #: Shows the opening example; app.py runs it on page load (outputs: :attr:`example_outputs`).
    open_example: Any = None
    example_outputs: Any = None


def result_table(result: Any) -> list[list[Any]]:
    """One row per region judgement: index, object named, box, score, parse status, reason."""
    rows = []
    for index, judgement in enumerate(result.region_judgements, start=1):
        score = None if judgement.score is None else round(float(judgement.score), 3)
        rows.append(
            [index, judgement.object_name, str(list(judgement.region.box)), score, judgement.parse_status, judgement.reason]
        )
    return rows


def global_markdown(result: Any) -> str:
    g = result.global_judgement
    score = "unreadable" if g.score is None else f"{g.score:+.3f}"
    return f"**Global score g = {score}** ({g.parse_status}) — {g.reason or 'no reason given'}\n\nbox source: `{result.box_source}`"


def notices_markdown(result: Any) -> str:
    lines = [f"⚠️ {notice}" for notice in result.notices]
    lines += [f"map `{mode}` not available: {why}" for mode, why in result.map_errors.items()]
    return "\n\n".join(lines)


def annotated_value(result: Any) -> tuple[Any, list[tuple[tuple[int, int, int, int], str]]]:
    boxes = []
    for index, judgement in enumerate(result.region_judgements, start=1):
        score = "?" if judgement.score is None else f"{judgement.score:+.2f}"
        boxes.append((tuple(judgement.region.box), f"{index}. {judgement.object_name} ({score})"))
    return result.image, boxes


def heatmap_figure(result: Any, mode: str, view: str, highlight: int | None = None) -> Any:
    if result is None:
        return None
    reward_map = result.maps.get(mode)
    if reward_map is None:
        why = result.map_errors.get(mode, "unknown map mode")
        raise gr.Error(f"map mode {mode!r} cannot be drawn for this image: {why}")
    boxes = [(tuple(j.region.box), f"{i}. {j.object_name}") for i, j in enumerate(result.region_judgements, start=1)]
    title = f"{mode} reward map, {view} view ({reward_map.grid} grid, {reward_map.token_size}px tokens)"
    return plots.reward_heatmap(
        result.image, reward_map.pixel, reward_map.token, view=view, boxes=boxes, highlight=highlight, title=title
    )


def build(engine: Engine, state: Any) -> InspectTab:
    backend = engine.backend
    examples = backend.example_prompts()
    source_names = [*backend.box_sources(), USER_BOX_SOURCE]
    # The backend's own sampling defaults where it has them (BAGEL: SRUM's 50 steps, CFG 4).
    gen_default = GenerationConfig(**getattr(backend, "generation_defaults", {}))
    # A round draws its images in think mode where the backend has it (SRUM's released pipeline), so Inspect does too.
    modes = list(generation_modes(backend))
    mode_default = "think" if "think" in modes else modes[0]
    if len(modes) > 1:
        gen_default = replace(gen_default, mode=mode_default)
    judge_default = JudgeConfig()

    with gr.Row():
        with gr.Column(scale=1):
            prompt = gr.Textbox(
                label="Prompt", value=examples[0][1] if examples else "", lines=2, elem_id="inspect-prompt"
            )
            with gr.Row():
                seed = gr.Number(label="Seed (empty = random)", value=0, precision=None, elem_id="inspect-seed")
                seed_used = gr.Number(
                    label="Seed used", value=None, precision=0, interactive=False, elem_id="inspect-seed-used"
                )
            run = gr.Button("Generate and score", variant="primary", elem_id="inspect-run")
            example_set = gr.Dataset(
                components=[gr.Textbox(visible=False), gr.Textbox(visible=False)],
                samples=[[category, text] for category, text in examples],
                headers=["category", "example prompt (one click runs it)"],
                label="Examples",
                elem_id="inspect-examples",
            )
            with gr.Accordion("Generation settings", open=False):
                steps = gr.Slider(
                    1, 100, value=gen_default.steps, step=1, label="Sampling steps", info=help_of(GenerationConfig, "steps")
                )
                guidance = gr.Slider(
                    0.0, 15.0, value=gen_default.guidance, step=0.5, label="CFG guidance",
                    info=help_of(GenerationConfig, "guidance"),
                )  # fmt: skip
                gen_mode = gr.Radio(
                    modes, value=mode_default, label="Generation mode",
                    info="think: the model writes a plan of the scene first (shown under 'Raw judge text'), as a "
                    "round's images are drawn; plain: the prompt alone", visible=len(modes) > 1,
                    elem_id="inspect-gen-mode",
                )  # fmt: skip
            with gr.Accordion("Judge and box source", open=False):
                box_source = gr.Dropdown(source_names, value=source_names[0], label="Box source")
                user_boxes = gr.Textbox(
                    label="Your boxes (box source 'user')",
                    placeholder='[[4, 4, 30, 30], {"box": [34, 20, 60, 60], "label": "blue square"}]',
                    lines=2,
                )
                region_view = gr.Dropdown(
                    list(REGION_VIEWS), value=judge_default.region_view, label="How the judge sees a region",
                    info=help_of(JudgeConfig, "region_view"),
                )  # fmt: skip
                max_regions = gr.Slider(
                    1, 20, value=judge_default.max_regions, step=1, label="Max regions",
                    info=help_of(JudgeConfig, "max_regions"),
                )  # fmt: skip
                grid = gr.Radio(
                    list(GRID_MODES), value=RewardConfig().grid, label="Token grid projection",
                    info=help_of(RewardConfig, "grid"),
                )  # fmt: skip
                global_template = gr.Textbox(
                    label="Global question template", value=DEFAULT_GLOBAL_TEMPLATE, lines=3,
                    elem_id="inspect-global-template",
                )
                region_template = gr.Textbox(label="Region question template", value=DEFAULT_REGION_TEMPLATE, lines=3)
                rescore = gr.Button("Re-score this image", elem_id="inspect-rescore")
        with gr.Column(scale=2):
            image = gr.AnnotatedImage(label="Image and regions", height=320, format="png", elem_id="inspect-image")
            global_md = gr.Markdown(label="Global judgement", elem_id="inspect-global")
            notices = gr.Markdown(label="Notices", elem_id="inspect-notices")
            with gr.Row():
                map_mode = gr.Dropdown(list(MAP_MODES), value="released", label="Map mode", elem_id="inspect-map-mode")
                view = gr.Radio(["pixel", "token"], value="pixel", label="View", elem_id="inspect-view")
            heatmap = gr.Plot(label="Reward map over the image", elem_id="inspect-heatmap")
    with gr.Row():
        with gr.Column(scale=2):
            table = gr.Dataframe(
                headers=TABLE_HEADERS, label="Objects (click a row)", interactive=False, elem_id="inspect-table"
            )
        with gr.Column(scale=1):
            crop = gr.Image(label="Picked region", type="pil", height=160, interactive=False, elem_id="inspect-crop")
            qa = gr.Markdown(label="Question and answer", elem_id="inspect-qa")
    with gr.Accordion("Raw judge text", open=False):
        raw = gr.Textbox(label="Transcript", lines=10, interactive=False, elem_id="inspect-raw")

    def check_generate(
        prompt_text: Any, seed_value: Any, steps_value: Any, guidance_value: Any, mode_value: Any = None
    ) -> GenerationConfig:
        facade.check_prompt(prompt_text)
        if seed_value is not None:
            facade.check_seed(seed_value)
        if mode_value in (None, ""):
            mode_value = mode_default if len(modes) > 1 else None
        else:
            check_generation_mode(backend, mode_value)
        return GenerationConfig(steps=steps_value, guidance=guidance_value, mode=mode_value)

    def judge_config(view_name: Any, regions_max: Any, global_tpl: Any, region_tpl: Any) -> JudgeConfig:
        return JudgeConfig(
            region_view=view_name, max_regions=regions_max, global_template=global_tpl, region_template=region_tpl
        )

    def check_score_inputs(
        source: Any, boxes_text: Any, view_name: Any, regions_max: Any, grid_name: Any, global_tpl: Any,
        region_tpl: Any, mode: Any, view_kind: Any, session: Any, need_sample: bool,
    ) -> None:  # fmt: skip
        session = ensure_session(session)
        if need_sample and session.sample is None:
            raise ValueError("no image yet: generate one first (button 'Generate and score' or the generate API)")
        judge_config(view_name, regions_max, global_tpl, region_tpl)
        check_choice(grid_name, "grid", GRID_MODES)
        check_choice(mode, "map mode", MAP_MODES)
        check_choice(view_kind, "view", ("pixel", "token"))
        check_choice(source, "box source", tuple(source_names))
        if source == USER_BOX_SOURCE:
            width, height = session.sample.image.size if session.sample is not None else backend.image_size
            parse_user_boxes(boxes_text, width, height)

    def check_run(
        prompt_text: Any, seed_value: Any, steps_value: Any, guidance_value: Any, mode_value: Any, *score_args: Any
    ) -> None:
        check_generate(prompt_text, seed_value, steps_value, guidance_value, mode_value)
        check_score_inputs(*score_args, need_sample=False)

    def check_rescore(*score_args: Any) -> None:
        check_score_inputs(*score_args, need_sample=True)

    @friendly
    @gpu(SHORT_GPU_S)
    def generate(
        prompt_text: str,
        seed_value: float | None,
        steps_value: float,
        guidance_value: float,
        mode_value: str | None,
        session: Any,
    ):
        session = ensure_session(session)
        config = check_generate(prompt_text, seed_value, steps_value, guidance_value, mode_value)
        with engine.using(session) as model:
            sample = facade.generate_one(model, prompt_text, seed_value, config)
        session.last = None
        session.selected = None
        session.sample = sample
        session.generation = config
        return (sample.image, []), sample.seed, session

    @friendly
    @gpu(SHORT_GPU_S)
    def score(
        source: str,
        boxes_text: str,
        view_name: str,
        regions_max: float,
        grid_name: str,
        global_tpl: str,
        region_tpl: str,
        mode: str,
        view_kind: str,
        session: Any,
    ):
        check_score_inputs(
            source, boxes_text, view_name, regions_max, grid_name, global_tpl, region_tpl, mode, view_kind, session,
            need_sample=True,
        )  # fmt: skip
        session = ensure_session(session)
        sample = session.sample
        judge = judge_config(view_name, regions_max, global_tpl, region_tpl)
        with engine.using(session) as model:
            result = facade.score_sample(
                model, sample, judge, source, boxes_text, grid_name, session.generation
            )
        for notice in result.notices:
            gr.Warning(notice)
        session.last = result
        session.selected = None
        return (
            annotated_value(result),
            result_table(result),
            global_markdown(result),
            notices_markdown(result),
            heatmap_figure(result, mode, view_kind),
            _transcript(result),
            session,
        )

    @friendly
    def redraw(mode: str, view_kind: str, session: Any):
        session = ensure_session(session)
        return heatmap_figure(session.last, mode, view_kind, session.selected)

    @friendly
    def pick(mode: str, view_kind: str, session: Any, evt: gr.SelectData):
        session = ensure_session(session)
        result = session.last
        if result is None or not result.region_judgements:
            return None, "", None, session
        index = evt.index[0] if isinstance(evt.index, (list, tuple)) else evt.index
        index = int(index)
        if not 0 <= index < len(result.region_judgements):
            return None, "", heatmap_figure(result, mode, view_kind), session
        session.selected = index
        judgement = result.region_judgements[index]
        crop_image = facade.region_crop(result.image, judgement.region, scale=8)
        text = (
            f"**{index + 1}. {judgement.object_name}** at `{list(judgement.region.box)}` "
            f"(source {judgement.region.source})\n\n**Question:** {judgement.question or '—'}\n\n"
            f"**Answer:** {judgement.raw_text or '—'}\n\n**Score:** {_fmt(judgement.score)} ({judgement.parse_status}); "
            f"{judgement.reason}"
        )
        return crop_image, text, heatmap_figure(result, mode, view_kind, index), session

    def load_example(evt: gr.SelectData):
        row = evt.row_value if getattr(evt, "row_value", None) else examples[int(evt.index)]
        return row[1]

    score_inputs = [
        box_source,
        user_boxes,
        region_view,
        max_regions,
        grid,
        global_template,
        region_template,
        map_mode,
        view,
        state,
    ]
    score_outputs = [image, table, global_md, notices, heatmap, raw, state]

    generate_inputs = [prompt, seed, steps, guidance, gen_mode, state]
    checked(run.click, check_run, [prompt, seed, steps, guidance, gen_mode, *score_inputs], "generate")(
        generate, generate_inputs, [image, seed_used, state], api_name="generate", concurrency_id=ENGINE_QUEUE
    ).success(
        score, score_inputs, score_outputs, api_name="score_after_generate", api_visibility="private",
        concurrency_id=ENGINE_QUEUE,
    )  # fmt: skip
    example_set.select(load_example, None, prompt, api_name="load_example", api_visibility="private", queue=False).success(
        friendly(check_run), [prompt, seed, steps, guidance, gen_mode, *score_inputs], None, api_name="check_example",
        api_visibility="private",
    ).success(
        generate, generate_inputs, [image, seed_used, state], api_name="generate_example", api_visibility="private",
        concurrency_id=ENGINE_QUEUE,
    ).success(
        score, score_inputs, score_outputs, api_name="score_example", api_visibility="private",
        concurrency_id=ENGINE_QUEUE,
    )  # fmt: skip
    checked(rescore.click, check_rescore, score_inputs, "score")(
        score, score_inputs, score_outputs, api_name="score", concurrency_id=ENGINE_QUEUE
    )

    def check_edit(*args: Any) -> None:
        if ensure_session(args[-1]).sample is not None:  # nothing generated yet: nothing to re-score
            check_score_inputs(*args, need_sample=True)

    def score_on_edit(*args: Any):
        if ensure_session(args[-1]).sample is None:
            return tuple(gr.skip() for _ in score_outputs)
        return score(*args)

    # Editing a judge template re-scores the same image as soon as the edit is done (the box loses focus).
    for name, template in (("global", global_template), ("region", region_template)):
        checked(template.blur, check_edit, score_inputs, f"{name}_template", trigger_mode="always_last")(
            score_on_edit, score_inputs, score_outputs, api_name=f"score_{name}_template", api_visibility="private",
            concurrency_id=ENGINE_QUEUE, trigger_mode="always_last",
        )  # fmt: skip
    for name, control in (("mode", map_mode), ("view", view)):
        control.change(
            redraw, [map_mode, view, state], heatmap, api_name=f"redraw_{name}", api_visibility="private", queue=False
        )
    table.select(
        pick, [map_mode, view, state], [crop, qa, heatmap, state], api_name="pick_row", api_visibility="private"
    )
    image.select(
        pick, [map_mode, view, state], [crop, qa, heatmap, state], api_name="pick_box", api_visibility="private"
    )

    # The page opens on the first example, generated and scored once per process on the base weights.
    example = None
    if examples:
        example = engine.example(
            lambda model: facade.inspect_prompt(
                model, examples[0][1], 0, gen_default, JudgeConfig(), source_names[0], None, "bilinear"
            )
        )

    @friendly
    def open_example(mode: str, view_kind: str, session: Any):
        session = ensure_session(session)
        if example is None or session.sample is not None:
            return (*(gr.skip() for _ in range(7)), session)
        session.sample, session.last, session.generation, session.selected = example.sample, example, gen_default, None
        return (
            annotated_value(example),
            example.seed,
            result_table(example),
            global_markdown(example),
            notices_markdown(example),
            heatmap_figure(example, mode, view_kind),
            _transcript(example),
            session,
        )

    return InspectTab(
        prompt=prompt,
        seed=seed,
        run=run,
        image=image,
        seed_used=seed_used,
        table=table,
        global_md=global_md,
        notices=notices,
        heatmap=heatmap,
        open_example=(open_example, [map_mode, view, state]),
        example_outputs=[image, seed_used, table, global_md, notices, heatmap, raw, state],
    )


def _fmt(score: float | None) -> str:
    return "unreadable" if score is None else f"{score:+.3f}"


def _transcript(result: Any) -> str:
    parts = []
    settings = getattr(result.sample, "settings", None) or {}
    if settings.get("plan"):
        # Think mode: what the model planned before drawing (BAGEL writes it inside <think>…</think>).
        parts.append(f"[plan, {settings.get('mode', 'think')} mode]\n{settings['plan']}")
    parts.append(f"[global] {result.global_judgement.question}\n{result.global_judgement.raw_text}")
    for index, judgement in enumerate(result.region_judgements, start=1):
        parts.append(f"[region {index}: {judgement.object_name}] {judgement.question}\n{judgement.raw_text}")
    return "\n\n".join(parts)


__all__ = ["InspectTab", "SessionState", "build"]
