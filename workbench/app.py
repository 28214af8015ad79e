"""``build_demo(engine) -> gr.Blocks``: the Workbench tabs around one shared engine.

Inspect comes first and opens on a generated example. Every event that touches the backend joins one queue
group (``ENGINE_QUEUE``), so one runs at a time and a waiting visitor sees its place; the queue is bounded by
``engine.max_queue``. Uploads are limited to :data:`srum_core.limits.MAX_UPLOAD_BYTES` (:data:`LAUNCH_OPTIONS`)
and gradio's cached files (uploads, downloads) older than an hour are deleted every hour.
"""

from __future__ import annotations

from typing import Any

import gradio as gr

from srum_core.limits import MAX_UPLOAD_BYTES

from . import gradio_fixes
from .state import Engine
from .tabs import compare, evaluate, inspect, runs, train

TITLE = "SRUM Workbench"
INTRO = (
    "Self-rewarding post-training of a unified model (SRUM, arXiv 2510.12784): the model judges its own images "
    "globally and per region, the judgements become a dense reward map, and the map weights a training loss on "
    "its own samples. Inspect one prompt, run a training round, compare before/after, and browse run folders. "
    "Your rounds are yours: other visitors neither see nor load them."
)
#: Options for ``demo.launch``: the largest upload gradio accepts (a file over the limit is refused at upload).
LAUNCH_OPTIONS: dict[str, Any] = {"max_file_size": MAX_UPLOAD_BYTES}
#: gradio's cache of uploaded and served files: every hour, delete those older than an hour.
DELETE_CACHE = (3600, 3600)


def build_demo(engine: Engine) -> gr.Blocks:
    """The Workbench UI for ``engine``. Builds components (and the opening example) only; nothing is served until
    the demo is launched."""
    gradio_fixes.install()
    with gr.Blocks(title=TITLE, delete_cache=DELETE_CACHE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}\n\nBackend: `{engine.backend.name}`")
        state = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Inspect", id="inspect"):
                inspect_tab = inspect.build(engine, state)
            with gr.Tab("Train", id="train"):
                train_tab = train.build(engine, state)
            with gr.Tab("Compare", id="compare") as compare_page:
                compare_tab = compare.build(engine, state, initial_prompt=inspect_tab.prompt.value or "")
            with gr.Tab("Evaluate", id="evaluate"):
                evaluate.build(engine, state)
            with gr.Tab("Runs", id="runs") as runs_page:
                runs_tab = runs.build(engine, state)

        open_example, example_inputs = inspect_tab.open_example
        list_runs, list_inputs = runs_tab.refresh
        # On opening: the example in Inspect, then this visitor's runs (after the example, which creates the
        # visitor's session).
        demo.load(
            open_example, example_inputs, inspect_tab.example_outputs, api_name="open_example",
            api_visibility="private", queue=False,
        ).then(list_runs, list_inputs, runs_tab.table, api_name="list_runs_on_load", api_visibility="private", queue=False)
        runs_page.select(
            list_runs, list_inputs, runs_tab.table, api_name="list_runs_on_open", api_visibility="private", queue=False
        )
        for finished in train_tab.finished:
            finished.then(list_runs, list_inputs, runs_tab.table, api_visibility="private", queue=False)
        compare_page.select(
            compare.carry_over,
            [inspect_tab.prompt, inspect_tab.seed_used, compare_tab.prompt, compare_tab.seed, compare_tab.carried],
            [compare_tab.prompt, compare_tab.seed, compare_tab.carried],
            api_name="carry_over",
            api_visibility="private",
            queue=False,
        )
    demo.queue(max_size=engine.max_queue, default_concurrency_limit=1)
    return demo
