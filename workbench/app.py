"""``build_demo(engine) -> gr.Blocks``: the four Workbench tabs around one shared engine.

Inspect comes first. Every event that touches the backend joins one queue group (``ENGINE_QUEUE``), so one
runs at a time and a waiting visitor sees its place; the queue is bounded by ``engine.max_queue``.
"""

from __future__ import annotations

import gradio as gr

from .state import Engine
from .tabs import compare, inspect, runs, train

TITLE = "SRUM Workbench"
INTRO = (
    "Self-rewarding post-training of a unified model (SRUM, arXiv 2510.12784): the model judges its own images "
    "globally and per region, the judgements become a dense reward map, and the map weights a training loss on "
    "its own samples. Inspect one prompt, run a training round, compare before/after, and browse run folders."
)


def build_demo(engine: Engine) -> gr.Blocks:
    """The Workbench UI for ``engine``. Builds components only; nothing runs until the demo is launched."""
    with gr.Blocks(title=TITLE) as demo:
        gr.Markdown(f"# {TITLE}\n{INTRO}\n\nBackend: `{engine.backend.name}` · runs root: `{engine.runs_root}`")
        state = gr.State(None)
        with gr.Tabs():
            with gr.Tab("Inspect", id="inspect"):
                inspect.build(engine, state)
            with gr.Tab("Train", id="train"):
                train.build(engine, state)
            with gr.Tab("Compare", id="compare"):
                compare.build(engine, state)
            with gr.Tab("Runs", id="runs"):
                runs.build(engine, state)
    demo.queue(max_size=engine.max_queue, default_concurrency_limit=1)
    return demo
