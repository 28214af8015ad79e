"""The Evaluate tab, headless through gradio_client: evaluate base (and rounds) with the referee, list and show
evaluation folders (the session's own and the CLI's), refuse bad inputs with their message."""

from __future__ import annotations

import shutil

import pytest
from gradio_client import Client
from gradio_client.exceptions import AppError

from srum_core.config import GenerationConfig
from srum_core.eval_runs import EvaluationConfig, run_evaluation, states_for
from tests.test_ui_api import free_port, tiny_backend
from workbench.app import build_demo
from workbench.state import Engine


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    engine = Engine(tiny_backend(), runs_root=tmp_path_factory.mktemp("runs"), max_queue=8)
    demo = build_demo(engine)
    _, url, _ = demo.launch(prevent_thread_lock=True, server_name="127.0.0.1", server_port=free_port(), quiet=True)
    try:
        yield engine, url
    finally:
        demo.close()


def test_evaluate_base_then_list_and_show_a_cli_folder(served):
    engine, url = served
    client = Client(url, verbose=False)
    status, plot, table, worst, folders = client.predict("eval", 1, "0", api_name="/evaluate")
    assert "judge `referee:" in status and "base" in status
    assert table["data"][0][0] == "base" and plot is not None
    own = folders["value"] if isinstance(folders, dict) else folders
    assert own.startswith("ui/") and "/eval-" in own
    # a CLI evaluation under the runs root is listed to every visitor and opens the same way
    cli_dir = engine.runs_root / "cli-eval"
    config = EvaluationConfig(eval_set="eval", categories=("color",), n_per_category=1)
    run_evaluation(tiny_backend(), states_for([]), config, cli_dir, generation=GenerationConfig(steps=2))
    other = Client(url, verbose=False)
    listed = other.predict(api_name="/list_evaluations")
    assert [c[0] for c in listed["choices"]] == ["cli-eval"]  # not the first visitor's own evaluation
    status, _, table, worst = other.predict("cli-eval", api_name="/show_evaluation")
    assert "cli-eval" in status and len(table["data"]) == 1 and len(worst) >= 1
    with pytest.raises(AppError, match="pick an evaluation folder"):
        other.predict(own, api_name="/show_evaluation")
    shutil.rmtree(cli_dir)


def test_bad_evaluate_inputs_are_refused_with_their_message(served):
    _, url = served
    client = Client(url, verbose=False)
    with pytest.raises(AppError, match="prompts per category"):
        client.predict("eval", 0, "0", api_name="/evaluate")
    with pytest.raises(AppError, match="seeds"):
        client.predict("eval", 1, "a,b", api_name="/evaluate")
